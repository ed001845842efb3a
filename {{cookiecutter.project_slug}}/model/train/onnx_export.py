"""Serialising the fitted pipeline: ONNX (served by onnxruntime alone) checked against scikit-learn, or skops.

The ONNX graph takes one [n, 1] input per schema feature, in schema order; converters rewrite names that are
not identifiers, so scoring code feeds the graph's own input names position by position
(``Schema.to_model_inputs(columns, input_names)``).
"""

from __future__ import annotations

import logging

import numpy as np

from data_contract import Schema

log = logging.getLogger("train")

# ONNX runs in float32; a converted model must agree with scikit-learn within these limits or it is not shipped.
PARITY_MAX_ABS_DIFF = 1e-3
PARITY_MIN_LABEL_AGREEMENT = 0.995


class TrainingError(RuntimeError):
    """Training cannot produce a shippable model (also raised by a stop signal during export)."""


def export_onnx(pipeline, schema: Schema) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    inputs = [
        (f.name, FloatTensorType([None, 1]) if f.is_numeric else StringTensorType([None, 1])) for f in schema.features
    ]
    options = {id(pipeline): {"zipmap": False}} if schema.is_classification else None
    return to_onnx(pipeline, initial_types=inputs, options=options).SerializeToString()


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
