"""Bias under SageMaker Clarify's metric names stays within the gates of baseline.json for every facet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.common import metrics
from model.common.data_contract import Schema
from model.train import dataset

BASELINE = json.loads((Path(__file__).resolve().parents[1] / "config" / "baseline.json").read_text(encoding="utf-8"))
PRE_TRAINING = ("CI", "DPL")


@pytest.fixture(scope="module")
def pre_training(schema, trained):
    data = dataset.load(schema, trained.train_path)
    return metrics.bias_metrics(schema, data.sensitive, data.target)


@pytest.fixture(scope="module")
def post_training(schema, holdout):
    data, prediction = holdout
    return metrics.bias_metrics(schema, data.sensitive, data.target, prediction.values)


def _gate(baseline, values, metric):
    return metrics.check_gates({"bias": {metric: baseline["bias"][metric]}}, {}, {"facet": values})[0]


@pytest.mark.parametrize("metric", [m for m in sorted(BASELINE["bias"]) if m in PRE_TRAINING])
def test_pre_training_bias_in_training_data_meets_its_gate(pre_training, baseline, metric):
    assert pre_training, "schema.json names no sensitive_features"
    for facet, values in pre_training.items():
        gate = _gate(baseline, values, metric)
        assert gate.passed, f"{facet}: {gate.describe()}"


@pytest.mark.parametrize("metric", [m for m in sorted(BASELINE["bias"]) if m not in PRE_TRAINING])
def test_post_training_bias_on_holdout_meets_its_gate(post_training, baseline, metric):
    for facet, values in post_training.items():
        gate = _gate(baseline, values, metric)
        assert gate.passed, f"{facet}: {gate.describe()}"


# Hand-computed cases pin the implementation to Clarify's definitions.
TOY = Schema.from_dict(
    {
        "problem_type": "binary_classification",
        "target": "y",
        "classes": ["no", "yes"],
        "label_values_or_threshold": ["yes"],
        "features": [{"name": "x", "type": "float"}],
        "sensitive_features": [{"name": "group", "facet_values_or_threshold": ["d"]}],
    }
)


def test_clarify_definitions_on_a_hand_computed_example():
    group = np.array(["a"] * 6 + ["d"] * 4)
    y_true = np.array([1, 1, 1, 0, 0, 0, 1, 1, 0, 0])
    y_pred = np.array([1, 1, 0, 0, 0, 1, 1, 0, 0, 0])
    result = metrics.bias_metrics(TOY, {"group": group}, y_true, y_pred)["group"]
    assert result["CI"] == pytest.approx((6 - 4) / 10)
    assert result["DPL"] == pytest.approx(3 / 6 - 2 / 4)
    assert result["DPPL"] == pytest.approx(3 / 6 - 1 / 4)
    assert result["DI"] == pytest.approx((1 / 4) / (3 / 6))
    assert result["AD"] == pytest.approx(4 / 6 - 3 / 4)
    assert result["RD"] == pytest.approx(2 / 3 - 1 / 2)
    assert result["SD"] == pytest.approx(2 / 3 - 2 / 2)


def test_a_model_that_never_favours_facet_d_fails_the_gates(baseline):
    group = np.array(["a"] * 50 + ["d"] * 50)
    y_true = np.tile([1, 0], 50)
    y_pred = np.concatenate([y_true[:50], np.zeros(50, dtype=int)])
    result = metrics.bias_metrics(TOY, {"group": group}, y_true, y_pred)
    failed = {g.metric for g in metrics.check_gates(baseline, {}, result) if not g.passed}
    assert {"DPPL", "DI"} <= failed


def test_regression_outcomes_are_binarised_at_the_threshold():
    schema = Schema.from_dict(
        {
            "problem_type": "regression",
            "target": "y",
            "label_values_or_threshold": [10.0],
            "features": [{"name": "x", "type": "float"}],
            "sensitive_features": [{"name": "group", "facet_values_or_threshold": ["d"]}],
        }
    )
    group = np.array(["a", "a", "d", "d"])
    result = metrics.bias_metrics(
        schema, {"group": group}, np.array([12.0, 5.0, 11.0, 9.0]), np.array([15.0, 11.0, 3.0, 2.0])
    )["group"]
    assert result["DPPL"] == pytest.approx(1.0 - 0.0)
    assert result["DI"] == pytest.approx(0.0)
