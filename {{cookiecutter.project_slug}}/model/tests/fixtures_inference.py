"""Real artifacts for the inference tests: train.run on the sample data, once per problem type and session.

The project's schema.json gives the features; the fixture derives the three problem types from it (the sample
data generator writes a target for each), so serving is tested against exactly what training writes.
Test modules import its helpers before pytest loads it as a plugin; it holds no asserts (PYTEST_DONT_REWRITE).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from model.common import sample_data

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "model" / "config" / "schema.json"
HYPERPARAMETERS_PATH = ROOT / "model" / "config" / "hyperparameters.json"
PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")
# The labels model/common/sample_data.py writes for each problem type.
CLASSES = {"binary_classification": ["no", "yes"], "multiclass_classification": ["basic", "standard", "premium"]}
POSITIVE = {"binary_classification": ["yes"], "multiclass_classification": ["premium"], "regression": [600.0]}
TRAINING_ROWS = 600
FAST = {"n_estimators": "30"}  # enough trees for a realistic graph, few enough to train in a blink


def schema_dict(problem_type: str) -> dict:
    """The project's schema.json with its target and classes switched to the given problem type."""
    data = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    data.update(
        problem_type=problem_type,
        target=sample_data.TARGETS[problem_type],
        label_values_or_threshold=POSITIVE[problem_type],
    )
    data.pop("classes", None)
    if problem_type in CLASSES:
        data["classes"] = CLASSES[problem_type]
    return data


def sample_table(problem_type: str, rows: int, seed: int) -> str:
    return sample_data.render_csv(problem_type, rows, seed)


def feature_rows(n: int, seed: int = 7) -> list[list[str]]:
    """n rows of feature values in schema order, as strings: what a client sends as CSV."""
    names = [f["name"] for f in json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["features"]]
    records = list(csv.DictReader(io.StringIO(sample_table("regression", n, seed))))
    return [[record[name] for name in names] for record in records]


def feature_records(n: int, seed: int = 7) -> list[dict]:
    """n rows as JSON objects with typed values (numbers as numbers, missing values as null)."""
    features = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["features"]
    out = []
    for row in feature_rows(n, seed):
        record = {}
        for feature, value in zip(features, row, strict=True):
            if value == "":
                record[feature["name"]] = None
            elif feature["type"] == "integer":
                record[feature["name"]] = int(value)
            elif feature["type"] == "float":
                record[feature["name"]] = float(value)
            else:
                record[feature["name"]] = value
        out.append(record)
    return out


def csv_body(rows: list[list[str]]) -> bytes:
    return "".join(",".join(row) + "\n" for row in rows).encode()


def train_artifact(root: Path, problem_type: str, **hyperparameters: str) -> Path:
    from model.train import train

    root.mkdir(parents=True, exist_ok=True)
    schema_path = root / "schema.json"
    schema_path.write_text(json.dumps(schema_dict(problem_type)), encoding="utf-8")
    data_path = root / "train.csv"
    data_path.write_text(sample_table(problem_type, TRAINING_ROWS, seed=11), encoding="utf-8")
    defaults = json.loads(HYPERPARAMETERS_PATH.read_text(encoding="utf-8"))
    model_dir = root / "model"
    train.run(data_path, model_dir, {**defaults, **FAST, **hyperparameters}, schema_path)
    return model_dir


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("artifacts")
    return {p: train_artifact(root / p, p) for p in PROBLEM_TYPES}


@pytest.fixture(scope="session", params=PROBLEM_TYPES)
def artifact(request, artifacts) -> Path:
    return artifacts[request.param]


@pytest.fixture(scope="session")
def skops_artifact(tmp_path_factory) -> Path:
    """The fallback format, for estimators skl2onnx cannot convert (served by scikit-learn itself)."""
    return train_artifact(tmp_path_factory.mktemp("skops"), "binary_classification", model_format="skops")
