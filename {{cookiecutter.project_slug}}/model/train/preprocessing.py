"""The feature pipeline, built from the data contract so that it is fitted once and shipped inside the model.

Numeric columns: median imputation, then standard scaling for linear models only (trees are indifferent to
scale, and leaving their inputs unscaled keeps split decisions identical in ONNX's float32). Categorical
columns: one-hot encoding that treats the missing-value token as a category and ignores categories it never saw.
The estimator follows. The whole pipeline is exported as one ONNX graph, so serving applies exactly the
transforms fitted here.
"""

from __future__ import annotations

import importlib

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model.common.data_contract import MISSING_CATEGORY, Schema

ESTIMATORS = ("gradient_boosting", "random_forest", "linear", "hist_gradient_boosting", "xgboost", "lightgbm")


def build_preprocessor(schema: Schema, scale_numeric: bool = True) -> ColumnTransformer:
    numeric = [f.name for f in schema.features if f.is_numeric]
    categorical = [f for f in schema.features if not f.is_numeric]
    transformers = []
    if numeric:
        steps = [("impute", SimpleImputer(strategy="median"))]
        if scale_numeric:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        transformers.append(
            (
                "categorical",
                OneHotEncoder(
                    categories=[[*f.categories, MISSING_CATEGORY] for f in categorical],
                    handle_unknown="ignore",
                    sparse_output=False,
                ),
                [f.name for f in categorical],
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


# Each estimator: (module, classifier class, regressor class, keyword -> hyperparameter name). The learners are
# imported only when chosen (xgboost and lightgbm are large). Every one runs on one thread with the seed, so the
# same data and hyperparameters give the same model on every machine.
TREE_ENSEMBLES = {
    "gradient_boosting": (
        "sklearn.ensemble",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        {"n_estimators": "n_estimators", "learning_rate": "learning_rate", "max_depth": "max_depth"},
        {},
    ),
    "random_forest": (
        "sklearn.ensemble",
        "RandomForestClassifier",
        "RandomForestRegressor",
        {"n_estimators": "n_estimators", "max_depth": "max_depth"},
        {"n_jobs": 1},
    ),
    "hist_gradient_boosting": (
        "sklearn.ensemble",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        {"max_iter": "n_estimators", "learning_rate": "learning_rate", "max_depth": "max_depth"},
        {},
    ),
    "xgboost": (
        "xgboost",
        "XGBClassifier",
        "XGBRegressor",
        {
            **{"n_estimators": "n_estimators", "learning_rate": "learning_rate", "max_depth": "max_depth"},
            **{"min_child_weight": "min_child_weight", "subsample": "subsample"},
            **{"colsample_bytree": "colsample_bytree", "reg_lambda": "reg_lambda"},
        },
        {"tree_method": "hist", "n_jobs": 1},
    ),
    "lightgbm": (
        "lightgbm",
        "LGBMClassifier",
        "LGBMRegressor",
        {
            **{"n_estimators": "n_estimators", "learning_rate": "learning_rate", "max_depth": "max_depth"},
            **{"num_leaves": "num_leaves", "subsample": "subsample", "colsample_bytree": "colsample_bytree"},
            **{"reg_lambda": "reg_lambda"},
        },
        # deterministic + force_row_wise: no timing probe that picks row- or column-wise histograms per run.
        {"n_jobs": 1, "deterministic": True, "force_row_wise": True, "verbose": -1},
    ),
}
# The hyperparameter min_samples_leaf under each library's own name.
MIN_LEAF = {"xgboost": None, "lightgbm": "min_child_samples"}


def build_estimator(problem_type: str, params: dict):
    """The estimator named by the `estimator` hyperparameter, configured for the problem type."""
    name = params["estimator"]
    classification = problem_type != "regression"
    if name == "linear":
        if classification:
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=params["regularization"], max_iter=1000)
        from sklearn.linear_model import Ridge

        return Ridge(alpha=params["regularization"])
    if name not in TREE_ENSEMBLES:
        raise ValueError(f"estimator {name!r}: use one of {', '.join(ESTIMATORS)}")
    module, classifier, regressor, mapped, fixed = TREE_ENSEMBLES[name]
    cls = getattr(importlib.import_module(module), classifier if classification else regressor)
    keywords = {keyword: params[key] for keyword, key in mapped.items()}
    leaf = MIN_LEAF.get(name, "min_samples_leaf")
    if leaf:
        keywords[leaf] = params["min_samples_leaf"]
    if name == "lightgbm":
        keywords["subsample_freq"] = 1 if params["subsample"] < 1.0 else 0  # LightGBM bags rows only when > 0
    return cls(**keywords, **fixed, random_state=params["random_state"])


def build_pipeline(schema: Schema, params: dict) -> Pipeline:
    return Pipeline(
        [
            ("preprocess", build_preprocessor(schema, scale_numeric=params["estimator"] == "linear")),
            ("estimator", build_estimator(schema.problem_type, params)),
        ]
    )
