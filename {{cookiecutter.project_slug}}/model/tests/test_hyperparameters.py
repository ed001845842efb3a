"""Hyperparameters arrive as strings; parsing fills defaults and rejects bad values with an actionable message."""

from __future__ import annotations

import json

import pytest

from model.tests.fixtures_train import CONFIG
from model.train import hyperparameters as hp
from model.train.hyperparameters import HyperparameterError, as_strings, parse
from model.train.preprocessing import ESTIMATORS


def test_no_hyperparameters_means_the_defaults():
    assert parse({}) == {
        "estimator": "gradient_boosting",
        "n_estimators": 150,
        "learning_rate": 0.1,
        "max_depth": 3,
        "min_samples_leaf": 20,
        "regularization": 1.0,
        "random_state": 42,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "reg_lambda": 1.0,
        "min_child_weight": 1.0,
        "num_leaves": 31,
        "model_format": "auto",
    }


def test_string_values_are_parsed_to_their_types():
    parsed = parse({"n_estimators": "50", "learning_rate": "0.05", "estimator": "random_forest"})
    assert (parsed["n_estimators"], parsed["learning_rate"], parsed["estimator"]) == (50, 0.05, "random_forest")


def test_the_project_hyperparameters_file_parses():
    parsed = parse(json.loads((CONFIG / "hyperparameters.json").read_text(encoding="utf-8")))
    assert parsed["estimator"] in ESTIMATORS


# hyperparameter -> (values train.py refuses, the accepted range its message names)
BAD_VALUES = {
    "n_estimators": (("0", "5001", "1.5", "many", ""), "an integer >= 1 and <= 5000"),
    "learning_rate": (("0", "1.5", "nan", "inf"), "a number > 0.0 and <= 1.0"),
    "max_depth": (("65",), "an integer >= 1 and <= 64"),
    "min_samples_leaf": (("0",), "an integer >= 1 and <= 100000"),
    "regularization": (("0",), "a number > 0.0 and <= 1000000.0"),
    "random_state": (("-1",), "an integer >= 0 and <= 4294967295"),
    "estimator": (("catboost",), f"one of {', '.join(ESTIMATORS)}"),
    "subsample": (("0", "1.2"), "a number > 0.0 and <= 1.0"),
    "colsample_bytree": (("0", "all"), "a number > 0.0 and <= 1.0"),
    "reg_lambda": (("-0.1",), "a number >= 0.0 and <= 1000000.0"),
    "min_child_weight": (("-1",), "a number >= 0.0 and <= 1000000.0"),
    "num_leaves": (("1", "31.5"), "an integer >= 2 and <= 131072"),
    "model_format": (("pickle",), "one of auto, onnx, skops"),
}


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [(name, value, accepted) for name, (values, accepted) in BAD_VALUES.items() for value in values],
)
def test_bad_value_is_rejected_naming_the_parameter_and_the_accepted_range(name, value, accepted):
    with pytest.raises(HyperparameterError) as caught:
        parse({name: value})
    assert f"hyperparameter '{name}' = '{value}': expected {accepted}" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "estimator", "users"),
    [
        ("num_leaves", "63", "xgboost", "lightgbm"),
        ("min_child_weight", "5", "lightgbm", "xgboost"),
        ("subsample", "0.8", "gradient_boosting", "xgboost or lightgbm"),
        ("colsample_bytree", "0.5", "random_forest", "xgboost or lightgbm"),
        ("reg_lambda", "3", "linear", "xgboost or lightgbm"),
    ],
)
def test_a_key_another_estimator_uses_is_refused_naming_both(name, value, estimator, users):
    with pytest.raises(HyperparameterError) as caught:
        parse({"estimator": estimator, name: value})
    assert str(caught.value).startswith(
        f"hyperparameter '{name}' = '{value}' is used by estimator {users} only, not '{estimator}': "
        f"remove it or set 'estimator' to {users}"
    )


def test_a_key_another_estimator_uses_is_accepted_at_its_default():
    # Recorded hyperparameters list every key at its value; they must parse back whatever the estimator.
    parsed = parse({"estimator": "random_forest", "num_leaves": "31", "subsample": "1", "reg_lambda": '"1.0"'})
    assert (parsed["num_leaves"], parsed["subsample"], parsed["reg_lambda"]) == (31, 1.0, 1.0)


@pytest.mark.parametrize("estimator", ["xgboost", "lightgbm"])
def test_shared_keys_are_accepted_with_the_new_estimators(estimator):
    # The project's hyperparameters.json lists min_samples_leaf and regularization whatever the estimator.
    parsed = parse({"estimator": estimator, "min_samples_leaf": "7", "regularization": "2", "subsample": "0.5"})
    assert (parsed["min_samples_leaf"], parsed["subsample"]) == (7, 0.5)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_recorded_strings_of_every_estimator_parse_back(estimator):
    parsed = parse({"estimator": estimator})
    assert parse(as_strings(parsed)) == parsed


def test_json_boolean_is_not_an_integer():
    with pytest.raises(HyperparameterError, match="'n_estimators' = 'true'"):
        parse({"n_estimators": True})


def test_unknown_key_is_rejected_listing_the_known_ones():
    with pytest.raises(HyperparameterError) as caught:
        parse({"n_estimator": "50"})
    message = str(caught.value)
    assert "unknown hyperparameter 'n_estimator' = '50'" in message
    assert ", ".join(hp.SPECS) in message


def test_values_json_quoted_by_the_sagemaker_sdk_are_unquoted():
    # The SDK stores json.dumps(value): strings gain quotes, numbers stay bare.
    parsed = parse({"estimator": '"random_forest"', "n_estimators": "80", "learning_rate": '"0.2"'})
    assert (parsed["estimator"], parsed["n_estimators"], parsed["learning_rate"]) == ("random_forest", 80, 0.2)


def test_typed_values_from_sm_hps_are_accepted():
    parsed = parse({"n_estimators": 80, "learning_rate": 0.2, "estimator": "linear"})
    assert (parsed["n_estimators"], parsed["learning_rate"], parsed["estimator"]) == (80, 0.2, "linear")


def test_surrounding_whitespace_is_ignored():
    assert parse({"max_depth": " 5 "})["max_depth"] == 5


def test_sagemaker_keys_are_ignored():
    parsed = parse({"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://bucket/code.tar.gz"'})
    assert parsed == parse({})


def test_non_object_is_rejected():
    with pytest.raises(HyperparameterError, match="must be a JSON object of strings, got list"):
        parse(["n_estimators", "50"])


def test_recorded_strings_parse_back_to_the_same_values():
    parsed = parse({"learning_rate": "0.05", "estimator": "linear", "regularization": "0.5"})
    assert parse(as_strings(parsed)) == parsed
