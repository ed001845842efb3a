"""The inference server, unchanged, under each endpoint type's limits (infra/config endpoint.endpoint_type).

realtime: 6 MB requests (the server's default limit, covered by test_serve.py). serverless: SageMaker refuses
requests over 4 MB before the container, gives it 1024 to 6144 MB of memory and never calls /execution-parameters.
async: SageMaker hands the container payloads up to 1 GB from S3; the endpoint stack sets SAGEMAKER_MAX_PAYLOAD_IN_MB
to 1024 on the model of an async endpoint (infra/lib/endpoint.yaml) so the server takes what SageMaker accepts.
The real serve.py runs in each case, with the limits the type sets through its environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from model.inference.bench import peak_rss_by_process_mb
from model.inference.local_server import process_tree
from model.tests.fixtures_inference import csv_body, feature_rows
from model.tests.serving import Server, invoke, request

pytest_plugins = ("model.tests.fixtures_inference",)

SERVERLESS_MAX_PAYLOAD = 4 * 1024 * 1024  # InvokeEndpoint on a serverless endpoint
SERVERLESS_MIN_MEMORY_MB = 1024  # the smallest ProductionVariantServerlessConfig MemorySizeInMB
REALTIME_MAX_PAYLOAD = 6 * 1024 * 1024
ASYNC_PAYLOAD_MB = "1024"  # what infra/lib/endpoint.yaml sets for an async endpoint's model


def body_of_size(limit: int) -> tuple[bytes, int]:
    """A CSV body of whole rows just under `limit` bytes, and its row count."""
    block = csv_body(feature_rows(200))
    body = block * (limit // len(block))
    extra = csv_body(feature_rows(1))
    while len(body) + len(extra) < limit:
        body += extra
    return body, body.count(b"\n")


def peak_rss_mb(pid: int) -> float:
    """The largest resident set any process of the server reached (VmHWM of the parent and its workers)."""
    return max(peak_rss_by_process_mb(process_tree(pid)).values(), default=0.0)


@pytest.fixture(scope="module")
def serverless(artifacts, tmp_path_factory):
    server = Server(artifacts["binary_classification"], tmp_path_factory.mktemp("serverless") / "server.log", workers=1)
    yield server
    server.stop()


def test_serverless_a_request_just_under_4_mb_is_scored_in_the_smallest_memory_size(serverless):
    body, rows = body_of_size(SERVERLESS_MAX_PAYLOAD)
    assert SERVERLESS_MAX_PAYLOAD - 1024 < len(body) < SERVERLESS_MAX_PAYLOAD

    status, _, answer = invoke(serverless.port, body)
    assert status == 200, answer[:300]
    assert len(json.loads(answer)["predictions"]) == rows
    if os.path.isdir("/proc"):
        assert 0 < peak_rss_mb(serverless.process.pid) < SERVERLESS_MIN_MEMORY_MB


def test_serverless_scoring_needs_no_execution_parameters_call_first(serverless):
    # A fresh connection, no GET /execution-parameters (SageMaker never sends it to a serverless container).
    status, _, answer = invoke(serverless.port, csv_body(feature_rows(3)), accept="text/csv")
    assert status == 200 and answer.count(b"\n") == 3
    assert request(serverless.port, "GET", "/ping")[0] == 200


def test_async_a_payload_over_the_realtime_limit_is_scored_with_the_async_limit(artifacts, tmp_path):
    body, rows = body_of_size(REALTIME_MAX_PAYLOAD + 2 * 1024 * 1024)
    assert len(body) > REALTIME_MAX_PAYLOAD
    realtime = Server(artifacts["binary_classification"], tmp_path / "realtime.log", workers=1)
    try:
        assert invoke(realtime.port, body)[0] == 413  # what a real-time endpoint's container does with it
    finally:
        realtime.stop()
    queued = Server(
        artifacts["binary_classification"],
        tmp_path / "async.log",
        workers=1,
        env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": ASYNC_PAYLOAD_MB},
    )
    try:
        status, _, answer = invoke(queued.port, body, accept="text/csv")
        parameters = json.loads(request(queued.port, "GET", "/execution-parameters")[2])
    finally:
        assert queued.stop() == 0
    assert status == 200, answer[:300]
    assert answer.count(b"\n") == rows
    assert parameters["MaxPayloadInMB"] == int(ASYNC_PAYLOAD_MB)


def test_the_async_payload_limit_is_the_one_the_endpoint_stack_sets():
    template = (Path(__file__).resolve().parents[2] / "infra" / "lib" / "endpoint.yaml").read_text(encoding="utf-8")
    assert f'SAGEMAKER_MAX_PAYLOAD_IN_MB: "{ASYNC_PAYLOAD_MB}"' in template
