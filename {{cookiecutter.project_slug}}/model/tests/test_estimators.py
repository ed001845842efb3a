"""XGBoost, LightGBM and HistGradientBoosting train for every problem type and ship as ONNX that scores like them.

Each estimator is fitted inside the project's scikit-learn pipeline on a small generated table whose column names
hold spaces and slashes and whose categorical column has missing values; the ONNX graph must then give the same
labels and, within 1e-5, the same probabilities or regression values, and the artifact must score through
model_artifact.Scorer with nothing but onnxruntime. Few trees and a few hundred rows keep the module quick.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from threadpoolctl import threadpool_limits

from model.common.data_contract import Schema
from model.common.model_artifact import Scorer
from model.train import dataset, onnx_export, train
from model.train import hyperparameters as hp
from model.train.preprocessing import build_estimator, build_pipeline

ROOT = Path(__file__).resolve().parents[2]
ESTIMATORS = ("xgboost", "lightgbm", "hist_gradient_boosting")
PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")
ROWS = 300
FAST = {"n_estimators": "12", "max_depth": "3", "min_samples_leaf": "5"}
# ONNX runs in float32 but every estimator here splits on float32-exact thresholds, so outputs agree to rounding.
TOLERANCE = 1e-5
CLASSES = {"binary_classification": ["stays", "leaves"], "multiclass_classification": ["low", "mid", "high"]}
FEATURES = [
    {"name": "tenure months", "type": "integer", "minimum": 0, "maximum": 120, "nullable": False},
    {"name": "charges/month", "type": "float", "minimum": 0, "nullable": True},
    {"name": "plan / tier", "type": "categorical", "categories": ["basic", "plus", "pro"], "nullable": True},
    {"name": "calls (90 d)", "type": "integer", "minimum": 0, "nullable": True},
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """HistGradientBoosting's OpenMP threads only contend with each other on small tables and a busy CI box."""
    with threadpool_limits(limits=1):
        yield


def schema_dict(problem_type: str) -> dict:
    data = {"problem_type": problem_type, "target": "outcome / label", "features": FEATURES}
    if problem_type == "regression":
        data["label_values_or_threshold"] = [100.0]
    else:
        data["classes"] = CLASSES[problem_type]
        data["label_values_or_threshold"] = CLASSES[problem_type][-1:]
    return data


def write_table(path: Path, problem_type: str, rows: int = ROWS, seed: int = 7) -> None:
    """A table whose outcome depends on every feature, with gaps in the nullable ones (the first plan is missing)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 121, rows)
    charges = np.round(rng.uniform(10, 200, rows), 2)
    plan = rng.choice(["basic", "plus", "pro"], rows).astype(object)
    calls = rng.poisson(2, rows)
    plan[0] = None
    plan[rng.random(rows) < 0.1] = None
    signal = -tenure / 40 + charges / 60 + 0.8 * calls + np.select([plan == "pro", plan == "plus"], [1.5, 0.5], 0.0)
    signal += rng.normal(0, 0.5, rows)
    if problem_type == "regression":
        outcome = [f"{v:.3f}" for v in 100 + 25 * signal]
    else:
        cuts = np.quantile(signal, np.linspace(0, 1, len(CLASSES[problem_type]) + 1)[1:-1])
        outcome = [CLASSES[problem_type][i] for i in np.digitize(signal, cuts)]
    charges_text = ["" if rng.random() < 0.05 else f"{v}" for v in charges]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([f["name"] for f in FEATURES] + ["outcome / label"])
        for row in zip(tenure, charges_text, plan, calls, outcome, strict=True):
            writer.writerow(["" if v is None else v for v in row])


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, tuple[Schema, Path, Path]]:
    """Per problem type: the schema, its schema.json and a training CSV."""
    out = {}
    for problem_type in PROBLEM_TYPES:
        folder = tmp_path_factory.mktemp(problem_type)
        schema_path = folder / "schema.json"
        schema_path.write_text(json.dumps(schema_dict(problem_type)), encoding="utf-8")
        write_table(folder / "train.csv", problem_type)
        out[problem_type] = (Schema.load(schema_path), schema_path, folder / "train.csv")
    return out


def fitted(schema: Schema, data_path: Path, **overrides: str):
    params = hp.parse({**FAST, **overrides})
    data = dataset.load(schema, data_path, require_sensitive=False)
    return build_pipeline(schema, params).fit(schema.to_frame(data.columns), data.target), data


def onnx_outputs(model: bytes, schema: Schema, columns: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, schema.to_model_inputs(columns, names))


def assert_scores_agree(schema: Schema, pipeline, columns: dict, labels, values) -> None:
    """Labels identical; probabilities (absolute, they lie in [0, 1]) or regression values (relative) within 1e-5."""
    frame = schema.to_frame(columns)
    if schema.is_classification:
        expected = pipeline.predict_proba(frame)
        np.testing.assert_array_equal(np.asarray(labels).ravel(), expected.argmax(axis=1))
        np.testing.assert_allclose(values, expected, rtol=TOLERANCE, atol=TOLERANCE)
    else:
        expected = pipeline.predict(frame)
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(np.asarray(values).ravel(), expected, rtol=TOLERANCE, atol=TOLERANCE * scale)


# ------------------------------------------------------------------------------------------------- ONNX parity
@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_onnx_graph_scores_like_the_fitted_pipeline(tables, estimator, problem_type):
    schema, _, data_path = tables[problem_type]
    pipeline, data = fitted(schema, data_path, estimator=estimator)
    model = onnx_export.export_onnx(pipeline, schema)
    outputs = onnx_outputs(model, schema, data.columns)
    if schema.is_classification:
        assert_scores_agree(schema, pipeline, data.columns, outputs[0], outputs[1])
    else:
        assert_scores_agree(schema, pipeline, data.columns, None, outputs[0])
    parity = onnx_export.onnx_parity(model, pipeline, schema, data.columns)
    assert parity["passed"] and parity["label_agreement"] == 1.0


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_graph_uses_only_standard_onnx_operators(tables, estimator):
    schema, _, data_path = tables["multiclass_classification"]
    pipeline, _ = fitted(schema, data_path, estimator=estimator)
    graph = onnx.load_from_string(onnx_export.export_onnx(pipeline, schema))
    assert {node.domain for node in graph.graph.node} <= {"", "ai.onnx.ml"}
    assert any(node.op_type == "TreeEnsembleClassifier" for node in graph.graph.node)


def test_many_tree_lightgbm_regressor_sums_tree_groups_in_double(tables, monkeypatch):
    monkeypatch.setattr(onnx_export, "LIGHTGBM_REGRESSOR_SPLIT", 5)  # 12 trees: groups of 5, 5 and 2
    schema, _, data_path = tables["regression"]
    pipeline, data = fitted(schema, data_path, estimator="lightgbm")
    model = onnx_export.export_onnx(pipeline, schema)
    ensembles = [n for n in onnx.load_from_string(model).graph.node if n.op_type == "TreeEnsembleRegressor"]
    assert len(ensembles) == 3
    assert_scores_agree(schema, pipeline, data.columns, None, onnx_outputs(model, schema, data.columns)[0])


# ------------------------------------------------------------------------------------ training to an artifact
@pytest.fixture(scope="module")
def artifacts(tables, tmp_path_factory) -> dict[tuple[str, str], Path]:
    """train.run for every estimator and problem type, as a SageMaker training job would run it."""
    root = tmp_path_factory.mktemp("estimator-artifacts")
    out = {}
    for estimator in ESTIMATORS:
        for problem_type in PROBLEM_TYPES:
            _, schema_path, data_path = tables[problem_type]
            model_dir = root / estimator / problem_type
            params = {**FAST, "estimator": estimator, "model_format": "onnx"}
            train.run(data_path, model_dir, params, schema_path)
            out[estimator, problem_type] = model_dir
    return out


@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_trained_artifact_is_onnx_and_the_scorer_matches_a_fresh_fit(tables, artifacts, estimator, problem_type):
    schema, _, data_path = tables[problem_type]
    scorer = Scorer(artifacts[estimator, problem_type])
    assert scorer.format == "onnx"
    assert scorer.metadata["onnx_parity"]["passed"] is True
    # One thread and a fixed seed: a second fit is the same model, so the shipped graph must score like it.
    pipeline, data = fitted(schema, data_path, estimator=estimator)
    prediction = scorer.predict(data.columns)
    if schema.is_classification:
        assert_scores_agree(schema, pipeline, data.columns, prediction.values, prediction.probabilities)
    else:
        assert_scores_agree(schema, pipeline, data.columns, None, prediction.values)


def test_artifacts_score_without_scikit_learn_xgboost_or_lightgbm(artifacts, tables):
    """The inference image has onnxruntime and numpy only: block the training libraries and score every artifact."""
    script = textwrap.dedent(
        """
        import sys
        for name in ("sklearn", "xgboost", "lightgbm", "onnxmltools", "skl2onnx", "pandas"):
            sys.modules[name] = None  # any import of them now fails
        import json
        from model.common.data_contract import Schema
        from model.common.model_artifact import Scorer
        for model_dir, rows in json.loads(sys.argv[1]):
            scorer = Scorer(model_dir)
            prediction = scorer.predict(scorer.schema.coerce_columns(rows))
            assert prediction.values.shape == (2,), prediction
        print("scored", len(json.loads(sys.argv[1])))
        """
    )
    rows = {"tenure months": [3, 100], "charges/month": [150.5, None], "plan / tier": [None, "pro"]}
    rows["calls (90 d)"] = [7, 0]
    jobs = [[str(path), rows] for path in artifacts.values()]
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(jobs)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"scored {len(jobs)}"


# ------------------------------------------------------------------------------ hyperparameters and determinism
ONE_THREAD_SEEDED = {
    "xgboost": (
        "binary_classification",
        {"learning_rate": "0.05", "max_depth": "5", "min_child_weight": "3", "reg_lambda": "2.5"},
        {"learning_rate": 0.05, "max_depth": 5, "min_child_weight": 3.0, "reg_lambda": 2.5},
    ),
    "lightgbm": (
        "regression",
        {"max_depth": "6", "num_leaves": "15", "min_samples_leaf": "8", "reg_lambda": "0"},
        {
            **{"max_depth": 6, "num_leaves": 15, "min_child_samples": 8, "reg_lambda": 0.0, "subsample_freq": 1},
            **{"deterministic": True, "force_row_wise": True},
        },
    ),
}


@pytest.mark.parametrize("estimator", sorted(ONE_THREAD_SEEDED))
def test_the_library_learners_get_the_hyperparameters_one_thread_and_the_seed(estimator):
    problem_type, given, expected = ONE_THREAD_SEEDED[estimator]
    common = {"n_estimators": "40", "subsample": "0.8", "colsample_bytree": "0.7", "random_state": "9"}
    params = hp.parse({"estimator": estimator, **common, **given})
    model = build_estimator(problem_type, params).get_params()
    expected = {
        **expected,
        **{"n_estimators": 40, "subsample": 0.8, "colsample_bytree": 0.7, "random_state": 9, "n_jobs": 1},
    }
    assert {k: model[k] for k in expected} == expected


def test_lightgbm_bags_rows_only_when_subsample_is_below_one():
    params = hp.parse({"estimator": "lightgbm"})
    assert build_estimator("regression", params).get_params()["subsample_freq"] == 0


@pytest.mark.parametrize("estimator", ["xgboost", "lightgbm"])
def test_the_seed_makes_a_sampled_fit_reproducible(tables, estimator):
    schema, _, data_path = tables["binary_classification"]
    sampled = {"estimator": estimator, "subsample": "0.7", "colsample_bytree": "0.6"}
    first, data = fitted(schema, data_path, **sampled)
    again, _ = fitted(schema, data_path, **sampled)
    other, _ = fitted(schema, data_path, **sampled, random_state="7")
    frame = schema.to_frame(data.columns)
    np.testing.assert_array_equal(first.predict_proba(frame), again.predict_proba(frame))
    assert not np.array_equal(first.predict_proba(frame), other.predict_proba(frame))
