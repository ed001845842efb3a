"""The local end-to-end run: validate data -> train -> evaluate -> explain -> model card -> gates -> register.

Each step runs the very script its SageMaker job runs (prepare.py and evaluate.py as Processing steps, train.py
under the training contract with an /opt/ml-shaped folder), as a separate process, so what passes here is what
the containers do. Every run gets its own folder under build/runs/; nothing is registered unless every gate
passes. A registered run also refreshes docs/model_card.md and, when monitoring is part of the repository, the
drift baselines in monitoring/baselines/ that `make monitor` compares captured traffic with.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from model.common import model_artifact, paths, text_tables
from pipeline.local_registry import LocalRegistry, RegistryError, default_group

ROOT = paths.REPO_ROOT
# Whether this repository monitors its endpoint (the monitoring package is pruned when it does not).
MONITORING = importlib.util.find_spec("monitoring") is not None


class StepFailed(RuntimeError):
    pass


class Progress:
    """One line per step: its number, name, outcome and duration."""

    def __init__(self, total: int):
        self.total, self.index = total, 0

    def step(self, name: str):
        self.index += 1
        label = f"[{self.index}/{self.total}] {name}"
        print(f"{label} ...", flush=True)
        return _Timer(label)


class _Timer:
    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        self.started = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb):
        outcome = "ok" if exc_type is None else "FAILED"
        print(f"{self.label}: {outcome} ({time.monotonic() - self.started:.1f}s)", flush=True)
        return False


def run_module(module: str, args: list[str], env: dict | None = None) -> None:
    """One job's module in its own process (`python -m`), as its container runs it."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run([sys.executable, "-m", module, *args], env=full_env, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise StepFailed(f"{module} exited with {result.returncode}: {detail}")


def stage_training_job(opt_ml: Path, processing: Path, schema: Path, hyperparameters: dict[str, str]) -> None:
    """The /opt/ml tree a SageMaker training job sees: hyperparameters.json (string values) and the channels."""
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2) + "\n", encoding="utf-8")
    for channel in ("train", "validation"):
        shutil.copytree(processing / channel, opt_ml / "input" / "data" / channel)
    shutil.copyfile(schema, _mkdir(opt_ml / "input" / "data" / "config") / "schema.json")


def run_training_job(opt_ml: Path, job_name: str) -> str:
    """train.py under the training contract (`train` in an /opt/ml-shaped folder); returns its log (what a training
    job sends to CloudWatch). A failure raises StepFailed with the job's FailureReason (/opt/ml/output/failure)."""
    env = {**os.environ, "OPT_ML_ROOT": str(opt_ml), "TRAINING_JOB_NAME": job_name}
    result = subprocess.run(
        [sys.executable, "-m", "model.train.train", "train"], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        failure = opt_ml / "output" / "failure"
        detail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise StepFailed(
            failure.read_text(encoding="utf-8")
            if failure.is_file()
            else f"train.py exited with {result.returncode}: {detail}"
        )
    return result.stdout + result.stderr


table = text_tables.boxed


def run(
    data: Path,
    config_dir: Path,
    build_dir: Path,
    registry_root: Path,
    group: str,
    card_dir: Path = ROOT / "docs",
    baselines_dir: Path = paths.DRIFT_BASELINES_DIR,
) -> dict:
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run_dir = build_dir / "runs" / run_id
    processing = run_dir / "processing"
    opt_ml = run_dir / "opt_ml"
    progress = Progress(7)
    print(f"pipeline run {run_id} on {data}", flush=True)

    with progress.step("validate data"):
        run_module(
            "model.train.prepare",
            [
                "--data",
                str(data),
                "--schema",
                str(config_dir / "schema.json"),
                "--baseline",
                str(config_dir / "baseline.json"),
                "--output-dir",
                str(processing),
            ],
        )
    data_report = json.loads((processing / "report" / "data_report.json").read_text(encoding="utf-8"))

    with progress.step("train"):
        hyperparameters = json.loads((config_dir / "hyperparameters.json").read_text(encoding="utf-8"))
        stage_training_job(opt_ml, processing, config_dir / "schema.json", hyperparameters)
        run_training_job(opt_ml, f"local-{run_id}")

    with progress.step("evaluate"):
        run_module(
            "model.train.evaluate",
            [
                "--model",
                str(opt_ml / "model"),
                "--test",
                str(processing / "test"),
                "--baseline",
                str(config_dir / "baseline.json"),
                "--output-dir",
                str(run_dir / "evaluation"),
            ],
        )
    evaluation = json.loads((run_dir / "evaluation" / "evaluation.json").read_text(encoding="utf-8"))

    importance = run_dir / "explainability" / "importance.json"
    with progress.step("explain"):
        run_module(
            "model.train.explain",
            [
                "--model",
                str(opt_ml / "model"),
                "--data",
                str(processing / "validation"),
                "--importance",
                str(importance),
            ],
        )
    card_args = [
        *("--model", str(opt_ml / "model"), "--evaluation", str(run_dir / "evaluation" / "evaluation.json")),
        *("--importance", str(importance), "--data-report", str(processing / "report" / "data_report.json")),
        *("--pipeline-run", run_id, "--config", str(config_dir / "model_card.json")),
    ]
    with progress.step("model card"):
        # Written before the gates, so a run that fails them still leaves a card that shows why.
        run_module("model.train.model_card", [*card_args, "--out-dir", str(run_dir / "model_card")])

    with progress.step("check gates"):
        failed = [g for g in evaluation["gates"] if g["status"] == "failed"]
        print(table(_gate_rows(evaluation["gates"])), flush=True)
        if failed:
            names = ", ".join(_gate_name(g) for g in failed)
            raise StepFailed(
                f"gates failed ({names}); the model was not registered: improve the model or "
                "review model/config/baseline.json"
            )

    with progress.step("register"):
        # Everything that can fail is done before the registry is touched: no half-registered version.
        if MONITORING:
            run_module(
                "monitoring.drift_baseline",
                [
                    "--data",
                    str(processing / "train" / "train.csv"),
                    "--schema",
                    str(config_dir / "schema.json"),
                    "--model-dir",
                    str(opt_ml / "model"),
                    "--output-dir",
                    str(run_dir / "baselines"),
                ],
            )
        metadata = model_artifact.read_metadata(opt_ml / "model")
        # The global importance travels with the model (outside the hashed files: it describes, it does not score).
        shutil.copyfile(importance, opt_ml / "model" / "importance.json")
        tar = model_artifact.package(opt_ml / "model", run_dir / "model.tar.gz")
        lineage = {
            "pipeline_run": run_id,
            "model_version": metadata["model_version"],
            "model_sha256": metadata["model_sha256"],
            "model_format": metadata["model_format"],
            "training_data_sha256": metadata["training_data_sha256"],
            "source_data": str(data),
            "source_data_sha256": data_report["data_sha256"],
            "git_commit": metadata["git_commit"],
            "hyperparameters": metadata["hyperparameters"],
        }
        package = LocalRegistry(registry_root, group).register(tar, evaluation, lineage)
        (run_dir / "package.json").write_text(json.dumps(package, indent=2) + "\n", encoding="utf-8")
        run_module(
            "model.train.model_card",
            [*card_args, "--registry-package", str(run_dir / "package.json"), "--out-dir", str(card_dir)],
        )
        if MONITORING:
            shutil.copytree(run_dir / "baselines", baselines_dir, dirs_exist_ok=True)
    return {
        "run_id": run_id,
        "package": package,
        "evaluation": evaluation,
        "metadata": metadata,
        "data_report": data_report,
    }


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _gate_name(gate: dict) -> str:
    return f"{gate['metric']}[{gate['facet']}]" if gate.get("facet") else gate["metric"]


def _gate_rows(gates: list[dict]) -> list[tuple[str, ...]]:
    rows = [("gate", "metric", "value", "bound", "status")]
    for g in gates:
        value = "n/a" if g["value"] is None else f"{g['value']:.4f}"
        rows.append((g["group"], _gate_name(g), value, g["bound"], g["status"]))
    return rows


def summary(result: dict) -> str:
    package, evaluation, metadata = result["package"], result["evaluation"], result["metadata"]
    quality_key = next(k for k in evaluation if k.endswith("_metrics") and k != "bias_metrics")
    rows = [("item", "value")]
    rows += [(f"metric {k}", f"{v['value']:.4f}") for k, v in evaluation[quality_key].items()]
    passed = sum(g["status"] == "passed" for g in evaluation["gates"])
    rows.append(("gates passed", f"{passed}/{len(evaluation['gates'])}"))
    rows.append(("model format", metadata["model_format"]))
    rows.append(("model version", metadata["model_version"]))
    rows.append(
        (
            "registered",
            f"{package['ModelPackageGroupName']} v{package['ModelPackageVersion']} ({package['ModelApprovalStatus']})",
        )
    )
    return table(rows)


def training_parser(description: str) -> argparse.ArgumentParser:
    """The options of every command that trains on the embedded default (this pipeline, `make tune`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=paths.SAMPLE_DATA, help="CSV/Parquet file or folder")
    parser.add_argument("--config-dir", type=Path, default=paths.CONFIG_DIR)
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = training_parser(__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=Path(os.environ.get("REGISTRY_DIR", ROOT / "registry")))
    parser.add_argument("--group", default=None, help="model package group (default: the project name)")
    parser.add_argument("--card-dir", type=Path, default=ROOT / "docs", help="where the model card goes")
    parser.add_argument(
        "--baselines-dir", type=Path, default=paths.DRIFT_BASELINES_DIR, help="where the drift baselines go"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        result = run(
            args.data,
            args.config_dir,
            args.build_dir,
            args.registry,
            args.group or default_group(),
            card_dir=args.card_dir,
            baselines_dir=args.baselines_dir,
        )
    except (StepFailed, RegistryError, model_artifact.ArtifactError) as exc:
        print(f"pipeline failed: {exc}", file=sys.stderr)
        return 1
    print(summary(result))
    print(f"pipeline finished in {time.monotonic() - started:.1f}s; serve it with `make serve`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
