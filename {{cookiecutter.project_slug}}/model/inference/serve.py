"""The SageMaker hosting contract: `python -m model.inference.serve serve` answers /ping, /invocations and
/execution-parameters.

A raw ASGI app on uvicorn (httptools parser, uvloop when installed). The parent process imports everything,
verifies and loads the artifact once and binds the port, then forks one worker per core: workers start in
milliseconds and share the loaded pages. SIGTERM reaches every worker, which stops accepting connections,
finishes the requests in flight and exits; the parent then exits 0.

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
import contextlib
import gc
import json
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


def log(record: dict) -> None:
    """One JSON line on stdout, written with one system call so lines from several workers never interleave."""
    os.write(1, (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode())


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
        inference_id = headers.get(b"x-amzn-sagemaker-inference-id", b"").decode("latin-1") or uuid.uuid4().hex
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
        log(entry)

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


def run_worker(config: uvicorn.Config, sock: socket.socket) -> None:
    server = uvicorn.Server(config)

    def request_exit(signum, frame) -> None:
        server.should_exit = True

    # uvicorn installs its own handlers while serving and re-raises the signal once drained; this handler
    # underneath turns that re-raise (and a signal that arrives before uvicorn is listening) into a clean exit 0.
    for signum in STOP_SIGNALS:
        signal.signal(signum, request_exit)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    server.run(sockets=[sock])


def supervise(config: uvicorn.Config, sock: socket.socket, workers: int) -> int:
    """Fork the workers and keep them running until SIGTERM/SIGINT, which is passed on to each of them."""
    children: set[int] = set()
    stopping = False

    def spawn() -> None:
        # Signals stay blocked across fork until the child has its own handlers (see run_worker).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_worker(config, sock)
            except BaseException as exc:  # report anything, then leave without running the parent's cleanup
                log({"ts": time.time(), "event": "worker_failed", "error": f"{type(exc).__name__}: {exc}"})
                code = 1
            os._exit(code)
        children.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        spawn()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if not stopping:
            log({"ts": time.time(), "event": "worker_exited", "pid": pid, "status": status, "action": "restart"})
            time.sleep(0.1)
            spawn()
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
        run_worker(config, sock)
        return 0
    return supervise(config, sock, args.workers)


if __name__ == "__main__":
    sys.exit(main())
