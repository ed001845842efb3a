"""Hyperparameter tuning: tuning.json is refused with the field named when it cannot work, and `make tune` runs
train.py per trial under the training contract, reads the objective from its log and writes the best values."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from pathlib import Path

import pytest

from model.common import tuning_config
from model.common.metrics import load_baseline
from model.common.tuning_config import TuningConfigError
from model.tests.fixtures_train import CONFIG, GIT_COMMIT, csv_head
from model.train import check_tuning
from model.train import hyperparameters as hp
from pipeline import local_tuning

SHIPPED = json.loads((CONFIG / "tuning.json").read_text(encoding="utf-8"))
BASELINE = load_baseline(CONFIG / "baseline.json")
BASE = json.loads((CONFIG / "hyperparameters.json").read_text(encoding="utf-8"))
# Tiny models: the behaviour under test does not depend on model quality, and the run stays a few seconds.
FAST_RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "learning_rate", "MinValue": "0.05", "MaxValue": "0.3", "ScalingType": "Logarithmic"}
    ],
    "IntegerParameterRanges": [
        {"Name": "n_estimators", "MinValue": "5", "MaxValue": "15", "ScalingType": "Linear"},
        {"Name": "max_depth", "MinValue": "2", "MaxValue": "3", "ScalingType": "Auto"},
    ],
    "CategoricalParameterRanges": [],
}


def parse(raw: dict):
    return tuning_config.parse(raw, BASELINE, BASE, accepts=hp.parse)


# The project's tuning.json with a fixed strategy, limits and ranges, so each case below changes one thing whatever
# the project's own search looks like.
REFERENCE = {
    **copy.deepcopy(SHIPPED),
    "Strategy": "Bayesian",
    "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 2},
    "ParameterRanges": FAST_RANGES,
}


def changed(**fields) -> dict:
    raw = copy.deepcopy(REFERENCE)
    raw.update(fields)
    return raw


def with_ranges(**ranges: dict) -> dict:
    """The reference configuration searching these ranges only: kind (IntegerParameterRanges, ...) -> one range."""
    raw = copy.deepcopy(REFERENCE)
    raw["ParameterRanges"] = {kind: [item] for kind, item in ranges.items()}
    return raw


def with_range(kind: str, item: dict) -> dict:
    return with_ranges(**{kind: item})


def refused(raw: dict, *fragments: str) -> str:
    with pytest.raises(TuningConfigError) as caught:
        parse(raw)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------------------------ the config
def test_the_shipped_tuning_json_is_valid_and_tunes_a_gated_metric():
    config = parse(SHIPPED)
    assert config.objective_gate in BASELINE["quality"]
    bounds = BASELINE["quality"][config.objective_gate]
    assert config.objective_type == ("Maximize" if "min" in bounds else "Minimize")
    assert config.strategy in ("Bayesian", "Random", "Grid")
    assert 1 <= config.max_parallel_jobs <= config.trials


def test_the_check_command_exits_0_on_the_project_config(capsys):
    assert check_tuning.main(["--config-dir", str(CONFIG)]) == 0
    assert "tuning.json: ok" in capsys.readouterr().out


def test_an_unknown_hyperparameter_is_refused_naming_it():
    raw = with_range("IntegerParameterRanges", {"Name": "n_trees", "MinValue": "1", "MaxValue": "9"})
    refused(raw, "IntegerParameterRanges[n_trees]", "unknown hyperparameter 'n_trees'", "hyperparameters.py")


def test_a_key_the_estimator_does_not_use_is_refused():
    raw = with_range("IntegerParameterRanges", {"Name": "num_leaves", "MinValue": "8", "MaxValue": "64"})
    base_estimator = BASE.get("estimator", "gradient_boosting")
    if base_estimator == "lightgbm":
        pytest.skip("the project's estimator uses num_leaves")
    refused(raw, "IntegerParameterRanges[num_leaves]", "is used by estimator lightgbm only")


def test_estimator_specific_keys_are_checked_against_every_estimator_the_search_can_pick():
    raw = with_ranges(
        IntegerParameterRanges={"Name": "num_leaves", "MinValue": "8", "MaxValue": "64"},
        CategoricalParameterRanges={"Name": "estimator", "Values": ["lightgbm", "xgboost"]},
    )
    refused(raw, "num_leaves", "with estimator 'xgboost'", "lightgbm only")


def test_a_range_beyond_what_train_py_accepts_is_refused():
    raw = with_range("ContinuousParameterRanges", {"Name": "learning_rate", "MinValue": "0.01", "MaxValue": "2"})
    refused(raw, "ContinuousParameterRanges[learning_rate]", "'2'", "a number > 0.0 and <= 1.0")


def test_an_integer_hyperparameter_under_continuous_ranges_is_refused():
    raw = with_range("ContinuousParameterRanges", {"Name": "n_estimators", "MinValue": "50", "MaxValue": "400"})
    refused(raw, "ContinuousParameterRanges[n_estimators]", "an integer")


@pytest.mark.parametrize(("low", "high"), [("0.3", "0.01"), ("0.1", "0.1")], ids=["inverted", "empty"])
def test_an_inverted_or_empty_range_is_refused(low, high):
    raw = with_range("ContinuousParameterRanges", {"Name": "learning_rate", "MinValue": low, "MaxValue": high})
    refused(raw, "ContinuousParameterRanges[learning_rate].MinValue/MaxValue", "MinValue must be below MaxValue")


def test_a_logarithmic_scale_needs_a_positive_minimum():
    raw = with_range(
        "ContinuousParameterRanges",
        {"Name": "regularization", "MinValue": "0", "MaxValue": "10", "ScalingType": "Logarithmic"},
    )
    refused(raw, "ContinuousParameterRanges[regularization].ScalingType", "MinValue > 0", "'0'")


def test_reverse_logarithmic_only_within_zero_and_one():
    raw = with_range(
        "ContinuousParameterRanges",
        {"Name": "learning_rate", "MinValue": "0.1", "MaxValue": "1", "ScalingType": "ReverseLogarithmic"},
    )
    refused(raw, "ReverseLogarithmic", "0 <= x < 1")


def test_an_unknown_scaling_type_lists_the_accepted_ones():
    raw = with_range(
        "IntegerParameterRanges", {"Name": "max_depth", "MinValue": "2", "MaxValue": "6", "ScalingType": "Log"}
    )
    refused(raw, "IntegerParameterRanges[max_depth].ScalingType = 'Log'", "Auto, Linear, Logarithmic")


def test_a_fractional_integer_bound_is_refused():
    raw = with_range("IntegerParameterRanges", {"Name": "max_depth", "MinValue": "2.5", "MaxValue": "6"})
    refused(raw, "IntegerParameterRanges[max_depth].MinValue = '2.5'", "whole number")


def test_a_hyperparameter_tuned_twice_is_refused():
    raw = with_ranges(
        IntegerParameterRanges={"Name": "max_depth", "MinValue": "2", "MaxValue": "6"},
        CategoricalParameterRanges={"Name": "max_depth", "Values": ["3", "4"]},
    )
    refused(raw, "CategoricalParameterRanges[max_depth]", "already tuned")


def test_an_objective_the_gates_do_not_define_is_refused_with_the_gated_ones():
    message = refused(
        changed(HyperParameterTuningJobObjective={"MetricName": "validation:log_loss", "Type": "Minimize"}),
        "HyperParameterTuningJobObjective.MetricName = 'validation:log_loss'",
        "baseline.json gates",
    )
    for metric in BASELINE["quality"]:
        assert f"validation:{metric}" in message


def test_the_objective_is_a_validation_metric_not_a_training_one():
    objective = dict(SHIPPED["HyperParameterTuningJobObjective"])
    objective["MetricName"] = objective["MetricName"].replace("validation:", "train:")
    refused(changed(HyperParameterTuningJobObjective=objective), "MetricName", "give a validation metric")


def test_the_objective_direction_must_follow_its_gate():
    objective = dict(SHIPPED["HyperParameterTuningJobObjective"])
    right = objective["Type"]
    objective["Type"] = "Minimize" if right == "Maximize" else "Maximize"
    refused(
        changed(HyperParameterTuningJobObjective=objective), "HyperParameterTuningJobObjective.Type", f"give {right}"
    )


@pytest.mark.parametrize(
    ("limits", "fragments"),
    [
        ({"MaxNumberOfTrainingJobs": 0, "MaxParallelTrainingJobs": 1}, ["MaxNumberOfTrainingJobs = 0", ">= 1"]),
        ({"MaxNumberOfTrainingJobs": "10", "MaxParallelTrainingJobs": 1}, ["MaxNumberOfTrainingJobs = '10'"]),
        ({"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 8}, ["MaxParallelTrainingJobs = 8", "at most 4"]),
        ({"MaxNumberOfTrainingJobs": 4}, ["MaxParallelTrainingJobs = None"]),
    ],
    ids=["zero", "string", "parallel-above-total", "missing-parallel"],
)
def test_bad_counts_are_refused(limits, fragments):
    refused(changed(ResourceLimits=limits), *fragments)


def test_hyperband_is_refused_with_the_reason():
    refused(
        changed(Strategy="Hyperband"), "Strategy = 'Hyperband'", "nothing to stop early", "Bayesian, Random or Grid"
    )


def test_grid_searches_categorical_ranges_only():
    refused(changed(Strategy="Grid"), "Grid strategy searches categorical ranges only")


def test_grid_job_count_must_match_the_combinations():
    raw = changed(Strategy="Grid", ResourceLimits={"MaxNumberOfTrainingJobs": 5, "MaxParallelTrainingJobs": 1})
    raw["ParameterRanges"] = {"CategoricalParameterRanges": [{"Name": "max_depth", "Values": ["2", "3"]}]}
    refused(raw, "MaxNumberOfTrainingJobs = 5", "number of combinations, 2")


def test_unknown_fields_and_environment_values_are_refused():
    refused(changed(MaxJobs=3), "MaxJobs = 3", "unknown field")
    refused(changed(environments={"dev": "yes"}), "environments.dev = 'yes'", "true")


def test_train_py_accepts_the_objective_key_a_tuning_job_adds():
    parsed = hp.parse({**BASE, "_tuning_objective_metric": SHIPPED["HyperParameterTuningJobObjective"]["MetricName"]})
    assert "_tuning_objective_metric" not in parsed


def test_the_check_command_exits_2_naming_the_field(tmp_path, capsys):
    config = shutil.copytree(CONFIG, tmp_path / "config")
    (config / "tuning.json").write_text(json.dumps(changed(Strategy="Annealing")), encoding="utf-8")
    assert check_tuning.main(["--config-dir", str(config)]) == 2
    assert "Strategy = 'Annealing'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- make tune
def tuning_dir(dest: Path, **fields) -> Path:
    config = shutil.copytree(CONFIG, dest)
    raw = {**copy.deepcopy(REFERENCE), **fields}
    raw["ResourceLimits"] = fields.get("ResourceLimits", {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2})
    (config / "tuning.json").write_text(json.dumps(raw), encoding="utf-8")
    return config


def run_tune(root: Path, data: Path, config: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--data", str(data), "--config-dir", str(config), "--build-dir", str(root / "build"), *extra]
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        patch.setenv("GIT_COMMIT", GIT_COMMIT)
        patch.delenv("OPT_ML_ROOT", raising=False)
        code = local_tuning.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def small_data(sample_data, tmp_path_factory) -> Path:
    return csv_head(sample_data, tmp_path_factory.mktemp("tune_data") / "sample.csv", 600)


@pytest.fixture(scope="module")
def tuned(small_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    config = tuning_dir(root / "config")
    code, out, err = run_tune(root, small_data, config, "--trials", "4")
    (run_dir,) = (root / "build" / "tuning").iterdir()
    return code, out, err, config, run_dir


def test_tuning_runs_the_trials_with_a_progress_line_each_and_a_table(tuned):
    code, out, err, _, _ = tuned
    assert code == 0, err
    progress = [line for line in out.splitlines() if line.startswith("[trial ")]
    assert len(progress) == 4
    assert "learning_rate" in out and "n_estimators" in out and "seconds" in out


def test_each_trial_is_train_py_under_the_training_contract(tuned):
    _, _, _, _, run_dir = tuned
    trials = json.loads((run_dir / "trials.json").read_text(encoding="utf-8"))["trials"]
    assert [t["status"] for t in trials] == ["complete"] * 4
    for trial in trials:
        opt_ml = run_dir / f"trial-{trial['trial']:03d}"
        hyperparameters = json.loads((opt_ml / "input" / "config" / "hyperparameters.json").read_text("utf-8"))
        assert all(isinstance(v, str) for v in hyperparameters.values())
        # ... including the objective's name, which a SageMaker tuning job adds to every training job it launches.
        objective = SHIPPED["HyperParameterTuningJobObjective"]["MetricName"]
        assert hyperparameters == {**BASE, **trial["hyperparameters"], "_tuning_objective_metric": objective}
        # The model the trial wrote is the one its log describes.
        metadata = json.loads((opt_ml / "model" / "metadata.json").read_text(encoding="utf-8"))
        assert metadata["hyperparameters"]["n_estimators"] == trial["hyperparameters"]["n_estimators"]


def test_the_objective_is_read_from_the_log_with_the_metric_definitions_regexes(tuned):
    """The regexes the SageMaker tuning job gets, applied to real train.py logs, give the metrics train.py computed."""
    _, _, _, config, run_dir = tuned
    parsed = tuning_config.load(config / "tuning.json", BASELINE)
    for trial in json.loads((run_dir / "trials.json").read_text(encoding="utf-8"))["trials"]:
        opt_ml = run_dir / f"trial-{trial['trial']:03d}"
        log = (opt_ml / "training.log").read_text(encoding="utf-8")
        computed = json.loads((opt_ml / "model" / "metadata.json").read_text(encoding="utf-8"))["metrics"]
        assert computed["dataset"] == "validation"
        for definition in parsed.metric_definitions():
            value = tuning_config.read_metric(log, definition["Name"])
            assert value == pytest.approx(computed[definition["Name"].split(":", 1)[1]], abs=1e-6), definition
        assert trial[parsed.objective_metric] == tuning_config.read_metric(log, parsed.objective_metric)


def test_the_best_values_are_written_to_hyperparameters_json(tuned):
    _, out, _, config, run_dir = tuned
    parsed = tuning_config.load(config / "tuning.json", BASELINE)
    trials = json.loads((run_dir / "trials.json").read_text(encoding="utf-8"))["trials"]
    values = [t[parsed.objective_metric] for t in trials]
    best = json.loads((run_dir / "best.json").read_text(encoding="utf-8"))
    assert best["value"] == (max(values) if parsed.objective_type == "Maximize" else min(values))
    written = json.loads((config / "hyperparameters.json").read_text(encoding="utf-8"))
    assert written == {**BASE, **best["tuned"]} == best["hyperparameters"]
    assert list(written)[: len(BASE)] == list(BASE)  # the file's own order is kept
    assert "updated" in out and "make pipeline" in out


@pytest.mark.parametrize("strategy", ["Grid", "Random", "Bayesian"])
def test_each_strategy_maps_to_its_optuna_sampler_and_stays_inside_the_ranges(strategy):
    """The sampler and the string values train.py receives, without training (an objective of 0 for every trial)."""
    import optuna

    raw = changed(Strategy=strategy, ResourceLimits={"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 1})
    if strategy == "Grid":
        raw["ParameterRanges"] = {
            "CategoricalParameterRanges": [
                {"Name": "max_depth", "Values": ["2", "3", "4"]},
                {"Name": "n_estimators", "Values": ["10", "20"]},
            ]
        }
    else:
        raw["ParameterRanges"] = {
            **FAST_RANGES,
            "ContinuousParameterRanges": [
                {"Name": "learning_rate", "MinValue": "0.5", "MaxValue": "0.99", "ScalingType": "ReverseLogarithmic"}
            ],
        }
    config = parse(raw)
    sampler = local_tuning.make_sampler(config)
    expected = {"Grid": "GridSampler", "Random": "RandomSampler", "Bayesian": "TPESampler"}[strategy]
    assert type(sampler).__name__ == expected
    study = optuna.create_study(direction="maximize", sampler=sampler)
    seen = []
    study.optimize(lambda t: seen.append({r.name: local_tuning.suggest(t, r) for r in config.ranges}) or 0.0, 6)
    for values in seen:
        hp.parse({**BASE, **values})  # every value is a string train.py accepts
        for r in config.ranges:
            if r.kind == "Categorical":
                assert values[r.name] in r.values
            else:
                assert r.min_value <= float(values[r.name]) <= r.max_value
    if strategy == "Grid":
        assert sorted((v["max_depth"], v["n_estimators"]) for v in seen) == [
            (d, n) for d in ("2", "3", "4") for n in ("10", "20")
        ]


def test_a_bad_tuning_json_exits_2_before_any_work(small_data, tmp_path):
    config = tuning_dir(tmp_path / "config", Strategy="Hyperband")
    code, _, err = run_tune(tmp_path, small_data, config)
    assert code == 2
    assert "Strategy = 'Hyperband'" in err
    assert not (tmp_path / "build").exists()
