"""Captured predictions joined with ground truth by inferenceId (falling back to eventId), gated like training."""

from __future__ import annotations

import json

import pytest

from monitoring.tests.conftest import ROOT, model_outputs, read_json, run_job, traffic, write_captures


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


def labelled_with_facets(tmp_path, schema, facet_of) -> tuple:
    """50 requests of 4 rows, every one labelled (labels = the predictions) with the facet chosen per row."""
    rows = traffic(schema, 200, seed=67)
    write_captures(tmp_path / "capture", schema, rows, per_request=4, name="f.jsonl")
    outputs = model_outputs(schema, rows)
    predicted = outputs["predicted_label"] if schema.is_classification else outputs["score"]
    facet = schema.sensitive_features[0].name
    lines = []
    for n in range(50):
        labels = list(predicted[n * 4 : n * 4 + 4])
        data = {"labels": labels, facet: [facet_of(i, label) for i, label in enumerate(labels)]}
        lines.append(
            json.dumps(
                {
                    "groundTruthData": {"data": json.dumps(data), "encoding": "JSON"},
                    "eventMetadata": {"eventId": f"event-f.jsonl-{n}"},
                    "eventVersion": "0",
                }
            )
        )
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path, facet


def is_positive(schema, label) -> bool:
    if schema.is_classification:
        return label in schema.label_values_or_threshold
    return float(label) >= float(schema.label_values_or_threshold[0])


def test_bias_drift_is_measured_when_ground_truth_carries_the_facet(tmp_path, baseline_dir, schema):
    sensitive = schema.sensitive_features[0]
    groups = [*sensitive.categories]
    folder, facet = labelled_with_facets(tmp_path, schema, lambda i, _label: groups[i % len(groups)])
    run_job(baseline_dir, folder / "out", folder / "capture", extra=("--ground-truth", str(folder / "truth")))
    quality = read_json(folder / "out" / "summary.json")["quality"]
    assert {"CI", "DPL", "DPPL", "DI", "AD"} <= set(quality["bias"][facet])
    names = {m["name"] for m in read_json(folder / "out" / "metrics.json")["metrics"]}
    assert f"model_bias_DPPL_{facet}" in names


def test_predictions_that_never_favour_facet_d_are_a_bias_violation(tmp_path, baseline_dir, schema):
    sensitive = schema.sensitive_features[0]
    d_value = str(sensitive.facet_values_or_threshold[0])
    a_value = next(c for c in sensitive.categories if c != d_value)
    folder, _ = labelled_with_facets(
        tmp_path, schema, lambda _i, label: a_value if is_positive(schema, label) else d_value
    )
    code = run_job(
        baseline_dir,
        folder / "out",
        folder / "capture",
        extra=("--ground-truth", str(folder / "truth"), "--quality-baseline", str(ROOT / "model/config/baseline.json")),
    )
    violations = read_json(folder / "out" / "constraint_violations.json")["violations"]
    assert code == 2
    assert any(v["constraint_check_type"] == "model_bias_check" and "DPPL" in v["description"] for v in violations)


def test_without_the_facet_in_ground_truth_bias_is_reported_as_not_computed(labelled, baseline_dir, schema):
    run_job(baseline_dir, labelled / "out", labelled / "capture", extra=("--ground-truth", str(labelled / "truth")))
    quality = read_json(labelled / "out" / "summary.json")["quality"]
    assert "bias" not in quality
    assert (
        quality["bias_status"].startswith("not_computed")
        and schema.sensitive_features[0].name in quality["bias_status"]
    )


def test_a_facet_that_is_a_model_feature_is_read_from_the_captured_requests(labelled, schema, tmp_path):
    """Ground truth with labels only: the facet comes from the requests, because the endpoint saw it."""
    from model.common.data_contract import Schema
    from monitoring.drift_baseline import build_baseline, write_baseline

    feature = next(f for f in schema.features if not f.is_numeric)
    contract = {
        **schema.raw,
        "sensitive_features": [{"name": feature.name, "facet_values_or_threshold": [feature.categories[0]]}],
    }
    schema_path = tmp_path / "schema.json"
    schema_path.write_text(json.dumps(contract), encoding="utf-8")
    facet_schema = Schema.load(schema_path)
    rows = traffic(facet_schema, 500, seed=5)
    columns = dict(zip(facet_schema.feature_names, map(list, zip(*rows, strict=True)), strict=True))
    outputs = model_outputs(facet_schema, rows)
    outputs.pop("probabilities", None)
    baseline = tmp_path / "facet-baseline"
    write_baseline(baseline, facet_schema, schema_path, build_baseline(facet_schema, columns, outputs))

    run_job(baseline, labelled / "out", labelled / "capture", extra=("--ground-truth", str(labelled / "truth")))
    quality = read_json(labelled / "out" / "summary.json")["quality"]
    assert "bias_status" not in quality
    measured = quality["bias"][feature.name]
    assert measured["n_a"] + measured["n_d"] == quality["rows"] and measured["n_d"] > 0
