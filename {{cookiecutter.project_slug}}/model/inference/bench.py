"""Load-test the inference server over loopback: throughput, latency percentiles, cold start, peak RSS, install size.

    python -m model.inference.bench [--model-dir DIR] [--duration 10] [--connections 8] [--json out.json]

It starts serve.py on 127.0.0.1 exactly as the container does, then runs a bounded load for single-row and
1000-row CSV requests: with wrk (and a small Lua script for the POST body) when it is installed, otherwise with
the built-in keep-alive client (a fixed number of requests over a fixed number of connections). Latency is
reported as p50, p99, p99.9 and the largest (max): the tail is where a shared machine, a stalled worker or an
uneven spread of connections shows. Cold start is the median over a few starts of the time from process start to
the first 200 on /ping. Peak RSS is each server process's own peak as the kernel records it (VmHWM), summed, so
nothing samples the server under load; PSS is read between loads. The install size is that of
`pip install --no-compile` of requirements.txt into a cached folder, before and after the pruning the Dockerfile
does.

It also says where the server's CPU per request goes: SageMaker's handlers (input_fn, predict_fn, output_fn) are
timed in this process on the same two bodies and the same artifact, and the rest of the measured CPU per request
is the HTTP server, the kernel and the log line. A model that is slow to score shows in predict_fn, a wide table in
input_fn. Figures from a shared or busy machine are noisy: compare runs made on the same machine, back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

from model.common import paths
from model.inference import predictor, serve
from model.inference.local_server import LocalServer, free_port

HERE = Path(__file__).resolve().parent
ROOT = paths.REPO_ROOT
BUILD = ROOT / "build" / "bench"
PING_TIMEOUT = 30.0
# What the Dockerfile removes after `pip install` (test suites and onnxruntime's offline tooling).
IMAGE_PRUNED = ("numpy/**/tests", "onnxruntime/quantization", "onnxruntime/transformers", "onnxruntime/tools")
PERCENTILES = (("p50_ms", 50), ("p99_ms", 99), ("p999_ms", 99.9))
HANDLERS = ("input_fn", "predict_fn", "output_fn")
LOADS = (("single_row", "single-row"), ("rows_1000", "1000-row"))
# wrk's summary prints only a few fixed percentiles: this hook prints the ones above and the maximum, in microseconds.
WRK_DONE = (
    "done = function(summary, latency, requests)\n"
    '  io.write(string.format("LATENCY_US %d %d %d %d\\n", '
    + ", ".join(f"latency:percentile({q})" for _, q in PERCENTILES)
    + ", latency.max))\n"
    "end"
)


# ------------------------------------------------------------------------------------------------ servers
def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mb(pids: list[int]) -> tuple[float, float]:
    """(RSS, PSS) summed over the processes, in MiB; PSS counts pages shared after fork once."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, pss / 1024


def peak_rss_by_process_mb(pids: list[int]) -> dict[int, float]:
    """Each process's largest resident set so far (VmHWM in /proc/<pid>/status), in MiB.

    The kernel keeps this peak, so nothing has to sample a server while it is under load: reading PSS walks a
    process's page tables and stalls it, and a 50 ms PSS sampler raised the single-row p99 of the generated server
    from 0.34 to 2.5 ms at one connection and from 1.6 to 4.7 ms at eight (benchmarks/README.md).
    """
    peaks = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "")
        if line:
            peaks[pid] = int(line.split()[1]) / 1024
    return peaks


# -------------------------------------------------------------------------------------------------- load
def run_load(
    port: int,
    body: bytes,
    *,
    connections: int,
    duration: float,
    requests: int,
    use_wrk: bool,
    content_type: str = "text/csv",
    accept: str = "text/csv",
) -> dict:
    headers = {"Content-Type": content_type, "Accept": accept}
    if use_wrk and shutil.which("wrk"):
        return _wrk(port, body, headers, connections, duration)
    return asyncio.run(_keep_alive_load(port, body, headers, connections, requests))


def _wrk(port: int, body: bytes, headers: dict, connections: int, duration: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body)}"]
        lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
        script.write_text("\n".join([*lines, WRK_DONE]) + "\n")
        out = subprocess.run(
            [
                "wrk",
                "-t1",  # one load thread: on a small machine every core wrk takes is one the server loses
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/invocations",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        ).stdout
    microseconds = re.search(r"^LATENCY_US ([\d ]+)$", out, re.MULTILINE).group(1).split()
    names = [name for name, _ in PERCENTILES] + ["max_ms"]
    latency = {name: int(us) / 1000 for name, us in zip(names, microseconds, strict=True)}
    done = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "client": "wrk",
        "requests": int(done.group(1)) if done else 0,
        "throughput_rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        **latency,
        "errors": (int(errors.group(1)) if errors else 0)
        + (sum(int(g) for g in socket_errors.groups()) if socket_errors else 0),
    }


def _lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{b:03d}" if b < 32 or b in (34, 92) or b > 126 else chr(b) for b in data) + '"'


async def _keep_alive_load(port: int, body: bytes, headers: dict, connections: int, requests: int) -> dict:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    message = (f"POST /invocations HTTP/1.1\r\nHost: bench\r\n{head}Content-Length: {len(body)}\r\n\r\n").encode()
    message += body
    latencies: list[float] = []
    errors = 0
    remaining = requests

    async def client() -> None:
        nonlocal remaining, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                writer.write(message)
                status_and_headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = re.search(rb"(?i)content-length: (\d+)", status_and_headers)
                await reader.readexactly(int(length.group(1)) if length else 0)
                latencies.append(time.perf_counter() - started)
                if not status_and_headers.startswith(b"HTTP/1.1 200"):
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "client": "built-in",
        "requests": len(latencies),
        "throughput_rps": len(latencies) / elapsed,
        **{name: percentile(latencies, q) * 1000 for name, q in PERCENTILES},
        "max_ms": latencies[-1] * 1000,
        "errors": errors,
    }


def percentile(ordered: list[float], q: float) -> float:
    """The value below which q percent of the ordered values lie (nearest rank)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


# ---------------------------------------------------------------------------------------------- figures
def measure_load(server, body: bytes, *, connections: int, duration: float, requests: int, use_wrk: bool) -> dict:
    """One load run on a running LocalServer: run_load's figures plus the server's CPU per request."""
    pids = server.pids()
    before = cpu_seconds(pids)
    result = run_load(server.port, body, connections=connections, duration=duration, requests=requests, use_wrk=use_wrk)
    # CPU per request depends far less than throughput on what else the machine runs.
    result["server_cpu_ms_per_request"] = (cpu_seconds(pids) - before) * 1000 / max(1, result["requests"])
    return result


def benchmark(
    start,
    single_row: bytes,
    batch: bytes,
    *,
    connections: int,
    duration: float,
    requests: int,
    use_wrk: bool,
    cold_starts: int = 5,
) -> dict:
    """`start(port)` returns a running LocalServer; the same figures for any stack, so stacks compare like for like."""
    starts = []
    for _ in range(cold_starts):
        server = start(free_port())
        starts.append(server.ready_seconds)
        server.stop()
    server = start(free_port())
    try:
        figures = {"cold_start_s": statistics.median(starts), "cold_start_runs_s": starts}

        def measure(body: bytes, connections: int, duration: float, requests: int) -> dict:
            return measure_load(
                server, body, connections=connections, duration=duration, requests=requests, use_wrk=use_wrk
            )

        measure(single_row, connections, 1, 200)  # warm-up
        figures["single_row"] = measure(single_row, connections, duration, requests)
        pss = memory_mb(server.pids())[1]  # between loads, never during one (see peak_rss_by_process_mb)
        # One request at a time: the latency of a request itself, without queueing behind the others.
        figures["single_row_one_connection"] = measure(single_row, 1, duration / 2, requests // 4)
        figures["rows_1000"] = measure(batch, connections, duration, max(50, requests // 20))
        pss = max(pss, memory_mb(server.pids())[1])
        # The sum of each process's own peak: at least the peak of the sum (the peaks need not coincide).
        figures["peak_rss_mb"] = sum(peak_rss_by_process_mb(server.pids()).values())
        figures["peak_pss_mb"] = pss
        figures["processes"] = len(server.pids())
    finally:
        server.stop()
    return figures


def handler_ms(model_dir: Path, body: bytes, *, seconds: float = 0.05, repeats: int = 5) -> dict[str, float]:
    """Milliseconds each SageMaker handler takes on one CSV request body, timed in this process.

    Each handler runs in batches of about `seconds`; the best batch of `repeats` counts (noise only adds time).
    """
    scorer = predictor.model_fn(str(model_dir))
    columns = predictor.input_fn(body, "text/csv", scorer.schema)
    predictions = predictor.predict_fn(columns, scorer)
    calls = {
        "input_fn": lambda: predictor.input_fn(body, "text/csv", scorer.schema),
        "predict_fn": lambda: predictor.predict_fn(columns, scorer),
        "output_fn": lambda: predictor.output_fn(predictions, "text/csv"),
    }
    return {name: best_ms(calls[name], seconds=seconds, repeats=repeats) for name in HANDLERS}


def handlers_by_load(model_dir: Path, single_row: bytes, batch: bytes) -> dict[str, dict[str, float]]:
    """handler_ms for the single-row and the 1000-row body, keyed like the load figures (LOADS)."""
    return {"single_row": handler_ms(model_dir, single_row), "rows_1000": handler_ms(model_dir, batch)}


def best_ms(call, *, seconds: float, repeats: int) -> float:
    """Milliseconds per call: the best of `repeats` batches of about `seconds` each (noise only adds time)."""
    timer = timeit.Timer(call)
    number = max(1, int(seconds / max(timer.timeit(1), 1e-7)))
    return min(timer.repeat(repeats, number)) / number * 1000


def cpu_breakdown(figures: dict) -> dict[str, dict[str, float]]:
    """Per load: each handler's ms, the rest of the measured server CPU per request (HTTP server, kernel, log
    line; never below 0) and that CPU itself."""
    out = {}
    for load, _ in LOADS:
        handlers = figures["handlers_ms"][load]
        cpu = figures[load]["server_cpu_ms_per_request"]
        out[load] = {**handlers, "rest": max(0.0, cpu - sum(handlers.values())), "server_cpu": cpu}
    return out


def install_size(requirements: Path, cache: Path = BUILD) -> dict:
    """Size of `pip install --no-compile -r requirements` (cached by content), and after the image's pruning."""
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    record = cache / f"install-{key}.json"
    if record.exists():
        return json.loads(record.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--target",
                tmp,
                "-r",
                str(requirements),
            ],
            check=True,
            timeout=900,
        )
        site = Path(tmp)
        installed = _tree_size(site)
        for pattern in IMAGE_PRUNED:
            for path in site.glob(pattern):
                shutil.rmtree(path, ignore_errors=True)
        pruned = _tree_size(site)
    figures = {
        "pip_install_mb": installed / 2**20,
        "image_site_packages_mb": pruned / 2**20,
        "requirements": str(requirements.name),
    }
    record.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# ------------------------------------------------------------------------------------------------ inputs
def csv_rows(schema: dict, data_path: Path | None, n: int) -> list[str]:
    """n CSV lines in schema order: taken from the data set when there is one, else built from the schema."""
    names = [f["name"] for f in schema["features"]]
    rows: list[str] = []
    if data_path is not None and data_path.exists():
        with open(data_path, newline="", encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                rows.append(",".join(record[name] for name in names))
                if len(rows) == n:
                    break
    if not rows:
        rows = [
            ",".join(
                str(f.get("minimum", 0)) if f["type"] != "categorical" else f["categories"][0]
                for f in schema["features"]
            )
        ]
    return [rows[i % len(rows)] for i in range(n)]


def ensure_model(model_dir: Path | None) -> Path:
    """The model to serve: the one given, else the one `make serve` or `make bench` exported from the registry."""
    if model_dir is not None:
        return model_dir
    exported = ROOT / "build" / "serving" / "model"
    if (exported / "metadata.json").exists():
        return exported
    raise SystemExit(
        "bench: no model to serve. Register one with `make pipeline` and run `make bench` (it exports the latest "
        "registered version), or pass --model-dir DIR (a trained model folder with metadata.json)."
    )


def serve_command(model_dir: Path, workers: int | None):
    python = os.environ.get("INFERENCE_PYTHON") or sys.executable  # `make bench`: the inference image's environment

    def start(port: int) -> LocalServer:
        command = serve.local_command(python, model_dir, port, workers)
        return LocalServer(command, BUILD / "serve.log", port=port, start_timeout=PING_TIMEOUT, append=True)

    return start


def latencies(figures: dict, digits: int) -> str:
    """'p50 / p99 / p99.9 / max ms' of one load run."""
    values = [figures[name] for name, _ in PERCENTILES] + [figures["max_ms"]]
    return " / ".join(f"{value:.{digits}f}" for value in values) + " ms"


def print_table(figures: dict) -> None:
    single, batch, alone = figures["single_row"], figures["rows_1000"], figures["single_row_one_connection"]
    lines = [
        ("single-row throughput", f"{single['throughput_rps']:.0f} req/s"),
        ("single-row p50 / p99 / p99.9 / max", latencies(single, 2)),
        ("  at 1 connection", f"{latencies(alone, 2)}, {alone['throughput_rps']:.0f} req/s"),
        ("1000-row throughput", f"{batch['throughput_rps']:.1f} req/s ({batch['throughput_rps'] * 1000:.0f} rows/s)"),
        (
            "server CPU per request",
            f"{single['server_cpu_ms_per_request']:.2f} ms single-row, "
            f"{batch['server_cpu_ms_per_request']:.1f} ms 1000-row",
        ),
        ("1000-row p50 / p99 / p99.9 / max", latencies(batch, 1)),
        ("cold start (median)", f"{figures['cold_start_s'] * 1000:.0f} ms"),
        (
            "peak RSS / PSS",
            f"{figures['peak_rss_mb']:.0f} / {figures['peak_pss_mb']:.0f} MiB ({figures['processes']} processes)",
        ),
        ("errors", str(single["errors"] + batch["errors"] + alone["errors"])),
    ]
    if "install" in figures:
        size = figures["install"]
        lines.append(
            (
                "install size",
                f"{size['pip_install_mb']:.0f} MiB pip, {size['image_site_packages_mb']:.0f} MiB in the image",
            )
        )
    width = max(len(name) for name, _ in lines)
    print(f"load: {single['client']} client, {figures['connections']} connections")
    for name, value in lines:
        print(f"  {name:<{width}}  {value}")
    if "handlers_ms" in figures:
        print_breakdown(cpu_breakdown(figures))


def print_breakdown(breakdown: dict[str, dict[str, float]]) -> None:
    columns = [*HANDLERS, "rest", "server_cpu"]
    print(
        "where the server CPU per request goes, in ms (handlers timed in this process; rest: HTTP server, "
        "kernel, log line)"
    )
    print(f"  {'':<10}" + "".join(f"{name:>12}" for name in columns))
    for load, label in LOADS:
        digits = 3 if load == "single_row" else 2
        print(f"  {label:<10}" + "".join(f"{breakdown[load][name]:>12.{digits}f}" for name in columns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="artifact to serve (default: build/serving/model, the export)")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "sample.csv", help="rows to send")
    parser.add_argument("--workers", type=int, help="server workers (default: serve.py's, one per core)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--requests", type=int, default=20000, help="single-row requests for the built-in client")
    parser.add_argument("--no-wrk", action="store_true", help="use the built-in client even when wrk is installed")
    parser.add_argument("--skip-install-size", action="store_true", help="do not measure requirements.txt")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    BUILD.mkdir(parents=True, exist_ok=True)
    model_dir = ensure_model(args.model_dir)
    schema = json.loads((model_dir / "schema.json").read_text())
    single = (csv_rows(schema, args.data, 1)[0] + "\n").encode()
    batch = ("\n".join(csv_rows(schema, args.data, 1000)) + "\n").encode()
    figures = benchmark(
        serve_command(model_dir, args.workers),
        single,
        batch,
        connections=args.connections,
        duration=args.duration,
        requests=args.requests,
        use_wrk=not args.no_wrk,
    )
    figures["connections"] = args.connections
    figures["handlers_ms"] = handlers_by_load(model_dir, single, batch)
    if not args.skip_install_size:
        figures["install"] = install_size(HERE / "requirements.txt")
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
