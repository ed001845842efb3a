"""The feature pipeline, built from the data contract so that it is fitted once and shipped inside the model.

Numeric columns: median imputation, then standard scaling for linear models only (trees are indifferent to
scale, and leaving their inputs unscaled keeps split decisions identical in ONNX's float32). Categorical
columns: one-hot encoding that treats the missing-value token as a category and ignores categories it never saw.
The estimator follows. The whole pipeline is exported as one ONNX graph, so serving applies exactly the
transforms fitted here.
"""

from __future__ import annotations

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


def build_estimator(problem_type: str, params: dict):
    """The estimator named by the `estimator` hyperparameter, configured for the problem type."""
    name = params["estimator"]
    seed = params["random_state"]
    classification = problem_type != "regression"
    if name == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

        cls = GradientBoostingClassifier if classification else GradientBoostingRegressor
        return cls(
            n_estimators=params["n_estimators"],
            learning_rate=params["learning_rate"],
            max_depth=params["max_depth"],
            min_samples_leaf=params["min_samples_leaf"],
            random_state=seed,
        )
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if classification else RandomForestRegressor
        return cls(
            n_estimators=params["n_estimators"],
            max_depth=params["max_depth"],
            min_samples_leaf=params["min_samples_leaf"],
            random_state=seed,
            n_jobs=1,
        )
    if name == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
        return cls(
            max_iter=params["n_estimators"],
            learning_rate=params["learning_rate"],
            max_depth=params["max_depth"],
            min_samples_leaf=params["min_samples_leaf"],
            random_state=seed,
        )
    if name == "xgboost":
        from xgboost import XGBClassifier, XGBRegressor

        cls = XGBClassifier if classification else XGBRegressor
        # One thread and a fixed seed: the same data and hyperparameters give the same trees on every machine.
        return cls(
            n_estimators=params["n_estimators"],
            learning_rate=params["learning_rate"],
            max_depth=params["max_depth"],
            min_child_weight=params["min_child_weight"],
            subsample=params["subsample"],
            colsample_bytree=params["colsample_bytree"],
            reg_lambda=params["reg_lambda"],
            tree_method="hist",
            n_jobs=1,
            random_state=seed,
        )
    if name == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        cls = LGBMClassifier if classification else LGBMRegressor
        return cls(
            n_estimators=params["n_estimators"],
            learning_rate=params["learning_rate"],
            max_depth=params["max_depth"],
            num_leaves=params["num_leaves"],
            min_child_samples=params["min_samples_leaf"],
            subsample=params["subsample"],
            subsample_freq=1 if params["subsample"] < 1.0 else 0,  # LightGBM bags rows only when this is > 0
            colsample_bytree=params["colsample_bytree"],
            reg_lambda=params["reg_lambda"],
            n_jobs=1,
            deterministic=True,
            force_row_wise=True,  # skips the timing probe that picks row- or column-wise histograms per run
            random_state=seed,
            verbose=-1,
        )
    if name == "linear":
        if classification:
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=params["regularization"], max_iter=1000)
        from sklearn.linear_model import Ridge

        return Ridge(alpha=params["regularization"])
    raise ValueError(f"estimator {name!r}: use one of {', '.join(ESTIMATORS)}")


def build_pipeline(schema: Schema, params: dict) -> Pipeline:
    return Pipeline(
        [
            ("preprocess", build_preprocessor(schema, scale_numeric=params["estimator"] == "linear")),
            ("estimator", build_estimator(schema.problem_type, params)),
        ]
    )
