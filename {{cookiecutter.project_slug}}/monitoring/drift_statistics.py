"""Mergeable per-feature statistics, the distances between two distributions, and Model Monitor's JSON shapes.

Everything here is pure: a Profile is updated chunk by chunk, two Profiles merge into the Profile of the
concatenated data (counts and histograms exactly, quantiles within the KLL sketch's rank error), and the
baseline and current Profiles turn into statistics.json / constraints.json in SageMaker Model Monitor's format.

Numeric histograms use the baseline's own bins (edges at its deciles), so a shard only needs the baseline to
count, and merging is adding integers. The KLL sketch (Apache DataSketches) carries the quantiles.
"""

from __future__ import annotations

import base64
import itertools
import math
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.common.data_contract import Feature

KLL_K = 200  # DataSketches' default: normalised rank error about 1.3 %
KLL_C = 2 / 3  # the compactor decay DataSketches' KLL uses, reported as Model Monitor's "c" parameter
QUANTILE_BINS = 10  # baseline deciles: each bin holds about 10 % of the baseline
MAX_TRACKED_CATEGORIES = 1000  # distinct out-of-domain values kept by name; the rest count as OTHER
OTHER = "__other__"
PSI_FLOOR = 1e-4  # PSI is infinite on an empty bin: shares are floored at this value first

# Kinds of per-value problems, each counted per feature (see FeatureProfile.issues).
TYPE_ERROR = "type_error"  # not a number / not a category string / not finite
NOT_INTEGER = "not_integer"
BELOW_MINIMUM = "below_minimum"
ABOVE_MAXIMUM = "above_maximum"
OUT_OF_DOMAIN = "out_of_domain"
MISSING_NOT_NULLABLE = "missing_not_nullable"
ISSUE_KINDS = (TYPE_ERROR, NOT_INTEGER, BELOW_MINIMUM, ABOVE_MAXIMUM, OUT_OF_DOMAIN, MISSING_NOT_NULLABLE)


def new_sketch():
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch(KLL_K)


def load_sketch(encoded: str):
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch.deserialize(base64.b64decode(encoded))


# ------------------------------------------------------------------------------------------ measuring values
def measure_numeric(feature: Feature, values) -> tuple[np.ndarray, Counter]:
    """Raw values (numpy, pyarrow or a list) -> float64 with NaN for missing or unusable, and problem counts.

    The rules are the data contract's (model/common/data_contract.py), counted instead of raised: values of the
    wrong type become NaN and count as type errors; out-of-range values stay in the distribution (they are real
    data and often the first sign of drift) and are counted.
    """
    issues: Counter = Counter()
    array, type_errors = _to_float(values)
    if type_errors:
        issues[TYPE_ERROR] += type_errors
    infinite = 0
    if not np.isfinite(array.sum()):  # one pass: a sum is finite only when every value is
        mask = np.isinf(array)
        infinite = int(mask.sum())
        if infinite:
            issues[TYPE_ERROR] += infinite
            array = np.where(mask, np.nan, array)
    bounded = feature.minimum is not None or feature.maximum is not None
    if feature.nullable and feature.type != "integer" and not bounded:
        return array, issues  # nothing more to count: skip the passes below
    present = ~np.isnan(array)
    if not feature.nullable:
        missing = int(len(array) - present.sum()) - type_errors - infinite
        if missing:
            issues[MISSING_NOT_NULLABLE] += missing
    if feature.type == "integer":
        fractional = int((np.mod(array[present], 1.0) != 0).sum())
        if fractional:
            issues[NOT_INTEGER] += fractional
    if feature.minimum is not None:
        below = int((array[present] < feature.minimum).sum())
        if below:
            issues[BELOW_MINIMUM] += below
    if feature.maximum is not None:
        above = int((array[present] > feature.maximum).sum())
        if above:
            issues[ABOVE_MAXIMUM] += above
    return array, issues


def _to_float(values) -> tuple[np.ndarray, int]:
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return values.astype(np.float64, copy=False), 0
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if pa.types.is_float64(values.type):
            return _arrow_to_numpy(values), 0
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
            return _arrow_to_numpy(pc.cast(values, pa.float64())), 0
        if pa.types.is_null(values.type):
            return np.full(len(values), np.nan), 0
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            try:
                return _arrow_to_numpy(pc.cast(values, pa.float64())), 0
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values = values.to_numpy(zero_copy_only=False)
        else:
            values = values.to_numpy(zero_copy_only=False)
    return _objects_to_float(values)


def _arrow_to_numpy(array) -> np.ndarray:
    if hasattr(array, "combine_chunks"):
        array = array.combine_chunks()
    return array.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _objects_to_float(values) -> tuple[np.ndarray, int]:
    """The slow path for payloads that broke the contract: one Python check per value."""
    out = np.empty(len(values), dtype=np.float64)
    errors = 0
    for i, value in enumerate(values):
        if value is None or (isinstance(value, str) and not value.strip()):
            out[i] = np.nan
        elif type(value) is bool or isinstance(value, (list, dict)):
            out[i] = np.nan
            errors += 1
        else:
            try:
                out[i] = float(value)
            except (TypeError, ValueError):
                out[i] = np.nan
                errors += 1
    return out, errors


def measure_categorical(feature: Feature, values) -> tuple[Counter, int, Counter]:
    """Raw values -> (value counts of present values, missing count, problem counts)."""
    issues: Counter = Counter()
    counts: Counter = Counter()
    missing = 0
    allowed = set(feature.categories)
    for value, count in _value_counts(values):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            missing += count
            continue
        if type(value) is bool or isinstance(value, (list, dict, tuple)):
            issues[TYPE_ERROR] += count
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = value if isinstance(value, str) else str(value)
        if text not in allowed:
            issues[OUT_OF_DOMAIN] += count
        counts[text] += count
    if missing and not feature.nullable:
        issues[MISSING_NOT_NULLABLE] += missing
    return counts, missing, issues


def _value_counts(values) -> Iterable[tuple[object, int]]:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            values = pc.cast(values, pa.string()) if not pa.types.is_null(values.type) else values
        result = pc.value_counts(values)
        return zip(result.field("values").to_pylist(), result.field("counts").to_pylist(), strict=True)
    hashable = [tuple(v) if isinstance(v, list) else (("__dict__",) if isinstance(v, dict) else v) for v in values]
    return Counter(hashable).items()


# --------------------------------------------------------------------------------------------- the profile
@dataclass
class FeatureProfile:
    """Everything the checks need about one feature, mergeable by addition."""

    name: str
    kind: str  # numeric | categorical
    rows: int = 0  # rows in which the column was there
    absent_rows: int = 0  # rows of sources that lacked the column entirely
    missing: int = 0
    issues: Counter = field(default_factory=Counter)
    # numeric
    present: int = 0
    total: float = 0.0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean (Chan et al.'s parallel variance)
    minimum: float = math.inf
    maximum: float = -math.inf
    edges: tuple[float, ...] = ()
    histogram: list[int] = field(default_factory=list)
    sketch: object = None
    # categorical
    counts: Counter = field(default_factory=Counter)

    def update_numeric(self, array: np.ndarray, issues: Counter) -> None:
        self.rows += len(array)
        self.issues.update(issues)
        missing = np.isnan(array)
        values = array[~missing] if missing.any() else array
        self.missing += len(array) - len(values) - issues.get(TYPE_ERROR, 0)
        if not len(values):
            return
        n = len(values)
        total = float(values.sum())
        deviations = values - total / n
        m2 = float(np.einsum("i,i->", deviations, deviations))  # not `@`: BLAS threads cost more than they save
        self._merge_moments(n, total, total / n, m2, float(values.min()), float(values.max()))
        if self.histogram:
            counts = bin_counts(values, self.edges)
            self.histogram = [a + b for a, b in zip(self.histogram, counts, strict=True)]
        if self.sketch is None:
            self.sketch = new_sketch()
        self.sketch.update(np.require(values, np.float64, ["C", "W"]))  # the binding wants a writable array

    def update_categorical(self, counts: Counter, missing: int, issues: Counter, rows: int) -> None:
        self.rows += rows
        self.missing += missing
        self.issues.update(issues)
        for value, count in counts.items():
            if value in self.counts or len(self.counts) < MAX_TRACKED_CATEGORIES:
                self.counts[value] += count
            else:
                self.counts[OTHER] += count

    def _merge_moments(self, n: int, total: float, mean: float, m2: float, low: float, high: float) -> None:
        if self.present == 0:
            self.present, self.total, self.mean, self.m2 = n, total, mean, m2
        else:
            combined = self.present + n
            delta = mean - self.mean
            self.mean += delta * n / combined
            self.m2 += m2 + delta * delta * self.present * n / combined
            self.total += total
            self.present = combined
        self.minimum = min(self.minimum, low)
        self.maximum = max(self.maximum, high)

    def merge(self, other: FeatureProfile) -> None:
        if (self.name, self.kind, self.edges) != (other.name, other.kind, other.edges):
            raise ValueError(f"cannot merge profiles of '{self.name}' built against different baselines")
        self.rows += other.rows
        self.absent_rows += other.absent_rows
        self.missing += other.missing
        self.issues.update(other.issues)
        if self.kind == "categorical":
            self.update_categorical(other.counts, 0, Counter(), 0)
            return
        if other.present:
            self._merge_moments(other.present, other.total, other.mean, other.m2, other.minimum, other.maximum)
            self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
            if self.sketch is None:
                self.sketch = new_sketch()
            self.sketch.merge(other.sketch)

    @property
    def std_dev(self) -> float:
        return math.sqrt(self.m2 / self.present) if self.present else 0.0

    @property
    def completeness(self) -> float:
        return (self.rows - self.missing) / self.rows if self.rows else 1.0

    def quantiles(self, levels: Sequence[float]) -> list[float]:
        if self.sketch is None or self.sketch.is_empty():
            return []
        return [float(q) for q in self.sketch.get_quantiles(list(levels))]

    def to_state(self) -> dict:
        out = {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "absent_rows": self.absent_rows,
            "missing": self.missing,
            "issues": dict(self.issues),
        }
        if self.kind == "categorical":
            out["counts"] = dict(self.counts)
            return out
        out.update(
            present=self.present,
            total=self.total,
            mean=self.mean,
            m2=self.m2,
            minimum=self.minimum if self.present else None,
            maximum=self.maximum if self.present else None,
            edges=list(self.edges),
            histogram=self.histogram,
            sketch=base64.b64encode(self.sketch.serialize()).decode() if self.sketch is not None else None,
        )
        return out

    @classmethod
    def from_state(cls, state: Mapping) -> FeatureProfile:
        profile = cls(
            name=state["name"],
            kind=state["kind"],
            rows=state["rows"],
            absent_rows=state["absent_rows"],
            missing=state["missing"],
            issues=Counter(state["issues"]),
        )
        if profile.kind == "categorical":
            profile.counts = Counter(state["counts"])
            return profile
        profile.present, profile.total = state["present"], state["total"]
        profile.mean, profile.m2 = state["mean"], state["m2"]
        if profile.present:
            profile.minimum, profile.maximum = state["minimum"], state["maximum"]
        profile.edges, profile.histogram = tuple(state["edges"]), list(state["histogram"])
        profile.sketch = load_sketch(state["sketch"]) if state["sketch"] else None
        return profile


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    """Counts per bin (-inf, e0), [e0, e1), ..., [ek, inf): one vectorised comparison per edge, which for
    the ten-odd decile edges is several times faster than np.searchsorted's per-value binary search."""
    below = [0, *(int(np.count_nonzero(values < edge)) for edge in edges), len(values)]
    return [b - a for a, b in itertools.pairwise(below)]


class Profile:
    """Per-feature statistics of one data set (a baseline, a capture window, or one shard of it)."""

    def __init__(self, features: Sequence[Feature], edges: Mapping[str, Sequence[float]] | None = None):
        self.features = {f.name: f for f in features}
        self.item_count = 0
        self.columns: dict[str, FeatureProfile] = {}
        for feature in features:
            kind = "numeric" if feature.is_numeric else "categorical"
            profile = FeatureProfile(feature.name, kind)
            if feature.is_numeric and edges is not None and feature.name in edges:
                profile.edges = tuple(float(e) for e in edges[feature.name])
                profile.histogram = [0] * (len(profile.edges) + 1)
            self.columns[feature.name] = profile

    def update(self, columns: Mapping[str, object], rows: int) -> None:
        """Add `rows` records; a feature absent from `columns` counts as absent (missing_column_check)."""
        self.item_count += rows
        for name, feature in self.features.items():
            profile = self.columns[name]
            if name not in columns:
                profile.absent_rows += rows
                continue
            if feature.is_numeric:
                array, issues = measure_numeric(feature, columns[name])
                profile.update_numeric(array, issues)
            else:
                counts, missing, issues = measure_categorical(feature, columns[name])
                profile.update_categorical(counts, missing, issues, rows)

    def merge(self, other: Profile) -> Profile:
        if set(self.columns) != set(other.columns):
            raise ValueError("cannot merge profiles of different feature sets")
        self.item_count += other.item_count
        for name, profile in self.columns.items():
            profile.merge(other.columns[name])
        return self

    def to_state(self) -> dict:
        return {"item_count": self.item_count, "features": [p.to_state() for p in self.columns.values()]}

    @classmethod
    def from_state(cls, features: Sequence[Feature], state: Mapping) -> Profile:
        profile = cls(features)
        profile.item_count = state["item_count"]
        for item in state["features"]:
            if item["name"] not in profile.columns:
                raise ValueError(f"state has feature '{item['name']}' that the schema does not")
            profile.columns[item["name"]] = FeatureProfile.from_state(item)
        return profile

    def baseline_edges(self) -> dict[str, list[float]]:
        """Bin edges at the deciles of each numeric feature (duplicates dropped, so discrete values bin cleanly)."""
        levels = [i / QUANTILE_BINS for i in range(1, QUANTILE_BINS)]
        edges = {}
        for name, profile in self.columns.items():
            if profile.kind == "numeric":
                edges[name] = sorted(set(profile.quantiles(levels)))
        return edges


# ------------------------------------------------------------------------------------------------ distances
def shares(counts: Sequence[float]) -> np.ndarray:
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum()
    return array / total if total > 0 else array


def jensen_shannon_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """sqrt of the Jensen-Shannon divergence in bits: 0 for equal distributions, 1 for disjoint ones."""
    p, q = shares(p), shares(q)
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nonzero = a > 0
        return float((a[nonzero] * np.log2(a[nonzero] / b[nonzero])).sum())

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def population_stability_index(p: Sequence[float], q: Sequence[float]) -> float:
    p, q = np.clip(shares(p), PSI_FLOOR, None), np.clip(shares(q), PSI_FLOOR, None)
    return float(((q - p) * np.log(q / p)).sum())


def linf_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Largest absolute difference between the shares of any one bin or category."""
    return float(np.max(np.abs(shares(p) - shares(q)))) if len(p) else 0.0


def homogeneity_p_value(baseline_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """Chi-square test that both samples come from one distribution (bins empty on both sides dropped).

    Pearson's statistic on the 2 x bins table; computed here rather than with scipy, whose import alone
    costs seconds and tens of megabytes in a job that otherwise runs in a few seconds.
    """
    table = np.array([baseline_counts, current_counts], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or (rows == 0).any():
        return 1.0
    expected = np.outer(rows, table.sum(axis=0)) / rows.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return chi2_survival(statistic, table.shape[1] - 1)


def chi2_survival(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with integer degrees of freedom (closed form, in log space)."""
    if x <= 0:
        return 1.0
    half = x / 2
    if dof % 2 == 0:
        terms = [i * math.log(half) - math.lgamma(i + 1) - half for i in range(dof // 2)]
        return min(1.0, sum(math.exp(t) for t in terms))
    terms = [(i - 0.5) * math.log(half) - math.lgamma(i + 0.5) - half for i in range(1, (dof + 1) // 2)]
    return min(1.0, math.erfc(math.sqrt(half)) + sum(math.exp(t) for t in terms))


# -------------------------------------------------------------------------------- Model Monitor JSON shapes
def kll_levels(sketch) -> list[list[float]]:
    """The sketch's compactor levels (level i items weigh 2**i), as Model Monitor's sketch "data" lists them.

    Read from DataSketches' documented KLL serial format: preamble, levels offsets, min, max, retained items.
    """
    if sketch is None or sketch.is_empty():
        return []
    data = sketch.serialize()
    if data[3] & 4:  # single-item flag
        return [[struct.unpack_from("<d", data, 8)[0]]]
    num_levels = data[18]
    levels = struct.unpack_from(f"<{num_levels}I", data, 20)
    items = np.frombuffer(data, dtype="<f8", offset=20 + 4 * num_levels + 16)
    bounds = [offset - levels[0] for offset in levels] + [len(items)]
    return [items[bounds[i] : bounds[i + 1]].tolist() for i in range(num_levels)]


def _inferred_type(feature: Feature) -> str:
    return {"integer": "Integral", "float": "Fractional"}.get(feature.type, "String")


def numeric_buckets(profile: FeatureProfile) -> list[dict]:
    if not profile.present:
        return []
    bounds = [profile.minimum, *profile.edges, profile.maximum]
    return [
        {"lower_bound": bounds[i], "upper_bound": bounds[i + 1], "count": float(count)}
        for i, count in enumerate(profile.histogram)
    ]


def statistics_json(profile: Profile) -> dict:
    """statistics.json in Model Monitor's format; numeric buckets are the baseline's decile bins."""
    features = []
    for name, column in profile.columns.items():
        feature = profile.features[name]
        common = {"num_present": column.rows - column.missing, "num_missing": column.missing}
        item: dict = {"name": name, "inferred_type": _inferred_type(feature)}
        if column.kind == "numeric":
            item["numerical_statistics"] = {
                "common": common,
                "mean": column.mean if column.present else 0.0,
                "sum": column.total,
                "std_dev": column.std_dev,
                "min": column.minimum if column.present else 0.0,
                "max": column.maximum if column.present else 0.0,
                "distribution": {
                    "kll": {
                        "buckets": numeric_buckets(column),
                        "sketch": {"parameters": {"c": KLL_C, "k": float(KLL_K)}, "data": kll_levels(column.sketch)},
                    }
                },
            }
        else:
            buckets = [{"value": value, "count": float(count)} for value, count in sorted(column.counts.items())]
            item["string_statistics"] = {
                "common": common,
                "distinct_count": float(len(column.counts)),
                "distribution": {"categorical": {"buckets": buckets}},
            }
        features.append(item)
    return {"version": 0, "dataset": {"item_count": profile.item_count}, "features": features}


@dataclass(frozen=True)
class MonitoringConfig:
    """Model Monitor's monitoring_config, with the thresholds this repository chose (see monitoring/README.md)."""

    datatype_check_threshold: float = 0.01
    domain_content_threshold: float = 0.01
    comparison_threshold: float = 0.1
    comparison_method: str = "Robust"
    evaluate_constraints: str = "Enabled"
    emit_metrics: str = "Enabled"
    perform_comparison: str = "Enabled"

    def to_json(self) -> dict:
        return {
            "evaluate_constraints": self.evaluate_constraints,
            "emit_metrics": self.emit_metrics,
            "datatype_check_threshold": self.datatype_check_threshold,
            "domain_content_threshold": self.domain_content_threshold,
            "distribution_constraints": {
                "perform_comparison": self.perform_comparison,
                "comparison_threshold": self.comparison_threshold,
                "comparison_method": self.comparison_method,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping, source: str = "constraints.json") -> MonitoringConfig:
        distribution = data.get("distribution_constraints", {})
        config = cls(
            datatype_check_threshold=float(data.get("datatype_check_threshold", cls.datatype_check_threshold)),
            domain_content_threshold=float(data.get("domain_content_threshold", cls.domain_content_threshold)),
            comparison_threshold=float(distribution.get("comparison_threshold", cls.comparison_threshold)),
            comparison_method=distribution.get("comparison_method", cls.comparison_method),
            evaluate_constraints=data.get("evaluate_constraints", cls.evaluate_constraints),
            emit_metrics=data.get("emit_metrics", cls.emit_metrics),
            perform_comparison=distribution.get("perform_comparison", cls.perform_comparison),
        )
        if config.comparison_method not in ("Simple", "Robust"):
            raise ValueError(
                f"{source}: monitoring_config.distribution_constraints.comparison_method = "
                f"{config.comparison_method!r}: use Simple or Robust"
            )
        for key in ("datatype_check_threshold", "domain_content_threshold", "comparison_threshold"):
            value = getattr(config, key)
            if not 0 <= value <= 1:
                raise ValueError(f"{source}: monitoring_config {key} = {value}: give a number between 0 and 1")
        return config


def constraints_json(
    profile: Profile, config: MonitoringConfig | None = None, completeness_tolerance: float = 0.02
) -> dict:
    """Suggested constraints: completeness a little under the baseline's (1.0 for non-nullable features),
    non-negativity where the baseline had no negative value, domains = the schema's categories."""
    config = config or MonitoringConfig()
    features = []
    for name, column in profile.columns.items():
        feature = profile.features[name]
        if feature.nullable:
            completeness = max(0.0, round(column.completeness - completeness_tolerance, 4))
        else:
            completeness = 1.0
        item: dict = {"name": name, "inferred_type": _inferred_type(feature), "completeness": completeness}
        if column.kind == "numeric":
            non_negative = (feature.minimum is not None and feature.minimum >= 0) or (
                column.present > 0 and column.minimum >= 0
            )
            item["num_constraints"] = {"is_non_negative": bool(non_negative)}
        else:
            domain = list(feature.categories) or sorted(column.counts)
            item["string_constraints"] = {"domains": domain}
        features.append(item)
    return {"version": 0, "features": features, "monitoring_config": config.to_json()}
