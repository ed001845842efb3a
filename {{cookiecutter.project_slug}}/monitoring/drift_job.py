"""The drift job: profile captured traffic (or batches), check it against the baseline, report, exit 2 on violations.

    python -m monitoring.drift_job --baseline-dir monitoring/baselines --input <folder | s3://prefix | file> \\
        --output-dir build/monitoring [--ground-truth <folder | s3://prefix>] [--cloudwatch-namespace NS]
    python -m monitoring.drift_job merge --baseline-dir ... --input <folders of shard outputs> --output-dir ...

On a schedule, --last-hours N narrows each capture location (endpoint or variant prefix) to the hour folders
(yyyy/mm/dd/hh) of the N complete hours before the current one, so a run reads only what arrived since the last.

Each run writes state.json (the mergeable profile). With N SageMaker Processing instances (ShardedByS3Key)
every instance runs the first form on its shard, then one `merge` over their output folders produces the
same result as one pass over all the data.

Outputs: constraint_violations.json and statistics.json (Model Monitor's formats), output_statistics.json,
summary.json (bad input by kind, drift table, quality), metrics.json, report.html with plots/.
Exit codes: 0 no violation, 2 violations, 1 the job could not run or publish (arguments, baseline, CloudWatch).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from model.common import paths
from monitoring.capture import CAPTURE_SUFFIXES, BadInput, Reader, list_sources
from monitoring.cloudwatch import collect_metrics, put_metrics
from monitoring.drift_baseline import output_features
from monitoring.drift_statistics import Profile, statistics_json
from monitoring.quality import GroundTruth
from monitoring.report import write_report
from monitoring.violations import Baseline, evaluate, violations_json

EXIT_OK, EXIT_ERROR, EXIT_VIOLATIONS = 0, 1, 2
STATE_FILE = "state.json"
STATE_VERSION = 1


class JobState:
    """What one pass over (part of) the data learned; states of shards merge into the state of the whole."""

    def __init__(self, baseline: Baseline):
        schema = baseline.schema
        self.baseline = baseline
        self.features = Profile(schema.features, edges=Baseline.edges(baseline.statistics))
        output_edges = Baseline.edges(baseline.output_statistics) if baseline.output_statistics else {}
        self.outputs = Profile(output_features(schema), edges=output_edges)
        self.bad = BadInput()
        self.ground_truth = GroundTruth(schema)
        self.files = 0
        self.seconds = 0.0

    def profile(self, inputs: list[str], ground_truth: list[str] | None, chunk_rows: int | None = None) -> JobState:
        started = time.perf_counter()
        if ground_truth:
            self.ground_truth.load(list_sources(ground_truth, CAPTURE_SUFFIXES))
        reader = Reader(self.baseline.schema, on_capture=self.ground_truth.observe if ground_truth else None)
        if chunk_rows:
            reader.chunk_rows = chunk_rows
        for chunk in reader.read(list_sources(inputs)):
            self.features.update(chunk.features, chunk.rows)
            if chunk.output_rows:
                self.outputs.update(chunk.outputs, chunk.output_rows)
        self.bad.merge(reader.bad)
        self.files += reader.files
        self.seconds += time.perf_counter() - started
        return self

    def to_json(self) -> dict:
        return {
            "version": STATE_VERSION,
            "files": self.files,
            "seconds": self.seconds,
            "features": self.features.to_state(),
            "outputs": self.outputs.to_state(),
            "bad_input": self.bad.to_json(),
            "ground_truth": self.ground_truth.to_state(),
        }

    def merge_json(self, state: dict, source: str) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{source}: state version {state.get('version')!r} is not {STATE_VERSION}")
        schema = self.baseline.schema
        self.features.merge(Profile.from_state(schema.features, state["features"]))
        self.outputs.merge(Profile.from_state(output_features(schema), state["outputs"]))
        self.bad.merge(BadInput.from_json(state["bad_input"]))
        self.ground_truth.merge_state(state["ground_truth"])
        self.files += state["files"]
        self.seconds += state["seconds"]


def finish(state: JobState, args: argparse.Namespace, quality_gates: dict | None) -> int:
    """Evaluate a (possibly merged) state and write every output; returns the exit code."""
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    baseline = state.baseline
    quality = state.ground_truth.evaluate(quality_gates) if state.ground_truth.labels else None
    state.bad.merge(state.ground_truth.bad)
    outputs = state.outputs if state.outputs.item_count else None
    violations, drift = evaluate(baseline, state.features, outputs, state.bad.extra_columns)
    if quality and quality.get("gates"):
        from monitoring.violations import Violation

        violations += [
            Violation(
                "model",
                f"model_{g.get('group', 'quality')}_check",
                f"{g['metric']} = {g['value']} breaks the gate {g['bound']}",
            )
            for g in quality["gates"]
            if g["status"] == "failed"
        ]
    bad_input = state.bad.to_json()
    completeness = {n: p.completeness for n, p in state.features.columns.items() if p.rows}
    metrics = collect_metrics(state.features.item_count, violations, drift, bad_input, completeness, quality)
    summary = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "baseline_dir": str(args.baseline_dir),
        "files": state.files,
        "records": state.features.item_count,
        "predictions": state.outputs.item_count,
        "profile_seconds": round(state.seconds, 3),
        "violations": len(violations),
        "violations_by_check": _count_by(v.constraint_check_type for v in violations),
        "bad_input": bad_input,
        "issues_by_feature": {n: dict(p.issues) for n, p in state.features.columns.items() if p.issues},
        "drift": [
            {k: v for k, v in asdict(r).items() if k not in ("labels", "baseline_counts", "current_counts")}
            for r in drift
        ],
        "quality": quality,
    }
    _write_json(output_dir / "constraint_violations.json", violations_json(violations))
    _write_json(output_dir / "statistics.json", statistics_json(state.features))
    if outputs is not None:
        _write_json(output_dir / "output_statistics.json", statistics_json(outputs))
    _write_json(output_dir / "summary.json", summary)
    _write_json(output_dir / "metrics.json", {"metrics": metrics})
    if not args.no_report:
        write_report(
            output_dir, summary=summary, violations=violations, drift=drift, bad_input=bad_input, quality=quality
        )
    if args.cloudwatch_namespace:
        dimensions = {"Endpoint": args.endpoint_name or "", "MonitoringJob": args.job_name}
        try:
            sent = put_metrics(metrics, args.cloudwatch_namespace, dimensions, args.cloudwatch_endpoint_url)
        except Exception as exc:  # botocore's errors: every output is written already, say what failed
            print(f"error: PutMetricData to {args.cloudwatch_namespace} failed: {exc}", file=sys.stderr)
            return EXIT_ERROR
        print(f"sent {sent} metrics to CloudWatch namespace {args.cloudwatch_namespace}", file=sys.stderr)
    print(
        f"{state.features.item_count} records, {bad_input['total']} unusable, {len(violations)} violation(s): "
        f"{output_dir / 'constraint_violations.json'}",
        file=sys.stderr,
    )
    return EXIT_VIOLATIONS if violations else EXIT_OK


YEAR_FOLDER = re.compile(r"^[0-9]{4}$")
MAX_SEARCH_DEPTH = 3  # endpoint prefix -> variant folder -> yyyy


def recent_hour_folders(locations: list[str], hours: int, now: datetime | None = None) -> list[str]:
    """The capture hour folders (<variant>/yyyy/mm/dd/hh/) of the `hours` complete hours before `now` (UTC).

    A location is a data-capture prefix of an endpoint (variant folders below it) or of one variant, on S3 or
    on disk. The current hour is left out: SageMaker still writes it. Only local folders that exist are
    returned; S3 prefixes are returned as candidates (an empty prefix lists no object).
    """
    if hours < 1:
        raise ValueError(f"--last-hours {hours}: give a whole number of hours, 1 or more")
    current = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    stamps = [(current - timedelta(hours=back)).strftime("%Y/%m/%d/%H") for back in range(hours, 0, -1)]
    found: list[str] = []
    for location in locations:
        for variant in _variant_prefixes(location.rstrip("/") + "/", MAX_SEARCH_DEPTH):
            if variant.startswith("s3://"):
                found += [f"{variant}{stamp}/" for stamp in stamps]
            else:
                found += [f"{variant}{stamp}" for stamp in stamps if Path(variant, stamp).is_dir()]
    return found


def _variant_prefixes(prefix: str, depth: int) -> list[str]:
    """Prefixes (ending in /) whose children are year folders, searched at most `depth` levels down."""
    children = _child_folders(prefix)
    if any(YEAR_FOLDER.match(name) for name in children):
        return [prefix]
    if depth <= 1:
        return []
    return [found for name in children for found in _variant_prefixes(f"{prefix}{name}/", depth - 1)]


def _child_folders(prefix: str) -> list[str]:
    if prefix.startswith("s3://"):
        from monitoring.capture import _s3_client, _split_s3

        bucket, key = _split_s3(prefix)
        paginator = _s3_client().get_paginator("list_objects_v2")
        return sorted(
            common["Prefix"][len(key) :].rstrip("/")
            for page in paginator.paginate(Bucket=bucket, Prefix=key, Delimiter="/")
            for common in page.get("CommonPrefixes", [])
        )
    path = Path(prefix)
    if not path.is_dir():
        raise FileNotFoundError(f"--input {prefix}: no such folder")
    return sorted(child.name for child in path.iterdir() if child.is_dir())


def _count_by(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _write_json(path: Path, document: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, default=_json_default) + "\n", encoding="utf-8")
    tmp.replace(path)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _use_jemalloc() -> None:
    """Arrow's jemalloc pool hands freed batches back to the OS; the default pool (mimalloc) keeps tens of MB
    more resident when a job allocates and frees one batch after another, as this one does."""
    import pyarrow as pa

    # A pyarrow build without jemalloc keeps the default pool: it works, with a higher resident set.
    with contextlib.suppress(NotImplementedError, pa.ArrowNotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--baseline-dir", required=True, help="statistics.json, constraints.json, schema.json, ...")
    parser.add_argument(
        "--input",
        required=True,
        nargs="+",
        help="capture .jsonl / CSV / Parquet files, folders or s3:// prefixes; for merge, the "
        "output folders (or state.json files) of the shards",
    )
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--schema", help="schema.json (default: the baseline folder's copy)")
    parser.add_argument("--ground-truth", nargs="+", help="ground-truth .jsonl files, folders or s3:// prefixes")
    parser.add_argument(
        "--quality-baseline",
        default=str(paths.GATES_FILE),
        help="gates for model quality (default: %(default)s)",
    )
    parser.add_argument("--cloudwatch-namespace", help="also PutMetricData into this namespace")
    parser.add_argument("--cloudwatch-endpoint-url", help="CloudWatch endpoint (tests, VPC endpoints)")
    parser.add_argument("--endpoint-name", help="the Endpoint dimension of the CloudWatch metrics")
    parser.add_argument("--job-name", default="drift", help="the MonitoringJob dimension (default: %(default)s)")
    parser.add_argument("--chunk-rows", type=int, help="rows per profiled chunk (memory bound; default 65536)")
    parser.add_argument("--no-report", action="store_true", help="skip report.html and the plots")
    parser.add_argument(
        "--last-hours",
        type=int,
        help="read only the capture hour folders (yyyy/mm/dd/hh) of the N complete hours before now, under each "
        "--input endpoint or variant prefix (scheduled runs)",
    )
    parser.add_argument(
        "--no-fail-on-violations",
        action="store_true",
        help="exit 0 when the data violates the baseline (scheduled runs: the alarms on the metrics report it)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    merging = bool(argv) and argv[0] == "merge"
    if merging or (argv and argv[0] == "run"):
        argv = argv[1:]
    parser = _parser()
    args = parser.parse_args(argv)
    if merging and args.last_hours is not None:
        parser.error("--last-hours selects capture folders: use it on the runs, not on merge")
    _use_jemalloc()
    try:
        baseline = Baseline.load(args.baseline_dir, args.schema)
        gates = None
        if args.ground_truth or merging:
            gates_path = Path(args.quality_baseline)
            gates = json.loads(gates_path.read_text(encoding="utf-8")) if gates_path.is_file() else None
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    state = JobState(baseline)
    if merging:
        for location in args.input:
            path = Path(location)
            path = path / STATE_FILE if path.is_dir() else path
            try:
                state.merge_json(json.loads(path.read_text(encoding="utf-8")), str(path))
            except (OSError, ValueError, KeyError) as exc:
                print(f"error: cannot merge {path}: {exc}", file=sys.stderr)
                return EXIT_ERROR
    else:
        inputs = args.input
        try:
            if args.last_hours is not None:
                inputs = recent_hour_folders(args.input, args.last_hours)
                print(f"--last-hours {args.last_hours}: {len(inputs)} capture hour folder(s)", file=sys.stderr)
            state.profile(inputs, args.ground_truth, args.chunk_rows)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        _write_json(Path(args.output_dir) / STATE_FILE, state.to_json())
    code = finish(state, args, gates)
    return EXIT_OK if code == EXIT_VIOLATIONS and args.no_fail_on_violations else code


if __name__ == "__main__":
    raise SystemExit(main())
