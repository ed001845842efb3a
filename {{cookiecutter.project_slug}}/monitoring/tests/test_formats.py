"""The files keep Model Monitor's field structure, so tools that read Model Monitor output read ours."""

from __future__ import annotations

import numpy as np

from monitoring.drift_statistics import Profile, kll_levels, new_sketch
from monitoring.tests.conftest import read_json, run_job, traffic, write_captures
from monitoring.violations import CHECK_TYPES


def test_statistics_json_has_model_monitor_fields(baseline_dir, schema):
    statistics = read_json(baseline_dir / "statistics.json")
    assert statistics["version"] == 0 and statistics["dataset"]["item_count"] == 4000
    assert [f["name"] for f in statistics["features"]] == schema.feature_names
    for item in statistics["features"]:
        feature = schema.feature(item["name"])
        if feature.is_numeric:
            assert item["inferred_type"] == ("Integral" if feature.type == "integer" else "Fractional")
            numeric = item["numerical_statistics"]
            assert set(numeric) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
            assert set(numeric["common"]) == {"num_present", "num_missing"}
            kll = numeric["distribution"]["kll"]
            assert {"lower_bound", "upper_bound", "count"} == set(kll["buckets"][0])
            assert sum(b["count"] for b in kll["buckets"]) == numeric["common"]["num_present"]
            assert set(kll["sketch"]["parameters"]) == {"c", "k"}
            assert all(isinstance(level, list) for level in kll["sketch"]["data"])
        else:
            assert item["inferred_type"] == "String"
            strings = item["string_statistics"]
            assert set(strings) == {"common", "distinct_count", "distribution"}
            assert {"value", "count"} == set(strings["distribution"]["categorical"]["buckets"][0])


def test_constraints_json_has_model_monitor_fields(baseline_dir, schema):
    constraints = read_json(baseline_dir / "constraints.json")
    assert constraints["version"] == 0
    config = constraints["monitoring_config"]
    assert set(config) == {
        "evaluate_constraints",
        "emit_metrics",
        "datatype_check_threshold",
        "domain_content_threshold",
        "distribution_constraints",
    }
    assert set(config["distribution_constraints"]) == {
        "perform_comparison",
        "comparison_threshold",
        "comparison_method",
    }
    for item in constraints["features"]:
        feature = schema.feature(item["name"])
        assert 0 <= item["completeness"] <= 1
        if feature.is_numeric:
            assert isinstance(item["num_constraints"]["is_non_negative"], bool)
        else:
            assert item["string_constraints"]["domains"] == list(feature.categories)
        if not feature.nullable:
            assert item["completeness"] == 1.0


def test_constraint_violations_json_uses_model_monitor_check_types(tmp_path, schema, baseline_dir):
    write_captures(tmp_path / "capture", schema, traffic(schema, 500, seed=21, drift={"tenure_months": 30}))
    run_job(baseline_dir, tmp_path / "out", tmp_path / "capture")
    violations = read_json(tmp_path / "out" / "constraint_violations.json")["violations"]
    assert violations
    for violation in violations:
        assert set(violation) == {"feature_name", "constraint_check_type", "description"}
        assert violation["constraint_check_type"] in CHECK_TYPES


def test_kll_levels_weigh_up_to_the_item_count():
    sketch = new_sketch()
    sketch.update(np.random.default_rng(0).normal(size=50_000))
    levels = kll_levels(sketch)
    assert sum(len(level) * 2**i for i, level in enumerate(levels)) == 50_000


def test_integer_features_bin_on_their_own_values(schema):
    feature = schema.feature("support_calls")
    profile = Profile([feature])
    profile.update({"support_calls": np.array([0.0] * 50 + [1.0] * 30 + [2.0] * 20)}, 100)
    assert profile.baseline_edges()["support_calls"] == [0.0, 1.0, 2.0]
