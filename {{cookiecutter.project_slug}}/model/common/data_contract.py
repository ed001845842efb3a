"""The data contract (model/config/schema.json) shared by training and serving.

Training validates its input frame and serving validates every request through the same code, and both
turn validated columns into model inputs the same way, so the two can never disagree about what a row means.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

PROBLEM_TYPES = ("binary_classification", "multiclass_classification", "regression")
FEATURE_TYPES = ("integer", "float", "categorical")
FACET_TYPES = ("categorical", "numeric")
MISSING_TARGET_POLICIES = ("refuse", "drop")
UNKNOWN_CATEGORY_POLICIES = ("refuse", "accept")
# Missing categorical values reach the encoder as this token under training and serving alike; a
# one-hot encoder then learns "missing" as a category of its own.
MISSING_CATEGORY = "__missing__"
MAX_REPORTED_ISSUES = 10
SMALL_BATCH = 16


class SchemaError(ValueError):
    """schema.json itself is malformed."""


@dataclass(frozen=True)
class Issue:
    """One problem found in input data: where it is and what is wrong."""

    column: str
    problem: str
    row: int | None = None
    value: object = None

    def __str__(self) -> str:
        where = f"row {self.row}, column '{self.column}'" if self.row is not None else f"column '{self.column}'"
        if self.value is None:
            return f"{where}: {self.problem}"
        return f"{where}: value {self.value!r} {self.problem}"

    def to_dict(self) -> dict:
        out = {"column": self.column, "problem": self.problem}
        if self.row is not None:
            out["row"] = self.row
        if self.value is not None:
            out["value"] = self.value if isinstance(self.value, (int, float, str)) else repr(self.value)
        return out


class DataValidationError(ValueError):
    """Input data breaks the contract; carries every issue found (the message shows the first few)."""

    def __init__(self, issues: Sequence[Issue], total: int | None = None):
        self.issues = list(issues)
        self.total = total if total is not None else len(self.issues)
        shown = _shown_issues(self.issues)
        more = self.total - len(shown)
        super().__init__("; ".join(map(str, shown)) + (f"; and {more} more" if more > 0 else ""))

    @property
    def columns(self) -> list[str]:
        """Every column with a problem, in the order found."""
        return list(dict.fromkeys(i.column for i in self.issues))


def _shown_issues(issues: Sequence[Issue]) -> list[Issue]:
    """The issues a message shows: the first few, but at least one of every column, so none is hidden."""
    shown = list(issues[:MAX_REPORTED_ISSUES])
    listed = {i.column for i in shown}
    for issue in issues[MAX_REPORTED_ISSUES:]:
        if issue.column not in listed:
            shown.append(issue)
            listed.add(issue.column)
    return shown


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    nullable: bool = True
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    description: str = ""
    # "accept": values outside `categories` are valid and encoded as unseen (all-zero one-hot); for long tails
    # such as product codes, where only the frequent values are listed.
    unknown_categories: str = "refuse"

    @property
    def is_numeric(self) -> bool:
        return self.type in ("integer", "float")


@dataclass(frozen=True)
class SensitiveFeature:
    """A facet for bias metrics, named as SageMaker Clarify names it (facet_values_or_threshold = group d).

    A categorical facet lists the values of group d; a numeric facet gives one threshold and group d is every
    value above it, as in Clarify. A facet may also be a model feature (then the endpoint sees it too) or a
    column the model never takes. Rows where the facet is missing belong to neither group.
    """

    name: str
    facet_values_or_threshold: tuple
    categories: tuple[str, ...] = ()
    type: str = "categorical"
    nullable: bool = True

    @property
    def is_numeric(self) -> bool:
        return self.type == "numeric"

    def coerce(self, values: Sequence) -> tuple[np.ndarray, list[Issue]]:
        """Raw column -> float64 with NaN (numeric) or str with None (categorical), and what is wrong with it."""
        if self.is_numeric:
            return _coerce_numeric(Feature(self.name, "float", nullable=self.nullable), values)
        # Without listed categories every value is a group of its own.
        unknown = "refuse" if self.categories else "accept"
        feature = Feature(
            self.name, "categorical", self.nullable, categories=self.categories, unknown_categories=unknown
        )
        return _coerce_categorical(feature, values)

    def groups(self, values: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """(in_d, known): membership of facet d, and which rows have a facet value at all."""
        if self.is_numeric:
            if isinstance(values, np.ndarray) and values.dtype.kind == "f":  # already coerced: no per-row pass
                numeric = values
            else:
                numeric = np.array([np.nan if is_missing(v) else v for v in values], dtype=np.float64)
            known = ~np.isnan(numeric)
            return known & (numeric > float(self.facet_values_or_threshold[0])), known
        keys = [None if is_missing(v) else _label_key(v) for v in values]
        known = np.array([k is not None for k in keys], dtype=bool)
        group = set(self.facet_values_or_threshold)
        return np.array([k in group for k in keys], dtype=bool), known


@dataclass(frozen=True)
class Schema:
    problem_type: str
    target: str
    features: tuple[Feature, ...]
    classes: tuple[str, ...] = ()
    label_values_or_threshold: tuple = ()
    sensitive_features: tuple[SensitiveFeature, ...] = ()
    missing_target: str = "refuse"
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> Schema:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SchemaError(f"schema file {path} does not exist: create it (see docs/contracts.md)") from None
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "schema.json") -> Schema:
        def fail(field_name: str, value: object, fix: str) -> SchemaError:
            return SchemaError(f"{source}: '{field_name}' = {value!r}: {fix}")

        if not isinstance(data, Mapping):
            raise SchemaError(f"{source}: the top level must be a JSON object, got {type(data).__name__}")
        problem_type = data.get("problem_type")
        if problem_type not in PROBLEM_TYPES:
            raise fail("problem_type", problem_type, f"use one of {', '.join(PROBLEM_TYPES)}")
        target = data.get("target")
        if not isinstance(target, str) or not target:
            raise fail("target", target, "give the name of the label column as a non-empty string")
        raw_features = data.get("features")
        if not isinstance(raw_features, list) or not raw_features:
            raise fail("features", raw_features, 'give a non-empty list of {"name": ..., "type": ...} objects')
        features = []
        seen: set[str] = set()
        for i, item in enumerate(raw_features):
            where = f"features[{i}]"
            if not isinstance(item, Mapping):
                raise fail(where, item, "each feature must be an object with at least 'name' and 'type'")
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise fail(f"{where}.name", name, "give the column name as a non-empty string")
            if name in seen or name == target:
                raise fail(f"{where}.name", name, "feature names must be unique and differ from the target")
            seen.add(name)
            ftype = item.get("type")
            if ftype not in FEATURE_TYPES:
                raise fail(f"{where}.type", ftype, f"use one of {', '.join(FEATURE_TYPES)}")
            nullable = item.get("nullable", True)
            if not isinstance(nullable, bool):
                raise fail(f"{where}.nullable", nullable, "use true or false")
            bounds = {}
            for key in ("minimum", "maximum"):
                value = item.get(key)
                if value is not None and (
                    ftype == "categorical" or isinstance(value, bool) or not isinstance(value, (int, float))
                ):
                    raise fail(f"{where}.{key}", value, "give a number, and only for integer or float features")
                bounds[key] = value
            if None not in (bounds["minimum"], bounds["maximum"]) and bounds["minimum"] > bounds["maximum"]:
                raise fail(f"{where}.minimum", bounds["minimum"], "must not exceed 'maximum'")
            categories = item.get("categories", [])
            unknown = item.get("unknown_categories", "refuse")
            if ftype == "categorical":
                if not isinstance(categories, list) or not categories or not all(_is_label(c) for c in categories):
                    raise fail(
                        f"{where}.categories", categories, "list the allowed values (strings, integers or booleans)"
                    )
                categories = [_label_key(c) for c in categories]
                if len(set(categories)) != len(categories):
                    raise fail(f"{where}.categories", categories, "list each category once")
                if MISSING_CATEGORY in categories:
                    raise fail(f"{where}.categories", MISSING_CATEGORY, "this token is reserved for missing values")
                if unknown not in UNKNOWN_CATEGORY_POLICIES:
                    raise fail(
                        f"{where}.unknown_categories",
                        unknown,
                        "use 'refuse' (values outside categories are errors) or 'accept' (encoded as unseen)",
                    )
            elif categories or "unknown_categories" in item:
                key = "categories" if categories else "unknown_categories"
                raise fail(f"{where}.{key}", item.get(key), f"{key} apply to categorical features only")
            features.append(
                Feature(
                    name=name,
                    type=ftype,
                    nullable=nullable,
                    minimum=bounds["minimum"],
                    maximum=bounds["maximum"],
                    categories=tuple(categories),
                    description=str(item.get("description", "")),
                    unknown_categories=unknown if ftype == "categorical" else "refuse",
                )
            )
        classes = data.get("classes", [])
        if problem_type == "regression":
            if classes:
                raise fail("classes", classes, "regression has no classes: remove the field")
        else:
            minimum = 2 if problem_type == "binary_classification" else 3
            keys = [_label_key(c) for c in classes] if isinstance(classes, list) else []
            if (
                not isinstance(classes, list)
                or len(classes) < minimum
                or (problem_type == "binary_classification" and len(classes) != 2)
                or not all(_is_label(c) for c in classes)
                or len(set(keys)) != len(keys)
            ):
                expected = "exactly 2" if problem_type == "binary_classification" else "at least 3"
                raise fail(
                    "classes",
                    classes,
                    f"list {expected} distinct label values as the data holds them (strings, integers or booleans)",
                )
            classes = keys
        label_values = data.get("label_values_or_threshold", [])
        if not isinstance(label_values, list):
            raise fail("label_values_or_threshold", label_values, "give a list (Clarify's positive outcome)")
        if problem_type == "regression":
            if len(label_values) != 1 or not isinstance(label_values[0], (int, float)):
                raise fail("label_values_or_threshold", label_values, "give one threshold, e.g. [100.0]")
        else:
            label_values = [_label_key(v) if _is_label(v) else v for v in label_values]
            if not label_values or not set(map(str, label_values)) <= set(classes):
                raise fail("label_values_or_threshold", label_values, f"list the positive classes among {classes}")
        missing_target = data.get("missing_target", "refuse")
        if missing_target not in MISSING_TARGET_POLICIES:
            raise fail(
                "missing_target",
                missing_target,
                "use 'refuse' (rows without a label are errors) or 'drop' (they are left out of training)",
            )
        by_name = {f.name: f for f in features}
        sensitive = []
        raw_sensitive = data.get("sensitive_features", [])
        if not isinstance(raw_sensitive, list):
            raise fail("sensitive_features", raw_sensitive, "give a list (empty when bias is not measured)")
        for i, item in enumerate(raw_sensitive):
            where = f"sensitive_features[{i}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item.get("name"):
                raise fail(where, item, "give an object with 'name' and 'facet_values_or_threshold'")
            name = item["name"]
            if name == target:
                raise fail(f"{where}.name", name, "the label cannot be its own facet: name another column")
            if any(s.name == name for s in sensitive):
                raise fail(f"{where}.name", name, "list each sensitive feature once")
            facet = item.get("facet_values_or_threshold")
            if not isinstance(facet, list) or not facet:
                raise fail(f"{where}.facet_values_or_threshold", facet, "list the disadvantaged group value(s)")
            feature = by_name.get(name)
            ftype = item.get("type")
            if ftype is None:
                numeric_threshold = len(facet) == 1 and _is_number(facet[0]) and not item.get("categories")
                numeric_feature = feature is not None and feature.is_numeric
                ftype = "numeric" if (numeric_feature or (feature is None and numeric_threshold)) else "categorical"
            if ftype not in FACET_TYPES:
                raise fail(f"{where}.type", ftype, f"use one of {', '.join(FACET_TYPES)}")
            nullable = item.get("nullable", feature.nullable if feature is not None else True)
            if not isinstance(nullable, bool):
                raise fail(f"{where}.nullable", nullable, "use true or false")
            if ftype == "numeric":
                if len(facet) != 1 or not _is_number(facet[0]):
                    raise fail(
                        f"{where}.facet_values_or_threshold",
                        facet,
                        "a numeric facet takes one threshold, e.g. [60]: group d is every value above it",
                    )
                if item.get("categories"):
                    raise fail(f"{where}.categories", item["categories"], "a numeric facet has no categories")
                sensitive.append(SensitiveFeature(name, (float(facet[0]),), (), "numeric", nullable))
                continue
            if not all(_is_label(v) for v in facet):
                raise fail(f"{where}.facet_values_or_threshold", facet, "list group d's values as strings")
            facet = [_label_key(v) for v in facet]
            cats = item.get("categories", [])
            if not isinstance(cats, list) or not all(_is_label(c) for c in cats):
                raise fail(f"{where}.categories", cats, "list the facet's values (strings, integers or booleans)")
            cats = [_label_key(c) for c in cats]
            if not cats and feature is not None and not feature.is_numeric:
                cats = list(feature.categories) if feature.unknown_categories == "refuse" else []
            if cats and not set(facet) <= set(cats):
                raise fail(f"{where}.facet_values_or_threshold", facet, f"use values among {cats}")
            sensitive.append(SensitiveFeature(name, tuple(facet), tuple(cats), "categorical", nullable))
        return cls(
            problem_type=problem_type,
            target=target,
            features=tuple(features),
            classes=tuple(classes),
            label_values_or_threshold=tuple(label_values),
            sensitive_features=tuple(sensitive),
            missing_target=missing_target,
            raw=dict(data),
        )

    # ---------------------------------------------------------------- properties
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def is_classification(self) -> bool:
        return self.problem_type != "regression"

    @cached_property
    def _by_name(self) -> dict[str, Feature]:
        return {f.name: f for f in self.features}

    def feature(self, name: str) -> Feature:
        return self._by_name[name]

    # ----------------------------------------------------------- row decoding
    def columns_from_rows(self, rows: Sequence[Sequence]) -> dict[str, Sequence]:
        """Lists of values in schema order (CSV rows, JSON lists) -> columns; the row length is checked."""
        width = len(self.features)
        bad = [
            Issue("*", f"has {len(r)} values, expected {width} ({', '.join(self.feature_names)})", row=i)
            for i, r in enumerate(rows)
            if len(r) != width
        ]
        if bad:
            raise DataValidationError(bad[:MAX_REPORTED_ISSUES], total=len(bad))
        if not rows:
            return {name: [] for name in self.feature_names}
        return dict(zip(self.feature_names, zip(*rows, strict=True), strict=True))

    def columns_from_records(self, records: Sequence[Mapping], extra_allowed: Iterable[str] = ()) -> dict:
        """JSON objects keyed by feature name -> columns; missing and unknown keys are reported."""
        names = self.feature_names
        known = set(names) | set(extra_allowed)
        issues = []
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                issues.append(Issue("*", "is not a JSON object", row=i, value=record))
                continue
            if len(record) != len(names) or any(k not in record for k in names):
                issues += [Issue(n, "is missing from the record", row=i) for n in names if n not in record]
                issues += [Issue(str(k), "is not a feature in schema.json", row=i) for k in record if k not in known]
            if len(issues) >= MAX_REPORTED_ISSUES:
                break
        if issues:
            raise DataValidationError(issues)
        return {n: [r[n] for r in records] for n in names}

    # -------------------------------------------------------------- validation
    def coerce_columns(self, columns: Mapping[str, Sequence], names: Iterable[str] | None = None) -> dict:
        """Validate raw columns against the contract and return typed numpy columns.

        Numeric columns become float64 with NaN for missing values; categorical columns become object arrays of
        str with None for missing values. Every broken rule is collected, not just the first.
        """
        issues: list[Issue] = []
        total = 0
        out: dict[str, np.ndarray] = {}
        for name in names if names is not None else self.feature_names:
            feature = self.feature(name)
            values = columns[name]
            if feature.is_numeric:
                array, found = _coerce_numeric(feature, values)
            else:
                array, found = _coerce_categorical(feature, values)
            total += len(found)
            issues.extend(found[:MAX_REPORTED_ISSUES])
            out[name] = array
        if issues:
            issues.sort(key=lambda i: i.row if i.row is not None else -1)
            raise DataValidationError(issues, total=total)
        return out

    def coerce_target(self, values: Sequence) -> np.ndarray:
        """Labels -> class indices (classification) or float64 (regression)."""
        if self.is_classification:
            index = label_lookup(self.classes)
            issues = []
            out = np.empty(len(values), dtype=np.int64)
            for i, v in enumerate(values):
                found = _lookup(index, v)
                if found is None:
                    issues.append(Issue(self.target, f"is not one of the classes {list(self.classes)}", i, v))
                else:
                    out[i] = found
            if issues:
                raise DataValidationError(issues[:MAX_REPORTED_ISSUES], total=len(issues))
            return out
        target = Feature(self.target, "float", nullable=False)
        array, issues = _coerce_numeric(target, values)
        if issues:
            raise DataValidationError(issues[:MAX_REPORTED_ISSUES], total=len(issues))
        return array

    # ------------------------------------------------------------ model inputs
    def to_model_inputs(
        self, columns: Mapping[str, np.ndarray], input_names: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Validated columns -> the [n, 1] tensors the exported model takes (float32 and str), in schema order.

        ONNX graph inputs follow the schema's feature order, but the converter rewrites names that are not
        identifiers (``mean radius`` becomes ``mean_radius``, colliding names get suffixes), so the tensors are
        keyed by the graph's own input names, position by position; without them, by feature name.
        """
        names = self.feature_names if input_names is None else list(input_names)
        if len(names) != len(self.features):
            raise ValueError(
                f"the model takes {len(names)} inputs but schema.json lists {len(self.features)} features: "
                "the artifact and its schema.json do not belong together (retrain)"
            )
        inputs = {}
        for key, feature in zip(names, self.features, strict=True):
            column = columns[feature.name]
            if feature.is_numeric:
                inputs[key] = column.astype(np.float32).reshape(-1, 1)
            else:
                filled = [MISSING_CATEGORY if v is None else v for v in column]
                inputs[key] = np.array(filled, dtype=object).reshape(-1, 1)
        return inputs

    def to_frame(self, columns: Mapping[str, np.ndarray]):
        """Validated columns -> the pandas frame the scikit-learn pipeline is fitted on (training side)."""
        import pandas as pd

        data = {}
        for feature in self.features:
            column = columns[feature.name]
            if feature.is_numeric:
                data[feature.name] = column.astype(np.float64)
            else:
                data[feature.name] = np.array([MISSING_CATEGORY if v is None else v for v in column], dtype=object)
        return pd.DataFrame(data, columns=self.feature_names)


def file_stem(name: str, limit: int = 60) -> str:
    """A column name as a portable file name: unchanged when already safe, else sanitised plus a short digest,
    so `a b` and `a_b` never share a file, `od280/od315` never becomes a folder, and `Speed` and `speed` stay
    apart on case-insensitive file systems (only lowercase names are kept as they are)."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "column"
    if safe == name and name == name.lower() and len(name) <= limit:
        return name
    return f"{safe[:limit]}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def is_missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _is_label(value: object) -> bool:
    """A class, category or facet value as schema.json may give it: a non-empty string, an integer or a boolean."""
    return (isinstance(value, str) and value != "") or isinstance(value, (bool, int))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _label_key(value: object) -> str:
    """One spelling per value: 1, 1.0 and "1" are "1"; True is "True" (as CSV files and pandas write it)."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value)


def label_lookup(keys: Sequence[str]) -> dict[str, int]:
    """Spellings of each class or category -> its index: exact, numeric ("1.0" for "1") and boolean ("true")."""
    index: dict[str, int] = {}
    for i, key in enumerate(keys):
        index[key] = i
    for i, key in enumerate(keys):
        if key in ("True", "False"):
            for spelling in (key.lower(), key.upper(), "1" if key == "True" else "0"):
                index.setdefault(spelling, i)
        try:
            number = float(key)
        except ValueError:
            continue
        if math.isfinite(number):
            for spelling in (f"{number}", f"{int(number)}" if number.is_integer() else key):
                index.setdefault(spelling, i)
    return index


def _lookup(index: Mapping[str, int], value: object) -> int | None:
    key = _label_key(value)
    found = index.get(key)
    if found is None and isinstance(value, str):
        stripped = value.strip()
        found = index.get(stripped)
        if found is None:
            try:
                found = index.get(_label_key(float(stripped)))
            except ValueError:
                found = None
    return found


def _all_valid(feature: Feature, array: np.ndarray) -> bool:
    """True when every value is present, finite, in range and (for integers) whole; min/max cover all four."""
    if not len(array):
        return True
    if len(array) <= SMALL_BATCH:  # numpy's per-call overhead dominates for a handful of values
        floats = array.tolist()
        low, high = min(floats), max(floats)
        if any(v != v for v in floats):  # NaN: a missing value
            return False
        whole = feature.type != "integer" or all(v.is_integer() for v in floats if math.isfinite(v))
    else:
        low, high = array.min(), array.max()  # NaN propagates into both
        whole = feature.type != "integer" or bool((array == np.floor(array)).all())
    if not (math.isfinite(low) and math.isfinite(high)):
        return False
    if (feature.minimum is not None and low < feature.minimum) or (
        feature.maximum is not None and high > feature.maximum
    ):
        return False
    return whole


def _coerce_numeric(feature: Feature, values: Sequence) -> tuple[np.ndarray, list[Issue]]:
    issues: list[Issue] = []
    try:
        # Fast path: every value is a number or a numeric string (None becomes NaN).
        array = np.array(values, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError("nested values")
        # JSON true/false would silently become 1.0/0.0: they are not numbers in this contract.
        if not (isinstance(values, np.ndarray) and values.dtype.kind == "f") and any(type(v) is bool for v in values):
            raise ValueError("boolean")
        if _all_valid(feature, array):  # the common case: one pass of checks, no per-rule bookkeeping
            return array, issues
        if isinstance(values, np.ndarray):
            values = values.tolist()  # problems are reported with plain Python values
    except (ValueError, TypeError):
        array = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            if is_missing(v):
                array[i] = np.nan
                continue
            if type(v) is bool or isinstance(v, (list, dict)):
                issues.append(Issue(feature.name, f"is not a number ({feature.type} expected)", i, v))
                array[i] = np.nan
                continue
            try:
                array[i] = float(v)
            except (ValueError, TypeError):
                issues.append(Issue(feature.name, f"is not a number ({feature.type} expected)", i, v))
                array[i] = np.nan
    bad_rows = {i.row for i in issues}
    infinite = np.isinf(array)
    if infinite.any():
        issues += [Issue(feature.name, "is not finite", int(i), values[i]) for i in np.flatnonzero(infinite)]
        array[infinite] = np.nan
        bad_rows |= {int(i) for i in np.flatnonzero(infinite)}
    missing = np.isnan(array)
    if not feature.nullable and missing.any():
        issues += [
            Issue(feature.name, "is missing but the feature is not nullable", int(i))
            for i in np.flatnonzero(missing)
            if int(i) not in bad_rows
        ]
    present = ~missing
    if feature.type == "integer":
        fractional = present & (np.mod(array, 1.0, where=present, out=np.zeros_like(array)) != 0)
        issues += [Issue(feature.name, "is not an integer", int(i), values[i]) for i in np.flatnonzero(fractional)]
    if feature.minimum is not None:
        low = present & (array < feature.minimum)
        issues += [
            Issue(feature.name, f"is below the minimum {feature.minimum}", int(i), values[i])
            for i in np.flatnonzero(low)
        ]
    if feature.maximum is not None:
        high = present & (array > feature.maximum)
        issues += [
            Issue(feature.name, f"is above the maximum {feature.maximum}", int(i), values[i])
            for i in np.flatnonzero(high)
        ]
    return array, issues


def _coerce_categorical(feature: Feature, values: Sequence) -> tuple[np.ndarray, list[Issue]]:
    issues: list[Issue] = []
    allowed = set(feature.categories)
    index = None
    accept = feature.unknown_categories == "accept"
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v in allowed:  # the common case first: one set lookup
            out[i] = v
            continue
        if is_missing(v):
            out[i] = None
            if not feature.nullable:
                issues.append(Issue(feature.name, "is missing but the feature is not nullable", i))
            continue
        if isinstance(v, (list, dict)) or (type(v) is bool and _label_key(v) not in allowed):
            issues.append(Issue(feature.name, "is not a category string", i, v))
            continue
        if index is None:
            index = label_lookup(feature.categories)
        found = _lookup(index, v)
        if found is not None:
            out[i] = feature.categories[found]
        elif accept:
            out[i] = _label_key(v)
        else:
            issues.append(Issue(feature.name, f"is not one of the categories {_preview(feature.categories)}", i, v))
    return out, issues


def _preview(values: Sequence[str], limit: int = 10) -> str:
    shown = list(values[:limit])
    return f"{shown}" if len(values) <= limit else f"{[*shown[:-1], '...']} ({len(values)} in all)"
