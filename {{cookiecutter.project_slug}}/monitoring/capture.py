"""Read what the endpoint saw: SageMaker data-capture JSON Lines, or plain CSV / Parquet batches, in bounded chunks.

Request bodies are decoded by the serving code itself (predictor.input_fn), so the monitor reads a payload
exactly as the endpoint did. Anything that cannot be read is counted under a named kind in BadInput and
the job goes on: a malformed line never stops the job, and nothing is dropped without being counted.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import csv as pacsv

from model.common.data_contract import Schema
from model.common.streams import StreamingBodyReader
from model.inference import predictor

CHUNK_ROWS = 65_536  # rows buffered before a chunk is profiled: bounds memory whatever the input size
CSV_BLOCK_BYTES = 8 << 20
PARQUET_BATCH_ROWS = 16_384
PARQUET_BUFFER_BYTES = 256 << 10
CAPTURE_SUFFIXES = (".jsonl", ".json", ".jsonl.gz")
KNOWN_ENCODINGS = ("CSV", "JSON", "BASE64")
UNLIMITED = 1 << 62

# Kinds of bad input, each counted (BadInput.counts) and shown in the report.
MALFORMED_LINE = "malformed_line"  # not JSON, or not a capture record
UNKNOWN_ENCODING = "unknown_encoding"
UNDECODABLE_PAYLOAD = "undecodable_payload"  # bad base64, bad text, malformed CSV/JSON body
UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
EMPTY_CAPTURE = "empty_capture"  # a capture file with no records, or a record with an empty body
WRONG_WIDTH_ROW = "wrong_width_row"  # a CSV row or JSON list with the wrong number of values
UNKNOWN_COLUMN = "unknown_column"  # a record key or file column that is not in schema.json
UNREADABLE_FILE = "unreadable_file"
MISSING_OUTPUT = "missing_output"  # a capture record without endpointOutput (output drift cannot use it)
UNDECODABLE_OUTPUT = "undecodable_output"
MALFORMED_GROUND_TRUTH = "malformed_ground_truth"
UNMATCHED_GROUND_TRUTH = "unmatched_ground_truth"
GROUND_TRUTH_ROW_MISMATCH = "ground_truth_row_mismatch"
INVALID_LABEL = "invalid_label"
BAD_INPUT_KINDS = (
    MALFORMED_LINE,
    UNKNOWN_ENCODING,
    UNDECODABLE_PAYLOAD,
    UNSUPPORTED_CONTENT_TYPE,
    EMPTY_CAPTURE,
    WRONG_WIDTH_ROW,
    UNKNOWN_COLUMN,
    UNREADABLE_FILE,
    MISSING_OUTPUT,
    UNDECODABLE_OUTPUT,
    MALFORMED_GROUND_TRUTH,
    UNMATCHED_GROUND_TRUTH,
    GROUND_TRUTH_ROW_MISMATCH,
    INVALID_LABEL,
)
MAX_EXAMPLES = 5


@dataclass
class BadInput:
    """Counts of unreadable input by kind, with a few examples (file and line) of each for the report."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    extra_columns: Counter = field(default_factory=Counter)  # unknown column name -> rows that carried it

    def add(self, kind: str, where: str, detail: str = "", count: int = 1) -> None:
        self.counts[kind] += count
        examples = self.examples.setdefault(kind, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{where}: {detail}"[:300] if detail else where)

    def merge(self, other: BadInput) -> BadInput:
        self.counts.update(other.counts)
        self.extra_columns.update(other.extra_columns)
        for kind, examples in other.examples.items():
            mine = self.examples.setdefault(kind, [])
            mine.extend(examples[: MAX_EXAMPLES - len(mine)])
        return self

    def to_json(self) -> dict:
        return {
            "total": sum(self.counts.values()),
            "by_kind": dict(sorted(self.counts.items())),
            "examples": {k: v for k, v in sorted(self.examples.items()) if v},
            "extra_columns": dict(sorted(self.extra_columns.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> BadInput:
        return cls(
            Counter(data["by_kind"]), {k: list(v) for k, v in data["examples"].items()}, Counter(data["extra_columns"])
        )


@dataclass
class Chunk:
    """Up to CHUNK_ROWS records: raw feature columns and, for captures, the model's outputs."""

    rows: int
    features: dict[str, object]
    outputs: dict[str, object] = field(default_factory=dict)  # predicted_label/probability or score
    output_rows: int = 0


# ------------------------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Source:
    """One input object: a local path or an S3 key."""

    uri: str

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def kind(self) -> str:
        name = self.name.lower().removesuffix(".gz")
        if name.endswith(".parquet"):
            return "parquet"
        if name.endswith(".csv"):
            return "csv"
        return "capture"

    def open_seekable(self):
        """Parquet needs random access: an S3 object is spooled to a temporary file first (not into memory)."""
        if not self.uri.startswith("s3://"):
            return open(self.uri, "rb")
        import tempfile

        bucket, key = _split_s3(self.uri)
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
        _s3_client().download_fileobj(bucket, key, spool)
        spool.seek(0)
        return spool

    def open(self):
        if self.uri.startswith("s3://"):
            bucket, key = _split_s3(self.uri)
            body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            stream = io.BufferedReader(StreamingBodyReader(body), buffer_size=1 << 20)
        else:
            stream = open(self.uri, "rb")  # noqa: SIM115 - the caller closes it
        if self.uri.endswith(".gz"):
            import gzip

            return gzip.GzipFile(fileobj=stream)
        return stream


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _s3_client():
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"max_attempts": 3, "mode": "standard"}))


def list_sources(locations: Sequence[str], suffixes: Sequence[str] | None = None) -> list[Source]:
    """Files under local folders / S3 prefixes, or single files, in a stable (sorted) order; hidden files skipped."""
    found: list[Source] = []
    for location in locations:
        if location.startswith("s3://"):
            bucket, prefix = _split_s3(location)
            paginator = _s3_client().get_paginator("list_objects_v2")
            keys = [
                item["Key"]
                for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])
                if not item["Key"].endswith("/")
            ]
            found += [Source(f"s3://{bucket}/{key}") for key in sorted(keys)]
            continue
        path = Path(location)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
            found += [Source(str(p)) for p in files]
        elif path.is_file():
            found.append(Source(str(path)))
        else:
            raise FileNotFoundError(f"--input {location}: no such file or folder")
    if suffixes is not None:
        found = [s for s in found if s.name.lower().endswith(tuple(suffixes))]
    return found


# ------------------------------------------------------------------------------------------- the reader
class Reader:
    """Turns sources into Chunks for one schema; counts everything it cannot use in self.bad."""

    def __init__(self, schema: Schema, chunk_rows: int = CHUNK_ROWS, on_capture=None):
        self.schema = schema
        self.names = schema.feature_names
        self.known_extra = {schema.target, *(f.name for f in schema.sensitive_features)}
        self.chunk_rows = chunk_rows
        self.bad = BadInput()
        # called with (inference id, event id, outputs, input columns) for each decoded capture record
        self.on_capture = on_capture
        self.files = 0

    def read(self, sources: Sequence[Source]) -> Iterator[Chunk]:
        for source in sources:
            self.files += 1
            try:
                if source.kind == "parquet":
                    yield from self._parquet(source)
                elif source.kind == "csv":
                    yield from self._csv(source)
                else:
                    yield from self._captures(source)
            except Exception as exc:  # a corrupt object must not stop the job: count it and go on
                self.bad.add(UNREADABLE_FILE, source.uri, f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------------------ tabular batches
    def _columns_seen(self, source: Source, header: Sequence[str], rows: int) -> None:
        for name in header:
            if name not in self.names and name not in self.known_extra:
                self.bad.extra_columns[name] += rows
                self.bad.add(UNKNOWN_COLUMN, source.uri, f"column '{name}' is not in schema.json")

    def _parquet(self, source: Source) -> Iterator[Chunk]:
        with source.open_seekable() as stream:
            # No pre-buffering, buffered column-chunk reads, no reader threads and small batches: memory stays
            # at a fraction of one row group however big the file (and a 64k-row chunk costs no less to profile
            # as four 16k-row batches).
            parquet = pq.ParquetFile(stream, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
            header = parquet.schema_arrow.names
            wanted = [n for n in self.names if n in header]
            rows = parquet.metadata.num_rows
            self._columns_seen(source, header, rows)
            if rows == 0:
                self.bad.add(EMPTY_CAPTURE, source.uri, "no rows")
            for batch in parquet.iter_batches(
                batch_size=min(self.chunk_rows, PARQUET_BATCH_ROWS), columns=wanted, use_threads=False
            ):
                yield Chunk(batch.num_rows, {n: batch.column(n) for n in wanted})

    def _csv(self, source: Source) -> Iterator[Chunk]:
        with source.open() as stream:
            first = stream.peek(1 << 16)[: 1 << 16] if hasattr(stream, "peek") else b""
            header_line = first.split(b"\n", 1)[0].decode("utf-8-sig", "replace").strip()
            header = next(csv.reader([header_line]), [])
            has_header = bool(set(header) & ({*self.names} | self.known_extra))
            names = header if has_header else self.names
            invalid = Counter()

            def on_invalid(row) -> str:
                invalid[0] += 1
                if invalid[0] <= MAX_EXAMPLES:
                    self.bad.add(WRONG_WIDTH_ROW, f"{source.uri} row {row.number}", (row.text or "")[:120], count=0)
                return "skip"

            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(
                    block_size=CSV_BLOCK_BYTES, column_names=None if has_header else names, encoding="utf8"
                ),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    include_columns=[n for n in self.names if n in names],
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=True,
                    null_values=[""],
                ),
            )
            total = 0
            for batch in reader:
                total += batch.num_rows
                yield Chunk(batch.num_rows, {n: batch.column(n) for n in batch.schema.names})
            self.bad.counts[WRONG_WIDTH_ROW] += invalid[0]
            self._columns_seen(source, names, total)
            if total == 0:
                self.bad.add(EMPTY_CAPTURE, source.uri, "no rows")

    # ------------------------------------------------------------------------------------- captures
    def _captures(self, source: Source) -> Iterator[Chunk]:
        buffer = _Buffer(self.names)
        records = 0
        with source.open() as stream:
            for number, raw in enumerate(stream, start=1):
                if not raw.strip():
                    continue
                records += 1
                self._capture_line(raw, f"{source.uri}:{number}", buffer)
                if buffer.rows >= self.chunk_rows:
                    yield buffer.flush()
        if records == 0:
            self.bad.add(EMPTY_CAPTURE, source.uri, "the file holds no capture records")
        if buffer.rows or buffer.output_rows:
            yield buffer.flush()

    def _capture_line(self, raw: bytes, where: str, buffer: _Buffer) -> None:
        try:
            record = json.loads(raw)
            capture = record["captureData"]
            request = capture["endpointInput"]
        except (ValueError, KeyError, TypeError) as exc:
            self.bad.add(MALFORMED_LINE, where, f"not a data-capture record ({type(exc).__name__}: {exc})")
            return
        if not isinstance(request, dict):
            self.bad.add(MALFORMED_LINE, where, "captureData.endpointInput is not an object")
            return
        body = self._payload(request, where)
        if body is None:
            return
        columns, rows = self._decode_request(body, request.get("observedContentType"), where)
        if columns is None:
            return
        buffer.add_features(columns, rows)
        response = capture.get("endpointOutput")
        if not isinstance(response, dict):
            self.bad.add(MISSING_OUTPUT, where, "no captureData.endpointOutput")
            return
        output_body = self._payload(response, where, output=True)
        if output_body is None:
            return
        try:
            outputs = decode_predictions(output_body, response.get("observedContentType"), self.schema)
        except ValueError as exc:
            self.bad.add(UNDECODABLE_OUTPUT, where, str(exc))
            return
        buffer.add_outputs(outputs)
        if self.on_capture is not None:
            metadata = record.get("eventMetadata") if isinstance(record.get("eventMetadata"), dict) else {}
            self.on_capture(metadata.get("inferenceId"), metadata.get("eventId"), outputs, columns)

    def _payload(self, part: Mapping, where: str, output: bool = False) -> bytes | None:
        encoding = str(part.get("encoding", "")).upper()
        data = part.get("data")
        if encoding not in KNOWN_ENCODINGS:
            self.bad.add(UNKNOWN_ENCODING, where, f"encoding {part.get('encoding')!r}: expected CSV, JSON or BASE64")
            return None
        if not isinstance(data, str):
            self.bad.add(UNDECODABLE_OUTPUT if output else UNDECODABLE_PAYLOAD, where, "data is not a string")
            return None
        if encoding == "BASE64":
            try:
                body = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as exc:
                self.bad.add(UNDECODABLE_OUTPUT if output else UNDECODABLE_PAYLOAD, where, f"bad base64: {exc}")
                return None
        else:
            body = data.encode("utf-8")
        if not body.strip() and not output:
            self.bad.add(EMPTY_CAPTURE, where, "the captured request body is empty")
            return None
        return body

    def _decode_request(self, body: bytes, content_type: str | None, where: str) -> tuple[dict | None, int]:
        """The endpoint's own decoder first; a payload that breaks the contract is re-read value by value."""
        try:
            columns = predictor.input_fn(body, content_type, self.schema, max_bytes=UNLIMITED)
            return columns, len(next(iter(columns.values()))) if columns else 0
        except predictor.InferenceError as exc:
            if exc.error == "unsupported_content_type":
                self.bad.add(UNSUPPORTED_CONTENT_TYPE, where, exc.message)
                return None, 0
            if exc.error == "empty_body":
                self.bad.add(EMPTY_CAPTURE, where, exc.message)
                return None, 0
            if exc.error != "invalid_data":
                self.bad.add(UNDECODABLE_PAYLOAD, where, exc.message)
                return None, 0
        return self._tolerant_decode(body, content_type, where)

    def _tolerant_decode(self, body: bytes, content_type: str | None, where: str) -> tuple[dict | None, int]:
        media_type, charset = predictor.parse_media_type(content_type)
        text = body.decode("utf-8-sig" if charset == "utf-8" else charset, errors="replace")
        try:
            if media_type == predictor.CSV:
                instances: list = [row for row in csv.reader(text.splitlines()) if row]
            elif media_type == predictor.JSON:
                instances = json.loads(text)["instances"]
            else:
                instances = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (ValueError, KeyError, TypeError) as exc:
            self.bad.add(UNDECODABLE_PAYLOAD, where, str(exc))
            return None, 0
        columns: dict[str, list] = {n: [] for n in self.names}
        width = len(self.names)
        for instance in instances:
            if isinstance(instance, dict):
                for key in instance:
                    if key not in columns and key not in self.known_extra:
                        self.bad.extra_columns[key] += 1
                        self.bad.add(UNKNOWN_COLUMN, where, f"key '{key}' is not in schema.json")
                for name in self.names:
                    columns[name].append(instance.get(name))
            elif isinstance(instance, list) and len(instance) == width:
                for name, value in zip(self.names, instance, strict=True):
                    columns[name].append(value)
            else:
                self.bad.add(WRONG_WIDTH_ROW, where, f"record {str(instance)[:80]} is not {width} values")
        rows = len(columns[self.names[0]])
        return (columns, rows) if rows else (None, 0)


class _Buffer:
    """Decoded capture records waiting to be profiled as one chunk."""

    def __init__(self, names: Sequence[str]):
        self.names = names
        self.parts: list[tuple[dict, int]] = []
        self.outputs: list[dict] = []
        self.rows = 0
        self.output_rows = 0

    def add_features(self, columns: dict, rows: int) -> None:
        self.parts.append((columns, rows))
        self.rows += rows

    def add_outputs(self, outputs: dict) -> None:
        self.outputs.append(outputs)
        self.output_rows += len(next(iter(outputs.values())))

    def flush(self) -> Chunk:
        features = {n: _concat([part[n] for part, _ in self.parts]) for n in self.names}
        outputs = {}
        if self.outputs:
            outputs = {k: _concat([o[k] for o in self.outputs]) for k in self.outputs[0]}
        chunk = Chunk(self.rows, features, outputs, self.output_rows)
        self.parts, self.outputs, self.rows, self.output_rows = [], [], 0, 0
        return chunk


def _concat(parts: list) -> object:
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts) if parts else np.array([])
    out: list = []
    for part in parts:
        out.extend(part.tolist() if isinstance(part, np.ndarray) else part)
    return out


# ------------------------------------------------------------------------------------------- predictions
def decode_predictions(body: bytes, content_type: str | None, schema: Schema) -> dict[str, list]:
    """A response body (as predictor.output_fn writes it) -> predicted_label + probability, or score.

    Raises ValueError when the body is not one of those shapes.
    """
    media_type, _ = predictor.parse_media_type(content_type)
    text = body.decode("utf-8-sig", errors="strict")
    if media_type == predictor.CSV:
        records = []
        for row in csv.reader(text.splitlines()):
            if not row:
                continue
            if schema.is_classification:
                probabilities = [float(v) for v in row[1:]]
                label = row[0]
                index = schema.classes.index(label) if label in schema.classes else -1
                records.append(
                    {
                        "predicted_label": label,
                        "probabilities": probabilities,
                        "probability": probabilities[index] if 0 <= index < len(probabilities) else math.nan,
                    }
                )
            else:
                records.append({"score": float(row[0])})
    elif media_type in predictor.JSONLINES_ALIASES:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        document = json.loads(text)
        records = document.get("predictions") if isinstance(document, dict) else None
        if not isinstance(records, list):
            raise ValueError('expected {"predictions": [...]}')
    if not records:
        raise ValueError("the response holds no predictions")
    if schema.is_classification:
        try:
            return {
                "predicted_label": [str(r["predicted_label"]) for r in records],
                "probability": [float(r["probability"]) for r in records],
                "probabilities": [r.get("probabilities") for r in records],
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a prediction lacks predicted_label/probability: {exc}") from None
    try:
        return {"score": [float(r["score"]) for r in records]}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"a prediction lacks a numeric score: {exc}") from None
