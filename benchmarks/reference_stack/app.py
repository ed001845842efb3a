"""The reference model server: a Flask app as AWS's scikit-learn serving container runs it behind gunicorn.

The request path follows that container's defaults: the CSV body is decoded with numpy.genfromtxt, a pandas
frame is built for the fitted pipeline (what a user's input_fn does for a ColumnTransformer keyed by column
name), scikit-learn predicts, and the answer is written with numpy.savetxt. The model is the SAME fitted
pipeline the ONNX artifact was exported from, saved with joblib.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import flask
import joblib
import numpy as np
import pandas as pd

MODEL_DIR = Path(os.environ.get("REFERENCE_MODEL_DIR", "/opt/ml/model"))
MODEL = joblib.load(MODEL_DIR / "model.joblib")
CONTRACT = json.loads((MODEL_DIR / "contract.json").read_text())
FEATURES = CONTRACT["feature_names"]
NUMERIC = CONTRACT["numeric"]
CATEGORICAL = [name for name in FEATURES if name not in NUMERIC]
CLASSES = np.asarray(CONTRACT["classes"], dtype=object)
MISSING = CONTRACT["missing_category"]

app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    return flask.Response(status=200 if MODEL is not None else 404)


@app.route("/invocations", methods=["POST"])
def invocations():
    if flask.request.content_type.split(";")[0].strip() != "text/csv":
        return flask.Response("text/csv only", status=415)
    data = input_fn(flask.request.get_data().decode("utf-8"))
    return flask.Response(output_fn(predict_fn(data)), status=200, mimetype="text/csv")


def input_fn(body: str) -> pd.DataFrame:
    array = np.genfromtxt(io.StringIO(body), dtype=str, delimiter=",", ndmin=2)
    frame = pd.DataFrame(array, columns=FEATURES)
    for name in NUMERIC:
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    for name in CATEGORICAL:
        frame[name] = frame[name].replace("", MISSING)
    return frame


def predict_fn(frame: pd.DataFrame) -> np.ndarray:
    if len(CLASSES):
        probabilities = MODEL.predict_proba(frame)
        labels = CLASSES[probabilities.argmax(axis=1)].reshape(-1, 1)
        return np.hstack([labels, probabilities.round(6).astype(object)])
    return MODEL.predict(frame).reshape(-1, 1)


def output_fn(prediction: np.ndarray) -> str:
    stream = io.StringIO()
    np.savetxt(stream, prediction, delimiter=",", fmt="%s")
    return stream.getvalue()
