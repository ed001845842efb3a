"""Decode, validate, predict, encode: SageMaker's four handler functions, each pure and testable alone.

    scorer = model_fn(model_dir)
    columns = input_fn(body, content_type, scorer.schema)
    predictions = predict_fn(columns, scorer)
    body, content_type = output_fn(predictions, accept)

input_fn takes the schema as a third argument (SageMaker's toolkits pass a context there): the schema that
travels inside the artifact decides what a valid request is, exactly as it decided what valid training data was.
Every bad request raises InferenceError, which carries the HTTP status and a JSON body naming the problem.
"""

from __future__ import annotations

import codecs
import csv
import functools
import json
import os
from dataclasses import dataclass

import numpy as np

from model.common.data_contract import MAX_REPORTED_ISSUES, DataValidationError, Schema
from model.common.model_artifact import Scorer

DEFAULT_MAX_PAYLOAD_MB = 6  # InvokeEndpoint's own body limit
CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
# Spellings of JSON Lines seen in the wild (SageMaker documents application/jsonlines).
JSONLINES_ALIASES = frozenset({JSONLINES, "application/x-jsonlines", "application/jsonl", "application/x-ndjson"})
ACCEPTED_CONTENT_TYPES = (CSV, JSON, JSONLINES)
PROBABILITY_DIGITS = 6
FEW_ROWS = 16


class InferenceError(Exception):
    """A request the model cannot answer, with the HTTP status and error code to answer it with."""

    def __init__(self, status: int, error: str, message: str, issues: list[dict] | None = None, total: int = 0):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.issues = issues or []
        self.total = total or len(self.issues)

    def to_dict(self) -> dict:
        out = {"error": self.error, "message": self.message}
        if self.issues:
            out["issues"] = self.issues
            out["total_issues"] = self.total
        return out

    def body(self) -> bytes:
        return json.dumps(self.to_dict()).encode()


def bad_request(error: str, message: str) -> InferenceError:
    return InferenceError(400, error, message)


@dataclass(frozen=True)
class Predictions:
    """What the model said for n rows; output_fn renders it in the format the client accepts."""

    classes: tuple[str, ...]  # empty for regression
    values: np.ndarray  # class indices (classification) or scores (regression)
    probabilities: np.ndarray | None = None

    @property
    def is_classification(self) -> bool:
        return bool(self.classes)

    def __len__(self) -> int:
        return len(self.values)


# ----------------------------------------------------------------------------------------------- model_fn
def model_fn(model_dir: str) -> Scorer:
    """Load the artifact; raises ArtifactError when any file's SHA-256 differs from metadata.json."""
    return Scorer(model_dir)


# ----------------------------------------------------------------------------------------------- input_fn
def max_payload_bytes(environ: dict | None = None) -> int:
    """The request body limit: SAGEMAKER_MAX_PAYLOAD_IN_MB (set by Batch Transform) or 6 MB."""
    environ = os.environ if environ is None else environ
    raw = environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "")
    try:
        megabytes = int(raw) if raw else DEFAULT_MAX_PAYLOAD_MB
    except ValueError:
        raise ValueError(f"SAGEMAKER_MAX_PAYLOAD_IN_MB={raw!r}: give a whole number of megabytes, e.g. 6") from None
    if megabytes < 1:
        raise ValueError(f"SAGEMAKER_MAX_PAYLOAD_IN_MB={raw!r}: give at least 1")
    return megabytes * 1024 * 1024


@functools.lru_cache(maxsize=64)  # clients repeat the same few header values
def parse_media_type(header: str | None) -> tuple[str, str]:
    """'text/csv; charset=UTF-8' -> ('text/csv', 'utf-8'); the charset defaults to UTF-8."""
    if not header:
        return "", "utf-8"
    media_type, _, params = header.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    return media_type.strip().lower(), charset


def input_fn(body: bytes, content_type: str | None, schema: Schema, max_bytes: int | None = None) -> dict:
    """Request body -> validated numpy columns in schema order (see Schema.coerce_columns)."""
    limit = max_payload_bytes() if max_bytes is None else max_bytes
    if len(body) > limit:
        raise InferenceError(
            413,
            "payload_too_large",
            f"the body has {len(body)} bytes, over the limit of {limit} bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB): "
            "split the request into smaller batches",
        )
    media_type, charset = parse_media_type(content_type)
    if media_type not in (CSV, JSON) and media_type not in JSONLINES_ALIASES:
        raise InferenceError(
            415,
            "unsupported_content_type",
            f"Content-Type {content_type!r} is not supported: use one of {', '.join(ACCEPTED_CONTENT_TYPES)}",
        )
    if not body.strip():
        raise bad_request("empty_body", "the request body is empty: send at least one record")
    text = _decode_text(body, charset)
    try:
        if media_type == CSV:
            columns = _columns_from_csv(text, schema)
        else:
            instances = _instances_from_json(text) if media_type == JSON else _instances_from_jsonlines(text)
            if not instances:
                raise bad_request("empty_body", "the request holds no records: send at least one record")
            if isinstance(instances[0], dict):
                columns = schema.columns_from_records(instances)
            else:
                columns = schema.columns_from_rows(instances)
        return schema.coerce_columns(columns)
    except DataValidationError as exc:
        raise _invalid_data(exc) from None


def _invalid_data(exc: DataValidationError) -> InferenceError:
    return InferenceError(
        400, "invalid_data", str(exc), [i.to_dict() for i in exc.issues[:MAX_REPORTED_ISSUES]], total=exc.total
    )


def _decode_text(body: bytes, charset: str) -> str:
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        raise InferenceError(415, "unsupported_charset", f"charset {charset!r} is unknown: send UTF-8") from None
    try:
        # utf-8-sig drops the byte-order mark some tools write.
        return body.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as exc:
        raise bad_request("malformed_body", f"the body is not valid {charset} text: {exc}") from None


def _columns_from_csv(text: str, schema: Schema) -> dict[str, list]:
    """Headerless CSV, values in schema order, blank lines skipped -> one list per column.

    An empty numeric field is a missing value, as null is in JSON: saying so here lets the schema parse each
    numeric column in one vectorised step instead of value by value.
    """
    lines = [line for line in text.splitlines() if line]
    if not lines:
        raise bad_request("empty_body", "the request holds no records: send at least one record")
    names = schema.feature_names
    if lines[0].replace('"', "").split(",") == names:
        raise bad_request(
            "malformed_body",
            "the first CSV line is a header: send rows only, values in schema order (" + ", ".join(names) + ")",
        )
    width = len(names)
    if '"' not in text and all(line.count(",") == width - 1 for line in lines):
        # Nothing quoted and every row the right width: one split of the whole body, then every column is a
        # slice of it, with no per-row lists at all.
        fields = ",".join(lines).split(",")
        columns = {name: fields[i::width] for i, name in enumerate(names)}
    else:
        try:
            rows = list(csv.reader(lines, strict=True))
        except csv.Error as exc:
            raise bad_request("malformed_body", f"the body is not valid CSV: {exc}") from None
        columns = schema.columns_from_rows(rows)  # reports the rows of the wrong width
    for feature in schema.features:
        values = columns[feature.name]
        if feature.is_numeric and "" in values:
            columns[feature.name] = [v if v != "" else None for v in values]
    return columns


def _instances_from_json(text: str) -> list:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request("malformed_body", f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
        raise bad_request(
            "malformed_body",
            'send {"instances": [...]} with one JSON object (feature name -> value) or one list '
            "(values in schema order) per record",
        )
    return _check_instances(document["instances"])


def _instances_from_jsonlines(text: str) -> list:
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        # One parse for the whole body is much faster than one per line; it only fails on bad input.
        instances = json.loads("[" + ",".join(lines) + "]")
        if len(instances) != len(lines):
            raise ValueError("a line holds more than one JSON value")
    except ValueError:
        for number, line in enumerate(lines, start=1):
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                raise bad_request("malformed_body", f"line {number} is not valid JSON: {exc}") from None
        raise bad_request("malformed_body", "each line must hold exactly one JSON object or list") from None
    return _check_instances(instances)


def _check_instances(instances: list) -> list:
    if not instances:
        return instances
    kind = dict if isinstance(instances[0], dict) else list
    for i, instance in enumerate(instances):
        if not isinstance(instance, kind):
            raise bad_request(
                "malformed_body",
                f"record {i} is a {type(instance).__name__}: every record must be a JSON object "
                "(feature name -> value) or every record a list of values in schema order",
            )
    return instances


# --------------------------------------------------------------------------------------------- predict_fn
def predict_fn(columns: dict, model: Scorer) -> Predictions:
    prediction = model.predict(columns)
    return Predictions(model.schema.classes, prediction.values, prediction.probabilities)


# ---------------------------------------------------------------------------------------------- output_fn
@functools.lru_cache(maxsize=64)
def choose_accept(accept: str | None) -> str:
    """Pick the response format from an Accept header (q-values honoured); raises 406 when none fits."""
    if not accept or not accept.strip():
        return JSON
    ranges = []
    for position, item in enumerate(accept.split(",")):
        media_type, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((-quality, position, media_type.strip().lower()))
    for negative_quality, _, media_type in sorted(ranges):
        if negative_quality >= 0:
            break
        if media_type in ("*/*", "application/*", JSON):
            return JSON
        if media_type in ("text/*", CSV):
            return CSV
        if media_type in JSONLINES_ALIASES:
            return JSONLINES
    raise InferenceError(
        406, "not_acceptable", f"Accept {accept!r} is not supported: use one of {', '.join(ACCEPTED_CONTENT_TYPES)}"
    )


def output_fn(predictions: Predictions, accept: str | None) -> tuple[bytes, str]:
    media_type = choose_accept(accept)
    if media_type == CSV:
        return _to_csv(predictions), CSV
    records = _records(predictions)
    if media_type == JSONLINES:
        return ("\n".join(map(json.dumps, records)) + "\n").encode(), JSONLINES
    return json.dumps({"predictions": records}).encode(), JSON


def _records(predictions: Predictions) -> list[dict]:
    if not predictions.is_classification:
        return [{"score": score} for score in np.asarray(predictions.values, dtype=np.float64).tolist()]
    labels = list(predictions.classes)
    indices = predictions.values.tolist()
    rows = _rounded(predictions.probabilities)
    return [
        {"predicted_label": labels[i], "probability": row[i], "probabilities": row, "labels": labels}
        for i, row in zip(indices, rows, strict=True)
    ]


def _to_csv(predictions: Predictions) -> bytes:
    """One line per record: 'label,p_class0,p_class1,...' (six decimals) or the regression score."""
    if not predictions.is_classification:
        scores = np.asarray(predictions.values, dtype=np.float64).tolist()
        return "".join([f"{score!r}\n" for score in scores]).encode()
    prefixes = [(_csv_field(c) + ",").encode() for c in predictions.classes]
    rows = _fixed_point_rows(predictions.probabilities)
    return b"".join([prefixes[i] + row for i, row in zip(predictions.values.tolist(), rows, strict=True)])


def _fixed_point_rows(probabilities: np.ndarray) -> list[bytes]:
    """Rows of probabilities as b'0.162644,0.837356\\n', built with array arithmetic on the digits.

    Formatting floats one at a time costs about a microsecond each, which dominated large CSV answers; every
    probability here is d.dddddd (8 characters), so the digits can be computed for all rows at once.
    """
    scale = 10**PROBABILITY_DIGITS
    if len(probabilities) <= FEW_ROWS:
        try:
            return _few_fixed_point_rows(np.asarray(probabilities).tolist(), scale)
        except (ValueError, OverflowError):  # NaN or infinity, which round() refuses: the array path below
            pass
    scaled = np.rint(np.asarray(probabilities, dtype=np.float64) * scale).astype(np.int64).clip(0, scale)
    if len(scaled) <= FEW_ROWS:
        return [(",".join([f"{v // scale}.{v % scale:06d}" for v in row]) + "\n").encode() for row in scaled.tolist()]
    rows, columns = scaled.shape
    width = PROBABILITY_DIGITS + 3  # units digit, point, decimals, separator
    chars = np.empty((rows, columns, width), dtype=np.uint8)
    chars[:, :, 0] = scaled // 10**PROBABILITY_DIGITS + ord("0")
    chars[:, :, 1] = ord(".")
    for position in range(PROBABILITY_DIGITS):
        chars[:, :, 2 + position] = scaled // 10 ** (PROBABILITY_DIGITS - 1 - position) % 10 + ord("0")
    chars[:, :, -1] = ord(",")
    chars[:, -1, -1] = ord("\n")
    return chars.reshape(rows, columns * width).view(f"S{columns * width}").ravel().tolist()


def _few_fixed_point_rows(rows: list[list[float]], scale: int) -> list[bytes]:
    """The same digits for a handful of rows without one array operation (each costs a microsecond or two, more
    than the formatting itself); round() rounds half to even, as np.rint does."""
    lines = []
    for row in rows:
        digits = [min(max(round(p * scale), 0), scale) for p in row]
        lines.append((",".join([f"{v // scale}.{v % scale:06d}" for v in digits]) + "\n").encode())
    return lines


def _rounded(probabilities: np.ndarray) -> list[list[float]]:
    return np.asarray(probabilities, dtype=np.float64).round(PROBABILITY_DIGITS).tolist()


def _csv_field(value: str) -> str:
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value
