"""Validate the raw data against the contract and split it into train, validation and test sets.

Runs as the first step of the pipeline: locally, and on AWS as a SageMaker Processing job with the training image
(input /opt/ml/processing/input/data, outputs /opt/ml/processing/output/{train,validation,test,report}; the
contract and the gates come from the image, beside this script). The test split is
written once and never reaches training, so the evaluation step scores data the model never saw.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from model.common import paths
from model.common.data_contract import DataValidationError, Schema, SchemaError
from model.common.metrics import load_baseline
from model.train import data_quality, dataset

log = logging.getLogger("prepare")
PROCESSING = Path("/opt/ml/processing")


class PreparationError(RuntimeError):
    pass


def split_indices(
    n: int, target: np.ndarray | None, stratify: bool, test: float, validation: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic (stratified for classification) split into train / validation / test row indices."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(n)
    rest, test_idx = train_test_split(indices, test_size=test, random_state=seed, stratify=target if stratify else None)
    relative = validation / (1.0 - test)
    train_idx, val_idx = train_test_split(
        rest, test_size=relative, random_state=seed, stratify=target[rest] if stratify else None
    )
    return np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)


def run(
    data_path: str | Path,
    schema_path: str | Path,
    baseline_path: str | Path,
    output_dir: str | Path,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.15,
    seed: int = 42,
) -> dict:
    for name, value in (("test_fraction", test_fraction), ("validation_fraction", validation_fraction)):
        if not 0.0 < value < 0.5:
            raise PreparationError(f"{name} = {value}: give a fraction between 0 and 0.5")
    schema = Schema.load(schema_path)
    baseline = load_baseline(baseline_path)
    data = dataset.load(schema, data_path)
    summary = data_quality.profile(schema, data)
    gates = data_quality.check(summary, baseline.get("data", {}))
    failed = [g for g in gates if not g.passed]
    if failed:
        raise PreparationError("data gates failed: " + "; ".join(g.describe() for g in failed))
    train_idx, val_idx, test_idx = split_indices(
        len(data), data.target, schema.is_classification, test_fraction, validation_fraction, seed
    )
    output_dir = Path(output_dir)
    # A facet may also be a feature: each column once (a repeated header would break every reader downstream).
    columns = list(dict.fromkeys([*schema.feature_names, schema.target, *[s.name for s in schema.sensitive_features]]))
    counts = {}
    for name, idx in (("train", train_idx), ("validation", val_idx), ("test", test_idx)):
        folder = output_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        data.frame.iloc[idx][columns].to_csv(folder / f"{name}.csv", index=False)
        counts[name] = len(idx)
    report = {
        "data_sha256": dataset.sha256_of(dataset.data_files(data_path)),
        "splits": counts,
        "seed": seed,
        "profile": summary,
        "gates": [g.__dict__ for g in gates],
    }
    (output_dir / "report").mkdir(parents=True, exist_ok=True)
    (output_dir / "report" / "data_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("split %d rows into %s", len(data), counts)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=PROCESSING / "input" / "data")
    parser.add_argument("--schema", type=Path, default=paths.SCHEMA_FILE)
    parser.add_argument("--baseline", type=Path, default=paths.GATES_FILE)
    parser.add_argument("--output-dir", type=Path, default=PROCESSING / "output")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(
            args.data,
            args.schema,
            args.baseline,
            args.output_dir,
            args.test_fraction,
            args.validation_fraction,
            args.seed,
        )
    except (PreparationError, DataValidationError, SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"prepare failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
