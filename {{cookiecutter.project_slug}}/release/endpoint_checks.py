"""Integration, contract and latency tests against a running endpoint (boto3 and the standard library only).

    python -m release.endpoint_checks --env staging                        # the environment's SageMaker endpoint
    python -m release.endpoint_checks --env staging --url http://127.0.0.1:8080   # a local serve.py

Requests are built from model/config/schema.json, answers are checked against the serving contract in
docs/contracts.md: one prediction per row in the documented format, 4xx (never 5xx) for bad input, and the
p99 latency of single-row requests under the environment's alarm threshold. Prints a table; exits 1 on a failure.

The environment's endpoint.endpoint_type decides how requests travel: realtime and serverless endpoints answer
InvokeEndpoint (a serverless endpoint gets one untimed request first: its cold start is not its latency); an
async endpoint gets each payload as an S3 object under endpoint.async.input_path, InvokeEndpointAsync, and its answer
is the object SageMaker writes at the OutputLocation (or the FailureLocation: the container refused the request);
its latency limit is endpoint.async.oldest_request_alarm_seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

from model.common import paths
from release.config import load_environment
from release.errors import ReleaseError

SCHEMA = paths.SCHEMA_FILE
CSV, JSON = "text/csv", "application/json"
BATCH_ROWS = 5
TIMEOUT_SECONDS = 60.0  # SageMaker's own limit for one invocation
ASYNC_POLL_SECONDS = 2.0
REQUESTS = 50  # timed single-row requests by default
ASYNC_REQUESTS = 5  # timed async requests by default: each is an S3 round trip through the queue


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = ""


class HttpTransport:
    """The hosting contract over plain HTTP (a local serve.py or a container)."""

    def __init__(self, url: str):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ReleaseError(f"--url {url!r} is not an http(s) URL", "give e.g. --url http://127.0.0.1:8080")
        self.parsed = parsed
        self.name = url

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Answer:
        connection_type = http.client.HTTPSConnection if self.parsed.scheme == "https" else http.client.HTTPConnection
        connection = connection_type(self.parsed.hostname, self.parsed.port, timeout=TIMEOUT_SECONDS)
        try:
            connection.request(method, self.parsed.path.rstrip("/") + path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.read(), response.getheader("Content-Type", ""))
        finally:
            connection.close()

    def ping(self) -> tuple[bool, str]:
        answer = self._request("GET", "/ping")
        return answer.status == 200, f"GET /ping -> {answer.status}"

    def invoke(self, body: bytes, content_type: str, accept: str = JSON) -> Answer:
        return self._request("POST", "/invocations", body, {"Content-Type": content_type, "Accept": accept})


class SageMakerTransport:
    """InvokeEndpoint; the container's own 4xx arrives as ModelError with OriginalStatusCode."""

    def __init__(self, sagemaker, runtime, endpoint_name: str):
        self.sagemaker = sagemaker
        self.runtime = runtime
        self.name = endpoint_name

    def ping(self) -> tuple[bool, str]:
        from botocore.exceptions import ClientError

        try:
            status = self.sagemaker.describe_endpoint(EndpointName=self.name)["EndpointStatus"]
        except ClientError as exc:
            return False, f"endpoint {self.name}: {exc.response['Error'].get('Message', exc)}"
        return status == "InService", f"endpoint {self.name} is {status}"

    def invoke(self, body: bytes, content_type: str, accept: str = JSON) -> Answer:
        from botocore.exceptions import ClientError

        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=self.name, Body=body, ContentType=content_type, Accept=accept
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("OriginalStatusCode") or exc.response["ResponseMetadata"]["HTTPStatusCode"]
            return Answer(int(status), (error.get("Message") or "").encode())
        return Answer(200, response["Body"].read(), response.get("ContentType", ""))


class AsyncTransport:
    """InvokeEndpointAsync: the payload goes to S3 first, the answer comes back as an S3 object.

    A request the container refused (4xx or 5xx) lands at the FailureLocation with the container's error body; its
    status is not kept by SageMaker, so the error body's own "error" field decides: the inference server's 4xx
    errors name the problem (bad_request, unsupported_media_type, ...), its 5xx say "internal_error".
    """

    def __init__(self, sagemaker, runtime, s3, endpoint_name: str, bucket: str, input_prefix: str, timeout: float):
        self.sagemaker = sagemaker
        self.runtime = runtime
        self.s3 = s3
        self.name = endpoint_name
        self.bucket = bucket
        self.input_prefix = input_prefix
        self.timeout = timeout
        self.sleep = time.sleep

    def ping(self) -> tuple[bool, str]:
        return SageMakerTransport(self.sagemaker, None, self.name).ping()

    def invoke(self, body: bytes, content_type: str, accept: str = JSON) -> Answer:
        from botocore.exceptions import ClientError

        key = f"{self.input_prefix}{uuid.uuid4().hex}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        try:
            started = self.runtime.invoke_endpoint_async(
                EndpointName=self.name,
                InputLocation=f"s3://{self.bucket}/{key}",
                ContentType=content_type,
                Accept=accept,
                InvocationTimeoutSeconds=int(TIMEOUT_SECONDS),
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            return Answer(exc.response["ResponseMetadata"]["HTTPStatusCode"], (error.get("Message") or "").encode())
        deadline = time.monotonic() + self.timeout
        while True:
            for location, failed in ((started["OutputLocation"], False), (started.get("FailureLocation", ""), True)):
                found = self._read(location)
                if found is not None:
                    return Answer(self._status(found) if failed else 200, found, "" if failed else accept)
            if time.monotonic() > deadline:
                return Answer(504, f"no answer at {started['OutputLocation']} after {self.timeout:.0f} s".encode())
            self.sleep(ASYNC_POLL_SECONDS)

    def _read(self, location: str) -> bytes | None:
        from botocore.exceptions import ClientError

        if not location:
            return None
        bucket, _, key = location.removeprefix("s3://").partition("/")
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"].get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    @staticmethod
    def _status(body: bytes) -> int:
        try:
            error = json.loads(body).get("error", "")
        except (ValueError, AttributeError):
            error = ""
        return 400 if error and error != "internal_error" else 500


# ------------------------------------------------------------------------------------------------ requests
def load_schema(path: Path = SCHEMA) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot read the data contract {path}: {exc}", "restore model/config/schema.json") from None


def valid_records(schema: dict, n: int) -> list[dict]:
    """n records inside every feature's range; the last one leaves the nullable features empty."""
    records = []
    for i in range(n):
        record = {}
        for feature in schema["features"]:
            fraction = (i + 1) / (n + 1)
            if feature["type"] == "categorical":
                categories = feature["categories"]
                value = categories[i % len(categories)]
            else:
                low, high = feature.get("minimum", 0), feature.get("maximum", 100)
                value = low + (high - low) * fraction
                value = round(value) if feature["type"] == "integer" else round(value, 2)
            if i == n - 1 and n > 1 and feature.get("nullable"):
                value = None
            record[feature["name"]] = value
        records.append(record)
    return records


def to_csv(schema: dict, records: list[dict]) -> bytes:
    names = [f["name"] for f in schema["features"]]
    return "".join(",".join("" if r[n] is None else str(r[n]) for n in names) + "\n" for r in records).encode()


def to_json(records: list[dict]) -> bytes:
    return json.dumps({"instances": records}).encode()


def bad_requests(schema: dict) -> list[tuple[str, bytes, str]]:
    """(what is wrong, body, content type): each must get a 4xx."""
    record = valid_records(schema, 1)[0]
    numeric = next(f for f in schema["features"] if f["type"] in ("integer", "float") and "maximum" in f)
    categorical = next((f for f in schema["features"] if f["type"] == "categorical"), None)
    cases = [
        ("malformed JSON", b'{"instances": [', JSON),
        ("value above the maximum", to_csv(schema, [{**record, numeric["name"]: numeric["maximum"] * 10 + 1}]), CSV),
        ("wrong number of columns", b"1,2\n", CSV),
        ("unsupported content type", b"hello", "text/plain"),
        ("empty body", b"", CSV),
    ]
    if categorical:
        cases.append(("unknown category", to_json([{**record, categorical["name"]: "__not_a_category__"}]), JSON))
    return cases


# --------------------------------------------------------------------------------------------- answer checks
def check_prediction(schema: dict, prediction) -> str:
    """'' when a JSON prediction follows the contract, else what is wrong."""
    if not isinstance(prediction, dict):
        return f"a prediction is {type(prediction).__name__}, not an object"
    classes = schema.get("classes")
    if schema["problem_type"] == "regression" or not classes:
        score = prediction.get("score")
        ok = isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score)
        return "" if ok else f"'score' missing or not a finite number in {prediction}"
    if prediction.get("predicted_label") not in classes:
        return f"predicted_label {prediction.get('predicted_label')!r} is not one of {classes}"
    probabilities = prediction.get("probabilities")
    if not isinstance(probabilities, list) or len(probabilities) != len(classes):
        return f"probabilities must list one value per class ({len(classes)}): {probabilities!r}"
    if abs(sum(probabilities) - 1) > 1e-3 or any(not 0 <= p <= 1 for p in probabilities):
        return f"probabilities {probabilities} are not a distribution"
    return ""


def check_json_batch(schema: dict, answer: Answer, rows: int) -> tuple[bool, str]:
    if answer.status != 200:
        return False, f"status {answer.status}: {answer.body[:200]!r}"
    try:
        predictions = json.loads(answer.body)["predictions"]
    except (ValueError, KeyError, TypeError):
        return False, f'the answer has no "predictions" list: {answer.body[:200]!r}'
    if len(predictions) != rows:
        return False, f"{len(predictions)} predictions for {rows} rows"
    problems = [p for p in (check_prediction(schema, x) for x in predictions) if p]
    return (False, problems[0]) if problems else (True, f"{rows} rows -> {rows} predictions")


def check_csv_batch(schema: dict, answer: Answer, rows: int) -> tuple[bool, str]:
    if answer.status != 200:
        return False, f"status {answer.status}: {answer.body[:200]!r}"
    lines = answer.body.decode(errors="replace").splitlines()
    if len(lines) != rows:
        return False, f"{len(lines)} CSV lines for {rows} rows"
    classes = schema.get("classes") or []
    width = 1 + len(classes) if classes and schema["problem_type"] != "regression" else 1
    bad = [line for line in lines if len(line.split(",")) != width]
    return (False, f"line {bad[0]!r} does not have {width} fields") if bad else (True, f"{rows} lines")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# ---------------------------------------------------------------------------------------------------- run
def run_checks(transport, schema: dict, requests: int, p99_ms: float) -> list[tuple[str, bool, str]]:
    results = []

    def record(name: str, outcome: tuple[bool, str]) -> None:
        results.append((name, *outcome))

    try:
        ready, detail = transport.ping()
    except OSError as exc:
        return [("ping", False, f"cannot connect to {transport.name}: {exc}")]
    record("ping", (ready, detail))
    if not ready:
        return results
    records = valid_records(schema, BATCH_ROWS)
    record("csv batch -> json", check_json_batch(schema, transport.invoke(to_csv(schema, records), CSV), BATCH_ROWS))
    record("json batch -> json", check_json_batch(schema, transport.invoke(to_json(records), JSON), BATCH_ROWS))
    record("csv batch -> csv", check_csv_batch(schema, transport.invoke(to_csv(schema, records), CSV, CSV), BATCH_ROWS))
    for what, body, content_type in bad_requests(schema):
        answer = transport.invoke(body, content_type)
        record(f"bad input: {what}", (400 <= answer.status < 500, f"status {answer.status}"))
    single = to_csv(schema, records[:1])
    transport.invoke(single, CSV)  # untimed: a serverless (or scaled-down) endpoint's cold start is not latency
    timings = []
    failures = 0
    for _ in range(requests):
        started = time.perf_counter()
        answer = transport.invoke(single, CSV)
        timings.append((time.perf_counter() - started) * 1000)
        failures += answer.status != 200
    p50, p99 = percentile(timings, 50), percentile(timings, 99)
    detail = f"{requests} requests: p50 {p50:.1f} ms, p99 {p99:.1f} ms (limit {p99_ms:.0f} ms), {failures} failed"
    record("latency", (p99 <= p99_ms and failures == 0, detail))
    return results


def print_table(results: list[tuple[str, bool, str]], out=None) -> None:
    out = out or sys.stdout
    width = max(len(name) for name, _, _ in results)
    print(f"{'check'.ljust(width)}  result  detail", file=out)
    print(f"{'-' * width}  ------  ------", file=out)
    for name, passed, detail in results:
        print(f"{name.ljust(width)}  {'PASS' if passed else 'FAIL':6}  {detail}", file=out)


def build_transport(args: argparse.Namespace, endpoint_name: str, region: str, env=None):
    if args.url:
        return HttpTransport(args.url)
    import boto3

    session = boto3.session.Session(region_name=args.region or region)
    sagemaker, runtime = session.client("sagemaker"), session.client("sagemaker-runtime")
    if env is None or env.endpoint_type != "async":
        return SageMakerTransport(sagemaker, runtime, endpoint_name)
    from release.aws import Clients, Settings
    from release.config import load_project

    bucket = Settings(load_project(), Clients(session.region_name), {}).one("artifact_bucket")
    block = env.data["endpoint"]["async"]
    timeout = float(block["oldest_request_alarm_seconds"])
    return AsyncTransport(sagemaker, runtime, session.client("s3"), endpoint_name, bucket, block["input_path"], timeout)


def timing_plan(transport, env, requests: int | None, p99_ms: float) -> tuple[int, float]:
    """How many single-row requests to time, and the p99 limit in ms: given ones win; else an async endpoint times
    ASYNC_REQUESTS against its oldest-request alarm (the answer timeout), any other REQUESTS against the latency
    alarm."""
    if isinstance(transport, AsyncTransport):
        return requests or ASYNC_REQUESTS, p99_ms or transport.timeout * 1000
    return requests or REQUESTS, p99_ms or env.latency_p99_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="staging", help="environment whose endpoint and thresholds to use")
    parser.add_argument("--url", default="", help="test a server at this URL instead of the SageMaker endpoint")
    parser.add_argument("--endpoint-name", default="", help="override the endpoint name of the environment file")
    parser.add_argument("--region", default="", help="override the region of the environment file")
    parser.add_argument(
        "--requests",
        type=int,
        help=f"single-row requests timed for the latency check (default {REQUESTS}; async endpoint {ASYNC_REQUESTS})",
    )
    parser.add_argument("--p99-ms", type=float, default=0, help="p99 limit (default: the environment's alarm)")
    args = parser.parse_args(argv)
    try:
        if args.requests is not None and args.requests < 1:
            raise ReleaseError(f"--requests {args.requests}: give at least 1", f"e.g. --requests {REQUESTS}")
        env = load_environment(args.env)
        schema = load_schema()
        transport = build_transport(args, args.endpoint_name or env.endpoint_name, env.region, env)
        requests, limit = timing_plan(transport, env, args.requests, args.p99_ms)
        print(f"testing {transport.name} ({args.env}), {requests} timed requests, p99 limit {limit:.0f} ms")
        results = run_checks(transport, schema, requests, limit)
    except ReleaseError as exc:
        print(f"error: {exc}")
        return 2
    print_table(results)
    failed = [name for name, passed, _ in results if not passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
