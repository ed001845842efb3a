"""The feature pipeline built from schema.json copes with what serving will send: unseen categories, missing values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import is_classifier, is_regressor

from model.common.data_contract import MISSING_CATEGORY
from model.tests.fixtures_train import csv_head
from model.train import dataset
from model.train import hyperparameters as hp
from model.train.preprocessing import ESTIMATORS, build_estimator, build_pipeline

FAST = {"n_estimators": "5"}


@pytest.fixture(scope="module")
def data(schema, trained, tmp_path_factory):
    """300 validated rows of the training split."""
    path = csv_head(trained.train_path, tmp_path_factory.mktemp("preprocessing") / "train.csv", 300)
    return dataset.load(schema, path, require_sensitive=False)


@pytest.fixture(scope="module")
def frame(schema, data):
    return schema.to_frame(data.columns)


@pytest.fixture(scope="module")
def fitted(schema, data, frame):
    return build_pipeline(schema, hp.parse(FAST)).fit(frame, data.target)


@pytest.fixture(scope="module")
def categorical(schema):
    return next(f for f in schema.features if not f.is_numeric)


@pytest.fixture(scope="module")
def numeric(schema):
    return next(f for f in schema.features if f.is_numeric)


def encoded(pipeline, frame, prefix: str) -> np.ndarray:
    """The preprocessed columns whose output names start with prefix."""
    preprocess = pipeline.named_steps["preprocess"]
    names = preprocess.get_feature_names_out()
    return preprocess.transform(frame)[:, [i for i, n in enumerate(names) if n.startswith(prefix)]]


@pytest.mark.slow
def test_missing_category_token_is_a_category_of_its_own(fitted, categorical):
    names = fitted.named_steps["preprocess"].get_feature_names_out()
    assert f"{categorical.name}_{MISSING_CATEGORY}" in names


@pytest.mark.slow
def test_unseen_category_encodes_as_no_known_category(fitted, frame, categorical):
    unseen = frame.head(3).assign(**{categorical.name: "never_seen_before"})
    assert not encoded(fitted, unseen, f"{categorical.name}_").any()


@pytest.mark.slow
def test_pipeline_predicts_rows_with_unseen_categories(schema, fitted, frame):
    unseen = frame.head(5).assign(**{f.name: "never_seen_before" for f in schema.features if not f.is_numeric})
    assert np.isfinite(_predict(schema, fitted, unseen)).all()


@pytest.mark.slow
def test_missing_numeric_value_is_imputed_with_the_training_median(fitted, frame, numeric):
    missing = frame.head(1).assign(**{numeric.name: np.nan})
    median = float(np.nanmedian(frame[numeric.name]))
    assert encoded(fitted, missing, numeric.name)[0, 0] == pytest.approx(median)


@pytest.mark.slow
def test_pipeline_predicts_rows_with_every_value_missing(schema, fitted, frame):
    empty = frame.head(2).assign(**{f.name: (np.nan if f.is_numeric else MISSING_CATEGORY) for f in schema.features})
    assert np.isfinite(_predict(schema, fitted, empty)).all()


@pytest.mark.slow
def test_missing_category_is_learned_like_any_other(fitted, frame, categorical):
    missing = frame.head(1).assign(**{categorical.name: MISSING_CATEGORY})
    assert encoded(fitted, missing, f"{categorical.name}_{MISSING_CATEGORY}")[0, 0] == 1.0


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_only_the_linear_model_scales_numeric_features(schema, estimator):
    pipeline = build_pipeline(schema, hp.parse({"estimator": estimator}))
    numeric_steps = pipeline.named_steps["preprocess"].transformers[0][1].named_steps
    assert ("scale" in numeric_steps) == (estimator == "linear")


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimator_suits_the_problem_type(schema, estimator):
    model = build_estimator(schema.problem_type, hp.parse({"estimator": estimator}))
    assert is_classifier(model) if schema.is_classification else is_regressor(model)


def test_hyperparameters_reach_the_estimator(schema):
    params = hp.parse({"estimator": "random_forest", "n_estimators": "17", "max_depth": "4"})
    model = build_estimator(schema.problem_type, params)
    assert (model.n_estimators, model.max_depth) == (17, 4)


def test_unknown_estimator_is_rejected_naming_it(schema):
    with pytest.raises(ValueError, match="estimator 'catboost': use one of"):
        build_estimator(schema.problem_type, {**hp.parse({}), "estimator": "catboost"})


def _predict(schema, pipeline, frame) -> np.ndarray:
    return pipeline.predict_proba(frame) if schema.is_classification else pipeline.predict(frame)
