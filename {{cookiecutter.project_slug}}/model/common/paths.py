"""Where the repository keeps its contract files, computed in one place.

The configuration travels with the code as package data of `model`, so these paths hold in a checkout (editable
install) and in every image (`pip install .`) alike. Two files are called "baseline" in SageMaker's vocabulary and
must not be confused:
- GATES_FILE, model/config/baseline.json: the quality gates a new model must pass before it is registered;
- DRIFT_BASELINES_DIR, monitoring/baselines/: the drift baselines (statistics.json, constraints.json) the drift job
  compares live traffic with; written at training time by monitoring.drift_baseline.
"""

from __future__ import annotations

from pathlib import Path

MODEL_PACKAGE = Path(__file__).resolve().parents[1]
CONFIG_DIR = MODEL_PACKAGE / "config"
SCHEMA_FILE = CONFIG_DIR / "schema.json"
GATES_FILE = CONFIG_DIR / "baseline.json"
HYPERPARAMETERS_FILE = CONFIG_DIR / "hyperparameters.json"
TUNING_FILE = CONFIG_DIR / "tuning.json"
MODEL_CARD_FILE = CONFIG_DIR / "model_card.json"

# The repository checkout (the editable install's root). In an image only the packages are installed, and these
# folders do not exist there.
REPO_ROOT = MODEL_PACKAGE.parent
DRIFT_BASELINES_DIR = REPO_ROOT / "monitoring" / "baselines"
SAMPLE_DATA = REPO_ROOT / "data" / "sample.csv"
