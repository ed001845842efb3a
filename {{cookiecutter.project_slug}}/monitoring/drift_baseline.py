"""Write the drift baselines at training time, in SageMaker Model Monitor's file formats.

    python -m monitoring.drift_baseline --data data/sample.csv [--model-dir build/model] \
        --output-dir monitoring/baselines

writes statistics.json and constraints.json (the input features), output_statistics.json (predicted label
shares and confidence, or score quantiles, when a model scored the data) and a copy of schema.json, so the
folder alone is enough for the drift job. Numeric features get bins at their deciles; the drift job counts
live traffic into the same bins.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from model.common import paths
from model.common.data_contract import Feature, Schema
from monitoring.drift_statistics import MonitoringConfig, Profile, constraints_json, statistics_json

STATISTICS = "statistics.json"
CONSTRAINTS = "constraints.json"
OUTPUT_STATISTICS = "output_statistics.json"
SCHEMA = "schema.json"


def output_features(schema: Schema) -> list[Feature]:
    """The model's outputs as monitored features: label + confidence (classification) or score (regression)."""
    if schema.is_classification:
        return [
            Feature("predicted_label", "categorical", categories=tuple(schema.classes)),
            Feature("probability", "float", minimum=0.0, maximum=1.0),
        ]
    return [Feature("score", "float")]


def profile_twice(features: list[Feature], reread: Callable[[], Iterable[tuple[Mapping, int]]]) -> Profile:
    """Two passes: the first finds the decile edges (KLL), the second counts the data into those bins."""
    first = Profile(features)
    for columns, rows in reread():
        first.update(columns, rows)
    second = Profile(features, edges=first.baseline_edges())
    for columns, rows in reread():
        second.update(columns, rows)
    return second


def build_baseline(
    schema: Schema, columns: Mapping, predictions: Mapping | None = None, config: MonitoringConfig | None = None
) -> tuple[dict, dict] | tuple[dict, dict, dict]:
    """Validated or raw feature columns (and optionally the model's outputs) -> (statistics, constraints[, output]).

    predictions: {"predicted_label": [...], "probability": [...]} or {"score": [...]}.
    """
    rows = len(next(iter(columns.values()))) if columns else 0
    profile = profile_twice(list(schema.features), lambda: [(columns, rows)])
    statistics, constraints = statistics_json(profile), constraints_json(profile, config)
    if predictions is None:
        return statistics, constraints
    count = len(next(iter(predictions.values())))
    output = profile_twice(output_features(schema), lambda: [(predictions, count)])
    return statistics, constraints, statistics_json(output)


def _score(model_dir: Path, schema: Schema, columns: Mapping) -> dict:
    from model.common.data_contract import DataValidationError
    from model.inference import predictor

    scorer = predictor.model_fn(str(model_dir))
    try:
        valid = schema.coerce_columns(columns)
    except DataValidationError as exc:
        raise SystemExit(f"--model-dir: the data breaks the contract, so it cannot be scored: {exc}") from None
    outputs = predictor.predict_fn(valid, scorer)
    if not schema.is_classification:
        return {"score": outputs.values.astype(float).tolist()}
    labels = [schema.classes[i] for i in outputs.values.tolist()]
    confidence = outputs.probabilities[range(len(labels)), outputs.values].astype(float).tolist()
    return {"predicted_label": labels, "probability": confidence}


def _values(column):
    """An Arrow column as the data contract takes it: numbers as one float64 array, anything else as a list."""
    import pyarrow as pa

    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return column.to_numpy(zero_copy_only=False).astype("float64", copy=False)
    return column.to_pylist()


def _read_table(path: Path, names: list[str], numeric: frozenset[str] = frozenset()) -> tuple[dict, int]:
    """The schema's columns; numeric features as float64 when every cell parses (far less memory than text),
    else as text, which the profile then checks value by value."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import csv as pacsv

    def read_csv(types: dict) -> pa.Table:
        options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, null_values=[""])
        return pacsv.read_csv(path, convert_options=options)

    if path.suffix == ".parquet":
        table = pq.read_table(path, columns=None)
    else:
        try:
            table = read_csv({n: pa.float64() if n in numeric else pa.string() for n in names})
        except pa.ArrowInvalid:
            table = read_csv({n: pa.string() for n in names})
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise SystemExit(f"--data {path}: columns {missing} of schema.json are not in the file")
    return {n: table.column(n).combine_chunks() for n in names}, table.num_rows


def write_baseline(output_dir: Path, schema: Schema, schema_path: Path, results: tuple) -> list[Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in zip((STATISTICS, CONSTRAINTS, OUTPUT_STATISTICS), results, strict=False):
        path = output_dir / name
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    if schema_path.resolve() != (output_dir / SCHEMA).resolve():
        shutil.copyfile(schema_path, output_dir / SCHEMA)
    written.append(output_dir / SCHEMA)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="training data, CSV with a header or Parquet")
    parser.add_argument("--schema", type=Path, default=paths.SCHEMA_FILE)
    parser.add_argument("--model-dir", type=Path, help="a model artifact: score the data for the output baseline")
    parser.add_argument("--output-dir", type=Path, default=paths.DRIFT_BASELINES_DIR)
    args = parser.parse_args(argv)
    schema = Schema.load(args.schema)
    numeric = frozenset(f.name for f in schema.features if f.is_numeric)
    columns, rows = _read_table(args.data, schema.feature_names, numeric)
    predictions = None
    if args.model_dir is not None:
        predictions = _score(args.model_dir, schema, {n: _values(c) for n, c in columns.items()})
    results = build_baseline(schema, columns, predictions)
    for path in write_baseline(args.output_dir, schema, args.schema, results):
        print(f"wrote {path}", file=sys.stderr)
    print(f"baseline of {rows} rows in {args.output_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
