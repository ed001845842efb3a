"""What the serving targets leave room for: floors under the generated server's CPU per request.

    python benchmarks/floors.py [--problem-type regression] [--rounds 3] [--duration 10] [--out DIR]

compare_serving.py compares the two stacks and splits the generated server's CPU per request into SageMaker's
handlers and the rest. This script measures, on the same machine, model and request bodies, what no change to
the generated app removes, and sets each figure against the CPU per request the throughput targets allow: the
reference stack's, measured in the same run (the least of --rounds runs: noise only adds CPU, and the least
gives the strictest budget), divided by 50 for one row and by 5 for 1000 rows.

- the HTTP server: uvicorn with httptools and uvloop, two workers, answering every request with a fixed body
  from an ASGI app that does nothing else, under the same wrk load as the single-row figure;
- the handlers (input_fn, predict_fn, output_fn) on the same bodies, timed in this process;
- the model alone on 1000 rows already encoded: the fitted estimator scored by onnxruntime (what the image
  runs, one thread) and by scikit-learn, and, when treelite, tl2cgen and a C compiler are installed, by the
  same trees compiled to native code;
- parsing: numpy turning 1000 decimal strings of a numeric column into float64, the floor of input_fn for each
  numeric column;

and what each leaves for the rest of a request. Prints a table and writes floors.json and floors.md to --out
(default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import compare_serving  # this folder is on sys.path when the script runs

HERE = Path(__file__).resolve().parent
FIXED_BODY = b"yes,0.064992,0.935008\n"
EMPTY_APP = f'''
BODY = {FIXED_BODY!r}
HEADERS = [(b"content-type", b"text/csv"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    """Reads the request and answers a fixed body: all the HTTP server does, none of the model server."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({{"type": "http.response.start", "status": 200, "headers": HEADERS}})
    await send({{"type": "http.response.body", "body": BODY}})
'''


def best_ms(call) -> float:
    """Milliseconds per call, the best of 7 batches of about 0.1 s each (the generated bench.best_ms)."""
    from model.inference import bench

    return bench.best_ms(call, seconds=0.1, repeats=7)


def empty_app_cpu(bench, work: Path, body: bytes, load: dict) -> dict:
    """Server CPU per request of uvicorn (httptools, uvloop, 2 workers) serving an app that does nothing."""
    (work / "empty_app.py").write_text(EMPTY_APP)

    def start(port: int):
        from model.inference.local_server import LocalServer

        command = [sys.executable, "-m", "uvicorn", "empty_app:app", "--app-dir", str(work)]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--http", "httptools"]
        command += ["--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
        return LocalServer(command, work / "empty_app.log", port=port, start_timeout=bench.PING_TIMEOUT)

    from model.inference.local_server import free_port

    server = start(free_port())
    try:
        bench.measure_load(server, body, **{**load, "duration": 1, "requests": 200})  # warm-up
        return bench.measure_load(server, body, **load)
    finally:
        server.stop()


def encoded_rows(joblib_dir: Path, project: Path, data_path: Path, n: int):
    """The reference's fitted pipeline split into its preprocessing and its estimator, and n encoded rows."""
    import joblib
    import numpy as np
    from model.common.data_contract import Schema
    from model.train import dataset

    pipeline = joblib.load(joblib_dir / "model.joblib")
    schema = Schema.load(project / "model" / "config" / "schema.json")
    data = dataset.load(schema, data_path, require_sensitive=False)
    frame = schema.to_frame(data.columns).iloc[:n]
    encoded = pipeline[:-1].transform(frame)
    encoded = encoded.toarray() if hasattr(encoded, "toarray") else np.asarray(encoded)
    return pipeline[-1], np.ascontiguousarray(encoded, dtype=np.float32)


def model_floors(estimator, rows) -> dict[str, float | str]:
    """ms to score the encoded rows: onnxruntime (one thread, as serve.py), scikit-learn, native code."""
    import onnxruntime
    from skl2onnx import to_onnx

    classifier = hasattr(estimator, "predict_proba")
    score = estimator.predict_proba if classifier else estimator.predict
    out: dict[str, float | str] = {"scikit-learn": best_ms(lambda: score(rows))}
    graph = to_onnx(estimator, rows[:1], options={id(estimator): {"zipmap": False}} if classifier else None)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    out["onnxruntime"] = best_ms(lambda: session.run(None, {name: rows}))
    out["compiled trees (treelite + tl2cgen)"] = compiled_trees_ms(estimator, rows)
    return out


def compiled_trees_ms(estimator, rows) -> float | str:
    try:
        import tl2cgen
        import treelite
    except ImportError:
        return "not measured: pip install treelite tl2cgen"
    if shutil.which("gcc") is None:
        return "not measured: no C compiler (gcc)"
    try:
        model = treelite.sklearn.import_model(estimator)
    except Exception as exc:  # treelite takes tree ensembles only
        return f"not measured: {type(exc).__name__}: {str(exc)[:80]}"
    with tempfile.TemporaryDirectory() as tmp:
        library = Path(tmp) / "trees.so"
        tl2cgen.export_lib(model, toolchain="gcc", libpath=str(library), params={"parallel_comp": 2})
        predictor = tl2cgen.Predictor(str(library), nthread=1)
        return best_ms(lambda: predictor.predict(tl2cgen.DMatrix(rows)))


def parse_floor_ms(body: bytes, numeric_positions: list[int]) -> float:
    """Best time over the numeric columns for numpy to turn one column's 1000 strings into float64."""
    import numpy as np

    lines = body.decode().splitlines()
    # Empty fields are missing values: input_fn hands them to numpy as None (NaN), as here.
    columns = [[line.split(",")[i] or None for line in lines] for i in numeric_positions]
    return min(best_ms(lambda c=column: np.array(c, dtype=np.float64)) for column in columns)


def table(rows: list[tuple[str, float | str, float | None]]) -> str:
    lines = ["| floor | ms per request | allowed by the target | share of it |", "| --- | --- | --- | --- |"]
    for name, value, allowed in rows:
        if isinstance(value, str):
            lines.append(f"| {name} | {value} | | |")
            continue
        share = f"{100 * value / allowed:.0f} %" if allowed else ""
        budget = f"{allowed:.{3 if allowed < 1 else 2}f}" if allowed else ""
        lines.append(f"| {name} | {value:.{3 if abs(value) < 1 else 2}f} | {budget} | {share} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    compare_serving.add_load_options(parser)
    parser.add_argument("--rounds", type=int, default=3, help="reference runs; its least CPU sets the budget")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where floors.json/.md go")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    load = compare_serving.load_settings(args)

    with tempfile.TemporaryDirectory(prefix="serving-floors-") as tmp:
        work = Path(tmp)
        prepared = compare_serving.prepare(args.problem_type, work)
        from model.inference import bench

        onnx_dir, joblib_dir, schema = prepared.onnx_dir, prepared.joblib_dir, prepared.schema
        single, batch = prepared.single, prepared.batch
        print("reference stack ...", file=sys.stderr, flush=True)
        reference_start = compare_serving.reference_command(bench, joblib_dir, 2, work / "reference.log")
        runs = [
            bench.benchmark(reference_start, single, batch, **load, cold_starts=1) for _ in range(args.rounds)
        ]
        print("uvicorn with an empty app ...", file=sys.stderr, flush=True)
        empty = empty_app_cpu(bench, work, single, load)
        print("handlers, model, parsing ...", file=sys.stderr, flush=True)
        handlers = bench.handlers_by_load(onnx_dir, single, batch)
        estimator, rows = encoded_rows(joblib_dir, prepared.project, prepared.data_path, 1000)
        models = model_floors(estimator, rows)
        numeric = [i for i, f in enumerate(schema["features"]) if f["type"] != "categorical"]
        parse = parse_floor_ms(batch, numeric) if numeric else 0.0

    # The reference at its cheapest: noise only adds CPU, and the least CPU gives the strictest budget.
    cpu = {
        load: min(r[load]["server_cpu_ms_per_request"] for r in runs) for load in ("single_row", "rows_1000")
    }
    one = cpu["single_row"] / compare_serving.TARGETS["single_row_cpu_ratio"][1]
    many = cpu["rows_1000"] / compare_serving.TARGETS["rows_1000_cpu_ratio"][1]
    http_floor = empty["server_cpu_ms_per_request"]
    single_handlers = sum(handlers["single_row"].values())
    scored = models["onnxruntime"] + parse * len(numeric)
    rows_out = [
        ("one row: uvicorn + httptools + uvloop, empty app (server CPU)", http_floor, one),
        ("one row: input_fn + predict_fn + output_fn (in process)", single_handlers, one),
        ("one row: the two together", http_floor + single_handlers, one),
        ("one row: left for routing, headers, request id, log line", one - http_floor - single_handlers, one),
        *((f"1000 rows: the model alone, {name}", value, many) for name, value in models.items()),
        (f"1000 rows: numpy float parsing x {len(numeric)} numeric columns", parse * len(numeric), many),
        ("1000 rows: onnxruntime and float parsing together", scored, many),
        ("1000 rows: left for CSV split, categories, tensors, output, HTTP", many - scored, many),
        ("1000 rows: input_fn today (in process)", handlers["rows_1000"]["input_fn"], many),
    ]
    markdown = table(rows_out)
    note = (
        f"Reference stack's CPU per request in this run: {cpu['single_row']:.2f} ms (one row), "
        f"{cpu['rows_1000']:.1f} ms (1000 rows), the least of {args.rounds} runs; allowed: that / 50, / 5."
    )
    print(markdown + "\n\n" + note)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "problem_type": args.problem_type,
        "load": {**load, "client": empty["client"]},
        "reference": runs,
        "empty_app": empty,
        "handlers_ms": handlers,
        "model_ms_1000_rows": models,
        "float_parse_ms_per_column_1000_rows": parse,
        "allowed_ms": {"single_row": one, "rows_1000": many},
    }
    (args.out / "floors.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "floors.md").write_text(
        f"# Serving floors ({summary['measured_at']}, {args.problem_type})\n\n{markdown}\n\n{note}\n"
    )
    print(f"wrote {args.out / 'floors.json'} and {args.out / 'floors.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
