"""Explain the model: global feature importance at training time, per-record attributions for batches.

Global importance is permutation importance measured through the exported artifact's Scorer on the validation
split: shuffle one raw schema feature at a time and record how much the problem type's main metric drops. It needs
no library beyond scikit-learn's metrics and describes the served model (ONNX or skops) on the contract's own
features, not on one-hot columns.

Per-record attributions use SHAP (exact Shapley values up to EXACT_MAX_FEATURES features, antithetic permutation
sampling above), model-agnostic over the Scorer's prediction function, with an independent masker over a background
sample of the training data. SHAP is the reference implementation of the method SageMaker Clarify reports (Kernel
SHAP), it is maintained, and its exact and permutation explainers are additive by construction: the base value plus
the attributions equals the model output. It weighs ~210 MB installed (numba and llvmlite), which is why it lives in
the training image only; the inference image never imports this module.

    python -m model.train.explain --model <artifact dir | model.tar.gz> --data batch.csv --output attributions.csv \
        [--report explain.md] [--background data/sample.csv] [--no-header]
    python -m model.train.explain --model <artifact> --data <validation split> --importance importance.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.common import metrics, model_artifact
from model.common.data_contract import DataValidationError, Schema, SchemaError
from model.train import dataset, evaluate

log = logging.getLogger("explain")

MAIN_METRICS = {"binary_classification": "roc_auc", "multiclass_classification": "roc_auc_ovr", "regression": "rmse"}
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})
# Exact Shapley values cost 2**features coalitions per row; above this the permutation explainer is cheaper.
EXACT_MAX_FEATURES = 8
# Permutation explainer: forward + backward passes over this many random feature orders per row.
PERMUTATIONS = 10
DEFAULT_BACKGROUND_SIZE = 100
DEFAULT_MAX_ROWS = 1000
DEFAULT_IMPORTANCE_MAX_ROWS = 5000
ATTRIBUTION_PREFIX = "shap_"


class ExplainError(RuntimeError):
    """The explanation cannot be computed as asked (too many rows, a metric the data cannot give, ...)."""


# --------------------------------------------------------------------------------------- global importance
def main_metric(schema: Schema) -> str:
    return MAIN_METRICS[schema.problem_type]


def _score(scorer, columns: Mapping[str, np.ndarray], target: np.ndarray, metric: str) -> float:
    prediction = scorer.predict(dict(columns))
    scores = metrics.quality_metrics(scorer.schema, target, prediction.values, prediction.probabilities)
    if metric not in scores:
        raise ExplainError(
            f"metric {metric!r} cannot be computed on this data (it needs every class present and probabilities); "
            f"computable: {', '.join(sorted(scores))}"
        )
    return scores[metric]


def _subsample(columns: Mapping[str, np.ndarray], target, max_rows: int, seed: int):
    n = len(next(iter(columns.values())))
    if n <= max_rows:
        return dict(columns), target
    keep = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
    log.info("importance on a random %d of %d rows (max_rows)", max_rows, n)
    return {k: v[keep] for k, v in columns.items()}, (None if target is None else target[keep])


def global_importance(
    scorer,
    dataset_columns: Mapping[str, np.ndarray],
    target: np.ndarray,
    *,
    metric: str | None = None,
    n_repeats: int = 5,
    seed: int = 0,
    max_rows: int = DEFAULT_IMPORTANCE_MAX_ROWS,
) -> list[dict]:
    """Permutation importance per raw schema feature, most important first.

    importance = how much `metric` worsens when the feature's column is shuffled (positive = the model relies on
    it), averaged over n_repeats shuffles; each feature draws from its own seeded generator, so its result does not
    depend on the other features. dataset_columns are validated columns (dataset.Dataset.columns) and target the
    coerced labels (class indices or values).
    """
    if n_repeats < 1:
        raise ExplainError(f"n_repeats = {n_repeats}: give at least 1")
    schema = scorer.schema
    metric = metric or main_metric(schema)
    columns, target = _subsample(dataset_columns, target, max_rows, seed)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    baseline = _score(scorer, columns, target, metric)
    rows = []
    for index, name in enumerate(schema.feature_names):
        rng = np.random.default_rng([seed, index])
        drops = []
        for _ in range(n_repeats):
            shuffled = dict(columns)
            shuffled[name] = columns[name][rng.permutation(len(target))]
            drops.append(sign * (baseline - _score(scorer, shuffled, target, metric)))
        rows.append({"feature": name, "importance_mean": float(np.mean(drops)), "importance_std": float(np.std(drops))})
    return sorted(rows, key=lambda r: (-r["importance_mean"], r["feature"]))


def importance_report(
    scorer, data_path: str | Path, *, n_repeats: int = 5, seed: int = 0, max_rows: int = DEFAULT_IMPORTANCE_MAX_ROWS
) -> dict:
    """global_importance on a labelled data set (the validation split), with what the model card needs to say."""
    data = dataset.load(scorer.schema, data_path, require_sensitive=False)
    metric = main_metric(scorer.schema)
    try:
        baseline = _score(scorer, data.columns, data.target, metric)
    except ExplainError:
        metric = "accuracy" if scorer.schema.is_classification else "rmse"
        log.warning("%s is not computable on %s; importance uses %s", main_metric(scorer.schema), data_path, metric)
        baseline = _score(scorer, data.columns, data.target, metric)
    features = global_importance(
        scorer, data.columns, data.target, metric=metric, n_repeats=n_repeats, seed=seed, max_rows=max_rows
    )
    return {
        "method": "permutation",
        "metric": metric,
        "higher_is_better": metric not in LOWER_IS_BETTER,
        "baseline_score": baseline,
        "n_repeats": n_repeats,
        "seed": seed,
        "rows": min(len(data), max_rows),
        "dataset": str(data_path),
        "model_version": scorer.model_version,
        "features": features,
    }


def plot_importance(rows: Sequence[Mapping], path: str | Path, *, title: str, xlabel: str) -> Path:
    """Horizontal bar chart, most important on top; error bars from importance_std where given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = list(reversed(rows))
    names = [r["feature"] for r in ordered]
    values = [r["importance_mean"] for r in ordered]
    errors = [r.get("importance_std") or 0.0 for r in ordered]
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(names) + 1.4), layout="constrained")
    axes.barh(names, values, xerr=errors if any(errors) else None, color="#2b6ca3", ecolor="#555555", capsize=3)
    axes.axvline(0.0, color="#333333", linewidth=0.8)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
    return path


# --------------------------------------------------------------------------------- per-record attributions
class FeatureCodec:
    """Validated columns <-> the float matrix SHAP masks: categories become integer codes, missing becomes NaN."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self._codes = {f.name: {c: i for i, c in enumerate(f.categories)} for f in schema.features if not f.is_numeric}

    def encode(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        out = []
        for feature in self.schema.features:
            column = columns[feature.name]
            if feature.is_numeric:
                out.append(np.asarray(column, dtype=np.float64))
            else:
                codes = self._codes[feature.name]
                out.append(np.array([math.nan if v is None else codes[v] for v in column], dtype=np.float64))
        return np.column_stack(out)

    def decode(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        columns = {}
        for j, feature in enumerate(self.schema.features):
            values = np.asarray(matrix[:, j], dtype=np.float64)
            if feature.is_numeric:
                columns[feature.name] = values
            else:
                lookup = np.array([*feature.categories, None], dtype=object)
                columns[feature.name] = lookup[np.where(np.isnan(values), len(feature.categories), values).astype(int)]
        return columns


def explained_output(schema: Schema) -> str:
    """What the attributions add up to, in words (the report and the docs use it)."""
    if schema.problem_type == "binary_classification":
        return f"probability of class '{schema.label_values_or_threshold[0]}'"
    if schema.problem_type == "multiclass_classification":
        return "probability of the predicted class"
    return f"predicted {schema.target}"


@dataclass
class Attributions:
    """SHAP values for n rows: base_values + values.sum(axis=1) == outputs (the explained model output)."""

    values: np.ndarray  # [n, features]
    base_values: np.ndarray  # [n]
    outputs: np.ndarray  # [n]
    predictions: list  # class labels or predicted values
    feature_names: list[str]
    explained: str
    algorithm: str
    background_rows: int

    @property
    def additivity_error(self) -> float:
        return float(np.abs(self.base_values + self.values.sum(axis=1) - self.outputs).max(initial=0.0))

    def mean_abs(self) -> list[dict]:
        """A global view of these rows: mean |attribution| per feature, largest first."""
        magnitude = np.abs(self.values)
        rows = [
            {"feature": n, "importance_mean": float(magnitude[:, j].mean()), "importance_std": None}
            for j, n in enumerate(self.feature_names)
        ]
        return sorted(rows, key=lambda r: (-r["importance_mean"], r["feature"]))

    def to_frame(self):
        import pandas as pd

        frame = pd.DataFrame({"row": np.arange(len(self.outputs)), "prediction": self.predictions})
        frame["explained_output"] = self.outputs
        frame["base_value"] = self.base_values
        for j, name in enumerate(self.feature_names):
            frame[ATTRIBUTION_PREFIX + name] = self.values[:, j]
        return frame


def _model_function(scorer, codec: FeatureCodec):
    """The function SHAP explains: coded matrix -> one output per row (or one per class for multiclass)."""
    schema = scorer.schema
    positive = schema.classes.index(schema.label_values_or_threshold[0]) if schema.is_classification else None

    def predict(matrix: np.ndarray) -> np.ndarray:
        prediction = scorer.predict(codec.decode(matrix))
        if schema.problem_type == "binary_classification":
            return np.asarray(prediction.probabilities[:, positive], dtype=np.float64)
        if schema.problem_type == "multiclass_classification":
            return np.asarray(prediction.probabilities, dtype=np.float64)
        return np.asarray(prediction.values, dtype=np.float64)

    return predict


def sample_background(columns: Mapping[str, np.ndarray], size: int, seed: int) -> dict[str, np.ndarray]:
    n = len(next(iter(columns.values())))
    if size < 1:
        raise ExplainError(f"background size {size}: give at least 1 row")
    if n <= size:
        return dict(columns)
    keep = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    return {k: v[keep] for k, v in columns.items()}


def evaluations_per_row(features: int, background_rows: int) -> int:
    """Model rows scored to explain one record: coalitions (exact) or permutation steps, times the background."""
    steps = 2**features if features <= EXACT_MAX_FEATURES else PERMUTATIONS * (2 * features + 1)
    return steps * background_rows


def explain_records(
    scorer,
    columns: Mapping[str, np.ndarray],
    background_columns: Mapping[str, np.ndarray],
    *,
    background_size: int = DEFAULT_BACKGROUND_SIZE,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
) -> Attributions:
    """SHAP attributions per raw feature for validated columns, against a background sample (training data)."""
    import shap

    schema = scorer.schema
    n = len(next(iter(columns.values())))
    if n > max_rows:
        raise ExplainError(
            f"the batch holds {n} rows, more than the maximum of {max_rows} (--max-rows): each row costs about "
            f"{evaluations_per_row(len(schema.features), background_size):,} model evaluations; explain a sample or "
            "split the batch, or raise --max-rows if the wait is acceptable"
        )
    codec = FeatureCodec(schema)
    background = codec.encode(sample_background(background_columns, background_size, seed))
    masker = shap.maskers.Independent(background, max_samples=len(background))
    model = _model_function(scorer, codec)
    names = schema.feature_names
    if len(names) <= EXACT_MAX_FEATURES:
        algorithm = "exact"
        explainer = shap.explainers.ExactExplainer(model, masker, feature_names=names)
        explanation = explainer(codec.encode(columns), silent=True)
    else:
        algorithm = "permutation"
        explainer = shap.explainers.PermutationExplainer(model, masker, feature_names=names, seed=seed)
        explanation = explainer(codec.encode(columns), max_evals=PERMUTATIONS * (2 * len(names) + 1), silent=True)
    values = np.asarray(explanation.values, dtype=np.float64)
    base_values = np.asarray(explanation.base_values, dtype=np.float64)
    prediction = scorer.predict(dict(columns))
    if schema.problem_type == "multiclass_classification":
        rows, chosen = np.arange(n), prediction.values
        values, base_values = values[rows, :, chosen], base_values[rows, chosen]
        outputs = np.asarray(prediction.probabilities, dtype=np.float64)[rows, chosen]
    elif schema.problem_type == "binary_classification":
        positive = schema.classes.index(schema.label_values_or_threshold[0])
        outputs = np.asarray(prediction.probabilities[:, positive], dtype=np.float64)
    else:
        outputs = np.asarray(prediction.values, dtype=np.float64)
    if schema.is_classification:
        predictions = [schema.classes[int(i)] for i in prediction.values]
    else:
        predictions = [float(v) for v in prediction.values]
    return Attributions(
        values=values.reshape(n, len(names)),
        base_values=base_values.reshape(n),
        outputs=outputs,
        predictions=predictions,
        feature_names=names,
        explained=explained_output(schema),
        algorithm=algorithm,
        background_rows=len(background),
    )


def load_batch(schema: Schema, path: str | Path, *, header: bool = True) -> dataset.Dataset:
    """A batch to explain, validated like a request: features required, target and sensitive columns optional.

    header=False reads headerless CSV whose columns are the schema's features in order - what Batch Transform
    and text/csv requests take - and names the columns from the schema.
    """
    if header:
        return dataset.load(schema, path, require_target=False, require_sensitive=False)
    return dataset.validate(schema, read_headerless(schema, path), require_target=False, require_sensitive=False)


def read_headerless(schema: Schema, path: str | Path):
    """Every .csv file of a file or folder, without header, as text columns named after the schema's features."""
    import pandas as pd

    names = list(schema.feature_names)
    frames = []
    for file in dataset.data_files(path):
        if file.suffix != ".csv":
            raise ExplainError(f"{file}: --no-header reads CSV only; give Parquet files without --no-header")
        if file.stat().st_size == 0:
            continue  # an empty split file: no records
        frame = pd.read_csv(file, header=None, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if frame.shape[1] != len(names):
            raise ExplainError(
                f"{file}: {frame.shape[1]} columns per row, the schema has {len(names)} features "
                f"({', '.join(names)}); --no-header expects exactly those, in that order, no header row"
            )
        frame.columns = names
        frames.append(frame)
    if not frames:
        raise ExplainError(f"{path}: no records (every CSV file is empty)")
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------------- reports
def _importance_table(rows: Sequence[Mapping], header: str) -> list[str]:
    lines = [f"| rank | feature | {header} |", "| ---: | --- | ---: |"]
    for rank, row in enumerate(rows, start=1):
        spread = f" ± {row['importance_std']:.4f}" if row.get("importance_std") is not None else ""
        lines.append(f"| {rank} | {row['feature']} | {row['importance_mean']:.4f}{spread} |")
    return lines


def write_report(
    path: str | Path,
    *,
    model_version: str,
    attributions: Attributions | None,
    importance: Mapping | None,
    data_path: str,
    background: str,
    seconds: float,
) -> Path:
    """Markdown summary of a run of this script, with its charts beside it (<report stem>_*.png)."""
    path = Path(path)
    lines = ["# Model explanations", "", f"- model version: `{model_version}`", f"- data: `{data_path}`"]
    if attributions is not None:
        chart = plot_importance(
            attributions.mean_abs(),
            path.with_name(f"{path.stem}_attributions.png"),
            title="Mean |SHAP value| per feature",
            xlabel=f"mean |attribution| ({attributions.explained})",
        )
        lines += [
            f"- rows explained: {len(attributions.outputs)}",
            f"- explained output: {attributions.explained}",
            f"- algorithm: SHAP {attributions.algorithm}, independent masker over {attributions.background_rows} "
            f"background rows from `{background}`",
            f"- additivity: max |base_value + sum(attributions) - output| = {attributions.additivity_error:.2e}",
            f"- seconds: {seconds:.1f}",
            "",
            "## Mean absolute attribution per feature",
            "",
            *_importance_table(attributions.mean_abs(), "mean abs attribution"),
            "",
            f"![mean absolute attribution]({chart.name})",
        ]
    if importance is not None:
        chart = plot_importance(
            importance["features"],
            path.with_name(f"{path.stem}_importance.png"),
            title="Permutation importance per feature",
            xlabel=f"drop in {importance['metric']} when shuffled",
        )
        lines += [
            "",
            "## Global permutation importance",
            "",
            f"Drop in {importance['metric']} (from {importance['baseline_score']:.4f}) when one feature is shuffled, "
            f"mean ± std over {importance['n_repeats']} shuffles of {importance['rows']} rows.",
            "",
            *_importance_table(importance["features"], f"drop in {importance['metric']}"),
            "",
            f"![permutation importance]({chart.name})",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_importance(report: Mapping, path: str | Path) -> Path:
    """importance.json and its chart (importance.png beside it), as the pipeline and the model card read them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_importance(
        report["features"],
        path.with_suffix(".png"),
        title="Permutation importance per feature",
        xlabel=f"drop in {report['metric']} when shuffled",
    )
    return path


# ------------------------------------------------------------------------------------------------------ CLI
def run(args: argparse.Namespace) -> dict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        scorer = model_artifact.Scorer(evaluate.resolve_model_dir(args.model, Path(scratch)))
        result: dict = {"model_version": scorer.model_version}
        importance = None
        if args.importance is not None:
            importance = importance_report(scorer, args.data, n_repeats=args.n_repeats, seed=args.seed)
            write_importance(importance, args.importance)
            result["importance"] = importance
        attributions = None
        if args.output is not None:
            batch = load_batch(scorer.schema, args.data, header=not args.no_header)
            if args.background is None:
                log.warning(
                    "no --background given: attributions are relative to the batch's own average; pass the training "
                    "data for the usual reference"
                )
                background = batch
            else:
                try:
                    background = load_batch(scorer.schema, args.background)
                except DataValidationError as exc:
                    raise ExplainError(f"the background data {args.background} breaks the contract: {exc}") from None
            attributions = explain_records(
                scorer,
                batch.columns,
                background.columns,
                background_size=args.background_size,
                max_rows=args.max_rows,
                seed=args.seed,
            )
            args.output.parent.mkdir(parents=True, exist_ok=True)
            attributions.to_frame().to_csv(args.output, index=False)
            result["attributions"] = attributions
        if args.report is not None:
            write_report(
                args.report,
                model_version=scorer.model_version,
                attributions=attributions,
                importance=importance,
                data_path=str(args.data),
                background=str(args.background or args.data),
                seconds=time.monotonic() - started,
            )
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="artifact folder or model.tar.gz")
    parser.add_argument("--data", type=Path, required=True, help="CSV/Parquet file or folder, validated by the schema")
    parser.add_argument("--output", type=Path, help="CSV of per-record attributions (one shap_<feature> per feature)")
    parser.add_argument(
        "--no-header",
        action="store_true",
        help="--data is CSV without a header row, columns = the schema's features in order (Batch Transform input)",
    )
    parser.add_argument("--report", type=Path, help="Markdown summary with charts beside it")
    parser.add_argument(
        "--importance", type=Path, help="write global permutation importance JSON (+ .png); --data must hold labels"
    )
    parser.add_argument("--background", type=Path, help="reference rows for SHAP, normally the training data")
    parser.add_argument("--background-size", type=int, default=DEFAULT_BACKGROUND_SIZE, help="default: %(default)s")
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help="refuse larger batches (%(default)s)")
    parser.add_argument("--n-repeats", type=int, default=5, help="shuffles per feature for importance (%(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output is None and args.importance is None:
        parser.error("nothing to do: give --output (per-record attributions) and/or --importance (global importance)")
    if args.no_header and args.importance is not None:
        parser.error("--no-header reads features only; --importance needs labelled data with a header row")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = run(args)
    except (
        DataValidationError,
        SchemaError,
        ExplainError,
        FileNotFoundError,
        model_artifact.ArtifactError,
    ) as exc:
        print(f"explain failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if "attributions" in result:
        explained = result["attributions"]
        log.info(
            "explained %d rows of %s (%s); additivity error %.1e",
            len(explained.outputs),
            result["model_version"],
            explained.explained,
            explained.additivity_error,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
