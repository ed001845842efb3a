"""Serve one fitted model two ways and compare: the generated repository's server vs AWS's sklearn stack.

    python benchmarks/compare_serving.py [--problem-type binary_classification] [--rounds 2] [--out DIR]

In one run it bakes the template, trains the generated project's pipeline on its sample data, exports that
ONE fitted pipeline twice (the ONNX artifact serve.py loads, and a joblib file for the reference stack),
starts both stacks on 127.0.0.1 and puts the same bounded load on each with the generated repository's own
bench.py: single-row and 1000-row CSV requests, server CPU per request, cold start, peak memory and install
size. The stacks take turns for --rounds rounds; the table shows each stack's best figures, the ratios are
medians of each round's ratio (both stacks of a round share the machine's noise). Prints the figures side by
side with the targets and writes summary.json and summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent
REFERENCE = HERE / "reference_stack"
UNTEMPLATED = (".git", "__pycache__", ".*_cache", ".cache", ".venv*", "build", "results")
TARGETS = {
    "single_row_throughput_ratio": (">=", 50.0),
    "single_row_cpu_ratio": (">=", 50.0),
    "p99_single_row_ms": ("<=", 2.0),
    "p99_single_row_one_connection_ms": ("<=", 1.0),
    "rows_1000_throughput_ratio": (">=", 5.0),
    "rows_1000_cpu_ratio": (">=", 5.0),
    "cold_start_s": ("<=", 0.5),
    "install_mb": ("<=", 150.0),
}


def bake(problem_type: str, dest: Path) -> Path:
    """Bake the working tree (local edits included) from a copy that leaves caches out."""
    from cookiecutter.main import cookiecutter

    source = dest / "template"
    shutil.copytree(TEMPLATE, source, ignore=shutil.ignore_patterns(*UNTEMPLATED))
    project = cookiecutter(
        str(source), no_input=True, output_dir=str(dest), extra_context={"problem_type": problem_type}
    )
    return Path(project)


def build_models(project: Path, work: Path) -> tuple[Path, Path, Path]:
    """Fit the project's pipeline once; write the ONNX artifact and the joblib model of that same object."""
    # The baked project's packages (model.*), imported from its root like its own `python -m` runs do.
    sys.path.insert(0, str(project))
    import joblib
    from model.common import model_artifact
    from model.common.data_contract import MISSING_CATEGORY, Schema
    from model.train import dataset, hyperparameters, train
    from model.train.preprocessing import build_pipeline

    data_path = work / "sample.csv"
    subprocess.run(
        [sys.executable, "-m", "model.common.sample_data", "--out", str(data_path)],
        check=True,
        cwd=project,
        timeout=300,
    )
    schema = Schema.load(project / "model" / "config" / "schema.json")
    params = hyperparameters.parse(
        json.loads((project / "model" / "config" / "hyperparameters.json").read_text())
    )
    data = dataset.load(schema, data_path, require_sensitive=False)
    pipeline = build_pipeline(schema, params).fit(schema.to_frame(data.columns), data.target)
    model_bytes, model_format, extra = train.serialise(pipeline, schema, params, data.columns)
    onnx_dir = work / "onnx-model"
    model_artifact.write_artifact(
        onnx_dir,
        model_bytes=model_bytes,
        model_format=model_format,
        schema=schema,
        metadata={"created_at": datetime.now(UTC).isoformat(timespec="seconds"), **extra},
    )
    joblib_dir = work / "joblib-model"
    joblib_dir.mkdir()
    joblib.dump(pipeline, joblib_dir / "model.joblib")
    contract = {
        "feature_names": schema.feature_names,
        "numeric": [f.name for f in schema.features if f.is_numeric],
        "classes": list(schema.classes),
        "missing_category": MISSING_CATEGORY,
    }
    (joblib_dir / "contract.json").write_text(json.dumps(contract, indent=2) + "\n")
    return onnx_dir, joblib_dir, data_path


def reference_command(bench, model_dir: Path, workers: int, log_path: Path):
    from model.inference.local_server import LocalServer  # the generated repository's server harness

    def start(port: int):
        command = [
            sys.executable,
            str(REFERENCE / "serve.py"),
            "--model-dir",
            str(model_dir),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        return LocalServer(command, log_path, port=port, start_timeout=bench.PING_TIMEOUT, append=True)

    return start


def best(rounds: list[dict]) -> dict:
    """Each figure at its best across rounds: the machine's noise only ever makes a figure worse."""
    top = max(rounds, key=lambda r: r["single_row"]["throughput_rps"])
    batch = max(rounds, key=lambda r: r["rows_1000"]["throughput_rps"])
    return {
        "single_row": top["single_row"],
        "rows_1000": batch["rows_1000"],
        "single_row_one_connection": min(
            (r["single_row_one_connection"] for r in rounds), key=lambda figures: figures["p99_ms"]
        ),
        "cold_start_s": min(r["cold_start_s"] for r in rounds),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds),
        "peak_pss_mb": max(r["peak_pss_mb"] for r in rounds),
        "processes": top["processes"],
    }


def paired_ratio(
    ours: list[dict], reference: list[dict], load: str, figure: str, invert: bool = False
) -> float:
    """Median over rounds of each round's ratio: a round runs both stacks back to back, in the same noise."""
    ratios = [o[load][figure] / r[load][figure] for o, r in zip(ours, reference, strict=True)]
    return statistics.median([1 / x for x in ratios] if invert else ratios)


def compare(ours: dict, reference: dict, rounds: dict) -> dict:
    mine, theirs = rounds["generated"], rounds["reference"]
    ratios = {
        "single_row_throughput_ratio": paired_ratio(mine, theirs, "single_row", "throughput_rps"),
        "single_row_cpu_ratio": paired_ratio(
            mine, theirs, "single_row", "server_cpu_ms_per_request", invert=True
        ),
        "p99_single_row_ms": ours["single_row"]["p99_ms"],
        "p99_single_row_one_connection_ms": ours["single_row_one_connection"]["p99_ms"],
        "rows_1000_throughput_ratio": paired_ratio(mine, theirs, "rows_1000", "throughput_rps"),
        "rows_1000_cpu_ratio": paired_ratio(
            mine, theirs, "rows_1000", "server_cpu_ms_per_request", invert=True
        ),
        "cold_start_s": ours["cold_start_s"],
        "install_mb": ours["install"]["pip_install_mb"],
    }
    verdicts = {}
    for name, (direction, target) in TARGETS.items():
        value = ratios[name]
        verdicts[name] = {
            "value": value,
            "target": f"{direction} {target:g}",
            "met": value >= target if direction == ">=" else value <= target,
        }
    return verdicts


def latencies(figures: dict, digits: int) -> str:
    values = [figures["p50_ms"], figures["p99_ms"], figures["p999_ms"], figures["max_ms"]]
    return " / ".join(f"{value:.{digits}f}" for value in values) + " ms"


def column(figures: dict) -> list[str]:
    """One stack's figures as table cells, in the order of ROWS."""
    single, batch, install = figures["single_row"], figures["rows_1000"], figures["install"]
    alone = figures["single_row_one_connection"]
    size = f"{install['pip_install_mb']:.0f} MiB"
    if "image_site_packages_mb" in install:
        size += f" ({install['image_site_packages_mb']:.0f} after the image's pruning)"
    return [
        f"{single['throughput_rps']:.0f} req/s",
        latencies(single, 2),
        latencies(alone, 2),
        f"{batch['throughput_rps']:.1f} req/s",
        latencies(batch, 1),
        f"{single['server_cpu_ms_per_request']:.2f} / {batch['server_cpu_ms_per_request']:.1f} ms",
        f"{figures['cold_start_s'] * 1000:.0f} ms",
        f"{figures['peak_rss_mb']:.0f} / {figures['peak_pss_mb']:.0f} MiB ({figures['processes']} processes)",
        size,
        str(single["errors"] + batch["errors"] + alone["errors"]),
    ]


ROWS = [
    "single-row throughput",
    "single-row p50 / p99 / p99.9 / max",
    "single-row p50 / p99 / p99.9 / max, 1 connection",
    "1000-row throughput",
    "1000-row p50 / p99 / p99.9 / max",
    "server CPU per request, single / 1000 rows",
    "cold start (median of 5)",
    "peak RSS / PSS",
    "install size (pip, no bytecode)",
    "errors",
]


def table(ours: dict, reference: dict, verdicts: dict) -> str:
    lines = [
        "| figure | generated repository | reference stack |",
        "| --- | --- | --- |",
        *(
            f"| {name} | {a} | {b} |"
            for name, a, b in zip(ROWS, column(ours), column(reference), strict=True)
        ),
        "",
        "| target | measured | target | met |",
        "| --- | --- | --- | --- |",
    ]
    for name, verdict in verdicts.items():
        lines.append(
            f"| {name} | {verdict['value']:.2f} | {verdict['target']} | {'yes' if verdict['met'] else 'NO'} |"
        )
    return "\n".join(lines)


CPU_TARGETS = {"single_row": "single_row_cpu_ratio", "rows_1000": "rows_1000_cpu_ratio"}


def breakdown_table(bench, ours: dict, reference: dict) -> str:
    """Where the generated server's CPU per request goes, next to the CPU the target ratio allows it."""
    breakdown = bench.cpu_breakdown(ours)
    names = [*bench.HANDLERS, "rest", "server_cpu"]
    lines = [
        "| load | " + " | ".join(names) + " | allowed by the target |",
        "| --- " * (len(names) + 2) + "|",
    ]
    for load, label in bench.LOADS:
        digits = 3 if load == "single_row" else 2
        ratio = TARGETS[CPU_TARGETS[load]][1]
        allowed = reference[load]["server_cpu_ms_per_request"] / ratio
        cells = [f"{breakdown[load][name]:.{digits}f}" for name in names]
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {allowed:.{digits}f} (reference / {ratio:g}) |"
        )
    return "\n".join(lines)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The options this script and floors.py share: which model to bake and the load to put on it."""
    parser.add_argument(
        "--problem-type",
        default="binary_classification",
        choices=["binary_classification", "multiclass_classification", "regression"],
    )
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument(
        "--no-wrk", action="store_true", help="use bench.py's built-in client even if wrk exists"
    )


def load_settings(args: argparse.Namespace) -> dict:
    """bench.benchmark's load keywords from the shared options."""
    return {
        "connections": args.connections,
        "duration": args.duration,
        "requests": 20000,
        "use_wrk": not args.no_wrk,
    }


@dataclass(frozen=True)
class Prepared:
    """A baked project with its model fitted once and exported both ways, and the two request bodies."""

    project: Path
    onnx_dir: Path
    joblib_dir: Path
    data_path: Path
    schema: dict
    single: bytes
    batch: bytes


def prepare(problem_type: str, work: Path) -> Prepared:
    """Bake, fit, export, and move into the baked root: serve.py runs as `python -m model.inference.serve`,
    which finds the package from there, and `model.inference.bench` imports from it afterwards."""
    project = bake(problem_type, work / "bake")
    onnx_dir, joblib_dir, data_path = build_models(project, work)
    os.chdir(project)
    from model.inference import bench  # the generated repository's own load tools

    schema = json.loads((onnx_dir / "schema.json").read_text())
    single = (bench.csv_rows(schema, data_path, 1)[0] + "\n").encode()
    batch = ("\n".join(bench.csv_rows(schema, data_path, 1000)) + "\n").encode()
    return Prepared(project, onnx_dir, joblib_dir, data_path, schema, single, batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_options(parser)
    parser.add_argument(
        "--workers", type=int, default=2, help="workers for each stack (default: %(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; each stack keeps its best")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where summary.json/.md go")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    load = load_settings(args)

    with tempfile.TemporaryDirectory(prefix="compare-serving-") as tmp:
        work = Path(tmp)
        prepared = prepare(args.problem_type, work)
        from model.inference import bench

        project, onnx_dir, joblib_dir = prepared.project, prepared.onnx_dir, prepared.joblib_dir
        single, batch = prepared.single, prepared.batch
        stacks = {
            "generated": bench.serve_command(onnx_dir, args.workers),
            "reference": reference_command(bench, joblib_dir, args.workers, work / "reference.log"),
        }
        rounds: dict[str, list[dict]] = {name: [] for name in stacks}
        for number in range(1, args.rounds + 1):
            for name, start in stacks.items():
                print(f"round {number}/{args.rounds}: {name} stack ...", file=sys.stderr, flush=True)
                rounds[name].append(bench.benchmark(start, single, batch, **load))
        ours, reference = best(rounds["generated"]), best(rounds["reference"])
        ours["install"] = bench.install_size(
            project / "model" / "inference" / "requirements.txt", HERE / ".cache"
        )
        reference["install"] = bench.install_size(REFERENCE / "requirements.txt", HERE / ".cache")
        reference["install"].pop("image_site_packages_mb")  # the pruning is the generated Dockerfile's
        ours["handlers_ms"] = bench.handlers_by_load(onnx_dir, single, batch)

        verdicts = compare(ours, reference, rounds)
        markdown = table(ours, reference, verdicts)
        markdown += (
            "\n\nWhere the generated server's CPU per request goes, in ms (SageMaker's handlers timed in one "
            "process on the same bodies; rest: HTTP server, kernel, log line):\n\n"
            + breakdown_table(bench, ours, reference)
        )
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "problem_type": args.problem_type,
        "load": {
            **load,
            "client": ours["single_row"]["client"],
            "rounds": args.rounds,
            "workers": args.workers,
        },
        "generated": ours,
        "reference": reference,
        "rounds": rounds,
        "targets": verdicts,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "summary.md").write_text(
        f"# Serving comparison ({summary['measured_at']}, {args.problem_type}, "
        f"{summary['machine']['cpus']} CPUs, {summary['load']['client']} client, "
        f"{args.connections} connections)\n\n{markdown}\n"
    )
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'summary.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    sys.exit(code)
