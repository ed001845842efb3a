"""Serialising the fitted pipeline: ONNX (served by onnxruntime alone) checked against scikit-learn, or skops.

The ONNX graph takes one [n, 1] input per schema feature, in schema order; converters rewrite names that are
not identifiers, so scoring code feeds the graph's own input names position by position
(``Schema.to_model_inputs(columns, input_names)``).

skl2onnx converts scikit-learn's own estimators; XGBoost and LightGBM converters come from onnxmltools and are
registered with skl2onnx here, so the whole pipeline (preprocessing and estimator) becomes one graph of standard
ONNX and ai.onnx.ml operators (TreeEnsembleClassifier/Regressor) that onnxruntime runs on its own.
"""

from __future__ import annotations

import logging

import numpy as np

from model.common.data_contract import Schema

log = logging.getLogger("train")

# ONNX runs in float32; a converted model must agree with scikit-learn within these limits or it is not shipped.
PARITY_MAX_ABS_DIFF = 1e-3
PARITY_MIN_LABEL_AGREEMENT = 0.995


class TrainingError(RuntimeError):
    """Training cannot produce a shippable model (also raised by a stop signal during export)."""


# Classifier options every registered classifier converter accepts (the pipeline asks for zipmap=False).
CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [True, False]}


def _with_integer_missing_flags(convert):
    """skl2onnx 1.20's HistGradientBoosting converter, made to write its missing-value flags as integers.

    It lists ``nodes_missing_value_tracks_true`` as numpy integers for splits but as Python ``False`` for
    leaves, and protobuf 7 refuses a bool in an integer list (``Field onnx.AttributeProto.ints: Expected an int,
    got a boolean``), so every HistGradientBoosting model fails to convert. Casting the flags to int before the
    node is built is all the fix needs; the graph is otherwise the converter's own.
    """

    def convert_hist_gradient_boosting(scope, operator, container):
        add_node = container.add_node

        def add_node_with_integer_flags(*args, **attrs):
            flags = attrs.get("nodes_missing_value_tracks_true")
            if flags is not None:
                attrs["nodes_missing_value_tracks_true"] = [int(flag) for flag in flags]
            return add_node(*args, **attrs)

        container.add_node = add_node_with_integer_flags
        try:
            convert(scope, operator, container)
        finally:
            del container.add_node  # the instance attribute goes; the class's method shows through again

    return convert_hist_gradient_boosting


def _convert_lightgbm_regressor(scope, operator, container):
    """onnxmltools' LightGBM converter; ``split`` sums the trees in groups of that many, in double precision."""
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    split = scope.get_options(operator.raw_operator, {"split": LIGHTGBM_REGRESSOR_SPLIT})["split"]
    # onnxmltools refuses to split an ensemble that fits in one group, so small ones go through whole.
    operator.split = split if split and operator.raw_operator.booster_.num_trees() > split else None
    convert_lightgbm(scope, operator, container)


# The main ONNX opset is skl2onnx 1.20's newest tested one (its default); ai.onnx.ml stays at onnxmltools' 3.
ONNXMLTOOLS_OPSETS = {"": 22, "ai.onnx.ml": 3}
# Trees per TreeEnsembleRegressor node for LightGBM regressors: each group sums its leaves in float32 and the
# groups' sums are added in double, so long ensembles do not accumulate float32 rounding.
LIGHTGBM_REGRESSOR_SPLIT = 100


def register_converters(estimator) -> dict | None:
    """Teach skl2onnx the converter of this estimator when it is not one skl2onnx ships (idempotent).

    Returns the target opsets the conversion needs, or None for skl2onnx's defaults: onnxmltools' tree converters
    write ai.onnx.ml opset 3 operators and refuse a newer one.
    """
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from sklearn.base import is_classifier

    library = type(estimator).__module__.split(".")[0]
    classifier = is_classifier(estimator)
    shapes = calculate_linear_classifier_output_shapes if classifier else calculate_linear_regressor_output_shapes
    name = type(estimator).__name__
    if library == "xgboost":
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

        options = CLASSIFIER_OPTIONS if classifier else None
        update_registered_converter(type(estimator), f"XGBoost{name}", shapes, convert_xgboost, options=options)
        return ONNXMLTOOLS_OPSETS
    if library == "lightgbm":
        if classifier:
            from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

            convert, options = convert_lightgbm, CLASSIFIER_OPTIONS
        else:
            convert, options = _convert_lightgbm_regressor, {"split": None}
        update_registered_converter(type(estimator), f"LightGbm{name}", shapes, convert, options=options)
        return ONNXMLTOOLS_OPSETS
    if name in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        from skl2onnx.common._registration import get_converter

        alias = f"Sklearn{name}"
        registered = get_converter(alias)
        if getattr(registered._fct, "__name__", "") != "convert_hist_gradient_boosting":
            update_registered_converter(
                type(estimator),
                alias,
                shapes,
                _with_integer_missing_flags(registered._fct),
                options=registered.get_allowed_options(),
            )
    return None


def export_onnx(pipeline, schema: Schema) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    target_opset = register_converters(pipeline.steps[-1][1])
    inputs = [
        (f.name, FloatTensorType([None, 1]) if f.is_numeric else StringTensorType([None, 1])) for f in schema.features
    ]
    options = {id(pipeline): {"zipmap": False}} if schema.is_classification else None
    return to_onnx(pipeline, initial_types=inputs, options=options, target_opset=target_opset).SerializeToString()


def onnx_parity(model_bytes: bytes, pipeline, schema: Schema, columns: dict) -> dict:
    """Score the same rows with the ONNX graph and with scikit-learn; report how far they disagree."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    outputs = names = [i.name for i in session.get_inputs()]
    outputs = session.run(None, schema.to_model_inputs(columns, names))
    frame = schema.to_frame(columns)
    if schema.is_classification:
        expected = pipeline.predict_proba(frame)
        diff = float(np.abs(np.asarray(outputs[1]) - expected).max())
        agreement = float((np.asarray(outputs[0]).ravel() == expected.argmax(axis=1)).mean())
    else:
        expected = pipeline.predict(frame)
        values = np.asarray(outputs[0]).ravel()
        scale = max(1.0, float(np.abs(expected).max()))
        diff = float(np.abs(values - expected).max() / scale)
        agreement = 1.0
    ok = diff <= PARITY_MAX_ABS_DIFF and agreement >= PARITY_MIN_LABEL_AGREEMENT
    return {"max_abs_diff": diff, "label_agreement": agreement, "rows": len(frame), "passed": ok}


def export_skops(pipeline) -> tuple[bytes, list[str]]:
    import skops.io as sio

    data = sio.dumps(pipeline)
    return data, sorted(sio.get_untrusted_types(data=data))


def serialise(pipeline, schema: Schema, params: dict, check_columns: dict) -> tuple[bytes, str, dict]:
    """ONNX when it converts and matches scikit-learn; otherwise skops (with auto) or an error (with onnx)."""
    extra: dict = {}
    if params["model_format"] in ("auto", "onnx"):
        try:
            data = export_onnx(pipeline, schema)
            parity = onnx_parity(data, pipeline, schema, check_columns)
            extra["onnx_parity"] = parity
            if parity["passed"]:
                return data, "onnx", extra
            reason = (
                f"ONNX output differs from scikit-learn (max abs diff {parity['max_abs_diff']:.2e}, "
                f"label agreement {parity['label_agreement']:.4f})"
            )
        except TrainingError:  # a stop signal during export ends the job; it is no conversion failure
            raise
        except Exception as exc:  # skl2onnx raises many types for unsupported estimators
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            reason = f"skl2onnx could not convert estimator {params['estimator']!r}: {first_line[:200]}"
        if params["model_format"] == "onnx":
            raise TrainingError(f"hyperparameter 'model_format' = 'onnx' but {reason}; use 'auto' or another estimator")
        log.warning("%s; falling back to the skops format (the inference image then needs scikit-learn)", reason)
        extra["fallback_reason"] = reason
    data, trusted = export_skops(pipeline)
    extra["skops_trusted_types"] = trusted
    return data, "skops", extra
