"""Hyperparameters arrive as strings; parsing fills defaults and rejects bad values with an actionable message."""

from __future__ import annotations

import json

import pytest

import hyperparameters as hp
from fixtures_train import CONFIG
from hyperparameters import HyperparameterError, as_strings, parse
from preprocessing import ESTIMATORS


def test_no_hyperparameters_means_the_defaults():
    assert parse({}) == {
        "estimator": "gradient_boosting",
        "n_estimators": 150,
        "learning_rate": 0.1,
        "max_depth": 3,
        "min_samples_leaf": 20,
        "regularization": 1.0,
        "random_state": 42,
        "model_format": "auto",
    }


def test_string_values_are_parsed_to_their_types():
    parsed = parse({"n_estimators": "50", "learning_rate": "0.05", "estimator": "random_forest"})
    assert (parsed["n_estimators"], parsed["learning_rate"], parsed["estimator"]) == (50, 0.05, "random_forest")


def test_the_project_hyperparameters_file_parses():
    parsed = parse(json.loads((CONFIG / "hyperparameters.json").read_text(encoding="utf-8")))
    assert parsed["estimator"] in ESTIMATORS


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("n_estimators", "0", "an integer >= 1 and <= 5000"),
        ("n_estimators", "5001", "an integer >= 1 and <= 5000"),
        ("n_estimators", "1.5", "an integer >= 1 and <= 5000"),
        ("n_estimators", "many", "an integer >= 1 and <= 5000"),
        ("n_estimators", "", "an integer >= 1 and <= 5000"),
        ("learning_rate", "0", "a number > 0.0 and <= 1.0"),
        ("learning_rate", "1.5", "a number > 0.0 and <= 1.0"),
        ("learning_rate", "nan", "a number > 0.0 and <= 1.0"),
        ("learning_rate", "inf", "a number > 0.0 and <= 1.0"),
        ("max_depth", "65", "an integer >= 1 and <= 64"),
        ("min_samples_leaf", "0", "an integer >= 1 and <= 100000"),
        ("regularization", "0", "a number > 0.0 and <= 1000000.0"),
        ("random_state", "-1", "an integer >= 0 and <= 4294967295"),
        ("estimator", "xgboost", f"one of {', '.join(ESTIMATORS)}"),
        ("model_format", "pickle", "one of auto, onnx, skops"),
    ],
)
def test_bad_value_is_rejected_naming_the_parameter_and_the_accepted_range(name, value, accepted):
    with pytest.raises(HyperparameterError) as caught:
        parse({name: value})
    assert f"hyperparameter '{name}' = '{value}': expected {accepted}" in str(caught.value)


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
