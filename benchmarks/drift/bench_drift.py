"""Benchmark the generated repo's drift job against Evidently's DataDriftPreset; check that it streams flat.

    python benchmarks/drift/bench_drift.py [--rows 1000000] [--baseline-rows 100000] [--features 20]
        [--evidently-python /path/to/python] [--flat-rows 10000000] [--skip-evidently] [--skip-flat]

Run 1 (head to head): a 100k-row baseline and 1M current rows of 20 numeric features (four of them shifted),
as Parquet. Each side runs in its own fresh process that reports its wall time and its peak extra memory
(peak RSS minus the RSS after its imports):
  ours      = the drift job on the Parquet file against a baseline folder written beforehand (as training
              does); the baseline build is timed too and reported apart, and in an "incl. baseline" ratio;
  evidently = read both files with pandas, Report([DataDriftPreset()]).run(reference, current).
Targets: ours >= 20x faster and <= 1/10 of Evidently's extra memory.

Run 2 (memory flatness): the drift job over 10M rows in Parquet row groups of 65,536; a sampler reads the
job process's RSS from /proc every 50 ms. Target: RSS <= 256 MB throughout.

Evidently pins pandas < 3 while the template uses pandas 3, so it can run under another interpreter
(--evidently-python); both sides read the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "{{cookiecutter.project_slug}}"
SHIFTED = {0: 0.5, 1: 0.3, 2: -0.4}  # feature index -> mean shift in standard deviations
SCALED = {3: 1.5}  # feature index -> scale factor
ROW_GROUP = 65_536
FLAT_LIMIT_MB = 256

# Both sides start alike: their resident memory before any work, then the clock.
PROLOGUE = r"""
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

start_rss = rss()
t0 = time.perf_counter()
"""

OURS = r"""
import json, resource, sys, time
import pyarrow.parquet as pq, numpy, datasketches, scipy.stats, matplotlib
from monitoring import drift_baseline as bl, drift_job
from model.common.data_contract import Schema
{prologue}schema = Schema.load("{work}/schema.json")
table = pq.read_table("{work}/baseline.parquet")
columns = {{n: table.column(n).combine_chunks() for n in schema.feature_names}}
bl.write_baseline(__import__("pathlib").Path("{work}/baseline"), schema,
                  __import__("pathlib").Path("{work}/schema.json"), bl.build_baseline(schema, columns))
del table, columns
t1 = time.perf_counter()
code = drift_job.main(["--baseline-dir", "{work}/baseline", "--input", "{work}/current.parquet",
                       "--output-dir", "{work}/out"])
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
violations = json.load(open("{work}/out/constraint_violations.json"))["violations"]
drifted = sorted(v["feature_name"] for v in violations)
print(json.dumps({{"baseline_seconds": t1 - t0, "job_seconds": t2 - t1, "start_rss_mb": start_rss,
                  "peak_rss_mb": peak, "exit_code": code, "drifted": drifted}}))
"""

EVIDENTLY = r"""
import json, resource, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
{prologue}reference = pd.read_parquet("{work}/baseline.parquet")
current = pd.read_parquet("{work}/current.parquet")
snapshot = Report([DataDriftPreset()]).run(reference_data=reference, current_data=current)
t1 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
drifted = []
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    is_drift = config.get("type", "").endswith("ValueDrift")
    if is_drift and float(metric["value"]) >= config.get("threshold", 0.1):
        drifted.append(config["column"])
print(json.dumps({{"job_seconds": t1 - t0, "start_rss_mb": start_rss, "peak_rss_mb": peak,
                  "drifted": sorted(drifted)}}))
"""


def write_data(work: Path, baseline_rows: int, rows: int, features: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"f{i}" for i in range(features)]
    schema = {
        "problem_type": "regression",
        "target": "y",
        "label_values_or_threshold": [0.0],
        "features": [{"name": n, "type": "float"} for n in names],
    }
    (work / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
    rng = np.random.default_rng(seed)

    def write(path: Path, total: int, drift: bool) -> None:
        arrow_schema = pa.schema([(n, pa.float64()) for n in names])
        with pq.ParquetWriter(path, arrow_schema) as writer:
            for start in range(0, total, ROW_GROUP):
                n = min(ROW_GROUP, total - start)
                block = rng.normal(size=(n, features))
                if drift:
                    for i, shift in SHIFTED.items():
                        block[:, i] += shift
                    for i, scale in SCALED.items():
                        block[:, i] *= scale
                writer.write_table(
                    pa.table({name: block[:, j] for j, name in enumerate(names)}, arrow_schema)
                )

    write(work / "baseline.parquet", baseline_rows, drift=False)
    write(work / "current.parquet", rows, drift=True)


def run_side(python: str, code: str, work: Path) -> dict:
    script = code.format(work=work, prologue=PROLOGUE)
    # `python -c` in the template's project folder imports its packages (monitoring, model) as `-m` does.
    result = subprocess.run(
        [python, "-c", script],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def head_to_head(args: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        write_data(work, args.baseline_rows, args.rows, args.features)
        print(
            f"data: {args.baseline_rows:,} baseline rows, {args.rows:,} current rows x {args.features} "
            f"numeric features (shifted: f{', f'.join(map(str, [*SHIFTED, *SCALED]))}); written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        ours = run_side(sys.executable, OURS, work)
        ours_extra = ours["peak_rss_mb"] - ours["start_rss_mb"]
        print(
            f"ours      : job {ours['job_seconds']:7.2f} s "
            f"(+ baseline build {ours['baseline_seconds']:.2f} s), peak extra memory {ours_extra:7.1f} MB, "
            f"exit {ours['exit_code']}, drifted {ours['drifted']}"
        )
        if args.skip_evidently:
            return True
        theirs = run_side(args.evidently_python, EVIDENTLY, work)
    theirs_extra = theirs["peak_rss_mb"] - theirs["start_rss_mb"]
    print(
        f"evidently : run {theirs['job_seconds']:7.2f} s, peak extra memory {theirs_extra:7.1f} MB, "
        f"drifted {theirs['drifted']}"
    )
    speed = theirs["job_seconds"] / ours["job_seconds"]
    speed_all = theirs["job_seconds"] / (ours["job_seconds"] + ours["baseline_seconds"])
    memory = ours_extra / theirs_extra
    ok = speed >= 20 and memory <= 0.1
    print(
        f"ratios    : {speed:.1f}x faster ({speed_all:.1f}x incl. baseline build), "
        f"{memory:.3f} of Evidently's extra memory (1/{1 / memory:.0f}) -> targets >= 20x, <= 1/10: "
        f"{'met' if ok else 'NOT met'}"
    )
    return ok


def job(module: str, **options: Path) -> list[str]:
    """`python -m module --option value ...`: a job as its image runs it (from the project folder)."""
    flags = [part for name, value in options.items() for part in (f"--{name.replace('_', '-')}", str(value))]
    return [sys.executable, "-m", module, *flags]


def flatness(args: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory(prefix="bench-drift-flat-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        write_data(work, 100_000, args.flat_rows, args.features, seed=1)
        print(
            f"flat: {args.flat_rows:,} rows x {args.features} features written in "
            f"{time.perf_counter() - started:.1f} s "
            f"({(work / 'current.parquet').stat().st_size / 2**20:.0f} MB)"
        )
        subprocess.run(
            job(
                "monitoring.drift_baseline",
                data=work / "baseline.parquet",
                schema=work / "schema.json",
                output_dir=work / "baseline",
            ),
            cwd=PROJECT,
            check=True,
            capture_output=True,
        )
        command = job(
            "monitoring.drift_job",
            baseline_dir=work / "baseline",
            input=work / "current.parquet",
            output_dir=work / "out",
        )
        samples: list[float] = []
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def sample() -> None:
            status = Path(f"/proc/{process.pid}/status")
            while process.poll() is None:
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            samples.append(int(line.split()[1]) / 1024)
                except OSError:
                    break
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, stderr = process.communicate()
        sampler.join()
        seconds = time.perf_counter() - started
    if process.returncode not in (0, 2):
        raise RuntimeError(f"the drift job failed:\n{stderr.decode()[-3000:]}")
    quarter = max(1, len(samples) // 4)
    peak = max(samples)
    print(
        f"flat: {args.flat_rows:,} rows in {seconds:.1f} s ({args.flat_rows / seconds / 1e6:.2f} M rows/s); "
        f"RSS max {peak:.0f} MB (first quarter max {max(samples[:quarter]):.0f} MB, last quarter max "
        f"{max(samples[-quarter:]):.0f} MB, {len(samples)} samples) -> target <= {FLAT_LIMIT_MB} MB: "
        f"{'met' if peak <= FLAT_LIMIT_MB else 'NOT met'}"
    )
    return peak <= FLAT_LIMIT_MB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--flat-rows", type=int, default=10_000_000)
    parser.add_argument(
        "--evidently-python", default=sys.executable, help="an interpreter with evidently installed"
    )
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--skip-flat", action="store_true")
    args = parser.parse_args(argv)
    ok = head_to_head(args)
    if not args.skip_flat:
        ok = flatness(args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
