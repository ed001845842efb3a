"""model/config/tuning.json: the hyperparameter search that `make tune` runs locally and the SageMaker Pipeline's
tuning step runs on AWS, in SageMaker's own vocabulary (HyperParameterTuningJobConfig).

One file, two engines: locally Optuna samples the ranges and runs train.py once per trial; on AWS the same ranges,
objective and limits become the tuning job's configuration. Both read the objective the same way: from the metric
lines train.py logs (`metric validation:roc_auc=0.912345`), with the regular expression `metric_regex` builds, which
is also the tuning job's metric definition. The objective must be a quality metric that model/config/baseline.json
gates, in the direction its gate points (a `min` gate: Maximize; a `max` gate: Minimize).

Checks here need no training library; whether each range's values are hyperparameters train.py accepts for the
chosen estimator is checked by the caller's `accepts` (model.train.check_tuning passes hyperparameters.parse).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

STRATEGIES = ("Bayesian", "Random", "Grid")
REFUSED_STRATEGIES = {
    "Hyperband": (
        "Hyperband stops trials early from the objective a job reports while it trains; train.py fits once and "
        "reports its validation metrics at the end, so there is nothing to stop early: use Bayesian, Random or Grid"
    ),
}
SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
DIRECTIONS = ("Maximize", "Minimize")
RANGE_KINDS = ("ContinuousParameterRanges", "IntegerParameterRanges", "CategoricalParameterRanges")
MAX_RANGES = 30  # SageMaker: at most 30 tuned hyperparameters over all range kinds
MAX_CATEGORICAL_VALUES = 30
# The metric lines train.py logs: "metric <dataset>:<name>=<fixed-point number>", one per quality metric.
METRIC_DATASETS = ("validation", "train")
OBJECTIVE_DATASET = "validation"
KNOWN_KEYS = {
    "Strategy",
    "HyperParameterTuningJobObjective",
    "ResourceLimits",
    "ParameterRanges",
    "RandomSeed",
    "environments",
}


class TuningConfigError(ValueError):
    """tuning.json is unusable; the message names the field, the value received and the fix."""


@dataclass(frozen=True)
class ParameterRange:
    kind: str  # "Continuous" | "Integer" | "Categorical"
    name: str
    min_value: float | None = None
    max_value: float | None = None
    scaling_type: str = "Auto"
    values: tuple[str, ...] = ()

    @property
    def field(self) -> str:
        return f"ParameterRanges.{self.kind}ParameterRanges[{self.name}]"

    def as_strings(self, value) -> str:
        """A sampled value as SageMaker passes it to the training job (every hyperparameter is a string)."""
        if self.kind == "Integer":
            return str(int(value))
        if self.kind == "Continuous":
            return f"{float(value):.6g}"  # six significant digits: the value trained is the value written back
        return str(value)

    def probe_values(self) -> list[str]:
        """Values a check tries: both ends and an inner point of a range (not a whole number for a continuous
        range, so an integer hyperparameter under ContinuousParameterRanges is caught), every categorical value."""
        if self.kind == "Categorical":
            return list(self.values)
        inner = self.min_value + (self.max_value - self.min_value) * 0.3183
        inner_text = repr(inner) if self.kind == "Continuous" else self.as_strings(round(inner))
        return [self.as_strings(self.min_value), inner_text, self.as_strings(self.max_value)]


@dataclass(frozen=True)
class TuningConfig:
    strategy: str
    objective_metric: str  # e.g. "validation:roc_auc"
    objective_type: str  # Maximize | Minimize
    max_jobs: int | None  # None only for Grid: the number of combinations
    max_parallel_jobs: int
    ranges: tuple[ParameterRange, ...]
    random_seed: int | None = None
    environments: dict[str, bool] = field(default_factory=dict)
    metric_names: tuple[str, ...] = ()  # every gated quality metric, reported as validation:<name>

    @property
    def objective_gate(self) -> str:
        return self.objective_metric.split(":", 1)[1]

    @property
    def trials(self) -> int:
        return self.max_jobs if self.max_jobs is not None else grid_size(self.ranges)

    def enabled_for(self, env: str) -> bool:
        return self.environments.get(env, False)

    def metric_definitions(self) -> list[dict[str, str]]:
        """SageMaker MetricDefinitions: one regex over train.py's log per gated quality metric, objective first."""
        names = [self.objective_metric] + [
            f"{OBJECTIVE_DATASET}:{m}" for m in self.metric_names if f"{OBJECTIVE_DATASET}:{m}" != self.objective_metric
        ]
        return [{"Name": name, "Regex": metric_regex(name)} for name in names]

    def parameter_ranges(self) -> dict[str, list[dict]]:
        """The ranges in the API's shape (ParameterRanges), values as strings."""
        out: dict[str, list[dict]] = {kind: [] for kind in RANGE_KINDS}
        for r in self.ranges:
            if r.kind == "Categorical":
                out["CategoricalParameterRanges"].append({"Name": r.name, "Values": list(r.values)})
            else:
                out[f"{r.kind}ParameterRanges"].append(
                    {
                        "Name": r.name,
                        "MinValue": r.as_strings(r.min_value),
                        "MaxValue": r.as_strings(r.max_value),
                        "ScalingType": r.scaling_type,
                    }
                )
        return out


def grid_size(ranges) -> int:
    return math.prod(len(r.values) for r in ranges)


def grid(ranges) -> list[dict[str, str]]:
    """Every combination of a Grid search's categorical values."""
    names = [r.name for r in ranges]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(r.values for r in ranges))]


# ------------------------------------------------------------------------------------------- metric lines
def metric_line(dataset: str, name: str, value: float) -> str:
    """What train.py logs per quality metric: fixed-point, so one simple regex reads every value (nan never matches)."""
    return f"metric {dataset}:{name}={value:.6f}"


def metric_regex(metric_name: str) -> str:
    """The regex (one capture group) SageMaker's metric definition and `make tune` both apply to train.py's log."""
    return re.escape(metric_name) + r"=(-?[0-9]+\.[0-9]+)"


def read_metric(log: str, metric_name: str) -> float | None:
    """The last value of a metric in a training log, as SageMaker reads a final metric; None when absent."""
    found = re.findall(metric_regex(metric_name), log)
    return float(found[-1]) if found else None


# ------------------------------------------------------------------------------------------------- loading
def load(
    path: Path,
    baseline: Mapping,
    base_hyperparameters: Mapping[str, str] | None = None,
    accepts: Callable[[Mapping[str, str]], None] | None = None,
) -> TuningConfig:
    """tuning.json, checked: structure, ranges, counts, strategy, objective against the gates of baseline.json.

    `accepts(hyperparameters)` raises ValueError for hyperparameters train.py would refuse; it is called with the
    project's hyperparameters plus each probe value of each range (for every estimator the search can pick).
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TuningConfigError(f"{path}: no such file; `make tune` and the tuning step need it") from None
    except json.JSONDecodeError as exc:
        raise TuningConfigError(f"{path} is not valid JSON: {exc}") from None
    return parse(raw, baseline, base_hyperparameters, accepts, source=str(path))


def parse(
    raw: object,
    baseline: Mapping,
    base_hyperparameters: Mapping[str, str] | None = None,
    accepts: Callable[[Mapping[str, str]], None] | None = None,
    source: str = "tuning.json",
) -> TuningConfig:
    def fail(key: str, value: object, fix: str) -> TuningConfigError:
        return TuningConfigError(f"{source}: {key} = {value!r}: {fix}")

    if not isinstance(raw, dict):
        raise TuningConfigError(f"{source}: give a JSON object (HyperParameterTuningJobConfig's fields)")
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise fail(unknown[0], raw[unknown[0]], f"unknown field; the fields are {', '.join(sorted(KNOWN_KEYS))}")

    strategy = raw.get("Strategy")
    if strategy in REFUSED_STRATEGIES:
        raise fail("Strategy", strategy, REFUSED_STRATEGIES[strategy])
    if strategy not in STRATEGIES:
        raise fail("Strategy", strategy, f"give one of {', '.join(STRATEGIES)}")

    ranges = _ranges(raw.get("ParameterRanges"), fail)
    objective = _objective(raw.get("HyperParameterTuningJobObjective"), baseline, fail)
    limits = _limits(raw.get("ResourceLimits"), strategy, ranges, fail)

    seed = raw.get("RandomSeed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise fail("RandomSeed", seed, "give a whole number >= 0, or leave the field out")

    environments = raw.get("environments", {})
    if not isinstance(environments, dict):
        raise fail("environments", environments, 'give an object such as {"dev": false, "staging": false}')
    for env, enabled in environments.items():
        if not isinstance(enabled, bool):
            raise fail(f"environments.{env}", enabled, "give true (tune in that environment's pipeline) or false")

    config = TuningConfig(
        strategy=strategy,
        ranges=tuple(ranges),
        random_seed=seed,
        environments=dict(environments),
        **objective,
        **limits,
    )
    if accepts is not None:
        _check_accepted(config, dict(base_hyperparameters or {}), accepts, source)
    return config


def _number(value, key: str, fail, integer: bool) -> float:
    """SageMaker writes MinValue/MaxValue as strings; numbers are accepted too."""
    text = value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise fail(key, value, 'give a number (SageMaker writes it as a string, e.g. "0.01")')
    try:
        number = float(text) if text is not None else float(value)
    except ValueError:
        raise fail(key, value, 'give a number (SageMaker writes it as a string, e.g. "0.01")') from None
    if not math.isfinite(number):
        raise fail(key, value, "give a finite number")
    if integer and number != int(number):
        raise fail(key, value, "an IntegerParameterRanges bound must be a whole number")
    return number


def _ranges(block, fail) -> list[ParameterRange]:
    if not isinstance(block, dict):
        raise fail("ParameterRanges", block, f"give an object with any of {', '.join(RANGE_KINDS)}")
    unknown = sorted(set(block) - set(RANGE_KINDS))
    if unknown:
        raise fail(f"ParameterRanges.{unknown[0]}", block[unknown[0]], f"give only {', '.join(RANGE_KINDS)}")
    ranges: list[ParameterRange] = []
    seen: dict[str, str] = {}
    for kind_key in RANGE_KINDS:
        items = block.get(kind_key, [])
        kind = kind_key.removesuffix("ParameterRanges")
        if not isinstance(items, list):
            raise fail(f"ParameterRanges.{kind_key}", items, "give a list of ranges")
        for index, item in enumerate(items):
            where = f"ParameterRanges.{kind_key}[{index}]"
            if not isinstance(item, dict) or not isinstance(item.get("Name"), str) or not item["Name"].strip():
                raise fail(where, item, 'give an object with "Name" (a hyperparameter of hyperparameters.json)')
            name = item["Name"]
            where = f"ParameterRanges.{kind_key}[{name}]"
            if name in seen:
                raise fail(where, name, f"{name!r} is already tuned in {seen[name]}: give each hyperparameter once")
            seen[name] = where
            if kind == "Categorical":
                extra = sorted(set(item) - {"Name", "Values"})
                if extra:
                    raise fail(f"{where}.{extra[0]}", item[extra[0]], "a categorical range has Name and Values only")
                values = item.get("Values")
                if not isinstance(values, list) or not values or len(values) > MAX_CATEGORICAL_VALUES:
                    raise fail(f"{where}.Values", values, f"give 1 to {MAX_CATEGORICAL_VALUES} values (strings)")
                if not all(isinstance(v, str) for v in values):
                    raise fail(f"{where}.Values", values, 'give the values as strings, as SageMaker passes them: ["3"]')
                if len(set(values)) != len(values):
                    raise fail(f"{where}.Values", values, "remove the repeated values")
                ranges.append(ParameterRange("Categorical", name, values=tuple(values)))
                continue
            extra = sorted(set(item) - {"Name", "MinValue", "MaxValue", "ScalingType"})
            if extra:
                raise fail(f"{where}.{extra[0]}", item[extra[0]], "give Name, MinValue, MaxValue and ScalingType")
            integer = kind == "Integer"
            for bound in ("MinValue", "MaxValue"):
                if bound not in item:
                    raise fail(f"{where}.{bound}", None, "the bound is missing")
            low = _number(item["MinValue"], f"{where}.MinValue", fail, integer)
            high = _number(item["MaxValue"], f"{where}.MaxValue", fail, integer)
            if low >= high:
                raise fail(
                    f"{where}.MinValue/MaxValue",
                    [item["MinValue"], item["MaxValue"]],
                    "the range is empty or inverted: MinValue must be below MaxValue (for one fixed value, set it in "
                    "hyperparameters.json and remove the range)",
                )
            scaling = item.get("ScalingType", "Auto")
            if scaling not in SCALING_TYPES:
                raise fail(f"{where}.ScalingType", scaling, f"give one of {', '.join(SCALING_TYPES)}")
            if scaling == "Logarithmic" and low <= 0:
                raise fail(
                    f"{where}.ScalingType",
                    scaling,
                    f"a Logarithmic scale needs MinValue > 0 (got {item['MinValue']!r}): raise MinValue or use Linear",
                )
            if scaling == "ReverseLogarithmic" and (integer or low < 0 or high >= 1):
                raise fail(
                    f"{where}.ScalingType",
                    scaling,
                    "ReverseLogarithmic works only for a ContinuousParameterRanges range within 0 <= x < 1: use Linear",
                )
            ranges.append(ParameterRange(kind, name, low, high, scaling))
    if not ranges:
        raise fail("ParameterRanges", block, "give at least one range to tune")
    if len(ranges) > MAX_RANGES:
        raise fail("ParameterRanges", f"{len(ranges)} ranges", f"SageMaker tunes at most {MAX_RANGES} hyperparameters")
    return ranges


def _objective(block, baseline: Mapping, fail) -> dict:
    """TuningConfig's objective_metric, objective_type and metric_names, from HyperParameterTuningJobObjective."""
    quality = baseline.get("quality", {}) if isinstance(baseline, Mapping) else {}
    gated = list(quality)
    choices = ", ".join(f"{OBJECTIVE_DATASET}:{m}" for m in gated) or "(baseline.json gates no quality metric)"
    if not isinstance(block, dict):
        raise fail(
            "HyperParameterTuningJobObjective",
            block,
            "give an object with MetricName and Type (Maximize or Minimize), MetricName one of " + choices,
        )
    name, kind = block.get("MetricName"), block.get("Type")
    dataset, _, metric = name.partition(":") if isinstance(name, str) else ("", "", "")
    if dataset != OBJECTIVE_DATASET or metric not in quality:
        raise fail(
            "HyperParameterTuningJobObjective.MetricName",
            name,
            f"give a validation metric that model/config/baseline.json gates: one of {choices}",
        )
    bounds = quality[metric]
    expected = "Maximize" if "min" in bounds and "max" not in bounds else "Minimize" if "max" in bounds else None
    if "min" in bounds and "max" in bounds:
        expected = None
    if expected is None:
        raise fail(
            "HyperParameterTuningJobObjective.MetricName",
            name,
            f"its gate {bounds} has no single direction to optimise: choose a metric gated by min or by max",
        )
    if kind not in DIRECTIONS:
        raise fail("HyperParameterTuningJobObjective.Type", kind, f"give {expected} ({metric} is gated {bounds})")
    if kind != expected:
        raise fail(
            "HyperParameterTuningJobObjective.Type",
            kind,
            f"{metric} is gated {bounds} in baseline.json, so better is "
            f"{'higher' if expected == 'Maximize' else 'lower'}: give {expected}",
        )
    return {"objective_metric": name, "objective_type": kind, "metric_names": tuple(gated)}


def _limits(block, strategy: str, ranges: list[ParameterRange], fail) -> dict:
    """TuningConfig's max_jobs and max_parallel_jobs, from ResourceLimits (max_jobs None: Grid's combinations)."""
    if not isinstance(block, dict):
        raise fail("ResourceLimits", block, 'give {"MaxNumberOfTrainingJobs": n, "MaxParallelTrainingJobs": m}')

    def count(key: str, required: bool) -> int | None:
        value = block.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise fail(f"ResourceLimits.{key}", value, "give a whole number >= 1")
        return value

    unknown = sorted(set(block) - {"MaxNumberOfTrainingJobs", "MaxParallelTrainingJobs"})
    if unknown:
        raise fail(
            f"ResourceLimits.{unknown[0]}",
            block[unknown[0]],
            "give MaxNumberOfTrainingJobs and MaxParallelTrainingJobs",
        )
    max_jobs = count("MaxNumberOfTrainingJobs", required=strategy != "Grid")
    max_parallel = count("MaxParallelTrainingJobs", required=True)
    if strategy == "Grid":
        numeric = [r for r in ranges if r.kind != "Categorical"]
        if numeric:
            raise fail(
                numeric[0].field,
                numeric[0].name,
                "the Grid strategy searches categorical ranges only: list the values to try under "
                "CategoricalParameterRanges, or use Bayesian or Random",
            )
        combinations = grid_size(ranges)
        if max_jobs is not None and max_jobs != combinations:
            raise fail(
                "ResourceLimits.MaxNumberOfTrainingJobs",
                max_jobs,
                f"with Grid it must equal the number of combinations, {combinations}, or be left out",
            )
    total = max_jobs if max_jobs is not None else grid_size(ranges)
    if max_parallel > total:
        raise fail(
            "ResourceLimits.MaxParallelTrainingJobs",
            max_parallel,
            f"more parallel jobs than jobs ({total}): give at most {total}",
        )
    return {"max_jobs": max_jobs, "max_parallel_jobs": max_parallel}


def _check_accepted(config: TuningConfig, base: dict[str, str], accepts, source: str) -> None:
    """Every range's probe values, with every estimator the search can pick, must parse as train.py parses them."""
    try:
        accepts(base)
    except ValueError as exc:
        raise TuningConfigError(f"{source}: the project's hyperparameters are refused: {exc}") from None
    estimator_range = next((r for r in config.ranges if r.name == "estimator"), None)
    estimators = list(estimator_range.values) if estimator_range else [base.get("estimator")]
    for estimator in estimators:
        chosen = {**base, **({"estimator": estimator} if estimator is not None else {})}
        for r in config.ranges:
            for value in r.probe_values():
                try:
                    accepts({**chosen, r.name: value})
                except ValueError as exc:
                    during = f" with estimator {estimator!r}" if estimator_range else ""
                    reason = str(exc).split(" (fix model/config/hyperparameters.json")[0]
                    raise TuningConfigError(
                        f"{source}: {r.field}: value {value!r}{during} is refused by model/train/hyperparameters.py: "
                        f"{reason}; change or remove this range"
                    ) from None
