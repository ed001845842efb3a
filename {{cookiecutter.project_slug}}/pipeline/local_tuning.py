"""`make tune`: search the ranges of model/config/tuning.json locally, one train.py run per trial, with Optuna.

The steps are the SageMaker tuning job's, on a laptop: check tuning.json (python -m model.train.check_tuning),
prepare the data once (prepare.py: the same validation and split as `make pipeline`), then for each trial write the
project's hyperparameters with the trial's values (every value a string) into an /opt/ml-shaped folder and run
train.py under the training contract, exactly as the pipeline's training step does. The objective is read from the
job's log with the regular expression of the tuning job's metric definition. The test split is never looked at.

Strategy -> Optuna sampler: Bayesian -> TPESampler (a sequential model-based optimiser, as SageMaker's Bayesian
search is), Random -> RandomSampler, Grid -> GridSampler over the categorical values. RandomSeed seeds the sampler.
Hyperband is refused by the config check (train.py reports its objective once, so there is nothing to stop early).
Trials run MaxParallelTrainingJobs at a time (at most one per CPU). Unless the strategy is Grid, the first trial is
the current hyperparameters.json when it lies inside the ranges, so the winner is measured against what is there.

The best trial's values are written into model/config/hyperparameters.json (the file `make pipeline` and the
SageMaker Pipeline train with, reviewed like any other change), and every trial is kept under build/tuning/<run>/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from model.common import paths, tuning_config
from model.common.metrics import load_baseline
from pipeline.local_pipeline import (
    StepFailed,
    run_module,
    run_training_job,
    stage_training_job,
    table,
    training_parser,
)

ROOT = paths.REPO_ROOT
# The hyperparameter SageMaker adds to every training job a tuning job launches (train.py accepts and ignores it).
TUNING_OBJECTIVE_KEY = "_tuning_objective_metric"


class UsageError(ValueError):
    pass


class TrialFailed(RuntimeError):
    pass


@dataclass
class Trial:
    number: int
    params: dict[str, str]
    status: str = "running"  # complete | failed
    value: float | None = None
    seconds: float = 0.0
    reason: str = ""
    current: bool = False  # the hyperparameters.json values, enqueued first


@dataclass
class Result:
    run_dir: Path
    config: tuning_config.TuningConfig
    trials: list[Trial]
    best: Trial | None
    written: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # name -> (old, new)


# ------------------------------------------------------------------------------------------------ sampling
def make_sampler(config: tuning_config.TuningConfig):
    import optuna

    seed = config.random_seed
    if config.strategy == "Bayesian":
        return optuna.samplers.TPESampler(seed=seed)
    if config.strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.strategy == "Grid":
        return optuna.samplers.GridSampler({r.name: list(r.values) for r in config.ranges}, seed=seed)
    raise UsageError(f"Strategy {config.strategy!r} has no local sampler")  # refused by the config check already


def _reverse_name(name: str) -> str:
    return f"1-{name}"


def suggest(trial, r: tuning_config.ParameterRange) -> str:
    """One value of a range, in SageMaker's string form. Auto is searched linearly here (SageMaker picks a scale)."""
    if r.kind == "Categorical":
        return trial.suggest_categorical(r.name, list(r.values))
    if r.kind == "Integer":
        value = trial.suggest_int(r.name, int(r.min_value), int(r.max_value), log=r.scaling_type == "Logarithmic")
        return r.as_strings(value)
    if r.scaling_type == "ReverseLogarithmic":
        # Dense near 1: 1 - x is searched on a log scale over [1 - max, 1 - min].
        complement = trial.suggest_float(_reverse_name(r.name), 1 - r.max_value, 1 - r.min_value, log=True)
        return r.as_strings(1 - complement)
    return r.as_strings(trial.suggest_float(r.name, r.min_value, r.max_value, log=r.scaling_type == "Logarithmic"))


def current_point(config: tuning_config.TuningConfig, base: dict[str, str]) -> dict | None:
    """The Optuna parameters of the current hyperparameters.json, when every tuned key is set and inside its range."""
    point: dict[str, object] = {}
    for r in config.ranges:
        text = base.get(r.name)
        if text is None:
            return None
        if r.kind == "Categorical":
            if text not in r.values:
                return None
            point[r.name] = text
            continue
        try:
            value = float(text)
        except ValueError:
            return None
        if not r.min_value <= value <= r.max_value or (r.kind == "Integer" and value != int(value)):
            return None
        if r.kind == "Integer":
            point[r.name] = int(value)
        elif r.scaling_type == "ReverseLogarithmic":
            point[_reverse_name(r.name)] = 1 - value
        else:
            point[r.name] = value
    return point


# -------------------------------------------------------------------------------------------------- running
def check_config(config_dir: Path, tuning: Path) -> None:
    """model.train.check_tuning in its own process (training code is never imported here); exit 2 -> UsageError."""
    result = subprocess.run(
        [sys.executable, "-m", "model.train.check_tuning", "--config-dir", str(config_dir), "--tuning", str(tuning)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise UsageError((result.stderr.strip() or result.stdout.strip()).removeprefix("error: "))


def run(
    data: Path,
    config_dir: Path,
    build_dir: Path,
    trials: int | None = None,
    parallel: int | None = None,
    write: bool = True,
    out=print,
) -> Result:
    tuning = config_dir / "tuning.json"
    check_config(config_dir, tuning)
    config = tuning_config.load(tuning, load_baseline(config_dir / "baseline.json"))
    base = json.loads((config_dir / "hyperparameters.json").read_text(encoding="utf-8"))
    if trials is not None and trials < 1:
        raise UsageError(f"TRIALS = {trials}: give a whole number >= 1")
    total = trials or config.trials
    if config.strategy == "Grid" and total > config.trials:
        out(f"note: the grid has {config.trials} combinations; running {config.trials} trials, not {total}")
        total = config.trials
    workers = max(1, min(parallel or config.max_parallel_jobs, os.cpu_count() or 1, total))

    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run_dir = build_dir / "tuning" / run_id
    processing = run_dir / "processing"
    direction = config.objective_type.lower()
    out(
        f"tuning run {run_id} on {data}: {config.strategy} search ({_sampler_name(config)}), {total} trials, "
        f"{workers} at a time, {config.objective_type} {config.objective_metric}"
    )
    started = time.monotonic()
    out("prepare: validate and split the data (prepare.py) ...")
    run_module(
        "model.train.prepare",
        [
            *("--data", str(data), "--schema", str(config_dir / "schema.json")),
            *("--baseline", str(config_dir / "baseline.json"), "--output-dir", str(processing)),
        ],
    )
    out(f"prepare: ok ({time.monotonic() - started:.1f}s)")

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction=direction, sampler=make_sampler(config), study_name=f"tune-{run_id}")
    point = current_point(config, base) if config.strategy != "Grid" else None
    if point is not None:
        study.enqueue_trial(point, user_attrs={"current": True})

    records: dict[int, Trial] = {}
    lock = threading.Lock()
    done = [0]

    def objective(trial) -> float:
        params = {r.name: suggest(trial, r) for r in config.ranges}
        record = Trial(trial.number, params, current=bool(trial.user_attrs.get("current")))
        with lock:
            records[trial.number] = record
        opt_ml = run_dir / f"trial-{trial.number:03d}"
        t0 = time.monotonic()
        try:
            # As a tuning job does, the trial's hyperparameters also carry the objective's name.
            hyperparameters = {**base, **params, TUNING_OBJECTIVE_KEY: config.objective_metric}
            stage_training_job(opt_ml, processing, config_dir / "schema.json", hyperparameters)
            log = run_training_job(opt_ml, f"tune-{run_id}-{trial.number:03d}")
            (opt_ml / "training.log").write_text(log, encoding="utf-8")
            value = tuning_config.read_metric(log, config.objective_metric)
            if value is None:
                regex = tuning_config.metric_regex(config.objective_metric)
                raise StepFailed(f"train.py logged no {config.objective_metric} value (regex {regex})")
        except StepFailed as exc:
            record.status, record.reason, record.seconds = "failed", str(exc), time.monotonic() - t0
            _progress(out, lock, done, total, record, config, records)
            raise TrialFailed(str(exc)) from None
        record.status, record.value, record.seconds = "complete", value, time.monotonic() - t0
        _progress(out, lock, done, total, record, config, records)
        return value

    study.optimize(objective, n_trials=total, n_jobs=workers, catch=(TrialFailed,))
    ordered = [records[n] for n in sorted(records)]
    best = _best(ordered, config)
    result = Result(run_dir, config, ordered, best)
    _write_records(result, base)
    if best is not None and write:
        result.written = write_best(config_dir / "hyperparameters.json", base, best.params)
    out(f"tuning finished in {time.monotonic() - started:.1f}s")
    return result


def _sampler_name(config: tuning_config.TuningConfig) -> str:
    return {"Bayesian": "Optuna TPESampler", "Random": "Optuna RandomSampler", "Grid": "Optuna GridSampler"}[
        config.strategy
    ]


def _best(trials: list[Trial], config: tuning_config.TuningConfig) -> Trial | None:
    complete = [t for t in trials if t.status == "complete"]
    if not complete:
        return None
    sign = 1 if config.objective_type == "Maximize" else -1
    return max(complete, key=lambda t: (sign * t.value, -t.number))


def _progress(out, lock, done, total, record: Trial, config, records) -> None:
    with lock:
        done[0] += 1
        values = " ".join(f"{k}={v}" for k, v in record.params.items())
        if record.status == "complete":
            best = _best(list(records.values()), config)
            mark = " (best so far)" if best is record else ""
            outcome = f"{config.objective_metric}={record.value:.4f}{mark}"
        else:
            outcome = f"FAILED: {record.reason.splitlines()[0][:200]}"
        current = " [current hyperparameters.json]" if record.current else ""
        out(f"[trial {done[0]}/{total}] #{record.number}{current} {values} -> {outcome} ({record.seconds:.1f}s)")


def _write_records(result: Result, base: dict[str, str]) -> None:
    config = result.config
    trials = [
        {
            "trial": t.number,
            "status": t.status,
            "current": t.current,
            "hyperparameters": t.params,
            config.objective_metric: t.value,
            "seconds": round(t.seconds, 3),
            **({"reason": t.reason} if t.reason else {}),
        }
        for t in result.trials
    ]
    summary = {
        "strategy": config.strategy,
        "objective": {"MetricName": config.objective_metric, "Type": config.objective_type},
        "trials": trials,
    }
    (result.run_dir / "trials.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if result.best is not None:
        best = {
            "trial": result.best.number,
            "objective": {"MetricName": config.objective_metric, "Type": config.objective_type},
            "value": result.best.value,
            "tuned": result.best.params,
            "hyperparameters": {**base, **result.best.params},
        }
        (result.run_dir / "best.json").write_text(json.dumps(best, indent=2) + "\n", encoding="utf-8")


def write_best(path: Path, base: dict[str, str], best: dict[str, str]) -> dict[str, tuple[str | None, str]]:
    """The best values into hyperparameters.json (key order kept, new keys last); returns what changed."""
    changed = {k: (base.get(k), v) for k, v in best.items() if base.get(k) != v}
    if changed:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**base, **best}, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    return changed


def report(result: Result) -> str:
    config = result.config
    names = [r.name for r in config.ranges]
    rows = [("trial", *names, config.objective_metric, "seconds", "status")]
    for t in result.trials:
        value = "-" if t.value is None else f"{t.value:.4f}"
        status = t.status + (" (current)" if t.current else "") + (" BEST" if t is result.best else "")
        rows.append((str(t.number), *(t.params.get(n, "") for n in names), value, f"{t.seconds:.1f}", status))
    return table(rows)


def summary(result: Result, hyperparameters_file: Path) -> str:
    config, best = result.config, result.best
    shown = _display(hyperparameters_file)
    lines = [f"best: trial #{best.number}, {config.objective_metric} = {best.value:.4f} ({config.objective_type})"]
    current = next((t for t in result.trials if t.current and t.status == "complete"), None)
    if current is not None and current is not best:
        lines.append(f"      the current hyperparameters.json scored {current.value:.4f} (trial #{current.number})")
    if result.written:
        changes = ", ".join(
            f"{k} {old if old is not None else '(unset)'} -> {new}" for k, (old, new) in result.written.items()
        )
        lines.append(f"updated {shown}: {changes}")
        lines.append("review it with `git diff`; `make pipeline` trains, evaluates and registers with these values")
    else:
        lines.append(f"{shown} unchanged (it already holds the best values, or --no-write was given)")
    lines.append(f"every trial: {_display(result.run_dir)}/ (trials.json, best.json, trial-*/training.log)")
    return "\n".join(lines)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = training_parser(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="default: ResourceLimits.MaxNumberOfTrainingJobs")
    parser.add_argument("--parallel", type=int, default=None, help="default: MaxParallelTrainingJobs (<= CPUs)")
    parser.add_argument("--no-write", action="store_true", help="leave hyperparameters.json as it is")
    args = parser.parse_args(argv)
    try:
        result = run(
            args.data,
            args.config_dir,
            args.build_dir,
            trials=args.trials,
            parallel=args.parallel,
            write=not args.no_write,
        )
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StepFailed as exc:
        print(f"tuning failed: {exc}", file=sys.stderr)
        return 1
    print(report(result))
    if result.best is None:
        print(
            f"tuning failed: no trial completed (see {_display(result.run_dir)}/trial-*/output/failure); "
            "hyperparameters.json unchanged",
            file=sys.stderr,
        )
        return 1
    print(summary(result, args.config_dir / "hyperparameters.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
