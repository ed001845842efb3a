"""Shared fixtures: the project's contract and gates, the data, and a trained artifact with its untouched test split.

`trained` reuses the newest `make pipeline` run when it was trained under the current schema, so `make test`
checks the very model the pipeline registered; otherwise it runs prepare + train once for the session.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "model" / "config"


@dataclass(frozen=True)
class Trained:
    model_dir: Path
    train_path: Path
    validation_path: Path
    test_path: Path
    source: str  # "pipeline run <id>" or "fresh"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def schema():
    from model.common.data_contract import Schema

    return Schema.load(CONFIG / "schema.json")


@pytest.fixture(scope="session")
def baseline() -> dict:
    from model.common.metrics import load_baseline

    return load_baseline(CONFIG / "baseline.json")


@pytest.fixture(scope="session")
def hyperparameters() -> dict:
    return json.loads((CONFIG / "hyperparameters.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """The data the pipeline trains on: $DATA, else data/sample.csv (generated here when absent)."""
    configured = Path(os.environ.get("DATA", ROOT / "data" / "sample.csv"))
    if not configured.is_absolute():
        configured = ROOT / configured
    if configured.exists():
        return configured
    from model.common import sample_data

    out = tmp_path_factory.mktemp("data") / "sample.csv"
    sample_data.main(["--schema", str(CONFIG / "schema.json"), "--out", str(out)])
    return out


def _latest_pipeline_run() -> Trained | None:
    runs = sorted((ROOT / "build" / "runs").glob("*"), reverse=True)
    current_schema = json.loads((CONFIG / "schema.json").read_text(encoding="utf-8"))
    for run in runs:
        model_dir = run / "opt_ml" / "model"
        processing = run / "processing"
        if not (model_dir / "metadata.json").is_file() or not (processing / "test").is_dir():
            continue
        if json.loads((model_dir / "schema.json").read_text(encoding="utf-8")) != current_schema:
            return None
        return Trained(
            model_dir, processing / "train", processing / "validation", processing / "test", f"pipeline run {run.name}"
        )
    return None


@pytest.fixture(scope="session")
def trained(sample_data, hyperparameters, tmp_path_factory) -> Trained:
    existing = _latest_pipeline_run()
    if existing is not None:
        return existing
    from model.train import prepare, train

    work = tmp_path_factory.mktemp("trained")
    prepare.run(sample_data, CONFIG / "schema.json", CONFIG / "baseline.json", work)
    train.run(
        work / "train", work / "model", hyperparameters, CONFIG / "schema.json", validation_path=work / "validation"
    )
    return Trained(work / "model", work / "train", work / "validation", work / "test", "fresh")


@pytest.fixture(scope="session")
def scorer(trained):
    from model.common import model_artifact

    return model_artifact.Scorer(trained.model_dir)


@pytest.fixture(scope="session")
def holdout(scorer, trained):
    """The test split scored by the exported artifact, exactly as the inference container would score it."""
    from model.train import dataset

    data = dataset.load(scorer.schema, trained.test_path)
    return data, scorer.predict(data.columns)
