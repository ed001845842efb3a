"""Captured predictions joined with ground truth by inferenceId (falling back to eventId), gated like training."""

from __future__ import annotations

import json

import pytest

from conftest import model_outputs, read_json, run_job, traffic, write_captures


def ground_truth_line(key: str, labels: list, id_field: str = "eventId") -> str:
    return json.dumps(
        {
            "groundTruthData": {"data": ",".join(map(str, labels)), "encoding": "CSV"},
            "eventMetadata": {id_field: key},
            "eventVersion": "0",
        }
    )


@pytest.fixture
def labelled(tmp_path, schema):
    """200 captured requests of 5 rows; ground truth for 40 of them (by inference id) plus 3 unknown events."""
    rows = traffic(schema, 1000, seed=61)
    write_captures(tmp_path / "capture", schema, rows, name="a.jsonl")
    outputs = model_outputs(schema, rows)
    truth = outputs["predicted_label"] if schema.is_classification else outputs["score"]
    lines = []
    for n in range(40):
        labels = list(truth[n * 5 : n * 5 + 5])
        if n % 4 == 0 and schema.is_classification:  # the model is wrong on one row in four requests
            labels[0] = schema.classes[0] if labels[0] != schema.classes[0] else schema.classes[1]
        elif n % 4 == 0:
            labels[0] += 100.0
        key = f"inference-a.jsonl-{n}" if n % 2 else f"event-a.jsonl-{n}"  # inferenceId, else the eventId
        lines.append(ground_truth_line(key, labels))
    lines += [ground_truth_line(f"nobody-{i}", truth[:5]) for i in range(3)]
    lines.append("{broken")
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_ground_truth_joins_by_inference_id_or_event_id(labelled, baseline_dir, schema):
    if not schema.is_classification:
        pytest.skip("the label flip below is for classes")
    run_job(baseline_dir, labelled / "out", labelled / "capture", extra=("--ground-truth", str(labelled / "truth")))
    quality = read_json(labelled / "out" / "summary.json")["quality"]
    assert quality["matched_events"] == 40 and quality["rows"] == 200
    assert quality["metrics"]["accuracy"] == pytest.approx(190 / 200)


def test_ground_truth_without_a_prediction_is_counted_and_reported(labelled, baseline_dir):
    run_job(baseline_dir, labelled / "out", labelled / "capture", extra=("--ground-truth", str(labelled / "truth")))
    bad = read_json(labelled / "out" / "summary.json")["bad_input"]["by_kind"]
    assert bad["unmatched_ground_truth"] == 3
    assert bad["malformed_ground_truth"] == 1


def test_quality_below_the_baseline_gates_is_a_violation(labelled, baseline_dir, tmp_path, schema):
    gates = tmp_path / "gates.json"
    gate = {"accuracy": {"min": 0.99}} if schema.is_classification else {"rmse": {"max": 1.0}}
    gates.write_text(json.dumps({"quality": gate}), encoding="utf-8")
    code = run_job(
        baseline_dir,
        labelled / "out",
        labelled / "capture",
        extra=("--ground-truth", str(labelled / "truth"), "--quality-baseline", str(gates)),
    )
    violations = read_json(labelled / "out" / "constraint_violations.json")["violations"]
    assert code == 2
    assert any(v["constraint_check_type"] == "model_quality_check" for v in violations)
