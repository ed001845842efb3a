"""Score files locally the way a SageMaker Batch Transform job does, against the real inference server.

    python -m batch.run --model-dir build/batch/model --input data.csv --output scored.csv \
        [--python .venv-inference/bin/python | --url http://127.0.0.1:8080] [--max-failed 0.01] \
        [--input-filter '$[1:]' --join-source Input --output-filter '$[0,-1]'] [--max-payload-in-mb 6] ...

It starts `python -m model.inference.serve` (the inference image's environment) on 127.0.0.1 with a free port and
drives it as Batch Transform drives a container: GET /execution-parameters fills the settings the job leaves
unset (MaxConcurrentTransforms, MaxPayloadInMB, BatchStrategy); each file is split by line (SplitType Line),
InputFilter selects what the model gets, records go out in mini-batches of at most MaxPayloadInMB (MultiRecord)
or one by one (SingleRecord) with MaxConcurrentTransforms requests in flight; answers are assembled by line in input
order (AssembleWith Line), joined with their input (JoinSource Input) and cut by OutputFilter.

Where Batch Transform fails the whole job on a bad record, this runner finds the bad records: a mini-batch the
server refuses is split in halves until each refused record stands alone, and every one is written to
<output>.failures.jsonl with its input line number and the server's message. The output keeps one line per input
record (an empty line for a failed one) and is written only when the failed fraction is within --max-failed;
it is written to a temporary name and renamed, so a failed run leaves no partial output. Memory stays bounded:
files are read a block at a time and at most 2 x MaxConcurrentTransforms mini-batches are held.

Local conveniences Batch Transform does not have: a CSV file may start with a header (checked against the model's
schema.json before anything is scored, and carried to the output), and a folder or prefix gives a folder of
<name>.out files as Batch Transform writes them. Exit status: 0 done, 1 too many failed records or the server
failed, 2 bad settings or input refused before scoring.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from batch import sources as sources_module
from batch.sources import Source, SourceError
from batch.transform import (
    CSV,
    JSONLINES,
    ExecutionParameters,
    FilterError,
    JsonPath,
    SettingsError,
    TransformSettings,
    join,
    parse_record,
    render_record,
)
from model.common import text_tables
from model.common.data_contract import Schema, SchemaError
from model.inference import serve
from model.inference.local_server import LocalServer

START_TIMEOUT = 60.0
PROGRESS_SECONDS = 2.0
RETRY_BACKOFF = (0.2, 0.5, 1.0)
RECORD_PREVIEW = 300
HEADER_CHOICES = ("auto", "yes", "no")


class UsageError(ValueError):
    """Refused before scoring: exit status 2."""


class ServerError(RuntimeError):
    """The model server could not be started or stopped answering: exit status 1."""


# ---------------------------------------------------------------------------------------- the server
def start_server(python: str, model_dir: Path, log_path: Path, env: dict[str, str]) -> LocalServer:
    """serve.py as `make serve` runs it, on port 0 (the port comes from its 'serving' log line)."""
    try:
        return LocalServer(serve.local_command(python, model_dir, 0), log_path, env=env, start_timeout=START_TIMEOUT)
    except RuntimeError as exc:
        raise ServerError(f"the model server did not start: {exc}") from None


def server_environment(settings: TransformSettings) -> dict[str, str]:
    """What Batch Transform sets in a container, for the settings the job gives; no data capture."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATA_CAPTURE_")}
    env["SAGEMAKER_BATCH"] = "true"
    if settings.max_payload_in_mb is not None:
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(settings.max_payload_in_mb)
    if settings.batch_strategy is not None:
        env["SAGEMAKER_BATCH_STRATEGY"] = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}[
            settings.batch_strategy
        ]
    if settings.max_concurrent_transforms is not None:
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(settings.max_concurrent_transforms)
    return env


def _request(url: str, method: str, path: str, body: bytes | None = None, headers=None, timeout: float = 10.0):
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def execution_parameters(url: str) -> dict | None:
    """GET /execution-parameters, as Batch Transform asks; None when the container does not answer it."""
    try:
        status, body = _request(url, "GET", "/execution-parameters")
    except OSError as exc:
        raise ServerError(f"{url}/execution-parameters: {exc}") from None
    if status != 200:
        return None
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


# ------------------------------------------------------------------------------------ plan and checks
@dataclass
class FilePlan:
    """One input object: its header (CSV with a header line) and where its output goes."""

    source: Source
    header: list[str] | None = None
    header_line: int = 0
    accept: str = CSV
    output_header: bytes | None = None

    def plan_output_header(self, settings: TransformSettings, schema: Schema) -> list[str]:
        """A CSV output of a CSV input with a header gets one: the output's field names, joined and filtered."""
        output_format = self.source.content_type if settings.joins_input else self.accept
        if self.header is None or output_format != CSV:
            return []
        names = output_columns(schema)
        record = join(self.header, names, CSV) if settings.joins_input else names
        try:
            self.output_header = render_record(_as_fields(settings.output_path.apply(record)), CSV).encode()
        except FilterError as exc:
            return [
                f"{self.source.uri}: OutputFilter {settings.output_filter!r} on the output's columns {record}: {exc}"
            ]
        return []


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_fields(value) -> list:
    return value if isinstance(value, list) else [value]


def check_columns(plan: FilePlan, first: tuple[int, bytes] | None, schema: Schema, settings, header: str) -> list:
    """Problems between one file's columns (after InputFilter) and the schema; fills plan.header."""
    source, path = plan.source, settings.input_path
    names = schema.feature_names
    if first is None:
        return [f"{source.uri}: the file holds no records"]
    number, line = first
    try:
        record = parse_record(line.decode("utf-8-sig"), source.content_type)
        selected = path.apply(record)
    except (FilterError, UnicodeDecodeError) as exc:
        return [f"{source.uri}, line {number}: InputFilter {settings.input_filter!r}: {exc}"]
    if source.content_type == CSV:
        fields = [str(f) for f in _as_fields(selected)]
        is_header = header == "yes" or (
            header == "auto"
            and (any(f in names for f in fields) or not any(_is_number(f) for f in fields if f.strip()))
        )
        if is_header:
            plan.header, plan.header_line = [str(f) for f in record], number
            problems = _name_problems(source.uri, fields, names, ordered=True, filter_=settings.input_filter)
            suggestion = suggest_filter(plan.header, names)
            if problems and suggestion:
                problems.append(
                    f"{source.uri}: INPUT_FILTER='{suggestion}' selects the features in schema order "
                    "(JOIN_SOURCE=Input keeps the other columns in the output)"
                )
            return problems
        if len(fields) != len(names):
            return [
                f"{source.uri}, line {number}: {len(fields)} values after InputFilter {settings.input_filter!r}, the "
                f"schema has {len(names)} features ({', '.join(names)}); with a header line, HEADER=yes"
            ]
        return []
    if isinstance(selected, dict):
        return _name_problems(source.uri, list(selected), names, ordered=False, filter_=settings.input_filter)
    if isinstance(selected, list) and len(selected) != len(names):
        return [
            f"{source.uri}, line {number}: {len(selected)} values after InputFilter {settings.input_filter!r}, the "
            f"schema has {len(names)} features ({', '.join(names)})"
        ]
    if not isinstance(selected, (dict, list)):
        return [
            f"{source.uri}, line {number}: InputFilter {settings.input_filter!r} selects {selected!r}, not a record"
        ]
    return []


def _name_problems(uri: str, columns: list[str], names: list[str], *, ordered: bool, filter_: str) -> list[str]:
    missing = [n for n in names if n not in columns]
    unexpected = [c for c in columns if c not in names]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    problems = []
    where = f"{uri}: the columns after InputFilter {filter_!r}"
    if missing:
        problems.append(f"{where} lack the schema's feature(s) {', '.join(map(repr, missing))}")
    if unexpected:
        problems.append(f"{where} include {', '.join(map(repr, unexpected))}, not feature(s) of schema.json")
    if duplicated:
        problems.append(f"{where} repeat {', '.join(map(repr, duplicated))}")
    if ordered and not problems and columns != names:
        moved = [
            f"{c!r} at position {i + 1} (schema: {n!r})"
            for i, (c, n) in enumerate(zip(columns, names, strict=True))
            if c != n
        ]
        problems.append(
            f"{where} are in another order than schema.json's features: {'; '.join(moved)}; CSV values go to "
            "the model by position: reorder the columns or select them in order ($[2,0,1])"
        )
    return problems


def suggest_filter(header: list[str], names: list[str]) -> str | None:
    """The shortest index filter that selects the schema's features from a header, in schema order."""
    if any(header.count(n) != 1 for n in names):
        return None
    positions = [header.index(n) for n in names]
    parts, start = [], 0
    while start < len(positions):
        end = start
        while end + 1 < len(positions) and positions[end + 1] == positions[end] + 1:
            end += 1
        first, last = positions[start], positions[end]
        if end - start >= 2:
            parts.append(f"{first}:{'' if last == len(header) - 1 else last + 1}")
        else:
            parts.extend(str(p) for p in positions[start : end + 1])
        start = end + 1
    return f"$[{','.join(parts)}]"


def output_columns(schema: Schema) -> list[str]:
    """Names of the fields the server's CSV answer holds (the output header of a CSV with a header)."""
    if schema.is_classification:
        return ["predicted_label", *(f"probability_{c}" for c in schema.classes)]
    return ["score"]


# ------------------------------------------------------------------------------------------- scoring
@dataclass
class Record:
    line: int
    raw: bytes
    body: bytes | None  # what the server gets; None when the record failed before sending
    result: bytes | None = None
    failure: dict | None = None


@dataclass
class Batch:
    sequence: int
    records: list[Record]


@dataclass
class Stats:
    records: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    max_request_bytes: int = 0
    failures: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Scorer:
    """Sends mini-batches to the server from MaxConcurrentTransforms threads, one keep-alive connection each."""

    def __init__(self, url: str, parameters: ExecutionParameters, settings: TransformSettings, stats: Stats, server):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.parameters = parameters
        self.settings = settings
        self.stats = stats
        self.server = server
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(
                self.host, self.port, timeout=self.settings.invocations_timeout_in_seconds
            )
            self.local.connection = connection
        return connection

    def post(self, body: bytes, content_type: str, accept: str) -> tuple[int, bytes]:
        """POST /invocations; connection failures and 5xx are retried (InvocationsMaxRetries) before answering."""
        headers = {"Content-Type": content_type, "Accept": accept}
        attempts = self.settings.invocations_max_retries + 1
        for attempt in range(attempts):
            with self.stats.lock:
                self.stats.requests += 1
                self.stats.in_flight += 1
                self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
                self.stats.max_request_bytes = max(self.stats.max_request_bytes, len(body))
            try:
                connection = self._connection()
                connection.request("POST", "/invocations", body=body, headers=headers)
                response = connection.getresponse()
                status, answer = response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._connection().close()
                self.local.connection = None
                status, answer = 0, str(exc).encode()
            finally:
                with self.stats.lock:
                    self.stats.in_flight -= 1
            if status != 0 and status < 500:
                return status, answer
            if self.server is not None and self.server.process.poll() is not None:
                raise ServerError(f"the model server exited with {self.server.process.returncode}")
            if attempt + 1 < attempts:
                with self.stats.lock:
                    self.stats.retries += 1
                time.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)])
        if status == 0:
            raise ServerError(f"no answer from the model server at {self.host}:{self.port}: {answer.decode()}")
        return status, answer

    def score(self, batch: Batch, content_type: str, accept: str) -> Batch:
        limit = self.parameters.max_payload_bytes
        pending = []
        for record in batch.records:
            if record.body is None:
                continue
            if len(record.body) + 1 > limit:
                record.failure = failure(
                    "record_too_large",
                    None,
                    f"the record has {len(record.body) + 1} bytes, over MaxPayloadInMB "
                    f"({self.parameters.max_payload_in_mb} MB): raise MAX_PAYLOAD_IN_MB",
                )
                continue
            pending.append(record)
        if pending:  # SingleRecord mini-batches hold one record
            self._solve(pending, content_type, accept)
        return batch

    def _solve(self, records: list[Record], content_type: str, accept: str) -> None:
        """Score records in one request; when the server refuses it, halve until every refused record is alone."""
        body = b"".join(r.body + b"\n" for r in records)
        status, answer = self.post(body, content_type, accept)
        if status == 200:
            lines = answer.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            if len(lines) == len(records):
                for record, line in zip(records, lines, strict=True):
                    record.result = line.removesuffix(b"\r")
                return
            if len(records) == 1:
                records[0].failure = failure(
                    "output_mismatch", status, f"the server answered {len(lines)} lines for 1 record"
                )
                return
        elif len(records) == 1:
            error, message = _server_error(answer)
            records[0].failure = failure(error, status, message)
            return
        middle = len(records) // 2
        self._solve(records[:middle], content_type, accept)
        self._solve(records[middle:], content_type, accept)


def failure(kind: str, status: int | None, message: str) -> dict:
    return {"kind": kind, "status": status, "message": message}


def _server_error(answer: bytes) -> tuple[str, str]:
    try:
        document = json.loads(answer)
        return str(document.get("error", "server_error")), str(document.get("message", answer[:500]))
    except (json.JSONDecodeError, AttributeError):
        return "server_error", answer[:500].decode(errors="replace")


def batches(
    plan: FilePlan, settings: TransformSettings, parameters: ExecutionParameters
) -> Iterator[tuple[Batch, list[Record]]]:
    """Mini-batches of at most MaxPayloadInMB of filtered records, in input order (blank lines are not records)."""
    limit = parameters.max_payload_bytes
    path = settings.input_path
    identity = path.is_identity
    single = parameters.batch_strategy == "SingleRecord"
    content_type = plan.source.content_type
    records: list[Record] = []
    size, sequence = 0, 0
    for number, line in plan.source.lines():
        if number == plan.header_line or not line.strip():
            continue
        if identity:
            body = line
        else:
            try:
                selected = path.apply(parse_record(line.decode("utf-8-sig"), content_type))
                body = render_record(selected, content_type).encode()
            except (FilterError, UnicodeDecodeError) as exc:
                records.append(Record(number, line, None, failure=failure("input_filter", None, str(exc))))
                continue
        if records and (single or size + len(body) + 1 > limit):
            yield Batch(sequence, records)
            sequence += 1
            records, size = [], 0
        records.append(Record(number, line, body))
        size += len(body) + 1
    if records:
        yield Batch(sequence, records)


class OutputWriter:
    """Assembles answers by line, joins them with their input and applies OutputFilter."""

    def __init__(self, plan: FilePlan, settings: TransformSettings, schema: Schema, stream, failures, stats: Stats):
        self.plan, self.settings, self.stream, self.failures, self.stats = plan, settings, stream, failures, stats
        self.path: JsonPath = settings.output_path
        self.plain = self.path.is_identity and not settings.joins_input
        self.format = plan.source.content_type if settings.joins_input else plan.accept
        if plan.output_header is not None:
            stream.write(plan.output_header + b"\n")

    def write(self, batch: Batch) -> None:
        out = []
        for record in batch.records:
            if record.failure is None:
                try:
                    out.append(self._render(record))
                    continue
                except (FilterError, UnicodeDecodeError) as exc:
                    record.failure = failure("output_filter", None, str(exc))
            out.append(b"")
            self._fail(record)
        self.stream.write(b"\n".join(out) + b"\n")
        with self.stats.lock:
            self.stats.records += len(batch.records)

    def _render(self, record: Record) -> bytes:
        if self.plain:
            return record.result
        output = parse_record(record.result.decode(), self.plan.accept)
        if self.settings.joins_input:
            output = join(
                parse_record(record.raw.decode("utf-8-sig"), self.plan.source.content_type), output, self.format
            )
        return render_record(self.path.apply(output), self.format).encode()

    def _fail(self, record: Record) -> None:
        entry = {
            "file": self.plan.source.uri,
            "line": record.line,
            **record.failure,
            "record": record.raw[:RECORD_PREVIEW].decode(errors="replace"),
        }
        self.failures.write(json.dumps(entry, ensure_ascii=False) + "\n")
        with self.stats.lock:
            self.stats.failed += 1
            self.stats.failures[record.failure["kind"]] += 1


class Progress:
    def __init__(self, stats: Stats, stream=sys.stderr):
        self.stats, self.stream = stats, stream
        self.started = self.last = time.monotonic()

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_SECONDS:
            self.last = now
            rate = self.stats.records / max(now - self.started, 1e-9)
            print(
                f"batch: {self.stats.records:,} rows ({rate:,.0f} rows/s), {self.stats.failed:,} failed",
                file=self.stream,
                flush=True,
            )


def transform_file(plan, settings, parameters, schema, scorer: Scorer, executor, output, failures, stats, progress):
    writer = OutputWriter(plan, settings, schema, output, failures, stats)
    window = 2 * parameters.max_concurrent_transforms
    pending: deque = deque()
    content_type = plan.source.content_type
    for batch in batches(plan, settings, parameters):
        pending.append(executor.submit(scorer.score, batch, content_type, plan.accept))
        while len(pending) >= window or (pending and pending[0].done()):
            writer.write(pending.popleft().result())
            progress.tick()
    while pending:
        writer.write(pending.popleft().result())
        progress.tick()


# ------------------------------------------------------------------------------------------- the job
@dataclass
class JobResult:
    stats: Stats
    parameters: ExecutionParameters
    seconds: float
    output: Path | None
    failures_path: Path | None
    files: int
    plans: list = field(default_factory=list)


def failures_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".failures.jsonl")


def transform(
    *,
    model_dir: Path,
    input_location: str,
    output: Path,
    settings: TransformSettings,
    python: str | None = None,
    url: str | None = None,
    max_failed: float = 0.0,
    header: str = "auto",
    server_log: Path | None = None,
    progress_stream=sys.stderr,
) -> JobResult:
    """The whole job; raises UsageError (refused before scoring) or ServerError, else returns the figures."""
    if not 0.0 <= max_failed <= 1.0:
        raise UsageError(f"MAX_FAILED = {max_failed}: give the fraction of records allowed to fail, 0..1 (e.g. 0.01)")
    if header not in HEADER_CHOICES:
        raise UsageError(f"HEADER = {header!r}: use one of {', '.join(HEADER_CHOICES)}")
    if str(output).startswith("s3://"):
        raise UsageError(f"OUTPUT={output}: write to a local path, then copy it (aws s3 cp)")
    try:
        schema = Schema.load(Path(model_dir) / "schema.json")
    except (OSError, SchemaError) as exc:
        raise UsageError(f"--model-dir {model_dir}: no usable schema.json ({exc}); export a model first") from None
    try:
        found, is_folder = sources_module.list_sources(input_location, settings.content_type)
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    output = Path(output)
    plans, problems = [], []
    for source in found:
        accept = settings.accept or source.content_type
        if settings.joins_input and accept != source.content_type:
            raise UsageError(
                f"JoinSource Input joins each record with its answer in the input's format: {source.uri} is "
                f"{source.content_type}, so Accept must be {source.content_type}, not {accept}"
            )
        plan = FilePlan(source, accept=accept)
        problems += check_columns(plan, source.first_record(), schema, settings, header)
        problems += plan.plan_output_header(settings, schema)
        plans.append(plan)
    if problems:
        raise UsageError("refused before scoring, nothing was sent to the model:\n  - " + "\n  - ".join(problems))

    server = None
    log_dir = None
    if url is None:
        if server_log is None:
            log_dir = tempfile.mkdtemp(prefix="batch-server-")
            server_log = Path(log_dir) / "server.log"
        server = start_server(python or sys.executable, Path(model_dir), server_log, server_environment(settings))
        url = f"http://127.0.0.1:{server.port}"
    stats = Stats()
    staging = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    failures_final = failures_path_for(output)
    failures_staging = failures_final.with_name(f".{failures_final.name}.tmp-{os.getpid()}")
    started = time.monotonic()
    try:
        parameters = ExecutionParameters.resolve(settings, execution_parameters(url))
        scorer = Scorer(url, parameters, settings, stats, server)
        progress = Progress(stats, progress_stream)
        output.parent.mkdir(parents=True, exist_ok=True)
        if is_folder:
            staging.mkdir()
        from concurrent.futures import ThreadPoolExecutor

        with (
            ThreadPoolExecutor(parameters.max_concurrent_transforms, thread_name_prefix="transform") as executor,
            open(failures_staging, "w", encoding="utf-8") as failures,
        ):
            for plan in plans:
                target = staging / (plan.source.relative + ".out") if is_folder else staging
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as stream:
                    transform_file(
                        plan, settings, parameters, schema, scorer, executor, stream, failures, stats, progress
                    )
        progress.tick(force=True)
        seconds = time.monotonic() - started
        allowed = stats.failed <= max_failed * stats.records
        if stats.failed:
            os.replace(failures_staging, failures_final)
        else:
            failures_staging.unlink()
            failures_final.unlink(missing_ok=True)
        written = None
        if allowed:
            _replace(staging, output)
            written = output
        return JobResult(
            stats, parameters, seconds, written, failures_final if stats.failed else None, len(plans), plans
        )
    finally:
        for leftover in (staging, failures_staging):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        if server is not None:
            server.stop()
        if log_dir is not None:
            shutil.rmtree(log_dir, ignore_errors=True)


def _replace(staging: Path, output: Path) -> None:
    """Move the finished output into place; a folder replaces the previous one (moved aside, then removed)."""
    if staging.is_dir() and output.exists():
        aside = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, aside)
        os.replace(staging, output)
        if aside.is_dir():
            shutil.rmtree(aside)
        else:
            aside.unlink()
        return
    if output.is_dir():
        shutil.rmtree(output)
    os.replace(staging, output)


# ----------------------------------------------------------------------------------------------- CLI


def summary(result: JobResult, max_failed: float) -> str:
    stats, parameters = result.stats, result.parameters
    rate = stats.records / max(result.seconds, 1e-9)
    rows = [
        ("item", "value"),
        ("files", str(result.files)),
        ("rows", f"{stats.records:,}"),
        ("scored", f"{stats.records - stats.failed:,}"),
        ("failed", f"{stats.failed:,} ({stats.failed / max(stats.records, 1):.2%}; MAX_FAILED {max_failed:g})"),
        ("seconds", f"{result.seconds:.1f}"),
        ("rows/s", f"{rate:,.0f}"),
        ("requests", f"{stats.requests:,} ({stats.retries} retried)"),
        ("largest request", f"{stats.max_request_bytes:,} bytes (MaxPayloadInMB {parameters.max_payload_in_mb})"),
        (
            "in flight (peak)",
            f"{stats.peak_in_flight} (MaxConcurrentTransforms {parameters.max_concurrent_transforms})",
        ),
        ("BatchStrategy", parameters.batch_strategy),
        ("output", str(result.output) if result.output else "not written (too many failed records)"),
    ]
    if result.failures_path:
        rows.append(("failures", str(result.failures_path)))
    text = text_tables.boxed(rows)
    if stats.failures:
        kinds = [("failure kind", "rows")] + [(k, f"{n:,}") for k, n in stats.failures.most_common()]
        text += "\n" + text_tables.boxed(kinds)
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="the exported model (its schema.json)")
    parser.add_argument("--input", required=True, help="a .csv / .jsonl file (.gz too), a folder or an s3:// prefix")
    parser.add_argument("--output", type=Path, required=True, help="output file (a folder for folder input)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--python", help="interpreter that serves the model (the inference environment's)")
    where.add_argument("--url", help="drive a server that is already running instead of starting one")
    parser.add_argument("--settings", type=Path, help="JSON with CreateTransformJob fields (flags below win)")
    parser.add_argument("--max-concurrent-transforms", type=int)
    parser.add_argument("--max-payload-in-mb", type=int)
    parser.add_argument("--batch-strategy", choices=["MultiRecord", "SingleRecord"])
    parser.add_argument("--content-type", choices=[CSV, JSONLINES], help="default: from each file's extension")
    parser.add_argument("--accept", choices=[CSV, JSONLINES], help="default: the input's content type")
    parser.add_argument("--input-filter", help="DataProcessing InputFilter (JSONPath), default $")
    parser.add_argument("--output-filter", help="DataProcessing OutputFilter (JSONPath), default $")
    parser.add_argument("--join-source", choices=["None", "Input"])
    parser.add_argument("--header", choices=HEADER_CHOICES, default="auto", help="CSV header line (default: auto)")
    parser.add_argument("--max-failed", type=float, default=0.0, help="fraction of records allowed to fail (0)")
    parser.add_argument("--server-log", type=Path, help="keep the server's log here")
    parser.add_argument("--explain", action="store_true", help="also write per-record SHAP attributions")
    parser.add_argument("--background", type=Path, help="reference rows for --explain (the training data)")
    parser.add_argument("--explain-max-rows", type=int, default=1000, help="refuse to explain more rows (1000)")
    return parser


def settings_from_args(args: argparse.Namespace) -> TransformSettings:
    base = {}
    if args.settings is not None:
        try:
            base = json.loads(args.settings.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"--settings {args.settings}: {exc}") from None
    settings = TransformSettings.from_api(base)
    overrides = {
        "max_concurrent_transforms": args.max_concurrent_transforms,
        "max_payload_in_mb": args.max_payload_in_mb,
        "batch_strategy": args.batch_strategy,
        "content_type": args.content_type,
        "accept": args.accept,
        "input_filter": args.input_filter,
        "output_filter": args.output_filter,
        "join_source": args.join_source,
    }
    from dataclasses import replace

    return replace(settings, **{k: v for k, v in overrides.items() if v not in (None, "")})


# transform()'s options that the command line passes through as they are.
JOB_OPTIONS = ("python", "url", "max_failed", "header", "server_log")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        explainer = None
        if args.explain:
            from batch import explain

            explainer = explain.BatchExplainer.prepare(
                args.model_dir, args.input, settings, args.header, args.background, args.explain_max_rows
            )
        options = {name: getattr(args, name) for name in JOB_OPTIONS}
        result = transform(
            model_dir=args.model_dir, input_location=args.input, output=args.output, settings=settings, **options
        )
    except (UsageError, SettingsError) as exc:
        print(f"batch: {exc}", file=sys.stderr)
        return 2
    except ServerError as exc:
        print(f"batch: {exc}", file=sys.stderr)
        return 1
    print(summary(result, args.max_failed))
    if result.output is None:
        print(
            f"batch: {result.stats.failed:,} of {result.stats.records:,} records failed, more than MAX_FAILED="
            f"{args.max_failed:g} allows: no output written; see {result.failures_path}",
            file=sys.stderr,
        )
        return 1
    if explainer is not None:
        written = explainer.run(result, settings)
        print(f"attributions: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
