"""Per-record attributions for a batch job (EXPLAIN=1): the explainer of `make explain` (model.train.explain, SHAP
over the artifact's Scorer against a background sample of the training data), run over the job's input in chunks.

It runs in the development environment, where SHAP lives, after the job has scored its input: the input is read
again a block at a time, InputFilter applied, records that failed scoring left out, and every chunk of records is
explained and appended to <output>.attributions.csv, one row per record, keyed by the input file and line number
(the same line numbers as the failures file), so it joins with the output by record. SHAP costs thousands of
model evaluations per record, so a batch over --explain-max-rows is refused before anything is scored.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batch import sources as sources_module
from batch.transform import CSV, FilterError, TransformSettings, parse_record
from model.common import model_artifact
from model.common.data_contract import DataValidationError, Schema
from model.train import explain

CHUNK = 100


class ExplainUsageError(ValueError):
    """EXPLAIN=1 cannot run as asked; refused before scoring."""


def attributions_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".attributions.csv")


@dataclass
class BatchExplainer:
    model_dir: Path
    background_path: Path
    max_rows: int

    @classmethod
    def prepare(cls, model_dir, input_location, settings, header, background, max_rows) -> BatchExplainer:
        """Checks that need no scoring: a background table, and no more records than max_rows."""
        from batch.run import UsageError

        if background is None or not Path(background).exists():
            raise UsageError(f"EXPLAIN=1 needs the training data as background: --background {background} not found")
        found, _ = sources_module.list_sources(input_location, settings.content_type)
        records = sum(1 for source in found for _, line in source.lines() if line.strip())
        if records - len(found) > max_rows:  # one line per file may be a header
            features = len(Schema.load(Path(model_dir) / "schema.json").features)
            cost = explain.evaluations_per_row(features, explain.DEFAULT_BACKGROUND_SIZE)
            raise UsageError(
                f"EXPLAIN=1: the input holds about {records:,} records, more than --explain-max-rows {max_rows:,}: "
                f"each costs about {cost:,} model evaluations; explain a sample, or raise the limit (EXPLAIN_MAX_ROWS) "
                "if the wait is acceptable"
            )
        return cls(Path(model_dir), Path(background), max_rows)

    def run(self, result, settings: TransformSettings, stream=sys.stderr) -> Path:
        scorer = model_artifact.Scorer(self.model_dir)
        schema = scorer.schema
        background = explain.load_batch(schema, self.background_path).columns
        failed = defaultdict(set)
        if result.failures_path is not None:
            with open(result.failures_path, encoding="utf-8") as failures:
                for line in failures:
                    entry = json.loads(line)
                    failed[entry["file"]].add(entry["line"])
        target = attributions_path_for(result.output)
        staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        started, done = time.monotonic(), 0
        try:
            with open(staging, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(
                    [
                        "file",
                        "line",
                        "prediction",
                        "explained_output",
                        "base_value",
                        *(explain.ATTRIBUTION_PREFIX + n for n in schema.feature_names),
                    ]
                )
                for plan in result.plans:
                    skip = failed.get(plan.source.uri, set())
                    for numbers, records in _chunks(plan, settings, skip):
                        attributions = explain.explain_records(
                            scorer, _columns(schema, records), background, max_rows=len(records)
                        )
                        for i, number in enumerate(numbers):
                            writer.writerow(
                                [
                                    plan.source.uri,
                                    number,
                                    attributions.predictions[i],
                                    repr(float(attributions.outputs[i])),
                                    repr(float(attributions.base_values[i])),
                                    *(repr(float(v)) for v in attributions.values[i]),
                                ]
                            )
                        done += len(numbers)
                        rate = done / max(time.monotonic() - started, 1e-9)
                        print(f"explain: {done:,} rows ({rate:,.1f} rows/s)", file=stream, flush=True)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
        return target


def _chunks(plan, settings: TransformSettings, skip: set[int]):
    path = settings.input_path
    numbers, records = [], []
    for number, line in plan.source.lines():
        if number == plan.header_line or number in skip or not line.strip():
            continue
        try:
            record = path.apply(parse_record(line.decode("utf-8-sig"), plan.source.content_type))
        except (FilterError, UnicodeDecodeError):
            continue  # reported by the scoring pass
        if plan.source.content_type == CSV and not isinstance(record, list):
            record = [record]
        numbers.append(number)
        records.append(record)
        if len(records) == CHUNK:
            yield numbers, records
            numbers, records = [], []
    if records:
        yield numbers, records


def _columns(schema: Schema, records: list) -> dict[str, np.ndarray]:
    """Records (CSV fields or JSON values) -> validated columns, as the server decodes them."""
    if isinstance(records[0], dict):
        columns = schema.columns_from_records(records)
    else:
        columns = dict(schema.columns_from_rows(records))
        for feature in schema.features:
            if feature.is_numeric:
                columns[feature.name] = [None if v == "" else v for v in columns[feature.name]]
    try:
        return schema.coerce_columns(columns)
    except DataValidationError as exc:
        raise explain.ExplainError(f"a record that scored does not validate for the explainer: {exc}") from None
