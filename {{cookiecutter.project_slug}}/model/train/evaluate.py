"""Score the held-out test set with the exported artifact and check the gates of baseline.json.

It scores through model_artifact.Scorer, the code path the inference container uses, so the metrics describe the
model that will be served, not the scikit-learn object it was exported from. Runs locally and as a SageMaker
Processing step (through evaluation_job.py, which adds the bias and explainability reports; inputs under
/opt/ml/processing/{model,test}, evaluation.json to /opt/ml/processing/evaluation, where the pipeline's condition
step reads `passed` and its fail step `failed_gates`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from model.common import metrics, model_artifact, paths
from model.common.data_contract import DataValidationError, SchemaError
from model.train import dataset

log = logging.getLogger("evaluate")
PROCESSING = Path("/opt/ml/processing")


def resolve_model_dir(path: Path, scratch: Path) -> Path:
    """A model folder as it is, or a model.tar.gz (a folder holding one, as SageMaker delivers it) extracted."""
    if path.is_dir() and (path / model_artifact.METADATA_FILE).is_file():
        return path
    tar = path if path.is_file() else path / "model.tar.gz"
    if not tar.is_file():
        raise FileNotFoundError(f"{path} holds neither metadata.json nor model.tar.gz: point --model at the artifact")
    return model_artifact.extract(tar, scratch)


def run(
    model_path: str | Path, test_path: str | Path, baseline_path: str | Path, output_dir: str | Path | None = None
) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        scorer = model_artifact.Scorer(resolve_model_dir(Path(model_path), Path(scratch)))
        schema = scorer.schema
        test = dataset.load(schema, test_path)
        prediction = scorer.predict(test.columns)
    quality = metrics.quality_metrics(schema, test.target, prediction.values, prediction.probabilities)
    bias = metrics.bias_metrics(schema, test.sensitive, test.target, prediction.values)
    gates = metrics.check_gates(metrics.load_baseline(baseline_path), quality, bias)
    # Not a metric but a release blocker all the same: the model must load in the image the deploy stage runs.
    servable, detail = model_artifact.servable(scorer.metadata)
    gates.append(metrics.GateResult("artifact", "model_format", None, detail, "passed" if servable else "failed"))
    report = metrics.metrics_report(schema, quality, bias, gates)
    report["model_version"] = scorer.model_version
    report["test_rows"] = len(test)
    # One line for the SageMaker pipeline's fail step, which can read a JSON value but not filter a list.
    report["failed_gates"] = "; ".join(g.describe() for g in gates if not g.passed)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info(
        "evaluated %s on %d rows: gates %s", scorer.model_version, len(test), "passed" if report["passed"] else "FAILED"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=PROCESSING / "model")
    parser.add_argument("--test", type=Path, default=PROCESSING / "test")
    parser.add_argument("--baseline", type=Path, default=paths.GATES_FILE)
    parser.add_argument("--output-dir", type=Path, default=PROCESSING / "evaluation")
    parser.add_argument("--fail-on-gates", action="store_true", help="exit 3 when a gate fails")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        report = run(args.model, args.test, args.baseline, args.output_dir)
    except (DataValidationError, SchemaError, FileNotFoundError, ValueError, model_artifact.ArtifactError) as exc:
        print(f"evaluate failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.fail_on_gates and not report["passed"]:
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
