"""Helpers for the training-side tests, on top of conftest.py's `schema`, `trained` and `sample_data` fixtures.

They build what a SageMaker training job sees (an /opt/ml-shaped folder with string hyperparameters and the
train/validation/config channels), run train.py in its own process as the container does, and derive small or
deliberately broken data sets from the session's real splits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "model" / "config"
GIT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Few trees: the contract under test does not depend on model quality, and the session stays fast.
FAST = {"n_estimators": "20"}


def csv_head(source: Path, dest: Path, rows: int) -> Path:
    """The first rows of a CSV file or channel folder, as one CSV file (header kept)."""
    from model.train import dataset

    dest.parent.mkdir(parents=True, exist_ok=True)
    dataset.read_table(source).head(rows).to_csv(dest, index=False)
    return dest


def csv_with_value(source: Path, dest: Path, row: int, column: str, value: str) -> Path:
    """A copy of a CSV file or channel folder with one cell replaced (row counts data rows from 0)."""
    from model.train import dataset

    frame = dataset.read_table(source)
    frame.loc[row, column] = value
    dest.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(dest, index=False)
    return dest


def opt_ml_tree(
    root: Path,
    *,
    train: Path | None,
    validation: Path | None = None,
    hyperparameters: dict | None = None,
    schema: Path = CONFIG / "schema.json",
) -> Path:
    """A folder shaped like /opt/ml in a training job: config files and the train/validation/config channels."""
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    if hyperparameters is not None:
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters), encoding="utf-8")
    for channel, source in (("train", train), ("validation", validation)):
        if source is None:
            continue
        folder = root / "input" / "data" / channel
        folder.mkdir(parents=True, exist_ok=True)
        for file in sorted(source.glob("*.csv")) if source.is_dir() else [source]:
            shutil.copyfile(file, folder / file.name)
    (root / "input" / "data" / "config").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(schema, root / "input" / "data" / "config" / "schema.json")
    return root


def run_train_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """train.py in its own process, as the training container runs it."""
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("SM_") and k != "OPT_ML_ROOT"}
    full_env = {**scrubbed, "GIT_COMMIT": GIT_COMMIT, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "model.train.train", *args], env=full_env, capture_output=True, text=True, timeout=300
    )


def project_hyperparameters() -> dict[str, str]:
    return json.loads((CONFIG / "hyperparameters.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class OptMlRun:
    root: Path
    hyperparameters: dict
    returncode: int
    stderr: str

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def metadata(self) -> dict:
        return json.loads((self.model_dir / "metadata.json").read_text(encoding="utf-8"))

    @property
    def train_files(self) -> list[Path]:
        return sorted((self.root / "input" / "data" / "train").glob("*.csv"))
