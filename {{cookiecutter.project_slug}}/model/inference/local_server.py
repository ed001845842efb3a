"""A server command on 127.0.0.1 for the local tools and the tests (`make bench`, the HTTP tests, the benchmarks).

`LocalServer` starts the command in its own process group with its output in a log file, waits until `GET /ping`
answers 200, and stops it with SIGTERM (serve.py drains the requests in flight), killing the group if it hangs.
With `port=None` the server binds port 0 and the port is read from serve.py's own JSON `serving` log line, so
parallel tests never race for a port. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(port: int, method: str = "GET", path: str = "/ping", timeout: float = 1.0) -> int | None:
    """One request on a fresh connection; None when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return None
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else None


def process_tree(root: int) -> list[int]:
    """The process and its descendants (the supervisor and its workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


class LocalServer:
    """`ready_seconds` is process start to the first 200 on /ping; `stop()` returns the exit code."""

    def __init__(
        self,
        command: list[str],
        log_path: Path,
        *,
        port: int | None = None,
        env: dict | None = None,
        start_timeout: float = START_TIMEOUT,
        append: bool = False,
    ) -> None:
        self.command, self.log_path, self.port, self.start_timeout = command, log_path, port, start_timeout
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "ab" if append else "wb")  # noqa: SIM115 - closed in stop()
        self.log_start = self.log.tell()
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_until_ready()
        self.ready_seconds = time.perf_counter() - started

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.close()
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            if self.port is None:
                serving = [record for record in self.log_records() if record.get("event") == "serving"]
                self.port = serving[0]["port"] if serving else None
            if self.port is not None and http_status(self.port, timeout=0.5) == 200:
                return
            time.sleep(0.002 if self.port is not None else 0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer /ping within {self.start_timeout} s: {self.log_tail()}")

    @property
    def name(self) -> str:
        return " ".join(self.command[:4])

    def log_text(self) -> str:
        with open(self.log_path, "rb") as handle:
            handle.seek(self.log_start)
            return handle.read().decode(errors="replace")

    def log_tail(self, limit: int = 3000) -> str:
        return self.log_text()[-limit:] + f" (log: {self.log_path})"

    def log_records(self) -> list[dict]:
        """The JSON lines of the log (serve.py's records: serving, request, drain, ...)."""
        complete = self.log_text().split("\n")[:-1]  # the last piece is a line still being written, or empty
        return [json.loads(line) for line in complete if line.startswith("{")]

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.start_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=self.start_timeout)
        self.log.close()
        return self.process.returncode

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
