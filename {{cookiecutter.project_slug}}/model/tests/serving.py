"""serve.py as a subprocess on 127.0.0.1 for tests: start it on a free port, call it, stop it with SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from model.inference import serve

START_TIMEOUT = 20.0
# The inference image's environment (`make setup-inference`); `make test-model` sets it. Run alone, pytest serves
# from its own interpreter, which has more libraries than the image.
PYTHON = os.environ.get("INFERENCE_PYTHON") or sys.executable
REQUEST_TIMEOUT = 10.0


class Server:
    """serve.py in a subprocess; its port is read from its own 'serving' log line (it binds port 0)."""

    def __init__(self, model_dir: Path, log_path: Path, workers: int = 2, env: dict | None = None):
        self.log_path = log_path
        environment = {**os.environ, **(env or {})}
        self.log_file = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            serve.local_command(PYTHON, model_dir, 0, workers),
            stdout=self.log_file,
            stderr=subprocess.PIPE,
            env=environment,
        )
        self.port = self._wait_until_ready()

    def _wait_until_ready(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve.py exited with {self.process.returncode}: {self.process.stderr.read()!r}")
            if port is None:
                serving = [r for r in self.log_records() if r.get("event") == "serving"]
                port = serving[0]["port"] if serving else None
            if port is not None:
                try:
                    if request(port, "GET", "/ping")[0] == 200:
                        return port
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"serve.py did not answer /ping within {START_TIMEOUT} s")

    def log_records(self) -> list[dict]:
        lines = self.log_path.read_bytes().decode().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=START_TIMEOUT)
        self.process.stderr.close()
        self.log_file.close()
        return self.process.returncode


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
