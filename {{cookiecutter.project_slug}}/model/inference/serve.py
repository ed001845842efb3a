"""The SageMaker hosting contract: `python -m model.inference.serve serve` answers /ping, /invocations and
/execution-parameters.

A raw ASGI app on uvicorn (httptools parser, uvloop when installed). The parent process imports everything,
verifies and loads the artifact once and binds the port, then forks one worker per core: workers start in
milliseconds and share the loaded pages. Workers accept connections themselves and balance them: a worker takes a
new connection only while it holds no more open connections than any other worker (counts kept in memory shared
across the fork), so keep-alive clients are spread evenly instead of piling onto whichever worker woke first.
SIGTERM reaches every worker, which stops accepting connections, finishes the requests in flight and exits; the
parent then exits 0.

Configuration (flags win over environment variables):
  --model-dir   SM_MODEL_DIR, default /opt/ml/model
  --host        MODEL_SERVER_HOST, default 0.0.0.0
  --port        SAGEMAKER_BIND_TO_PORT, default 8080
  --workers     SAGEMAKER_MODEL_SERVER_WORKERS, default one per core
  SAGEMAKER_MAX_PAYLOAD_IN_MB (default 6), MODEL_PACKAGE_VERSION (echoed as X-Model-Package-Version),
  MODEL_SERVER_TIMEOUT_GRACEFUL (seconds to drain on SIGTERM, default 25: SageMaker kills after 30).
  DATA_CAPTURE_DIR enables local capture in SageMaker's data-capture format (DATA_CAPTURE_SAMPLING_PERCENTAGE,
  default 100; ENDPOINT_NAME, VARIANT_NAME name the folders). On AWS the endpoint's DataCaptureConfig does this.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import mmap
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import uvicorn

from model.common.data_contract import SchemaError
from model.common.model_artifact import ArtifactError
from model.inference import data_capture, predictor

MAX_TRANSFORM_BUDGET_MB = 100  # Batch Transform: MaxConcurrentTransforms x MaxPayloadInMB <= 100
JSON_TYPE = b"application/json"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


PIPE_BUF = 4096  # writes up to this size to a pipe are atomic: lines of several workers never interleave


def log(record: dict) -> None:
    """One JSON line on stdout, written with one system call so lines from several workers never interleave."""
    os.write(1, (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode())


class RequestLog:
    """The per-request log lines of one worker, written once per event-loop turn instead of once per request.

    Requests that finish in the same turn of the loop share one write (at most PIPE_BUF bytes, so it stays atomic
    on the pipe every worker shares); the write happens before the loop waits for more input, so a line is never
    held back behind idle time. flush() at exit writes whatever is left.
    """

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self.pending: list[bytes] = []
        self.size = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the worker's loop, looked up once

    def add(self, record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        if self.size + len(line) > PIPE_BUF:
            self.flush()
        if not self.pending:
            loop = self._loop
            if loop is None or not loop.is_running():
                try:
                    loop = self._loop = asyncio.get_running_loop()
                except RuntimeError:  # no loop running (a direct call): write now
                    os.write(self.fd, line)
                    return
            loop.call_soon(self.flush)
        self.pending.append(line)
        self.size += len(line)

    def flush(self) -> None:
        if self.pending:
            data, self.pending, self.size = b"".join(self.pending), [], 0
            os.write(self.fd, data)


class InferenceApp:
    """The ASGI application one worker runs: routing, limits, headers and the per-request log line."""

    def __init__(
        self,
        scorer,
        *,
        max_payload_bytes: int,
        workers: int,
        package_version: str | None = None,
        capture: data_capture.DataCapture | None = None,
    ):
        self.scorer = scorer
        self.capture = capture
        self.request_log = RequestLog()
        self._id_prefix = uuid.uuid4().hex[:16]
        self._id_counter = 0
        os.register_at_fork(after_in_child=self._new_id_prefix)
        self.schema = scorer.schema
        self.model_version = scorer.model_version
        self.max_payload_bytes = max_payload_bytes
        self.base_headers = [(b"x-model-version", self.model_version.encode())]
        if package_version:
            self.base_headers.append((b"x-model-package-version", package_version.encode()))
        megabytes = max(1, max_payload_bytes // (1024 * 1024))
        self.execution_parameters = json.dumps(
            {
                "MaxConcurrentTransforms": max(1, min(workers, MAX_TRANSFORM_BUDGET_MB // megabytes)),
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": megabytes,
            }
        ).encode()
        self.routes = {
            "/ping": ("GET", self.ping),
            "/invocations": ("POST", self.invocations),
            "/execution-parameters": ("GET", self.parameters),
        }

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        inference_id = headers.get(b"x-amzn-sagemaker-inference-id", b"").decode("latin-1") or self.new_id()
        entry = {
            "ts": time.time(),
            "inference_id": inference_id,
            "method": scope["method"],
            "path": scope["path"],
            "model_version": self.model_version,
        }
        route = self.routes.get(scope["path"])
        try:
            if route is None:
                raise predictor.InferenceError(
                    404,
                    "not_found",
                    f"no route {scope['path']}: use " + ", ".join(f"{m} {p}" for p, (m, _) in self.routes.items()),
                )
            method, handler = route
            if scope["method"] != method and not (method == "GET" and scope["method"] == "HEAD"):
                raise predictor.InferenceError(405, "method_not_allowed", f"{scope['path']} takes {method} only")
            status, body, content_type = await handler(headers, receive, entry)
        except predictor.InferenceError as exc:
            status, body, content_type = exc.status, exc.body(), JSON_TYPE
            entry["error"] = exc.error
        except Exception as exc:  # a bug, not bad input: answer 500 and keep serving
            status, body, content_type = (
                500,
                json.dumps({"error": "internal_error", "message": str(exc)}).encode(),
                JSON_TYPE,
            )
            entry["error"] = f"{type(exc).__name__}: {exc}"
        response_headers = [*self.base_headers, (b"content-length", str(len(body)).encode())]
        if content_type:
            response_headers.append((b"content-type", content_type))
        if status == 405:
            response_headers.append((b"allow", route[0].encode()))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
        entry["status"] = status
        entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        self.request_log.add(entry)

    def new_id(self) -> str:
        """A unique 32-hex-digit id: a random prefix per process (drawn again in each forked worker) and a counter;
        it costs no system call, where uuid4 reads the kernel's random source on every request."""
        self._id_counter += 1
        return f"{self._id_prefix}{self._id_counter:016x}"

    def _new_id_prefix(self) -> None:
        self._id_prefix, self._id_counter = uuid.uuid4().hex[:16], 0

    async def ping(self, headers, receive, entry):
        return 200, b"", None

    async def parameters(self, headers, receive, entry):
        return 200, self.execution_parameters, JSON_TYPE

    async def invocations(self, headers, receive, entry):
        body = await self.read_body(headers, receive)
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        accept = headers.get(b"accept", b"").decode("latin-1")
        entry["content_type"] = content_type
        entry["bytes"] = len(body)
        predictor.choose_accept(accept)  # refuse an unsupported Accept before doing any work
        columns = predictor.input_fn(body, content_type, self.schema, self.max_payload_bytes)
        predictions = predictor.predict_fn(columns, self.scorer)
        entry["rows"] = len(predictions)
        payload, media_type = predictor.output_fn(predictions, accept)
        if self.capture is not None and self.capture.sampled():
            inference_id = headers.get(b"x-amzn-sagemaker-inference-id", b"").decode("latin-1") or None
            self.capture.record(body, content_type, payload, media_type, inference_id)
        return 200, payload, media_type.encode()

    async def read_body(self, headers, receive) -> bytes:
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_payload_bytes:
            raise too_large(int(declared), self.max_payload_bytes)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise predictor.bad_request("client_disconnected", "the client closed the connection")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_payload_bytes:
                raise too_large(size, self.max_payload_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(size: int, limit: int) -> predictor.InferenceError:
    return predictor.InferenceError(
        413,
        "payload_too_large",
        f"the body has at least {size} bytes, over the limit of {limit} bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB): "
        "split the request into smaller batches",
    )


# ------------------------------------------------------------------------------------------ processes
def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def graceful_seconds() -> float:
    raw = os.environ.get("MODEL_SERVER_TIMEOUT_GRACEFUL", "25")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise ValueError(f"MODEL_SERVER_TIMEOUT_GRACEFUL={raw!r}: give the seconds to drain on SIGTERM, e.g. 25")
    return seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="Serve the model under the SageMaker hosting contract.")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve"],
        help="'serve' (what SageMaker passes to the container); the default",
    )
    parser.add_argument("--model-dir", default=env.get("SM_MODEL_DIR", "/opt/ml/model"))
    parser.add_argument("--host", default=env.get("MODEL_SERVER_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(env.get("SAGEMAKER_BIND_TO_PORT", "8080")))
    parser.add_argument(
        "--workers", type=int, default=int(env.get("SAGEMAKER_MODEL_SERVER_WORKERS") or default_workers())
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers / SAGEMAKER_MODEL_SERVER_WORKERS = {args.workers}: give at least 1")
    return args


def local_command(python: str, model_dir: str | Path, port: int, workers: int | None = None) -> list[str]:
    """The command line that serves model_dir on 127.0.0.1:port as the container does (port 0: any free port,
    announced in the 'serving' log line); the tests and `make bench` start the server with it."""
    command = [python, "-m", "model.inference.serve", "serve", "--model-dir", str(model_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    return command + (["--workers", str(workers)] if workers else [])


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that name it, and without it small
    # responses wait for the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server_config(app: InferenceApp, graceful_seconds: float) -> uvicorn.Config:
    """uvicorn's configuration, loaded (protocol and event loop modules imported) once, before any fork."""
    config = uvicorn.Config(
        app,
        http="httptools",
        loop="auto",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=graceful_seconds,
        proxy_headers=False,  # SageMaker's front end talks to the container directly: no X-Forwarded-* to trust
    )
    config.load()
    config.get_loop_factory()
    return config


class CoalescingTransport:
    """A connection's transport that sends a response head in the same write as the body that follows it.

    uvicorn writes the status line and headers as soon as the app starts the response, and the body in a second
    write: two system calls and two TCP segments per response (TCP_NODELAY sends each at once), and the client
    wakes up twice. The head is held until the next write, which the app makes straight away; a head with no body
    after it in the same turn of the loop (HEAD, a streamed response) is sent at the end of that turn.
    """

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop, self._head = transport, loop, None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
            self._head = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class ConnectionCounts:
    """Open connections per worker slot, in an anonymous shared mapping that every forked worker sees.

    Each worker writes only its own slot; a slot of -1 belongs to no running worker (the supervisor marks it
    when a worker exits, the replacement resets it to 0).
    """

    def __init__(self, workers: int) -> None:
        self._memory = mmap.mmap(-1, 8 * workers)  # MAP_SHARED | MAP_ANONYMOUS: shared across fork
        self.slots = memoryview(self._memory).cast("q")

    def fewest_elsewhere(self, slot: int) -> int | None:
        others = [count for i, count in enumerate(self.slots) if i != slot and count >= 0]
        return min(others) if others else None


class BalancedServer(uvicorn.Server):
    """uvicorn serving connections this worker accepts itself, fairly: while another running worker holds fewer
    open connections, this one leaves a waiting connection to it (for at most ACCEPT_DEFER_SECONDS, so a stuck
    worker never strands a client). Without this the worker that wakes first accepts every waiting connection,
    and with keep-alive clients one worker can serve seven connections of eight while the other idles."""

    ACCEPT_DEFER_SECONDS = 0.005
    RETRY_SECONDS = 0.0005

    def __init__(self, config: uvicorn.Config, sock: socket.socket, counts: ConnectionCounts, slot: int):
        super().__init__(config)
        self.sock, self.counts, self.slot = sock, counts, slot
        self._deferred_since: float | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._accepting = False
        self._connections: set[asyncio.Task] = set()

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=[])  # uvicorn's own state, no listening server: the accepting is ours
        self.counts.slots[self.slot] = 0
        counts, slot = self.counts.slots, self.slot
        loop = self._loop = asyncio.get_running_loop()

        class Protocol(self.config.http_protocol_class):
            """uvicorn's HTTP protocol, counted per worker, writing each response in one system call."""

            def connection_made(self, transport):
                super().connection_made(CoalescingTransport(transport, loop))

            def connection_lost(self, exc):
                counts[slot] -= 1
                super().connection_lost(exc)

        self._protocol = functools.partial(
            Protocol, config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        self.sock.setblocking(False)
        self._listen()

    def _listen(self) -> None:
        self._retry = None
        if not self.should_exit and not self._accepting:
            self._loop.add_reader(self.sock.fileno(), self._accept)
            self._accepting = True

    def _pause(self) -> None:
        if self._accepting:
            self._loop.remove_reader(self.sock.fileno())
            self._accepting = False

    def _accept(self) -> None:
        counts = self.counts.slots
        fewest = self.counts.fewest_elsewhere(self.slot)
        if fewest is not None and counts[self.slot] > fewest:
            now = time.monotonic()
            if self._deferred_since is None:
                self._deferred_since = now
            if now - self._deferred_since < self.ACCEPT_DEFER_SECONDS:
                self._pause()  # another worker holds fewer connections: let it take this one
                self._retry = self._loop.call_later(self.RETRY_SECONDS, self._listen)
                return
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        except OSError as exc:  # out of file descriptors: stop accepting for a moment rather than spin
            log({"ts": time.time(), "level": "error", "event": "accept_failed", "error": str(exc)})
            self._pause()
            self._retry = self._loop.call_later(0.1, self._listen)
            return
        self._deferred_since = None
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # Linux copies it from the listener; others may not
        counts[self.slot] += 1
        task = self._loop.create_task(self._serve_connection(conn))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve_connection(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol, conn)
        except Exception:  # the connection died before its protocol started: it is not counted any more
            self.counts.slots[self.slot] -= 1
            conn.close()

    async def shutdown(self, sockets=None) -> None:
        self._pause()  # no new connections; uvicorn then drains the open ones
        if self._retry is not None:
            self._retry.cancel()
        await super().shutdown(sockets=None)


def run_worker(config: uvicorn.Config, sock: socket.socket, counts: ConnectionCounts, slot: int) -> None:
    server = BalancedServer(config, sock, counts, slot)

    def request_exit(signum, frame) -> None:
        server.should_exit = True

    # uvicorn installs its own handlers while serving and re-raises the signal once drained; this handler
    # underneath turns that re-raise (and a signal that arrives before uvicorn is listening) into a clean exit 0.
    for signum in STOP_SIGNALS:
        signal.signal(signum, request_exit)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        server.run()
    finally:
        config.app.request_log.flush()


def supervise(config: uvicorn.Config, sock: socket.socket, workers: int) -> int:
    """Fork the workers and keep them running until SIGTERM/SIGINT, which is passed on to each of them."""
    children: dict[int, int] = {}  # pid -> slot
    counts = ConnectionCounts(workers)
    stopping = False

    def spawn(slot: int) -> None:
        # Signals stay blocked across fork until the child has its own handlers (see run_worker).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_worker(config, sock, counts, slot)
            except BaseException as exc:  # report anything, then leave without running the parent's cleanup
                log({"ts": time.time(), "event": "worker_failed", "error": f"{type(exc).__name__}: {exc}"})
                code = 1
            os._exit(code)
        children[pid] = slot
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(workers):
        spawn(slot)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        slot = children.pop(pid, None)
        if slot is None:
            continue
        counts.slots[slot] = -1  # its connections died with it; the others stop deferring to it
        if not stopping:
            log({"ts": time.time(), "event": "worker_exited", "pid": pid, "status": status, "action": "restart"})
            time.sleep(0.1)
            spawn(slot)
    return 0


def warm_up(scorer) -> None:
    """Score one valid row before forking, so no worker pays for the first run's allocations."""
    row = {}
    for feature in scorer.schema.features:
        if feature.is_numeric:
            row[feature.name] = [feature.minimum if feature.minimum is not None else (feature.maximum or 0)]
        else:
            row[feature.name] = [feature.categories[0]]
    predictor.predict_fn(scorer.schema.coerce_columns(row), scorer)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        max_payload = predictor.max_payload_bytes()
        graceful = graceful_seconds()
        capture = data_capture.from_environment()
        scorer = predictor.model_fn(args.model_dir)
        warm_up(scorer)
    except (ArtifactError, SchemaError, ValueError) as exc:
        log({"ts": time.time(), "level": "error", "event": "startup_failed", "error": str(exc)})
        print(f"serve.py: cannot start: {exc}", file=sys.stderr)
        return 1
    sock = bind(args.host, args.port)
    app = InferenceApp(
        scorer,
        max_payload_bytes=max_payload,
        workers=args.workers,
        package_version=os.environ.get("MODEL_PACKAGE_VERSION"),
        capture=capture,
    )
    log(
        {
            "ts": time.time(),
            "level": "info",
            "event": "serving",
            "host": args.host,
            "port": sock.getsockname()[1],
            "workers": args.workers,
            "model_version": scorer.model_version,
            "model_dir": str(args.model_dir),
            "data_capture": str(capture.root) if capture else None,
        }
    )
    config = server_config(app, graceful)
    # Everything loaded so far lives as long as the process: keep the garbage collector from scanning it on
    # every full collection (a latency spike) and from touching its pages, which forked workers then share.
    gc.collect()
    gc.freeze()
    if args.workers == 1:
        run_worker(config, sock, ConnectionCounts(1), 0)
        return 0
    return supervise(config, sock, args.workers)


if __name__ == "__main__":
    sys.exit(main())
