"""Check model/config/tuning.json against the gates and against what train.py accepts: `make lint` and `make tune`.

    python -m model.train.check_tuning [--tuning model/config/tuning.json] [--config-dir model/config]

model.common.tuning_config checks the structure, the ranges, the counts, the strategy and the objective (a validation
metric that baseline.json gates, in its gate's direction); here every range's ends, middle and categorical values are
also parsed by model/train/hyperparameters.py with the project's hyperparameters, for every estimator the search can
pick, so a name train.py does not know, a value out of its range or a key the chosen estimator does not use is
refused before a single trial runs. Exit status 2 with one line naming the field, the value and the fix.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.common import paths, tuning_config
from model.common.metrics import load_baseline
from model.train import hyperparameters as hp


def check(tuning: Path, config_dir: Path) -> tuning_config.TuningConfig:
    """The validated config; raises TuningConfigError."""
    try:
        baseline = load_baseline(config_dir / "baseline.json")
    except ValueError as exc:
        raise tuning_config.TuningConfigError(str(exc)) from None
    base_path = config_dir / "hyperparameters.json"
    try:
        base = json.loads(base_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise tuning_config.TuningConfigError(f"{base_path}: {exc}") from None
    return tuning_config.load(tuning, baseline, base, accepts=hp.parse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config-dir", type=Path, default=paths.CONFIG_DIR, help="holds baseline.json, hyperparameters.json"
    )
    parser.add_argument("--tuning", type=Path, default=None, help="default: <config-dir>/tuning.json")
    args = parser.parse_args(argv)
    tuning = args.tuning or args.config_dir / "tuning.json"
    try:
        config = check(tuning, args.config_dir)
    except tuning_config.TuningConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = ", ".join(r.name for r in config.ranges)
    enabled = ", ".join(env for env, on in config.environments.items() if on) or "none"
    print(
        f"{tuning.name}: ok ({config.strategy}, {config.trials} jobs, {config.objective_type} "
        f"{config.objective_metric}; tunes {names}; tuning step on AWS in: {enabled})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
