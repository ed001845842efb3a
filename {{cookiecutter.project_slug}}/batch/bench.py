"""Benchmark `make batch` against in-process scoring: rows/s and peak memory on a generated wide table.

    python -m batch.bench [--rows 1000000] [--python .venv-inference/bin/python] [--json out.json]

It generates a table of 20 features (14 uniform numeric ones with missing values, 6 categorical) and a labelled
sample of the same distribution, drafts its schema with model.train.draft_schema (what `make schema` runs), trains
an artifact with model.train.train, then scores the table twice:
  - batch: `python -m batch.run` (the runner `make batch` calls) serving the artifact from the inference
    environment, with the server's /execution-parameters; peak RSS is sampled for the client process and for the
    server's process tree (RSS counts pages the forked workers share once per worker; PSS counts them once);
  - in-process: the scikit-learn pipeline train.py fits (same data, same hyperparameters), reading the CSV with
    pandas in 100,000-row chunks, validating each chunk with the schema, writing the predictions.
Not a test: figures from a shared machine are noisy; compare runs made back to back on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from model.common import paths
from model.inference.bench import memory_mb, peak_rss_by_process_mb
from model.inference.local_server import process_tree

BUILD = paths.REPO_ROOT / "build" / "bench" / "batch"
NUMERIC, CATEGORICAL = 14, 6
LEVELS = ("alpha", "beta", "gamma", "delta", "epsilon")
CHUNK = 100_000
TRAIN_ROWS = 20_000


def generate(path: Path, rows: int, seed: int, label: bool) -> Path:
    """A wide table written in chunks (bounded memory); the label depends on a few features, with noise."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            frame = {}
            for j in range(NUMERIC):
                values = np.round(rng.uniform(0, 100 + 10 * j, n), 3)  # bounded: the drafted ranges hold
                values[rng.random(n) < 0.02] = np.nan
                frame[f"num_{j:02d}"] = values
            for j in range(CATEGORICAL):
                frame[f"cat_{j}"] = np.array(LEVELS)[rng.integers(0, len(LEVELS), n)]
            table = pd.DataFrame(frame)
            if label:
                score = (
                    0.06 * (np.nan_to_num(frame["num_00"], nan=50) - 50)
                    - 0.04 * (np.nan_to_num(frame["num_03"], nan=65) - 65)
                    + np.where(frame["cat_0"] == "alpha", 1.2, 0.0)
                )
                table["label"] = np.where(score + rng.logistic(0, 1, n) > 0, "yes", "no")
            table.to_csv(handle, index=False, header=start == 0)
    return path


def prepare(work: Path, rows: int, train_rows: int = TRAIN_ROWS) -> tuple[Path, Path, Path]:
    """The table to score, the schema and a trained artifact (reused when already built for this row count)."""
    table = work / f"wide-{rows}.csv"
    if not table.exists():
        print(f"bench: generating {rows:,} rows x 20 features -> {table}", file=sys.stderr, flush=True)
        generate(table, rows, seed=1, label=False)
    training = work / "train.csv"
    schema = work / "schema.json"
    model_dir = work / "model"
    if not (model_dir / "metadata.json").exists():
        generate(training, train_rows, seed=2, label=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "model.train.draft_schema",
                "--data",
                str(training),
                "--target",
                "label",
                "--output",
                str(schema),
                "--force",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        from model.train import train

        print("bench: training the artifact", file=sys.stderr, flush=True)
        train.run(training, model_dir, hyperparameters(), schema)
    return table, schema, model_dir


def hyperparameters() -> dict:
    return json.loads(paths.HYPERPARAMETERS_FILE.read_text(encoding="utf-8")) | {"model_format": "onnx"}


class PeakSampler:
    """Peak RSS of a process and, separately, of the model server under it (the kernel's VmHWM of each process, read
    every 100 ms: the server's processes end with the job); the server's PSS every second, as reading it walks the
    page tables and stalls the process read."""

    def __init__(self, pid: int):
        self.pid = pid
        self.client = self.server_rss = self.server_pss = 0.0
        self.server_peaks: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        ticks = 0
        while not self.stop.is_set():
            tree = process_tree(self.pid)
            self.client = max(self.client, peak_rss_by_process_mb([self.pid]).get(self.pid, 0.0))
            for pid, peak in peak_rss_by_process_mb(tree[1:]).items():
                self.server_peaks[pid] = max(peak, self.server_peaks.get(pid, 0.0))
            self.server_rss = max(
                self.server_rss, sum(self.server_peaks[pid] for pid in tree[1:] if pid in self.server_peaks)
            )
            if ticks % 10 == 0:
                self.server_pss = max(self.server_pss, memory_mb(tree[1:])[1])
            ticks += 1
            self.stop.wait(0.1)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def bench_batch(table: Path, model_dir: Path, python: str, work: Path, rows: int) -> dict:
    output = work / "batch-output.csv"
    command = [sys.executable, "-m", "batch.run", "--model-dir", str(model_dir), "--python", python]
    command += ["--input", str(table), "--output", str(output), "--server-log", str(work / "server.log")]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    sampler = PeakSampler(process.pid)
    out, _ = process.communicate()
    seconds = time.monotonic() - started
    sampler.close()
    if process.returncode != 0:
        raise SystemExit(f"bench: batch.run exited with {process.returncode}:\n{out}")
    print(out, file=sys.stderr)
    return {
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "client_peak_rss_mb": sampler.client,
        "server_peak_rss_mb": sampler.server_rss,
        "server_peak_pss_mb": sampler.server_pss,
        "output_lines": sum(1 for _ in open(output, "rb")),
    }


def score_in_process(table: Path, schema_path: Path, work: Path) -> dict:
    """Runs in its own process (see main): fit the pipeline as train.py does, then score the table in chunks."""
    import pandas as pd

    from model.common.data_contract import Schema
    from model.train import dataset
    from model.train import hyperparameters as hp
    from model.train.preprocessing import build_pipeline

    schema = Schema.load(schema_path)
    train = dataset.load(schema, work / "train.csv", require_sensitive=False)
    pipeline = build_pipeline(schema, hp.parse(hyperparameters()))
    pipeline.fit(schema.to_frame(train.columns), train.target)
    started = time.monotonic()
    rows = 0
    dtypes = {f.name: (str if not f.is_numeric else "float64") for f in schema.features}
    with open(work / "in-process-output.csv", "w", encoding="utf-8") as handle:
        for chunk in pd.read_csv(table, chunksize=CHUNK, dtype=dtypes, keep_default_na=False, na_values=[""]):
            columns = {n: chunk[n].to_numpy(dtype=object) for n in schema.feature_names}
            for feature in schema.features:
                if not feature.is_numeric:
                    columns[feature.name] = [None if isinstance(v, float) else v for v in columns[feature.name]]
            validated = schema.coerce_columns(columns)
            probabilities = pipeline.predict_proba(schema.to_frame(validated))
            labels = np.asarray(schema.classes, dtype=object)[probabilities.argmax(axis=1)]
            pd.DataFrame({"predicted_label": labels, "probability": probabilities.max(axis=1)}).to_csv(
                handle, index=False, header=rows == 0
            )
            rows += len(chunk)
    seconds = time.monotonic() - started
    return {
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": rows,
    }


def print_table(rows: int, batch: dict, local: dict) -> str:
    both = batch["client_peak_rss_mb"] + batch["server_peak_rss_mb"]
    lines = [
        f"| {rows:,} rows x 20 features | make batch (server, ONNX) | in-process scikit-learn (100k chunks) | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| seconds | {batch['seconds']:.1f} | {local['seconds']:.1f} | {batch['seconds'] / local['seconds']:.2f} |",
        f"| rows/s | {batch['rows_per_s']:,.0f} | {local['rows_per_s']:,.0f} | "
        f"{batch['rows_per_s'] / local['rows_per_s']:.2f} |",
        f"| peak RSS, client (MiB) | {batch['client_peak_rss_mb']:.0f} | {local['peak_rss_mb']:.0f} | "
        f"{batch['client_peak_rss_mb'] / local['peak_rss_mb']:.2f} |",
        f"| peak RSS, server tree (MiB; PSS {batch['server_peak_pss_mb']:.0f}) | {batch['server_peak_rss_mb']:.0f} "
        "| - | - |",
        f"| peak RSS, client + server (MiB) | {both:.0f} | {local['peak_rss_mb']:.0f} | "
        f"{both / local['peak_rss_mb']:.2f} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--python", default=os.environ.get("INFERENCE_PYTHON", sys.executable))
    parser.add_argument("--work", type=Path, default=BUILD)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--train-rows", type=int, default=TRAIN_ROWS, help="rows of the table the artifact learns from")
    parser.add_argument("--in-process-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows {args.rows}: give at least 1")
    table, schema, model_dir = prepare(args.work, args.rows, args.train_rows)
    if args.in_process_only:
        print(json.dumps(score_in_process(table, schema, args.work)))
        return 0
    print("bench: make batch's runner", file=sys.stderr, flush=True)
    batch = bench_batch(table, model_dir, args.python, args.work, args.rows)
    print("bench: in-process scikit-learn", file=sys.stderr, flush=True)
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch.bench",
            "--rows",
            str(args.rows),
            "--work",
            str(args.work),
            "--in-process-only",
            "--train-rows",
            str(args.train_rows),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    local = json.loads(child.stdout.strip().splitlines()[-1])
    text = print_table(args.rows, batch, local)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "batch": batch, "in_process": local}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
