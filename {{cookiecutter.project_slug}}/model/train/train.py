"""Train the model under SageMaker's training contract; the same script runs on a laptop.

In a SageMaker training job the container runs `train`: hyperparameters come from
/opt/ml/input/config/hyperparameters.json (every value a string) or SM_HPS, data from the channels under
/opt/ml/input/data/<channel> (or SM_CHANNEL_<NAME>), and the artifact goes to /opt/ml/model (SM_MODEL_DIR).
Locally, set OPT_ML_ROOT to a folder shaped like /opt/ml, or pass the paths as options. On failure the reason is
written to /opt/ml/output/failure (SageMaker's FailureReason) and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model.common import metrics, model_artifact, paths, tuning_config
from model.common.data_contract import DataValidationError, Schema, SchemaError
from model.train import dataset
from model.train import hyperparameters as hp
from model.train.onnx_export import TrainingError, serialise
from model.train.preprocessing import build_pipeline

log = logging.getLogger("train")


def opt_ml() -> Path:
    return Path(os.environ.get("OPT_ML_ROOT", "/opt/ml"))


def default_paths() -> dict[str, Path | None]:
    root = opt_ml()

    def channel(name: str) -> Path:
        return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", root / "input" / "data" / name))

    schema_candidates = [channel("config") / "schema.json", paths.SCHEMA_FILE]
    return {
        "train": channel("train"),
        "validation": channel("validation"),
        "model_dir": Path(os.environ.get("SM_MODEL_DIR", root / "model")),
        "output_data_dir": Path(os.environ.get("SM_OUTPUT_DATA_DIR", root / "output" / "data")),
        "hyperparameters": root / "input" / "config" / "hyperparameters.json",
        "schema": next((p for p in schema_candidates if p.is_file()), schema_candidates[0]),
    }


def read_hyperparameters(path: Path | None) -> dict[str, str]:
    """SM_HPS wins (script mode), then the hyperparameters file; none at all means the defaults."""
    if os.environ.get("SM_HPS"):
        try:
            return json.loads(os.environ["SM_HPS"])
        except json.JSONDecodeError as exc:
            raise hp.HyperparameterError(f"SM_HPS is not valid JSON: {exc}") from None
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise hp.HyperparameterError(f"{path} is not valid JSON: {exc}") from None


def git_commit() -> str:
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions(estimator: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    packages = ["numpy", "scikit-learn", "skl2onnx", "onnxruntime"]
    packages += {"xgboost": ["xgboost-cpu", "onnxmltools"], "lightgbm": ["lightgbm", "onnxmltools"]}.get(estimator, [])
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def run(
    train_path: str | Path,
    model_dir: str | Path,
    hyperparameters: dict,
    schema_path: str | Path,
    validation_path: str | Path | None = None,
    output_data_dir: str | Path | None = None,
) -> dict:
    """Fit, check, export and write the artifact; returns its metadata."""
    started = time.monotonic()
    schema = Schema.load(schema_path)
    params = hp.parse(hyperparameters)
    train_files = dataset.data_files(train_path)
    train = dataset.load(schema, train_path, require_sensitive=False)
    log.info("training %s on %d rows x %d features", params["estimator"], len(train), len(schema.features))
    if schema.is_classification:
        counts = np.bincount(train.target, minlength=len(schema.classes))
        absent = [c for c, n in zip(schema.classes, counts, strict=True) if n == 0]
        if absent:
            # The model would learn fewer outputs than schema.json's classes and mislabel every prediction after them.
            raise TrainingError(
                f"the training data holds no row of class {', '.join(map(repr, absent))} (target '{schema.target}'; "
                f"rows per class: {dict(zip(schema.classes, counts.tolist(), strict=True))}): add labelled rows of "
                "every class, or remove the class from 'classes' in schema.json"
            )
    pipeline = build_pipeline(schema, params)
    pipeline.fit(schema.to_frame(train.columns), train.target)

    validation = None
    if validation_path is not None and Path(validation_path).exists():
        validation = dataset.load(schema, validation_path, require_sensitive=False)
    check = validation or train
    data, model_format, extra = serialise(pipeline, schema, params, check.columns)

    frame = schema.to_frame(check.columns)
    if schema.is_classification:
        probabilities = pipeline.predict_proba(frame)
        values = probabilities.argmax(axis=1)
    else:
        probabilities, values = None, pipeline.predict(frame)
    scores = metrics.quality_metrics(schema, check.target, values, probabilities)
    # One line per metric, in the form the tuning job's metric definitions (and `make tune`) read from this log.
    for name, value in scores.items():
        log.info("%s", tuning_config.metric_line("validation" if validation else "train", name, value))
    metadata = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "training_data_sha256": dataset.sha256_of(train_files),
        "training_rows": len(train),
        "hyperparameters": hp.as_strings(params),
        "metrics": {"dataset": "validation" if validation else "train", **scores},
        "problem_type": schema.problem_type,
        "classes": list(schema.classes),
        "feature_names": schema.feature_names,
        "versions": _versions(params["estimator"]),
        "training_job": os.environ.get("TRAINING_JOB_NAME", "local"),
        **extra,
    }
    written = model_artifact.write_artifact(
        model_dir, model_bytes=data, model_format=model_format, schema=schema, metadata=metadata
    )
    if output_data_dir is not None:
        out = Path(output_data_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = {**written, "seconds": round(time.monotonic() - started, 3)}
        (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s artifact %s to %s", model_format, written["model_version"], model_dir)
    return written


def write_failure(reason: str) -> None:
    path = opt_ml() / "output" / "failure"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason[:1024], encoding="utf-8")
    except OSError:
        pass


def _stop(signum, _frame):
    raise TrainingError(f"training stopped by signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # `docker run IMAGE train`
        argv = argv[1:]
    defaults = default_paths()
    parser = argparse.ArgumentParser(description="Train the model under the SageMaker training contract.")
    parser.add_argument("--train", type=Path, default=defaults["train"], help="training data file or folder")
    parser.add_argument("--validation", type=Path, default=defaults["validation"], help="optional validation data")
    parser.add_argument("--model-dir", type=Path, default=defaults["model_dir"], help="where the artifact goes")
    parser.add_argument("--output-data-dir", type=Path, default=defaults["output_data_dir"])
    parser.add_argument(
        "--hyperparameters",
        type=Path,
        default=defaults["hyperparameters"],
        help="JSON object of string values (SM_HPS wins when set)",
    )
    parser.add_argument("--schema", type=Path, default=defaults["schema"], help="the data contract")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    try:
        run(
            args.train,
            args.model_dir,
            read_hyperparameters(args.hyperparameters),
            args.schema,
            validation_path=args.validation,
            output_data_dir=args.output_data_dir,
        )
    except (
        TrainingError,
        hp.HyperparameterError,
        SchemaError,
        DataValidationError,
        FileNotFoundError,
        model_artifact.ArtifactError,
    ) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("%s", reason)
        write_failure(reason)
        return 1
    except Exception as exc:
        reason = f"unexpected {type(exc).__name__}: {exc}"
        log.exception("training failed")
        write_failure(reason)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
