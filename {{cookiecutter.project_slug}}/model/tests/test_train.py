"""train.py honours SageMaker's training contract: inputs, outputs, lineage, failure reporting and export formats."""

from __future__ import annotations

import hashlib
import json
import signal
from datetime import datetime

import numpy as np
import pytest

from model.common.model_artifact import Scorer
from model.tests.fixtures_train import (
    CONFIG,
    FAST,
    GIT_COMMIT,
    OptMlRun,
    csv_head,
    csv_with_value,
    opt_ml_tree,
    project_hyperparameters,
    run_train_script,
)
from model.train import dataset, onnx_export, train
from model.train import hyperparameters as hp

LOCATION_VARIABLES = (
    "OPT_ML_ROOT",
    "SM_HPS",
    "SM_MODEL_DIR",
    "SM_OUTPUT_DATA_DIR",
    "SM_CHANNEL_TRAIN",
    "SM_CHANNEL_VALIDATION",
    "SM_CHANNEL_CONFIG",
)
QUALITY_METRIC = {"binary_classification": "accuracy", "multiclass_classification": "accuracy", "regression": "r2"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def in_process(monkeypatch):
    """train.main() in this process with a clean SageMaker environment; SIGTERM's handler is restored after."""
    for name in LOCATION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_COMMIT", GIT_COMMIT)
    previous = signal.getsignal(signal.SIGTERM)
    yield train.main
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def opt_ml_run(trained, tmp_path_factory) -> OptMlRun:
    """`python train.py train` against an /opt/ml tree built from the session's train and validation splits."""
    root = tmp_path_factory.mktemp("opt_ml")
    hyperparameters = {**project_hyperparameters(), **FAST}
    opt_ml_tree(root, train=trained.train_path, validation=trained.validation_path, hyperparameters=hyperparameters)
    result = run_train_script("train", env={"OPT_ML_ROOT": str(root)})
    return OptMlRun(root, hyperparameters, result.returncode, result.stderr)


@pytest.fixture(scope="module")
def small_train(trained, tmp_path_factory):
    """300 rows of the training split: enough for every class, quick to fit."""
    return csv_head(trained.train_path, tmp_path_factory.mktemp("small") / "train.csv", 300)


def failure_of(root) -> str:
    return (root / "output" / "failure").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------- the /opt/ml contract
@pytest.mark.slow
def test_train_argument_runs_training_and_exits_0(opt_ml_run):
    assert opt_ml_run.returncode == 0, opt_ml_run.stderr
    assert not (opt_ml_run.root / "output" / "failure").exists()


@pytest.mark.slow
def test_artifact_holds_model_schema_and_metadata(opt_ml_run):
    names = sorted(p.name for p in opt_ml_run.model_dir.iterdir())
    assert names == ["metadata.json", "model.onnx", "schema.json"]


@pytest.mark.slow
def test_artifact_schema_is_the_config_channel_schema(opt_ml_run):
    shipped = json.loads((opt_ml_run.model_dir / "schema.json").read_text(encoding="utf-8"))
    channel = json.loads((opt_ml_run.root / "input" / "data" / "config" / "schema.json").read_text(encoding="utf-8"))
    assert shipped == channel


@pytest.mark.slow
def test_metadata_records_the_git_commit(opt_ml_run):
    assert opt_ml_run.metadata["git_commit"] == GIT_COMMIT


@pytest.mark.slow
def test_metadata_records_the_training_data_sha256(opt_ml_run):
    expected = sha256(b"".join(f.read_bytes() for f in opt_ml_run.train_files))
    assert opt_ml_run.metadata["training_data_sha256"] == expected


@pytest.mark.slow
def test_metadata_records_the_parsed_hyperparameters_as_strings(opt_ml_run):
    recorded = opt_ml_run.metadata["hyperparameters"]
    assert all(isinstance(v, str) for v in recorded.values())
    assert recorded["n_estimators"] == FAST["n_estimators"]
    assert recorded["estimator"] == opt_ml_run.hyperparameters["estimator"]


@pytest.mark.slow
def test_metadata_records_validation_metrics(opt_ml_run, schema):
    recorded = opt_ml_run.metadata["metrics"]
    assert recorded["dataset"] == "validation"
    assert np.isfinite(recorded[QUALITY_METRIC[schema.problem_type]])


@pytest.mark.slow
def test_metadata_records_a_utc_creation_time(opt_ml_run):
    created = datetime.fromisoformat(opt_ml_run.metadata["created_at"])
    assert created.utcoffset().total_seconds() == 0


@pytest.mark.slow
def test_metadata_records_the_model_sha256(opt_ml_run):
    model = (opt_ml_run.model_dir / "model.onnx").read_bytes()
    assert opt_ml_run.metadata["model_sha256"] == sha256(model)


@pytest.mark.slow
def test_onnx_parity_with_scikit_learn_is_recorded(opt_ml_run, trained):
    parity = opt_ml_run.metadata["onnx_parity"]
    assert parity["passed"] is True
    assert parity["max_abs_diff"] <= onnx_export.PARITY_MAX_ABS_DIFF
    assert parity["rows"] == len(dataset.read_table(trained.validation_path))


@pytest.mark.slow
def test_training_report_goes_to_the_output_data_folder(opt_ml_run):
    report = json.loads((opt_ml_run.root / "output" / "data" / "training_report.json").read_text(encoding="utf-8"))
    assert report["model_sha256"] == opt_ml_run.metadata["model_sha256"]


@pytest.mark.slow
def test_sm_variables_override_the_opt_ml_layout(in_process, small_train, tmp_path, monkeypatch):
    empty_root = tmp_path / "opt_ml"  # nothing there: every location must come from an SM_* variable
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part.csv").write_bytes(small_train.read_bytes())
    monkeypatch.setenv("OPT_ML_ROOT", str(empty_root))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "train"))
    monkeypatch.setenv("SM_CHANNEL_CONFIG", str(opt_ml_tree(tmp_path / "tree", train=None) / "input/data/config"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(tmp_path / "output"))
    monkeypatch.setenv("SM_HPS", json.dumps({"n_estimators": 5, "max_depth": 2}))  # script mode: typed JSON

    assert in_process(["train"]) == 0
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text(encoding="utf-8"))
    assert (metadata["hyperparameters"]["n_estimators"], metadata["hyperparameters"]["max_depth"]) == ("5", "2")
    assert (tmp_path / "output" / "training_report.json").is_file()
    assert not empty_root.exists()


@pytest.mark.slow
def test_sm_hps_wins_over_the_hyperparameters_file(in_process, small_train, tmp_path, monkeypatch):
    root = opt_ml_tree(tmp_path, train=small_train, hyperparameters={"n_estimators": "7"})
    monkeypatch.setenv("OPT_ML_ROOT", str(root))
    monkeypatch.setenv("SM_HPS", json.dumps({"n_estimators": "4"}))

    assert in_process(["train"]) == 0
    metadata = json.loads((root / "model" / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["hyperparameters"]["n_estimators"] == "4"


def test_help_lists_the_options_and_exits_0():
    result = run_train_script("--help")
    assert result.returncode == 0, result.stderr
    for option in ("--train", "--validation", "--model-dir", "--hyperparameters", "--schema"):
        assert option in result.stdout


# ------------------------------------------------------------------------------------------------- failures
def test_bad_hyperparameter_writes_the_failure_file_and_exits_1(small_train, tmp_path):
    root = opt_ml_tree(tmp_path, train=small_train, hyperparameters={"max_depth": "deep"})
    result = run_train_script("train", env={"OPT_ML_ROOT": str(root)})
    assert result.returncode == 1
    assert "'max_depth' = 'deep'" in failure_of(root)
    assert "an integer >= 1 and <= 64" in failure_of(root)


def test_bad_data_writes_the_failure_file_naming_the_issue(in_process, small_train, schema, tmp_path, monkeypatch):
    feature = next(f for f in schema.features if f.maximum is not None)
    too_big = str(int(feature.maximum) + 1)
    bad = csv_with_value(small_train, tmp_path / "bad" / "train.csv", row=3, column=feature.name, value=too_big)
    root = opt_ml_tree(tmp_path / "opt_ml", train=bad)
    monkeypatch.setenv("OPT_ML_ROOT", str(root))

    assert in_process(["train"]) == 1
    reason = failure_of(root)
    assert reason.startswith("DataValidationError")
    assert f"row 3, column '{feature.name}': value '{too_big}' is above the maximum" in reason


def test_missing_train_channel_writes_the_failure_file_naming_it(in_process, tmp_path, monkeypatch):
    root = opt_ml_tree(tmp_path, train=None, hyperparameters={})
    monkeypatch.setenv("OPT_ML_ROOT", str(root))

    assert in_process(["train"]) == 1
    assert str(root / "input" / "data" / "train") in failure_of(root)
    assert "does not exist" in failure_of(root)


def test_failure_reason_is_cut_to_1024_characters(in_process, tmp_path, monkeypatch):
    root = opt_ml_tree(tmp_path, train=None, hyperparameters={"estimator": "x" * 2000})
    monkeypatch.setenv("OPT_ML_ROOT", str(root))

    assert in_process(["train"]) == 1
    assert len(failure_of(root)) == 1024


# ---------------------------------------------------------------------------------------------- export formats
@pytest.mark.slow
def unconvertible(monkeypatch) -> None:
    """An estimator skl2onnx has no converter for, as a team's own learner may be."""

    def export(*_args):
        raise RuntimeError("Unable to find a shape calculator for type 'TeamsOwnEstimator'")

    monkeypatch.setattr(onnx_export, "export_onnx", export)


def test_an_unconvertible_estimator_falls_back_to_skops_with_the_reason(small_train, tmp_path, monkeypatch):
    unconvertible(monkeypatch)
    params = {**project_hyperparameters(), "n_estimators": "10"}
    metadata = train.run(small_train, tmp_path / "model", params, CONFIG / "schema.json")
    assert metadata["model_format"] == "skops"
    assert (tmp_path / "model" / "model.skops").is_file()
    assert "could not convert estimator" in metadata["fallback_reason"]
    assert "Unable to find a shape calculator" in metadata["fallback_reason"]


@pytest.mark.slow
def test_a_skops_artifact_still_predicts(small_train, trained, schema, tmp_path):
    params = {**project_hyperparameters(), "n_estimators": "10", "model_format": "skops"}
    train.run(small_train, tmp_path / "model", params, CONFIG / "schema.json")
    rows = dataset.load(schema, trained.test_path)
    scorer = Scorer(tmp_path / "model")
    assert scorer.format == "skops"
    prediction = scorer.predict(rows.columns)
    assert prediction.values.shape == (len(rows),)
    if schema.is_classification:
        np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    else:
        assert np.isfinite(prediction.values).all()


def test_model_format_onnx_with_an_unconvertible_estimator_fails_clearly(small_train, tmp_path, monkeypatch):
    unconvertible(monkeypatch)
    params = {"n_estimators": "5", "model_format": "onnx"}
    with pytest.raises(train.TrainingError, match="'model_format' = 'onnx' but skl2onnx could not convert"):
        train.run(small_train, tmp_path / "model", params, CONFIG / "schema.json")
    assert not (tmp_path / "model").exists()


def test_a_stop_signal_during_onnx_export_ends_training_instead_of_falling_back(monkeypatch, schema):
    def stopped(*_args):
        raise train.TrainingError("training stopped by signal SIGTERM")

    monkeypatch.setattr(onnx_export, "export_onnx", stopped)
    with pytest.raises(train.TrainingError, match="SIGTERM"):
        onnx_export.serialise(None, schema, hp.parse({}), {})


def test_training_data_without_a_class_is_refused_naming_it(small_train, schema, tmp_path):
    if not schema.is_classification:
        pytest.skip("classes are for classification")
    frame = dataset.read_table(small_train)
    absent = schema.classes[-1]
    frame[frame[schema.target] != absent].to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(train.TrainingError, match=f"holds no row of class '{absent}'") as caught:
        train.run(tmp_path / "train.csv", tmp_path / "model", {"n_estimators": "5"}, CONFIG / "schema.json")
    assert "remove the class from 'classes' in schema.json" in str(caught.value)
    assert not (tmp_path / "model").exists()
