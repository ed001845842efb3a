"""Compare a profile of live data with the baseline: Model Monitor's checks, as pure functions.

Distances (see monitoring/README.md for why):
- numeric features: Jensen-Shannon distance (base 2, in [0, 1]) over the baseline's decile bins; PSI is
  reported next to it for readers who know it;
- categorical features and the predicted label: L-infinity distance between category shares, as Model Monitor.
With comparison_method "Robust" a distance over the threshold is a violation only if a chi-square test also
rejects "same distribution" at ROBUST_ALPHA, so a small capture window cannot raise drift on sampling noise.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from model.common.data_contract import Feature, Schema
from monitoring.drift_statistics import (
    ABOVE_MAXIMUM,
    BELOW_MINIMUM,
    NOT_INTEGER,
    TYPE_ERROR,
    FeatureProfile,
    MonitoringConfig,
    Profile,
    homogeneity_p_value,
    jensen_shannon_distance,
    linf_distance,
    population_stability_index,
)

ROBUST_ALPHA = 0.01
MIN_ROWS_FOR_DRIFT = 30  # below this many present values a distance says nothing: reported, not checked
CHECK_TYPES = (
    "data_type_check",
    "completeness_check",
    "baseline_drift_check",
    "missing_column_check",
    "extra_column_check",
    "categorical_values_check",
)


@dataclass(frozen=True)
class Violation:
    feature_name: str
    constraint_check_type: str
    description: str


@dataclass
class Baseline:
    """A baseline folder: statistics.json, constraints.json, output_statistics.json (optional), schema.json."""

    schema: Schema
    statistics: dict
    constraints: dict
    output_statistics: dict | None
    config: MonitoringConfig

    @classmethod
    def load(cls, folder: str | Path, schema_path: str | Path | None = None) -> Baseline:
        folder = Path(folder)

        def read(name: str, required: bool = True) -> dict | None:
            path = folder / name
            if not path.is_file():
                if required:
                    raise FileNotFoundError(
                        f"{path} not found: write the baseline first (python -m monitoring.drift_baseline --data ...)"
                    )
                return None
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is not valid JSON: {exc}") from None

        schema = Schema.load(schema_path or folder / "schema.json")
        constraints = read("constraints.json")
        config = MonitoringConfig.from_json(constraints.get("monitoring_config", {}), str(folder / "constraints.json"))
        return cls(schema, read("statistics.json"), constraints, read("output_statistics.json", False), config)

    @staticmethod
    def edges(statistics: Mapping) -> dict[str, list[float]]:
        """Bin edges of each numeric feature: the inner bucket bounds of its KLL distribution."""
        out = {}
        for item in statistics["features"]:
            numeric = item.get("numerical_statistics")
            if numeric is not None:
                buckets = numeric["distribution"]["kll"]["buckets"]
                out[item["name"]] = [b["upper_bound"] for b in buckets[:-1]]
        return out

    @staticmethod
    def histograms(statistics: Mapping) -> dict[str, dict]:
        """Baseline counts per bin (numeric) or per category (string)."""
        out = {}
        for item in statistics["features"]:
            if "numerical_statistics" in item:
                buckets = item["numerical_statistics"]["distribution"]["kll"]["buckets"]
                out[item["name"]] = {"bins": [b["count"] for b in buckets]}
            else:
                buckets = item["string_statistics"]["distribution"]["categorical"]["buckets"]
                out[item["name"]] = {"categories": {b["value"]: b["count"] for b in buckets}}
        return out


@dataclass
class DriftResult:
    feature: str
    kind: str  # numeric | categorical
    method: str  # jensen_shannon | linf
    distance: float | None
    psi: float | None
    p_value: float | None
    rows: int
    drifted: bool
    note: str = ""
    labels: list | None = None  # bin or category labels, for the report's plots
    baseline_counts: list | None = None
    current_counts: list | None = None


def compare_distribution(
    name: str, current: FeatureProfile, baseline_hist: Mapping, config: MonitoringConfig, prefix: str = ""
) -> DriftResult:
    label = prefix + name
    if "bins" in baseline_hist:
        base = list(baseline_hist["bins"])
        cur = list(current.histogram)
        edges = current.edges
        labels = [f"< {edges[0]:g}"] if edges else ["all"]
        labels += [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges)]
        labels += [f">= {edges[-1]:g}"] if edges else []
        rows, method = current.present, "jensen_shannon"
        distance = jensen_shannon_distance(base, cur) if rows else None
        psi = population_stability_index(base, cur) if rows else None
    else:
        categories = dict(baseline_hist["categories"])
        labels = sorted(set(categories) | set(current.counts))
        base = [categories.get(c, 0.0) for c in labels]
        cur = [current.counts.get(c, 0) for c in labels]
        rows, method, psi = sum(cur), "linf", None
        distance = linf_distance(base, cur) if rows else None
    if rows < MIN_ROWS_FOR_DRIFT or not sum(base):
        why = f"{rows} values present" if sum(base) else "the baseline has no values"
        return DriftResult(
            label,
            "numeric" if "bins" in baseline_hist else "categorical",
            method,
            distance,
            psi,
            None,
            rows,
            False,
            f"not checked: {why}",
            labels,
            base,
            cur,
        )
    p_value = homogeneity_p_value(base, cur)
    drifted = distance > config.comparison_threshold
    if config.comparison_method == "Robust":
        drifted = drifted and p_value < ROBUST_ALPHA
    kind = "numeric" if "bins" in baseline_hist else "categorical"
    return DriftResult(label, kind, method, distance, psi, p_value, rows, drifted, "", labels, base, cur)


def _constraint_by_name(constraints: Mapping) -> dict[str, dict]:
    return {item["name"]: item for item in constraints.get("features", [])}


def check_feature(
    feature: Feature, current: FeatureProfile, constraint: Mapping | None, config: MonitoringConfig
) -> list[Violation]:
    out = []
    name = feature.name
    if current.absent_rows:
        out.append(
            Violation(
                name,
                "missing_column_check",
                f"the column was absent from {current.absent_rows} of {current.absent_rows + current.rows} rows",
            )
        )
    if not current.rows:
        return out
    present = current.rows - current.missing  # values of the wrong type are present, and counted below
    type_errors = current.issues.get(TYPE_ERROR, 0) + current.issues.get(NOT_INTEGER, 0)
    if present and type_errors / present > config.datatype_check_threshold:
        expected = {"integer": "Integral", "float": "Fractional"}.get(feature.type, "String")
        out.append(
            Violation(
                name,
                "data_type_check",
                f"{type_errors} of {present} values ({type_errors / present:.2%}) are not {expected}; "
                f"datatype_check_threshold is {config.datatype_check_threshold:.2%}",
            )
        )
    completeness = current.completeness
    expected_completeness = float(constraint.get("completeness", 0.0)) if constraint else 0.0
    if not feature.nullable:
        expected_completeness = 1.0
    if completeness < expected_completeness and _significantly_incomplete(current, expected_completeness, config):
        out.append(
            Violation(
                name,
                "completeness_check",
                f"completeness {completeness:.4f} is below the constraint {expected_completeness:.4f} "
                f"({current.missing} of {current.rows} values missing)",
            )
        )
    if current.kind == "numeric":
        non_negative = bool(constraint and constraint.get("num_constraints", {}).get("is_non_negative"))
        if non_negative and current.present and current.minimum < 0:
            out.append(Violation(name, "data_type_check", f"is_non_negative: the minimum is {current.minimum:g}"))
        out_of_range = current.issues.get(BELOW_MINIMUM, 0) + current.issues.get(ABOVE_MAXIMUM, 0)
        if present and out_of_range / present > config.domain_content_threshold:
            out.append(
                Violation(
                    name,
                    "data_type_check",
                    f"{out_of_range} of {present} values are outside schema.json's range "
                    f"[{feature.minimum}, {feature.maximum}]",
                )
            )
    else:
        domains = (constraint or {}).get("string_constraints", {}).get("domains") or list(feature.categories)
        unknown = sum(count for value, count in current.counts.items() if value not in set(domains))
        if present and unknown / present > config.domain_content_threshold:
            values = sorted(v for v in current.counts if v not in set(domains))[:5]
            out.append(
                Violation(
                    name,
                    "categorical_values_check",
                    f"{unknown} of {present} values ({unknown / present:.2%}) are outside the domain "
                    f"{domains}, e.g. {values}; domain_content_threshold is "
                    f"{config.domain_content_threshold:.2%}",
                )
            )
    return out


def evaluate(
    baseline: Baseline, profile: Profile, output_profile: Profile | None, extra_columns: Mapping[str, int]
) -> tuple[list[Violation], list[DriftResult]]:
    """Every check of constraints.json on one profile; returns the violations and the per-feature drift table."""
    config = baseline.config
    violations: list[Violation] = []
    drift: list[DriftResult] = []
    constraints = _constraint_by_name(baseline.constraints)
    histograms = Baseline.histograms(baseline.statistics)
    for feature in baseline.schema.features:
        current = profile.columns[feature.name]
        if config.evaluate_constraints == "Enabled":
            violations += check_feature(feature, current, constraints.get(feature.name), config)
        if config.perform_comparison == "Enabled" and feature.name in histograms and current.rows:
            result = compare_distribution(feature.name, current, histograms[feature.name], config)
            drift.append(result)
            if result.drifted:
                violations.append(_drift_violation(result, config))
    for name, rows in sorted(extra_columns.items()):
        violations.append(
            Violation(
                name,
                "extra_column_check",
                f"column '{name}' (in {rows} rows) is not in schema.json: add it to the contract or stop sending it",
            )
        )
    if output_profile is not None and baseline.output_statistics and config.perform_comparison == "Enabled":
        output_histograms = Baseline.histograms(baseline.output_statistics)
        for name, current in output_profile.columns.items():
            if name in output_histograms and current.rows:
                result = compare_distribution(name, current, output_histograms[name], config, prefix="prediction:")
                drift.append(result)
                if result.drifted:
                    violations.append(_drift_violation(result, config))
    return violations, drift


def _drift_violation(result: DriftResult, config: MonitoringConfig) -> Violation:
    method = "Jensen-Shannon distance" if result.method == "jensen_shannon" else "L-infinity distance"
    extra = f", PSI {result.psi:.3f}" if result.psi is not None else ""
    return Violation(
        result.feature,
        "baseline_drift_check",
        f"{method} {result.distance:.4f} exceeds the comparison_threshold {config.comparison_threshold} "
        f"({result.rows} values, chi-square p {result.p_value:.2g}{extra})",
    )


def violations_json(violations: list[Violation]) -> dict:
    return {"violations": [asdict(v) for v in violations]}


# One-sided z score for p < 0.01: a small window of traffic drawn from the training distribution misses the
# completeness constraint by chance about half the time when the constraint sits near the baseline's rate.
COMPLETENESS_Z = 2.326


def _significantly_incomplete(current, expected_completeness: float, config) -> bool:
    """With comparison_method "Robust", more missing values than allowed must also be beyond chance."""
    allowed = 1.0 - expected_completeness
    if config.comparison_method != "Robust" or allowed <= 0.0:
        return True
    n = current.rows
    excess = current.missing - n * allowed
    return excess > COMPLETENESS_Z * (n * allowed * (1.0 - allowed)) ** 0.5
