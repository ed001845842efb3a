"""The SageMaker pipeline's evaluation step: metrics and gates, bias and explanations, in one Processing job.

It runs in the training image. Inputs: /opt/ml/processing/model (the training job's model.tar.gz),
/opt/ml/processing/test and /opt/ml/processing/validation (prepare.py's splits); baseline.json ships in the image.
Everything lands in /opt/ml/processing/evaluation:

- evaluation.json: evaluate.py's report (quality metrics in SageMaker's model-quality shape, bias metrics, every
  gate of baseline.json, `passed`, `failed_gates`). The pipeline's condition step reads `passed`, its fail step
  `failed_gates`; the model package carries the file as its model statistics.
- bias.json: the same bias metrics laid out like a SageMaker Clarify analysis (pre- and post-training, per facet).
- explainability.json and importance.json (+ importance.png): global permutation importance on the validation split.

A failed gate is a result, not an error: the script exits 0 and the pipeline decides. It exits 1 when it cannot
evaluate at all (missing model, data breaking the contract).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from model.common import model_artifact, paths
from model.common.data_contract import DataValidationError, Schema, SchemaError
from model.train import evaluate, explain

log = logging.getLogger("evaluation_job")
PROCESSING = Path("/opt/ml/processing")

PRE_TRAINING = {"CI": "Class Imbalance", "DPL": "Difference in Positive Proportions in Labels"}
POST_TRAINING = {
    "DPPL": "Difference in Positive Proportions in Predicted Labels",
    "DI": "Disparate Impact",
    "AD": "Accuracy Difference",
    "RD": "Recall Difference",
    "SD": "Specificity Difference",
}


def clarify_bias_report(schema: Schema, bias: Mapping[str, Mapping[str, float | None]]) -> dict:
    """Bias metrics in the layout of a Clarify analysis.json, so model registry viewers can list them."""

    def section(names: Mapping[str, str]) -> dict:
        facets = {}
        for facet in schema.sensitive_features:
            values = bias.get(facet.name, {})
            facets[facet.name] = [
                {
                    "value_or_threshold": ",".join(str(v) for v in facet.facet_values_or_threshold),
                    "metrics": [
                        {"name": name, "description": description, "value": values.get(name)}
                        for name, description in names.items()
                    ],
                }
            ]
        return {"label": schema.target, "label_value_or_threshold": _label_values(schema), "facets": facets}

    return {
        "version": "1.0",
        "pre_training_bias_metrics": section(PRE_TRAINING),
        "post_training_bias_metrics": section(POST_TRAINING),
    }


def _label_values(schema: Schema) -> str:
    return ",".join(str(v) for v in schema.label_values_or_threshold)


def explainability_report(importance: Mapping) -> dict:
    """Global importance in a Clarify-like `explanations` section (method: permutation, not SHAP)."""
    return {
        "version": "1.0",
        "explanations": {
            "permutation_importance": {
                "metric": importance["metric"],
                "baseline_score": importance["baseline_score"],
                "n_repeats": importance["n_repeats"],
                "rows": importance["rows"],
                "global_importance": {row["feature"]: row["importance_mean"] for row in importance["features"]},
            }
        },
    }


def run(model: Path, test: Path, validation: Path, baseline: Path, output_dir: Path, n_repeats: int = 5) -> dict:
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        # Extracted once: evaluate.run and the importance both score through the same artifact.
        model_dir = evaluate.resolve_model_dir(model, Path(scratch))
        report = evaluate.run(model_dir, test, baseline)
        scorer = model_artifact.Scorer(model_dir)
        importance = explain.importance_report(scorer, validation, n_repeats=n_repeats)
    explain.write_importance(importance, output_dir / "importance.json")
    files = {
        "bias.json": clarify_bias_report(scorer.schema, report["bias_metrics"]),
        "explainability.json": explainability_report(importance),
        # Last: the condition step reads this file, so it only appears once the others are complete.
        "evaluation.json": report,
    }
    for name, content in files.items():
        (output_dir / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    log.info("gates %s%s", "passed" if report["passed"] else "FAILED: ", report["failed_gates"])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=PROCESSING / "model", help="model folder or model.tar.gz")
    parser.add_argument("--test", type=Path, default=PROCESSING / "test")
    parser.add_argument("--validation", type=Path, default=PROCESSING / "validation")
    parser.add_argument("--baseline", type=Path, default=paths.GATES_FILE)
    parser.add_argument("--output-dir", type=Path, default=PROCESSING / "evaluation")
    parser.add_argument("--n-repeats", type=int, default=5, help="shuffles per feature for the importance")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(args.model, args.test, args.validation, args.baseline, args.output_dir, args.n_repeats)
    except (
        DataValidationError,
        SchemaError,
        FileNotFoundError,
        ValueError,
        model_artifact.ArtifactError,
        explain.ExplainError,
    ) as exc:
        print(f"evaluation failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
