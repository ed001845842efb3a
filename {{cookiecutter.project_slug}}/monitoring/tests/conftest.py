"""Fixtures for the drift job: the project's schema, a baseline from sample data, and capture-file writers.

Traffic comes from model/common/sample_data.py (seeded), and the "model" is a fixed rule, so the tests need no
trained artifact and run in seconds.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from model.common.data_contract import Schema

ROOT = Path(__file__).resolve().parents[2]

BASELINE_ROWS = 4000
BASELINE_SEED = 7


@pytest.fixture(scope="session")
def schema() -> Schema:
    return Schema.load(ROOT / "model" / "config" / "schema.json")


def traffic(schema: Schema, rows: int, seed: int, drift: dict | None = None) -> list[list]:
    """Feature rows (schema order, CSV-style strings for missing values) from the sample-data generator.

    drift: {"monthly_charges": +40.0} shifts a numeric feature; {"contract_type": "two_year"} forces a category
    on every other row.
    """
    from model.common.sample_data import make_rows

    out = []
    width = len(schema.feature_names)
    for i, row in enumerate(make_rows(schema.problem_type, rows, seed)):
        row = row[:width]
        for name, change in (drift or {}).items():
            j = schema.feature_names.index(name)
            if isinstance(change, str):
                if i % 2 == 0:
                    row[j] = change
            elif row[j] != "":
                row[j] = round(float(row[j]) + change, 2)
        out.append(row)
    return out


def model_outputs(schema: Schema, rows: list[list]) -> dict:
    """A fixed stand-in for the model: the label follows the contract type and support calls."""
    if not schema.is_classification:
        return {"score": [float(r[1] or 60) * 10 for r in rows]}
    labels, probabilities = [], []
    for row in rows:
        calls = float(row[2]) if row[2] != "" else 0.0
        k = (int(row[4] == "month_to_month") + int(calls > 2)) % len(schema.classes)
        p = 0.6 + 0.1 * (calls % 3)
        rest = (1 - p) / (len(schema.classes) - 1)
        probabilities.append([p if c == k else rest for c in range(len(schema.classes))])
        labels.append(schema.classes[k])
    return {"predicted_label": labels, "probability": [max(p) for p in probabilities], "probabilities": probabilities}


def prediction_records(schema: Schema, outputs: dict) -> list[dict]:
    if not schema.is_classification:
        return [{"score": s} for s in outputs["score"]]
    return [
        {"predicted_label": label, "probability": p, "probabilities": ps, "labels": list(schema.classes)}
        for label, p, ps in zip(
            outputs["predicted_label"], outputs["probability"], outputs["probabilities"], strict=True
        )
    ]


def capture_record(
    schema: Schema, rows: list[list], event_id: str, inference_id: str | None = None, encoding: str = "CSV"
) -> dict:
    """One data-capture line as SageMaker writes it, for a request carrying `rows`."""
    body = "\n".join(",".join(str(v) for v in row) for row in rows)
    output = json.dumps({"predictions": prediction_records(schema, model_outputs(schema, rows))})
    content_type = "text/csv"
    if encoding == "JSON":
        body = json.dumps({"instances": [dict(zip(schema.feature_names, r, strict=True)) for r in rows]})
        content_type = "application/json"
    data = base64.b64encode(body.encode()).decode() if encoding == "BASE64" else body
    metadata = {"eventId": event_id, "inferenceTime": "2026-01-01T00:00:00Z"}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {
        "captureData": {
            "endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": data, "encoding": encoding},
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": output,
                "encoding": "JSON",
            },
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


def write_captures(
    folder: Path,
    schema: Schema,
    rows: list[list],
    per_request: int = 5,
    name: str = "a.jsonl",
    encodings: tuple[str, ...] = ("CSV", "JSON", "BASE64"),
) -> Path:
    """rows split into requests of `per_request` rows, cycling through the capture encodings."""
    path = folder / "2026" / "01" / "01" / "00" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for n, start in enumerate(range(0, len(rows), per_request)):
            record = capture_record(
                schema,
                rows[start : start + per_request],
                f"event-{name}-{n}",
                f"inference-{name}-{n}",
                encodings[n % len(encodings)],
            )
            handle.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="session")
def baseline_dir(tmp_path_factory, schema) -> Path:
    from monitoring.drift_baseline import build_baseline, write_baseline

    rows = traffic(schema, BASELINE_ROWS, BASELINE_SEED)
    columns = dict(zip(schema.feature_names, map(list, zip(*rows, strict=True)), strict=True))
    outputs = model_outputs(schema, rows)
    outputs.pop("probabilities", None)
    folder = tmp_path_factory.mktemp("baseline")
    write_baseline(folder, schema, ROOT / "model" / "config" / "schema.json", build_baseline(schema, columns, outputs))
    return folder


def run_job(baseline_dir: Path, output_dir: Path, *inputs: Path | str, extra: tuple[str, ...] = ()) -> int:
    from monitoring import drift_job

    return drift_job.main(
        ["--baseline-dir", str(baseline_dir), "--input", *map(str, inputs), "--output-dir", str(output_dir), *extra]
    )


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
