"""The exported model meets the quality gates of baseline.json on a holdout it never saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.common import metrics
from model.train import dataset

BASELINE = json.loads((Path(__file__).resolve().parents[1] / "config" / "baseline.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def quality(schema, holdout):
    data, prediction = holdout
    return metrics.quality_metrics(schema, data.target, prediction.values, prediction.probabilities)


@pytest.mark.parametrize("metric", sorted(BASELINE["quality"]))
def test_holdout_metric_meets_its_gate(quality, baseline, metric):
    gate = metrics.check_gates({"quality": {metric: baseline["quality"][metric]}}, quality, {})[0]
    assert gate.passed, gate.describe()


def test_holdout_rows_were_not_used_for_training(schema, trained):
    columns = [*schema.feature_names, schema.target]
    train_rows = set(map(tuple, dataset.read_table(trained.train_path)[columns].to_numpy()))
    test = dataset.read_table(trained.test_path)[columns].to_numpy()
    overlap = sum(tuple(row) in train_rows for row in test)
    # Identical records can occur in real data; more than the duplicate gate allows means a leaking split.
    assert overlap <= max(1, int(0.01 * len(test))), f"{overlap} of {len(test)} holdout rows appear in training"


def test_model_beats_a_constant_prediction(schema, holdout, quality):
    data, _ = holdout
    if schema.is_classification:
        majority = np.bincount(data.target).argmax()
        naive = metrics.quality_metrics(schema, data.target, np.full(len(data), majority))
        assert quality["accuracy"] > naive["accuracy"]
    else:
        naive = metrics.quality_metrics(schema, data.target, np.full(len(data), data.target.mean()))
        assert quality["rmse"] < naive["rmse"]


def test_classification_probabilities_are_a_distribution(schema, holdout):
    if not schema.is_classification:
        pytest.skip("regression models output values, not probabilities")
    _, prediction = holdout
    assert prediction.probabilities.shape[1] == len(schema.classes)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_artifact_records_its_lineage(scorer):
    metadata = scorer.metadata
    for field in (
        "model_version",
        "git_commit",
        "training_data_sha256",
        "hyperparameters",
        "metrics",
        "created_at",
        "model_sha256",
    ):
        assert metadata.get(field), field
    assert metadata["model_format"] in ("onnx", "skops")
