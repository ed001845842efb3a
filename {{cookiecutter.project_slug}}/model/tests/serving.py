"""serve.py as a subprocess on 127.0.0.1 for tests: start it on a free port, call it, stop it with SIGTERM."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model.common import paths
from model.inference import serve
from model.inference.local_server import LocalServer

START_TIMEOUT = 20.0
# The inference image's environment (`make setup-inference`); `make test-model` sets it. Run alone, pytest serves
# from its own interpreter, which has more libraries than the image.
PYTHON = os.environ.get("INFERENCE_PYTHON") or sys.executable
REQUEST_TIMEOUT = 10.0
SCRIPT_TIMEOUT = 300.0


def run_benchmark(module: str, *args: str) -> str:
    """`python -m module args` from the repository root as `make` runs it, with the server's interpreter given
    (INFERENCE_PYTHON); fails the test with the end of its output unless it exits 0, else returns its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        cwd=paths.REPO_ROOT,
        env={**os.environ, "INFERENCE_PYTHON": PYTHON},
    )
    if result.returncode != 0:
        pytest.fail(f"python -m {module} exited {result.returncode}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


class Server(LocalServer):
    """serve.py as `make serve` runs it, on port 0: the port comes from its own 'serving' log line."""

    def __init__(self, model_dir: Path, log_path: Path, workers: int = 2, env: dict | None = None):
        command = serve.local_command(PYTHON, model_dir, 0, workers)
        super().__init__(command, log_path, env=env, start_timeout=START_TIMEOUT)


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def invoke(port: int, body: bytes, content_type: str = "text/csv", accept: str = "application/json", **headers):
    return request(port, "POST", "/invocations", body, {"Content-Type": content_type, "Accept": accept, **headers})
