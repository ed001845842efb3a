"""The hosting contract, tested against the real server: serve.py runs as a subprocess on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from model.inference import predictor, serve
from model.tests.fixtures_inference import csv_body, feature_records, feature_rows
from model.tests.serving import REQUEST_TIMEOUT, START_TIMEOUT, Server, invoke, request

pytest_plugins = ("model.tests.fixtures_inference",)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(artifacts, tmp_path_factory):
    started = Server(
        artifacts["binary_classification"],
        tmp_path_factory.mktemp("serve") / "server.log",
        env={"MODEL_PACKAGE_VERSION": "7"},
    )
    yield started
    started.stop()


@pytest.fixture(scope="module")
def model_version(artifacts) -> str:
    return json.loads((artifacts["binary_classification"] / "metadata.json").read_text())["model_version"]


# ------------------------------------------------------------------------------------------ happy paths
def test_ping_is_200_with_an_empty_body(server):
    status, _, body = request(server.port, "GET", "/ping")
    assert (status, body) == (200, b"")


def test_head_answers_the_headers_of_get_without_a_body(server):
    for _ in range(3):  # the head is sent at the end of the loop turn, although no body follows it
        status, headers, body = request(server.port, "HEAD", "/execution-parameters")
        assert (status, body) == (200, b"")
        assert int(headers["content-length"]) > 0 and headers["content-type"] == "application/json"


def test_every_response_names_the_model_and_package_version(server, model_version):
    for method, path in (("GET", "/ping"), ("GET", "/nowhere"), ("POST", "/invocations")):
        _, headers, _ = request(server.port, method, path, b"", {"Content-Type": "text/csv"})
        assert headers["x-model-version"] == model_version
        assert headers["x-model-package-version"] == "7"


def test_csv_in_json_out(server):
    status, headers, body = invoke(server.port, csv_body(feature_rows(3)))
    assert status == 200
    assert headers["content-type"] == "application/json"
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == 3
    assert {p["predicted_label"] for p in predictions} <= {"no", "yes"}


def test_csv_in_csv_out(server):
    status, headers, body = invoke(server.port, csv_body(feature_rows(4)), accept="text/csv")
    assert (status, headers["content-type"]) == (200, "text/csv")
    lines = body.decode().splitlines()
    assert len(lines) == 4
    assert all(line.split(",")[0] in ("no", "yes") and len(line.split(",")) == 3 for line in lines)


def test_json_records_in(server):
    body = json.dumps({"instances": feature_records(2)}).encode()
    status, _, answer = invoke(server.port, body, "application/json")
    assert status == 200
    assert len(json.loads(answer)["predictions"]) == 2


def test_jsonlines_in_jsonlines_out(server):
    body = "\n".join(json.dumps(r) for r in feature_records(3)).encode()
    status, headers, answer = invoke(server.port, body, "application/jsonlines", "application/jsonlines")
    assert (status, headers["content-type"]) == (200, "application/jsonlines")
    assert len(answer.decode().splitlines()) == 3


def test_execution_parameters_respect_the_batch_transform_budget(server):
    status, _, body = request(server.port, "GET", "/execution-parameters")
    parameters = json.loads(body)
    assert status == 200
    assert parameters["BatchStrategy"] == "MULTI_RECORD"
    assert parameters["MaxPayloadInMB"] == 6
    assert 1 <= parameters["MaxConcurrentTransforms"] * parameters["MaxPayloadInMB"] <= 100


def test_each_request_writes_one_structured_log_line(server, model_version):
    invoke(server.port, csv_body(feature_rows(5)), **{"X-Amzn-SageMaker-Inference-Id": "trace-42"})
    deadline = time.monotonic() + REQUEST_TIMEOUT
    records = []
    while not records and time.monotonic() < deadline:
        records = [r for r in server.log_records() if r.get("inference_id") == "trace-42"]
        time.sleep(0.02)
    assert len(records) == 1
    record = records[0]
    assert record["model_version"] == model_version
    assert (record["rows"], record["status"], record["path"]) == (5, 200, "/invocations")
    assert record["latency_ms"] >= 0


def test_requests_without_an_inference_id_get_one(server):
    request(server.port, "GET", "/execution-parameters")
    time.sleep(0.1)
    records = [r for r in server.log_records() if r.get("path") == "/execution-parameters"]
    assert records and all(len(r["inference_id"]) >= 16 for r in records)


@pytest.mark.parametrize("problem_type", ["multiclass_classification", "regression"])
def test_other_problem_types_serve_their_own_output(artifacts, tmp_path, problem_type):
    other = Server(artifacts[problem_type], tmp_path / "server.log", workers=1)
    try:
        status, _, body = invoke(other.port, csv_body(feature_rows(2)))
    finally:
        assert other.stop() == 0
    predictions = json.loads(body)["predictions"]
    assert status == 200
    key = "score" if problem_type == "regression" else "predicted_label"
    assert all(key in p for p in predictions)


# ------------------------------------------------------------------------------------------- bad input
def _bad_inputs():
    rows = feature_rows(2)
    short = [rows[0][:-1]]
    wrong_type = [["many", *rows[0][1:]]]
    return [
        ("malformed_csv", b'1,"open\n', "text/csv", "application/json", 400),
        ("wrong_column_count", csv_body(short), "text/csv", "application/json", 400),
        ("wrong_type", csv_body(wrong_type), "text/csv", "application/json", 400),
        ("out_of_range", csv_body([["-5", *rows[0][1:]]]), "text/csv", "application/json", 400),
        ("malformed_json", b'{"instances": [', "application/json", "application/json", 400),
        ("empty_body", b"", "text/csv", "application/json", 400),
        ("unsupported_content_type", csv_body(rows), "application/x-protobuf", "application/json", 415),
        ("unsupported_accept", csv_body(rows), "text/csv", "application/xml", 406),
    ]


@pytest.mark.parametrize(
    ("name", "body", "content_type", "accept", "status"), _bad_inputs(), ids=[case[0] for case in _bad_inputs()]
)
def test_bad_input_is_a_4xx_json_error_and_the_server_keeps_serving(server, name, body, content_type, accept, status):
    answered, headers, payload = invoke(server.port, body, content_type, accept)
    assert answered == status
    assert headers["content-type"] == "application/json"
    error = json.loads(payload)
    assert error["error"] and error["message"]
    assert request(server.port, "GET", "/ping")[0] == 200


def test_out_of_range_values_are_listed_as_issues(server):
    row = feature_rows(1)[0]
    status, _, payload = invoke(server.port, csv_body([["-5", *row[1:]]]))
    assert status == 400
    assert json.loads(payload)["issues"][0]["row"] == 0


def test_an_unknown_path_is_404_and_a_wrong_method_405(server):
    assert request(server.port, "GET", "/predict")[0] == 404
    status, headers, body = request(server.port, "GET", "/invocations")
    assert (status, headers["allow"]) == (405, "POST")
    assert json.loads(body)["error"] == "method_not_allowed"
    assert request(server.port, "POST", "/ping", b"")[0] == 405


def test_a_body_over_the_limit_is_413(artifacts, tmp_path):
    small = Server(
        artifacts["binary_classification"], tmp_path / "server.log", workers=1, env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}
    )
    try:
        row = csv_body(feature_rows(1))
        status, _, body = invoke(small.port, row * (1024 * 1024 // len(row) + 1))
        assert status == 413
        assert json.loads(body)["error"] == "payload_too_large"
        assert json.loads(request(small.port, "GET", "/execution-parameters")[2])["MaxPayloadInMB"] == 1
        assert request(small.port, "GET", "/ping")[0] == 200
    finally:
        small.stop()


# ------------------------------------------------------------------------------------------- lifecycle
def test_a_tampered_artifact_refuses_to_start_with_a_clear_error(artifacts, tmp_path):
    model_dir = shutil.copytree(artifacts["binary_classification"], tmp_path / "model")
    (model_dir / "schema.json").write_text((model_dir / "schema.json").read_text() + " ")
    with pytest.raises(RuntimeError, match="SHA-256") as caught:
        Server(model_dir, tmp_path / "server.log")
    assert "exited with 1" in str(caught.value)


def test_sigterm_drains_the_request_in_flight_and_exits_0(artifacts, tmp_path):
    server = Server(artifacts["binary_classification"], tmp_path / "server.log", workers=2)
    body = csv_body(feature_rows(50))
    half = len(body) // 2
    with socket.create_connection(("127.0.0.1", server.port), timeout=REQUEST_TIMEOUT) as client:
        client.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\nAccept: text/csv\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:half]
        )
        time.sleep(0.3)  # the worker has started reading the request
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert server.process.poll() is None, "the server must wait for the request in flight"
        client.sendall(body[half:])
        response = b""
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while time.monotonic() < deadline:
            chunk = client.recv(65536)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 200")
    assert len(response.split(b"\r\n\r\n", 1)[1].splitlines()) == 50
    assert server.process.wait(timeout=START_TIMEOUT) == 0
    server.stop()


def test_a_worker_that_dies_is_replaced(artifacts, tmp_path):
    server = Server(artifacts["binary_classification"], tmp_path / "server.log", workers=2)
    try:
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
        first = set(children.read_text().split())
        os.kill(int(sorted(first)[0]), signal.SIGKILL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            now = set(children.read_text().split())
            if len(now) == 2 and now != first:
                break
            time.sleep(0.05)
        assert len(now) == 2 and now != first
        assert all(request(server.port, "GET", "/ping")[0] == 200 for _ in range(5))
        assert any(r.get("event") == "worker_exited" for r in server.log_records())
    finally:
        assert server.stop() == 0


def test_generated_inference_ids_are_unique_hex_and_change_after_fork(artifacts):
    app = serve.InferenceApp(predictor.model_fn(artifacts["binary_classification"]), max_payload_bytes=1, workers=1)
    ids = [app.new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked worker draws its own prefix, so two workers never hand out the same id
        os.write(write, app.new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 64).decode()
    os.close(read), os.close(write)
    assert child_id[:16] != ids[0][:16] and child_id not in ids


def test_request_log_writes_a_turn_of_the_loop_at_once_in_atomic_chunks():
    read, write = os.pipe()
    request_log = serve.RequestLog(write)

    async def one_turn() -> tuple[bytes, bytes]:
        for number in range(3):
            request_log.add({"inference_id": f"id-{number}", "status": 200})
        os.set_blocking(read, False)
        with pytest.raises(BlockingIOError):
            os.read(read, 65536)  # nothing written while the turn lasts
        await asyncio.sleep(0)
        first = os.read(read, 65536)
        for number in range(40):  # about 6 KB in one turn: more than one atomic pipe write
            request_log.add({"inference_id": f"long-{number}", "message": "x" * 120})
        await asyncio.sleep(0)
        return first, os.read(read, 65536)

    first, second = asyncio.run(one_turn())
    assert [json.loads(line)["inference_id"] for line in first.splitlines()] == ["id-0", "id-1", "id-2"]
    assert [json.loads(line)["inference_id"] for line in second.splitlines()] == [f"long-{n}" for n in range(40)]
    request_log.add({"inference_id": "outside-a-loop"})  # written at once when no loop runs
    assert json.loads(os.read(read, 65536))["inference_id"] == "outside-a-loop"
    os.close(read), os.close(write)


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str):
        return f"extra {name}"


def test_a_response_head_goes_out_in_the_same_write_as_its_body():
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"

    async def scenario() -> tuple[list, list, list]:
        loop = asyncio.get_running_loop()
        inner = RecordingTransport()
        transport = serve.CoalescingTransport(inner, loop)
        transport.write(head)
        transport.write(b"abc")
        together = list(inner.writes)
        transport.write(head)  # a head with no body after it (HEAD): sent when the turn of the loop ends
        held = list(inner.writes)
        await asyncio.sleep(0)
        after_turn = list(inner.writes)
        transport.write(head)
        transport.close()  # closing sends what is held first
        assert inner.writes[-1] == head and inner.closed
        assert transport.get_extra_info("peername") == "extra peername"  # everything else is the transport's
        return together, held, after_turn

    together, held, after_turn = asyncio.run(scenario())
    assert together == [head + b"abc"]
    assert held == together
    assert after_turn == [head + b"abc", head]


def test_a_worker_leaves_new_connections_to_a_worker_with_fewer(artifacts):
    app = serve.InferenceApp(predictor.model_fn(artifacts["binary_classification"]), max_payload_bytes=1, workers=2)
    config = serve.server_config(app, graceful_seconds=1)
    listener = serve.bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    counts = serve.ConnectionCounts(2)
    worker = serve.BalancedServer(config, listener, counts, slot=0)

    async def settled(expected: int) -> int:
        """The worker's count once it reaches `expected`, or whatever it is after a generous deadline."""
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while counts.slots[0] != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return counts.slots[0]

    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        serving = asyncio.create_task(worker.serve())
        while not worker.started:
            await asyncio.sleep(0.01)
        seen = []
        worker.ACCEPT_DEFER_SECONDS = 60  # the other worker (slot 1) is alive and idle: wait for it
        counts.slots[0], counts.slots[1] = 1, 0
        first = await loop.run_in_executor(None, socket.create_connection, ("127.0.0.1", port))
        await asyncio.sleep(0.1)
        seen.append(counts.slots[0])  # still 1: left to the other worker
        worker.ACCEPT_DEFER_SECONDS = 0  # the other worker did not take it in time: take it after all
        seen.append(await settled(2))
        counts.slots[1] = -1  # no other running worker: accept at once
        second = await loop.run_in_executor(None, socket.create_connection, ("127.0.0.1", port))
        seen.append(await settled(3))
        first.close(), second.close()
        seen.append(await settled(1))  # closed connections are no longer counted
        worker.should_exit = True
        await serving
        return seen

    try:
        assert asyncio.run(scenario()) == [1, 2, 3, 1]
    finally:
        listener.close()


def test_settings_come_from_the_sagemaker_environment(monkeypatch):
    monkeypatch.setenv("SM_MODEL_DIR", "/models/current")
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9090")
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3")
    monkeypatch.setenv("MODEL_SERVER_HOST", "127.0.0.1")
    args = serve.parse_args([])
    assert (args.command, args.model_dir, args.port, args.workers, args.host) == (
        "serve",
        "/models/current",
        9090,
        3,
        "127.0.0.1",
    )
    assert serve.parse_args(["serve", "--port", "8081", "--workers", "1"]).port == 8081


# ------------------------------------------------------------------------------------------- data capture
def _captured_lines(root: Path) -> list[dict]:
    files = sorted(root.rglob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]


def test_capture_writes_sagemaker_data_capture_lines_for_answered_requests(artifacts, tmp_path):
    capture = tmp_path / "capture"
    captured = Server(
        artifacts["binary_classification"],
        tmp_path / "server.log",
        env={"DATA_CAPTURE_DIR": str(capture), "ENDPOINT_NAME": "churn", "VARIANT_NAME": "blue"},
    )
    try:
        body = csv_body(feature_rows(3))
        assert invoke(captured.port, body, **{"X-Amzn-SageMaker-Inference-Id": "abc-1"})[0] == 200
        assert invoke(captured.port, body, accept="text/csv")[0] == 200
        assert invoke(captured.port, b"not,a,row")[0] == 400  # refused requests are not captured
    finally:
        assert captured.stop() == 0
    files = list(capture.rglob("*.jsonl"))
    assert files and all(f.relative_to(capture).parts[:2] == ("churn", "blue") for f in files)
    assert all(len(f.relative_to(capture).parts) == 7 for f in files)  # endpoint/variant/yyyy/mm/dd/hh/file
    lines = sorted(_captured_lines(capture), key=lambda line: line["eventMetadata"]["inferenceTime"])
    assert len(lines) == 2
    first, second = lines
    assert first["eventVersion"] == "0"
    assert first["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": body.decode(),
        "encoding": "CSV",
    }
    assert first["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert json.loads(first["captureData"]["endpointOutput"]["data"])["predictions"]
    assert first["eventMetadata"]["inferenceId"] == "abc-1"
    assert "inferenceId" not in second["eventMetadata"] and second["eventMetadata"]["eventId"]
    assert second["captureData"]["endpointOutput"]["observedContentType"] == "text/csv"


def test_capture_at_zero_percent_writes_nothing(artifacts, tmp_path):
    capture = tmp_path / "capture"
    quiet = Server(
        artifacts["binary_classification"],
        tmp_path / "server.log",
        workers=1,
        env={"DATA_CAPTURE_DIR": str(capture), "DATA_CAPTURE_SAMPLING_PERCENTAGE": "0"},
    )
    try:
        assert invoke(quiet.port, csv_body(feature_rows(1)))[0] == 200
    finally:
        assert quiet.stop() == 0
    assert _captured_lines(capture) == []


def test_a_bad_sampling_percentage_refuses_to_start_naming_it(artifacts, tmp_path):
    with pytest.raises(RuntimeError, match="DATA_CAPTURE_SAMPLING_PERCENTAGE"):
        Server(
            artifacts["binary_classification"],
            tmp_path / "server.log",
            env={"DATA_CAPTURE_DIR": str(tmp_path), "DATA_CAPTURE_SAMPLING_PERCENTAGE": "150"},
        )


def test_binary_bodies_are_captured_as_base64(tmp_path):
    import base64

    from model.inference import data_capture

    capture = data_capture.DataCapture(tmp_path, 100)
    line = capture.record(b"\xff\xfe", "application/x-npy", b"{}", "application/json")
    capture.close()
    assert line["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(line["captureData"]["endpointInput"]["data"]) == b"\xff\xfe"
    assert _captured_lines(tmp_path) == [line]
