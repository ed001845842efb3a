"""Hyperparameters arrive as strings (SageMaker passes every value as a string): parse and check them here.

Each error names the parameter, the value received and what is accepted, so a failed training job's
FailureReason says exactly what to change.

The shared keys (n_estimators, learning_rate, max_depth, min_samples_leaf, regularization) are accepted with
every estimator, as the project's hyperparameters.json lists them whatever the estimator; an estimator that has no
use for one ignores it (docs/estimators.md says which uses what). Keys that only some estimators understand
(Spec.estimators) are refused when set to anything but their default with another estimator, since that value
would silently do nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from model.train.preprocessing import ESTIMATORS


class HyperparameterError(ValueError):
    pass


@dataclass(frozen=True)
class Spec:
    kind: type
    default: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    low_exclusive: bool = False
    help: str = ""
    estimators: tuple[str, ...] = ()  # the estimators that use this key; empty: every one may

    def describe(self) -> str:
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        noun = "an integer" if self.kind is int else "a number"
        low = f"> {self.low}" if self.low_exclusive else f">= {self.low}"
        return f"{noun} {low} and <= {self.high}"


SPECS: dict[str, Spec] = {
    "estimator": Spec(str, "gradient_boosting", choices=ESTIMATORS, help="the scikit-learn estimator family"),
    "n_estimators": Spec(int, "150", 1, 5000, help="trees (or boosting iterations)"),
    "learning_rate": Spec(float, "0.1", 0.0, 1.0, low_exclusive=True, help="shrinkage of boosting models"),
    "max_depth": Spec(int, "3", 1, 64, help="depth of each tree"),
    "min_samples_leaf": Spec(int, "20", 1, 100000, help="smallest leaf of each tree"),
    "regularization": Spec(float, "1.0", 0.0, 1e6, low_exclusive=True, help="C (logistic) or alpha (ridge)"),
    "random_state": Spec(int, "42", 0, 2**32 - 1, help="seed for reproducible fits"),
    "subsample": Spec(
        float,
        "1.0",
        0.0,
        1.0,
        low_exclusive=True,
        help="share of rows each tree is grown on",
        estimators=("xgboost", "lightgbm"),
    ),
    "colsample_bytree": Spec(
        float,
        "1.0",
        0.0,
        1.0,
        low_exclusive=True,
        help="share of encoded columns each tree may split on",
        estimators=("xgboost", "lightgbm"),
    ),
    "reg_lambda": Spec(float, "1.0", 0.0, 1e6, help="L2 penalty on leaf values", estimators=("xgboost", "lightgbm")),
    "min_child_weight": Spec(
        float,
        "1.0",
        0.0,
        1e6,
        help="smallest hessian sum of a leaf (XGBoost's counterpart of min_samples_leaf)",
        estimators=("xgboost",),
    ),
    "num_leaves": Spec(
        int, "31", 2, 131072, help="most leaves per tree (also capped at 2**max_depth)", estimators=("lightgbm",)
    ),
    "model_format": Spec(
        str,
        "auto",
        choices=("auto", "onnx", "skops"),
        help="auto: ONNX when the estimator converts and matches, else skops",
    ),
}
# Keys SageMaker adds on its own; they are not ours to validate: script mode's sagemaker_* keys, and the objective
# metric's name that a hyperparameter tuning job adds to the hyperparameters of every training job it launches.
RESERVED_PREFIX = "sagemaker_"
RESERVED_KEYS = ("_tuning_objective_metric",)


def _unquote(value: object) -> str:
    """The SageMaker SDK JSON-encodes values ('"gbm"', '0.1'); plain strings come through as they are."""
    if not isinstance(value, str):
        return json.dumps(value)
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def parse(raw: Mapping[str, object]) -> dict:
    """Raw string hyperparameters -> typed values with defaults filled in."""
    if not isinstance(raw, Mapping):
        raise HyperparameterError(f"hyperparameters must be a JSON object of strings, got {type(raw).__name__}")
    unknown = sorted(k for k in raw if k not in SPECS and k not in RESERVED_KEYS and not k.startswith(RESERVED_PREFIX))
    if unknown:
        raise HyperparameterError(
            f"unknown hyperparameter {unknown[0]!r} = {raw[unknown[0]]!r}: known ones are {', '.join(SPECS)} "
            "(fix model/config/hyperparameters.json or the job's HyperParameters)"
        )
    parsed: dict[str, object] = {}
    texts: dict[str, str] = {}
    for name, spec in SPECS.items():
        texts[name] = _unquote(raw.get(name, spec.default)).strip()
        parsed[name] = _parse_one(name, texts[name], spec)
    estimator = parsed["estimator"]
    for name, spec in SPECS.items():
        if (
            spec.estimators
            and estimator not in spec.estimators
            and parsed[name] != _parse_one(name, spec.default, spec)
        ):
            users = " or ".join(spec.estimators)
            raise HyperparameterError(
                f"hyperparameter {name!r} = {texts[name]!r} is used by estimator {users} only, not {estimator!r}: "
                f"remove it or set 'estimator' to {users} "
                "(fix model/config/hyperparameters.json or the job's HyperParameters)"
            )
    return parsed


def _parse_one(name: str, text: str, spec: Spec) -> object:
    def fail() -> HyperparameterError:
        return HyperparameterError(
            f"hyperparameter {name!r} = {text!r}: expected {spec.describe()} "
            "(fix model/config/hyperparameters.json or the job's HyperParameters)"
        )

    if spec.kind is str:
        if text not in spec.choices:
            raise fail()
        return text
    try:
        value = spec.kind(text) if spec.kind is float else int(text, 10)
    except ValueError:
        raise fail() from None
    if value != value or (spec.low_exclusive and value <= spec.low) or value < spec.low or value > spec.high:
        raise fail()
    return value


def as_strings(params: Mapping[str, object]) -> dict[str, str]:
    """Typed values -> the string form SageMaker records, for metadata and the registry."""
    return {k: str(v) for k, v in params.items()}
