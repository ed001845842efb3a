"""Drift is flagged on the features that moved, and only on them; same-distribution traffic passes."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.drift_statistics import jensen_shannon_distance, linf_distance, population_stability_index
from monitoring.tests.conftest import read_json, run_job, traffic, write_captures


def drifted_features(output_dir, outputs: bool = False) -> set[str]:
    """Input features with a drift violation (the model's outputs too when `outputs`)."""
    violations = read_json(output_dir / "constraint_violations.json")["violations"]
    names = {v["feature_name"] for v in violations if v["constraint_check_type"] == "baseline_drift_check"}
    return names if outputs else {n for n in names if not n.startswith("prediction:")}


def test_same_distribution_traffic_has_no_violation(tmp_path, schema, baseline_dir):
    write_captures(tmp_path / "capture", schema, traffic(schema, 2000, seed=11))
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "capture") == 0
    assert read_json(tmp_path / "out" / "constraint_violations.json") == {"violations": []}


def test_injected_drift_is_flagged_on_exactly_the_shifted_features(tmp_path, schema, baseline_dir):
    rows = traffic(schema, 2000, seed=12, drift={"monthly_charges": 40.0, "payment_method": "invoice"})
    write_captures(tmp_path / "capture", schema, rows)
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "capture") == 2
    assert drifted_features(tmp_path / "out") == {"monthly_charges", "payment_method"}


def test_a_moderate_shift_of_a_quarter_standard_deviation_is_flagged(tmp_path, schema, baseline_dir):
    charges = [float(r[1]) for r in traffic(schema, 4000, seed=7) if r[1] != ""]
    shift = round(0.3 * float(np.std(charges)), 2)
    write_captures(tmp_path / "capture", schema, traffic(schema, 3000, seed=13, drift={"monthly_charges": shift}))
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "capture") == 2
    assert drifted_features(tmp_path / "out") == {"monthly_charges"}


def test_a_shift_in_model_outputs_is_flagged_as_prediction_drift(tmp_path, schema, baseline_dir):
    if not schema.is_classification:
        pytest.skip("the stand-in regression model's score follows monthly_charges")
    write_captures(tmp_path / "capture", schema, traffic(schema, 2000, seed=14, drift={"contract_type": "two_year"}))
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "capture") == 2
    assert "prediction:predicted_label" in drifted_features(tmp_path / "out", outputs=True)


def test_a_small_window_does_not_raise_drift_on_sampling_noise(tmp_path, schema, baseline_dir):
    write_captures(tmp_path / "capture", schema, traffic(schema, 60, seed=15))
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "capture") == 0
    summary = read_json(tmp_path / "out" / "summary.json")
    assert any(r["distance"] > 0.1 for r in summary["drift"]), "noise should exceed the bare threshold here"


def test_report_shows_plots_of_the_drifted_features(tmp_path, schema, baseline_dir):
    write_captures(tmp_path / "capture", schema, traffic(schema, 1000, seed=16, drift={"usage_gb": 60.0}))
    run_job(baseline_dir, tmp_path / "out", tmp_path / "capture")
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Drifted features" in html and "data:image/png;base64," in html
    png = (tmp_path / "out" / "plots" / "usage_gb.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_jensen_shannon_distance_is_zero_for_equal_and_one_for_disjoint_distributions():
    assert jensen_shannon_distance([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    assert jensen_shannon_distance([1, 0], [0, 1]) == pytest.approx(1.0)


def test_psi_stays_finite_when_a_bin_empties():
    assert 0 < population_stability_index([5, 5], [10, 0]) < 10


def test_linf_distance_is_the_largest_share_difference():
    assert linf_distance([50, 50, 0], [30, 50, 20]) == pytest.approx(0.2)
