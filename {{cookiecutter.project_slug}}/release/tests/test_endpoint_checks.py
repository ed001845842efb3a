"""endpoint_checks.py: request building, the runtime mode (Stubber), a broken server, and a real serve.py."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from release import endpoint_checks
from release.config import ROOT
from release.tests.conftest import client

SCHEMA = endpoint_checks.load_schema()


def test_valid_records_stay_inside_the_schema():
    for record in endpoint_checks.valid_records(SCHEMA, 5):
        for feature in SCHEMA["features"]:
            value = record[feature["name"]]
            if value is None:
                assert feature["nullable"]
            elif feature["type"] == "categorical":
                assert value in feature["categories"]
            else:
                assert feature["minimum"] <= value <= feature["maximum"]


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (endpoint_checks.percentile(values, 50), endpoint_checks.percentile(values, 99)) == (50.0, 99.0)


def expect_in_service(stubber: Stubber, name: str = "e") -> None:
    """DescribeEndpoint answers that the endpoint is InService (the checks wait for that first)."""
    answer = {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}",
        "EndpointConfigName": "c",
        "EndpointStatus": "InService",
        "CreationTime": 0,
        "LastModifiedTime": 0,
    }
    stubber.add_response("describe_endpoint", answer, {"EndpointName": name})


def prediction(schema):
    classes = schema.get("classes")
    if schema["problem_type"] == "regression" or not classes:
        return {"score": 612.5}
    probabilities = [round(1 / len(classes), 6)] * (len(classes) - 1)
    probabilities.append(round(1 - sum(probabilities), 6))
    return {
        "predicted_label": classes[0],
        "probability": probabilities[0],
        "probabilities": probabilities,
        "labels": classes,
    }


def csv_line(schema):
    classes = schema.get("classes")
    if schema["problem_type"] == "regression" or not classes:
        return "612.5\n"
    return classes[0] + "," + ",".join(["0.5"] * len(classes)) + "\n"


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def test_runtime_mode_passes_on_a_healthy_endpoint(aws):
    sagemaker, runtime = client("sagemaker"), client("sagemaker-runtime")
    batch = json.dumps({"predictions": [prediction(SCHEMA)] * endpoint_checks.BATCH_ROWS}).encode()
    single = json.dumps({"predictions": [prediction(SCHEMA)]}).encode()
    with Stubber(sagemaker) as sm, Stubber(runtime) as rt:
        expect_in_service(sm)
        rt.add_response("invoke_endpoint", {"Body": body(batch), "ContentType": "application/json"})
        rt.add_response("invoke_endpoint", {"Body": body(batch), "ContentType": "application/json"})
        csv_answer = (csv_line(SCHEMA) * endpoint_checks.BATCH_ROWS).encode()
        rt.add_response("invoke_endpoint", {"Body": body(csv_answer), "ContentType": "text/csv"})
        for _ in endpoint_checks.bad_requests(SCHEMA):
            rt.add_client_error(
                "invoke_endpoint",
                "ModelError",
                "Received client error (400)",
                424,
                modeled_fields={"OriginalStatusCode": 400, "OriginalMessage": "invalid_data"},
            )
        for _ in range(1 + 3):  # one untimed warm-up request (a serverless cold start), then the timed ones
            rt.add_response("invoke_endpoint", {"Body": body(single), "ContentType": "application/json"})
        transport = endpoint_checks.SageMakerTransport(sagemaker, runtime, "e")
        results = endpoint_checks.run_checks(transport, SCHEMA, requests=3, p99_ms=10_000)
        rt.assert_no_pending_responses()
    assert [name for name, passed, _ in results if not passed] == []


def test_runtime_mode_fails_when_bad_input_gets_a_5xx(aws):
    sagemaker, runtime = client("sagemaker"), client("sagemaker-runtime")
    with Stubber(runtime) as rt:
        rt.add_client_error(
            "invoke_endpoint",
            "ModelError",
            "Received server error (500)",
            424,
            modeled_fields={"OriginalStatusCode": 500},
        )
        answer = endpoint_checks.SageMakerTransport(sagemaker, runtime, "e").invoke(b"x", "text/plain")
    assert answer.status == 500


class _BrokenHandler(http.server.BaseHTTPRequestHandler):
    """Answers /ping, but every invocation with a 500: the checks must fail."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_http_mode_fails_against_a_server_that_answers_500(capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BrokenHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert endpoint_checks.main(["--env", "staging", "--url", url, "--requests", "3"]) == 1
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert "FAIL" in out and "bad input: malformed JSON" in out


def test_http_mode_reports_an_unreachable_server(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert endpoint_checks.main(["--env", "staging", "--url", f"http://127.0.0.1:{port}", "--requests", "1"]) == 1
    assert "cannot connect" in capsys.readouterr().out  # the reason is in the table


def _model_python() -> Path | None:
    for candidate in (os.environ.get("SMT_MODEL_PYTHON", ""), str(ROOT / ".venv" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


TRAIN = """
import sys
from pathlib import Path
from model.tests.fixtures_inference import train_artifact
print(train_artifact(Path(sys.argv[1]), sys.argv[2]))
"""


@contextlib.contextmanager
def serve_py(tmp_path: Path) -> Iterator[int]:
    """serve.py from the model environment with a freshly trained artifact, on a free 127.0.0.1 port (yielded)."""
    python = str(_model_python())
    trained = subprocess.run(
        [python, "-c", TRAIN, str(tmp_path / "artifact"), SCHEMA["problem_type"]],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model_dir = trained.stdout.strip().splitlines()[-1]
    command = [python, "-m", "model.inference.serve", "serve", "--model-dir", model_dir, "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "serve.py did not start"
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.skipif(_model_python() is None, reason="no model environment: set SMT_MODEL_PYTHON or run make setup")
def test_http_mode_passes_against_the_real_serve_py(tmp_path, capsys):
    with serve_py(tmp_path) as port:
        url = f"http://127.0.0.1:{port}"
        assert endpoint_checks.main(["--env", "staging", "--url", url, "--requests", "20"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "latency" in out
