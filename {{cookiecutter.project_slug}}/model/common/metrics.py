"""Quality metrics, bias metrics under SageMaker Clarify's names, and the gates of model/config/baseline.json.

Bias follows Clarify's definitions: facet d is the group named by `facet_values_or_threshold`, facet a is
everyone else, and an outcome is positive when the label is in `label_values_or_threshold` (classification) or
at least the threshold (regression). fairlearn's MetricFrame does the per-group computation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model.common.data_contract import Schema

GATE_KINDS = ("min", "max", "max_abs")


def _sklearn_metrics():
    """scikit-learn's metrics, imported on first use: the import takes about a second, and the jobs that only read
    the gates (prepare, the data-quality checks, the model card) never compute a metric."""
    from sklearn import metrics

    return metrics


def quality_metrics(
    schema: Schema, y_true: np.ndarray, values: np.ndarray, probabilities: np.ndarray | None = None
) -> dict[str, float]:
    """y_true and values are class indices (classification) or numbers (regression)."""
    skm = _sklearn_metrics()
    if schema.problem_type == "regression":
        return {
            "rmse": float(math.sqrt(skm.mean_squared_error(y_true, values))),
            "mae": float(skm.mean_absolute_error(y_true, values)),
            "r2": float(skm.r2_score(y_true, values)),
        }
    out = {"accuracy": float(skm.accuracy_score(y_true, values))}
    if schema.problem_type == "binary_classification":
        positive = schema.classes.index(schema.label_values_or_threshold[0])
        out["precision"] = float(skm.precision_score(y_true, values, pos_label=positive, zero_division=0))
        out["recall"] = float(skm.recall_score(y_true, values, pos_label=positive, zero_division=0))
        out["f1"] = float(skm.f1_score(y_true, values, pos_label=positive, zero_division=0))
        if probabilities is not None and len(np.unique(y_true)) == 2:
            score = probabilities[:, positive]
            out["roc_auc"] = float(skm.roc_auc_score(y_true == positive, score))
            out["log_loss"] = float(skm.log_loss(y_true, probabilities, labels=range(len(schema.classes))))
        return out
    labels = list(range(len(schema.classes)))
    out["precision_macro"] = float(skm.precision_score(y_true, values, average="macro", labels=labels, zero_division=0))
    out["recall_macro"] = float(skm.recall_score(y_true, values, average="macro", labels=labels, zero_division=0))
    out["f1_macro"] = float(skm.f1_score(y_true, values, average="macro", labels=labels, zero_division=0))
    if probabilities is not None and len(np.unique(y_true)) == len(labels):
        out["roc_auc_ovr"] = float(skm.roc_auc_score(y_true, probabilities, multi_class="ovr", labels=labels))
        out["log_loss"] = float(skm.log_loss(y_true, probabilities, labels=labels))
    return out


def positive_outcome(schema: Schema, values: np.ndarray) -> np.ndarray:
    """Binarise labels or predictions the way Clarify does."""
    if schema.problem_type == "regression":
        return np.asarray(values, dtype=np.float64) >= float(schema.label_values_or_threshold[0])
    positive = [schema.classes.index(v) for v in schema.label_values_or_threshold]
    return np.isin(np.asarray(values), positive)


def _specificity(y_true, y_pred) -> float:
    negatives = ~np.asarray(y_true, dtype=bool)
    return float((~np.asarray(y_pred, dtype=bool))[negatives].mean()) if negatives.any() else math.nan


def _recall(y_true, y_pred) -> float:
    positives = np.asarray(y_true, dtype=bool)
    return float(np.asarray(y_pred, dtype=bool)[positives].mean()) if positives.any() else math.nan


def bias_metrics(
    schema: Schema, sensitive: Mapping[str, np.ndarray], y_true: np.ndarray, y_pred: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """Pre-training (CI, DPL) and, with predictions, post-training (DPPL, DI, AD, RD, SD) metrics per facet."""
    from fairlearn.metrics import MetricFrame, selection_rate

    skm = _sklearn_metrics()
    label = positive_outcome(schema, y_true)
    predicted = positive_outcome(schema, y_pred) if y_pred is not None else None
    report: dict[str, dict[str, float]] = {}
    for facet in schema.sensitive_features:
        if facet.name not in sensitive:
            continue
        # Rows without a facet value belong to neither group (Clarify leaves them out too): count them.
        in_d, known = facet.groups(sensitive[facet.name])
        in_d, label_k = in_d[known], label[known]
        predicted_k = predicted[known] if predicted is not None else None
        groups = np.where(in_d, "d", "a")
        n_d, n_a = int(in_d.sum()), int((~in_d).sum())
        result = {"n_a": float(n_a), "n_d": float(n_d), "CI": (n_a - n_d) / (n_a + n_d) if n_a + n_d else math.nan}
        if not known.all():
            result["n_missing"] = float((~known).sum())
        if n_a == 0 or n_d == 0:
            report[facet.name] = result
            continue
        observed = MetricFrame(metrics=selection_rate, y_true=label_k, y_pred=label_k, sensitive_features=groups)
        result["DPL"] = float(observed.by_group["a"] - observed.by_group["d"])
        if predicted is not None:
            frame = MetricFrame(
                metrics={
                    "rate": selection_rate,
                    "accuracy": skm.accuracy_score,
                    "recall": _recall,
                    "specificity": _specificity,
                },
                y_true=label_k,
                y_pred=predicted_k,
                sensitive_features=groups,
            )
            by = frame.by_group
            q_a, q_d = float(by.loc["a", "rate"]), float(by.loc["d", "rate"])
            result["DPPL"] = q_a - q_d
            result["DI"] = q_d / q_a if q_a > 0 else math.nan
            result["AD"] = float(by.loc["a", "accuracy"] - by.loc["d", "accuracy"])
            result["RD"] = float(by.loc["a", "recall"] - by.loc["d", "recall"])
            result["SD"] = float(by.loc["a", "specificity"] - by.loc["d", "specificity"])
        report[facet.name] = result
    return report


@dataclass(frozen=True)
class GateResult:
    group: str  # quality | bias
    metric: str
    value: float | None
    bound: str
    status: str  # passed | failed | not_computed
    facet: str | None = None

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    def describe(self) -> str:
        name = f"{self.metric}[{self.facet}]" if self.facet else self.metric
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        return f"{name} = {value} (gate {self.bound}): {self.status}"


def load_baseline(path: str | Path) -> dict:
    path = Path(path)
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    for group in ("quality", "bias"):
        for metric, bounds in baseline.get(group, {}).items():
            if not isinstance(bounds, dict) or not bounds or set(bounds) - set(GATE_KINDS):
                raise ValueError(
                    f"{path}: {group}.{metric} = {bounds!r}: give an object with any of {', '.join(GATE_KINDS)}"
                )
            for kind, limit in bounds.items():
                if isinstance(limit, bool) or not isinstance(limit, (int, float)):
                    raise ValueError(f"{path}: {group}.{metric}.{kind} = {limit!r}: give a number")
    return baseline


def check_bound(
    group: str, metric: str, value: float | None, bounds: Mapping[str, float], facet: str | None = None
) -> GateResult:
    bound = ", ".join(f"{k} {v}" for k, v in bounds.items())
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return GateResult(group, metric, None, bound, "not_computed", facet)
    ok = (
        ("min" not in bounds or value >= bounds["min"])
        and ("max" not in bounds or value <= bounds["max"])
        and ("max_abs" not in bounds or abs(value) <= bounds["max_abs"])
    )
    return GateResult(group, metric, float(value), bound, "passed" if ok else "failed", facet)


def check_gates(
    baseline: Mapping, quality: Mapping[str, float], bias: Mapping[str, Mapping[str, float]]
) -> list[GateResult]:
    """Every gate in baseline.json against the measured metrics; a gated metric that was not measured fails."""
    results = []
    for metric, bounds in baseline.get("quality", {}).items():
        if metric not in quality:
            results.append(GateResult("quality", metric, None, "measured", "failed"))
            continue
        results.append(check_bound("quality", metric, quality[metric], bounds))
    for facet, values in bias.items():
        for metric, bounds in baseline.get("bias", {}).items():
            results.append(check_bound("bias", metric, values.get(metric), bounds, facet))
    return results


def metrics_report(schema: Schema, quality: Mapping[str, float], bias: Mapping, gates: list[GateResult]) -> dict:
    """evaluation.json: quality in SageMaker's model-quality report shape, plus bias and gate outcomes."""
    key = {
        "binary_classification": "binary_classification_metrics",
        "multiclass_classification": "multiclass_classification_metrics",
        "regression": "regression_metrics",
    }[schema.problem_type]
    return {
        key: {name: {"value": value, "standard_deviation": "NaN"} for name, value in quality.items()},
        "bias_metrics": {
            facet: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}
            for facet, values in bias.items()
        },
        "gates": [asdict(g) for g in gates],
        "passed": all(g.passed for g in gates),
    }
