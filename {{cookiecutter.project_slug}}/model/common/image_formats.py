"""Which artifact formats each inference image loads: the one rule training, the build stage and the release
scripts share (standard library only, so the AWS environment imports it without the model libraries).

The default image holds ONNX Runtime only; model_format=skops in model/config/hyperparameters.json builds the
image with scikit-learn too, which then loads both formats.
"""

from __future__ import annotations

SERVES = {"onnx": ("onnx",), "skops": ("onnx", "skops")}  # image format -> artifact formats it loads


def image_format(model_format_hyperparameter: object) -> str:
    """The inference image a repository builds, from its `model_format` hyperparameter (JSON-quoted or not)."""
    return "skops" if str(model_format_hyperparameter).strip().strip('"') == "skops" else "onnx"
