"""Hyperparameters arrive as strings (SageMaker passes every value as a string): parse and check them here.

Each error names the parameter, the value received and what is accepted, so a failed training job's
FailureReason says exactly what to change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from preprocessing import ESTIMATORS


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
    "model_format": Spec(
        str,
        "auto",
        choices=("auto", "onnx", "skops"),
        help="auto: ONNX when the estimator converts and matches, else skops",
    ),
}
# Keys SageMaker's script mode adds on its own; they are not ours to validate.
RESERVED_PREFIX = "sagemaker_"


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
    unknown = sorted(k for k in raw if k not in SPECS and not k.startswith(RESERVED_PREFIX))
    if unknown:
        raise HyperparameterError(
            f"unknown hyperparameter {unknown[0]!r} = {raw[unknown[0]]!r}: known ones are {', '.join(SPECS)} "
            "(fix model/config/hyperparameters.json or the job's HyperParameters)"
        )
    parsed: dict[str, object] = {}
    for name, spec in SPECS.items():
        text = _unquote(raw.get(name, spec.default)).strip()
        parsed[name] = _parse_one(name, text, spec)
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
