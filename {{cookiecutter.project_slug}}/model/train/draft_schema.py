"""Draft model/config/schema.json (the data contract) from a table: `make schema DATA=path TARGET=column`.

Like TensorFlow Data Validation's infer_schema, pandera's schema inference or Model Monitor's suggest_baseline, it
proposes a contract from what the table shows, and a person reviews it: the positive class, the sensitive features
and the gates are decisions, so the draft says what it guessed and never guesses sensitive features at all.

Rules (the same for every table, so a draft can be re-run and compared):
  type        every present value a finite number -> integer (all whole) or float; anything else -> categorical.
              Integer codes stay integer (the order is kept, unseen codes inside the range are accepted; change
              them to categorical when the codes are labels); yes/no and true/false stay categorical as written.
              Numbers with a leading zero ("02134") are codes: categorical.
  range       widened by 10% of the seen range on each side (a constant by 10% of its value, at least 1); integers
              rounded outward to whole numbers, floats outward to two significant digits of the range; never below
              0 when every seen value is >= 0. A 0/1 flag keeps the bounds 0 and 1.
  categories  the values as written, sorted; above --max-categories the most frequent ones are listed and
              "unknown_categories": "accept" lets the rest through.
  nullable    true when any value is missing (an empty cell).
  excluded    columns with no value at all; IDs (every value distinct, integers or text, no missing value, at least
              20 rows or an ID-like name); dates (no date type in the contract); the reserved token __missing__.
  target      2 values -> binary; 3..--max-classes text values or whole numbers -> multiclass; other numbers ->
              regression. Classes as written (sorted); the positive class and the regression threshold (the
              median) are proposals to confirm.
The draft overwrites model/config/schema.json only when the file is absent, is still the last draft (its SHA-256
is recorded in model/config/.schema-draft.sha256) or is the sample's contract (data/sample_schema.json); --force
overwrites an edited one.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import math
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from model.common import paths, text_tables
from model.common.data_contract import MISSING_CATEGORY, PROBLEM_TYPES, Schema, SchemaError
from model.train import dataset

ROOT = paths.REPO_ROOT
SCHEMA_PATH = paths.SCHEMA_FILE
BASELINE_PATH = paths.GATES_FILE
SAMPLE_SCHEMA_PATH = ROOT / "data" / "sample_schema.json"
DRAFT_RECORD_NAME = ".schema-draft.sha256"

MAX_CATEGORIES = 50
MAX_CLASSES = 20
MARGIN = 0.10
ID_MIN_ROWS = 20
FEW_CODES = 10
EXIT_REFUSED = 2
EMPTY_REASON = "every value is missing: it carries no information"

NA_TOKENS = {"na", "n/a", "nan", "null", "none", "nil", "missing", "-", "?", "#n/a"}
BOOLEAN_SETS = ({"true", "false"}, {"yes", "no"}, {"y", "n"}, {"t", "f"})
# Binary labels whose second member is conventionally the positive outcome (Clarify's label_values_or_threshold).
POSITIVE_BY_PAIR = {
    frozenset({"0", "1"}): "1",
    frozenset({"-1", "1"}): "1",
    frozenset({"false", "true"}): "true",
    frozenset({"no", "yes"}): "yes",
    frozenset({"n", "y"}): "y",
    frozenset({"f", "t"}): "t",
    frozenset({"negative", "positive"}): "positive",
}
SENSITIVE_TOKENS = {"sex", "age", "race", "gender", "religion", "religious", "ethnicity", "ethnic", "marital",
                    "nationality", "citizenship", "disability", "disabled", "pregnant", "pregnancy", "caste",
                    "orientation", "dob", "birthdate", "birthday"}  # fmt: skip
SENSITIVE_STEMS = ("gender", "ethnic", "religio", "disab", "marital", "nationalit", "pregnan")
ID_TOKENS = {"id", "uuid", "guid", "key", "identifier"}
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
LEADING_ZERO = re.compile(r"^[+-]?0\d")


class DraftError(ValueError):
    """The table cannot give a schema (or the draft must not be written); the message says why and the fix."""


# The draft's records (profile, column, target, draft): plain field lists, alike in shape by nature.
@dataclass(frozen=True)
class Options:
    target: str
    max_categories: int = MAX_CATEGORIES
    max_classes: int = MAX_CLASSES
    drop_missing_target: bool = False
    problem_type: str | None = None


@dataclass(frozen=True)
class ColumnProfile:
    """What one column holds: its present values as text with their counts, and whether they are numbers."""

    name: str
    rows: int
    missing: int
    counts: dict[str, int]  # present value (as text) -> rows, most frequent first
    numbers: dict[str, float] | None  # value -> number, when every present value is a finite number
    not_numbers: tuple[str, ...] = ()  # the present values that are not finite numbers

    @property
    def distinct(self) -> int:
        return len(self.counts)

    @property
    def present(self) -> int:
        return self.rows - self.missing


@dataclass(frozen=True)
class ColumnDraft:
    """One column's verdict: a feature (with its schema entry) or an exclusion, and the notes for a person."""

    name: str
    kind: str  # integer, float, categorical, excluded
    entry: dict | None = None
    notes: tuple[str, ...] = ()
    reason: str = ""  # why it is excluded
    missing: int = 0
    sensitive_candidate: bool = False
    capped: bool = False


# TargetDraft and Draft are plain field lists; the repetition tool pairs them by shape alone (names and types
# differ), and no shared code would make them clearer.
@dataclass(frozen=True)
class TargetDraft:
    """The target column's verdict: the problem type it implies, its classes and how often each occurs."""

    name: str
    problem_type: str
    classes: tuple[str, ...]
    label_values_or_threshold: tuple
    missing: int
    class_counts: dict[str, int]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Draft:
    """The whole draft: the target, every column's verdict and what the table says about itself."""

    rows: int
    target: TargetDraft
    columns: tuple[ColumnDraft, ...]
    duplicate_rows: int
    missing_target: str
    header_notes: tuple[str, ...] = field(default=())

    @property
    def features(self) -> list[ColumnDraft]:
        return [c for c in self.columns if c.entry is not None]

    @property
    def excluded(self) -> list[ColumnDraft]:
        return [c for c in self.columns if c.entry is None]


# --------------------------------------------------------------------------------------------- profiling
def as_text(value: object) -> str | None:
    """A cell as the data contract reads it: None when missing, whole floats without '.0' (Parquet), else str."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def texts(series: pd.Series) -> pd.Series:
    """The column's cells as text (None when missing); CSV columns (all text) take the fast path."""
    if pd.api.types.infer_dtype(series, skipna=False) == "string":
        return series.where(series != "", None)
    return series.map(as_text).astype(object)


def parse_numbers(values: Sequence[str]) -> tuple[dict[str, float], list[str]]:
    """Each value -> float as the data contract parses it; the values that are not numbers at all."""
    try:
        parsed = np.array(values, dtype=np.float64)
        return dict(zip(values, parsed.tolist(), strict=True)), []
    except (ValueError, TypeError):
        pass
    numbers, failed = {}, []
    for value in values:
        try:
            numbers[value] = float(value)
        except (ValueError, TypeError, OverflowError):
            failed.append(value)
    return numbers, failed


def profile_column(name: str, series: pd.Series) -> ColumnProfile:
    cells = texts(series)
    counts = cells.dropna().value_counts(sort=False)
    # Most frequent first, ties in text order: a stable order whatever the row order.
    counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    keys = [str(k) for k in counts.index.to_numpy(dtype=object)]
    ordered = dict(zip(keys, counts.to_numpy().tolist(), strict=True))
    numbers, failed = parse_numbers(keys)
    values = np.fromiter(numbers.values(), dtype=np.float64, count=len(numbers))
    nan_texts = [k for k, v in numbers.items() if math.isnan(v)] if np.isnan(values).any() else []
    not_finite = [k for k, v in numbers.items() if math.isinf(v)] if np.isinf(values).any() else []
    not_numbers = tuple(failed + not_finite)
    missing = int(cells.isna().sum())
    if not not_numbers and len(nan_texts) < len(numbers):
        # "nan" in a numeric column is a missing value to the data contract.
        for k in nan_texts:
            missing += ordered.pop(k)
            numbers.pop(k)
        return ColumnProfile(name, len(series), missing, ordered, numbers)
    return ColumnProfile(name, len(series), missing, ordered, None, not_numbers)


# ------------------------------------------------------------------------------------------- name rules
def name_tokens(name: str) -> list[str]:
    """'customerID' -> ['customer', 'id']; 'Age (years)' -> ['age', 'years']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [t for t in re.split(r"[^0-9a-z]+", spaced.lower()) if t]


def looks_sensitive(name: str) -> bool:
    tokens = name_tokens(name)
    return any(t in SENSITIVE_TOKENS for t in tokens) or any(s in t for t in tokens for s in SENSITIVE_STEMS)


def looks_like_id(name: str) -> bool:
    return any(t in ID_TOKENS for t in name_tokens(name))


# ------------------------------------------------------------------------------------------------ ranges
def widen(low: float, high: float, integer: bool, margin: float = MARGIN) -> tuple[float, float]:
    """Seen minimum and maximum -> schema bounds with a margin (see the module docstring for the rule)."""
    span = high - low
    pad = span * margin if span > 0 else max(abs(low) * margin, 1.0)
    lo, hi = low - pad, high + pad
    if low >= 0:
        lo = max(lo, 0.0)
    if integer:
        lo, hi = float(math.floor(lo)), float(math.ceil(hi))
    else:
        exponent = math.floor(math.log10(hi - lo)) - 1
        step = 10.0**exponent
        digits = max(0, -exponent)
        lo = round(math.floor(lo / step) * step, digits)
        hi = round(math.ceil(hi / step) * step, digits)
        if low >= 0:
            lo = max(lo, 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > low or hi < high:
        return low, high  # extreme magnitudes: the seen values themselves
    return lo, hi


def _number(value: float, integer: bool) -> int | float:
    return int(value) if integer else float(value)


def nice(value: float, digits: int = 3) -> int | float:
    """A threshold a person can read: three significant digits, whole numbers as int."""
    if value == 0 or not math.isfinite(value):
        return 0 if value == 0 else value
    rounded = round(value, digits - 1 - math.floor(math.log10(abs(value))))
    return int(rounded) if float(rounded).is_integer() else rounded


def _quote(values: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


# ---------------------------------------------------------------------------------------------- features
def draft_feature(profile: ColumnProfile, options: Options) -> ColumnDraft:
    name, notes = profile.name, []
    sensitive = looks_sensitive(name)

    def excluded(reason: str) -> ColumnDraft:
        return ColumnDraft(name, "excluded", reason=reason, missing=profile.missing, sensitive_candidate=sensitive)

    if profile.present == 0:
        return excluded(EMPTY_REASON)
    nullable = profile.missing > 0
    all_distinct = profile.distinct == profile.present and profile.missing == 0 and profile.rows >= 2
    id_evidence = profile.rows >= ID_MIN_ROWS or looks_like_id(name)
    if profile.distinct == 1:
        notes.append(f"constant: every present value is {next(iter(profile.counts))!r}; it cannot help the model")
    numbers = profile.numbers
    if numbers is not None and any(LEADING_ZERO.match(k) for k in numbers):
        example = next(k for k in numbers if LEADING_ZERO.match(k))
        notes.append(f"numbers with leading zeros (e.g. {example!r}) are codes: typed categorical")
        numbers = None
    if numbers is not None:
        whole = all(v.is_integer() for v in numbers.values())
        if all_distinct and whole and id_evidence:
            return excluded(f"ID-like: all {profile.rows} values are distinct integers")
        ftype = "integer" if whole else "float"
        low, high = min(numbers.values()), max(numbers.values())
        if whole and set(numbers.values()) <= {0.0, 1.0} and profile.distinct == 2:
            lo, hi = 0.0, 1.0
            notes.append("0/1 flag: kept integer with the bounds 0 and 1")
        else:
            lo, hi = widen(low, high, whole)
            if whole and 3 <= profile.distinct <= FEW_CODES:
                codes = sorted(numbers.values())
                notes.append(
                    f"{profile.distinct} distinct integers ({_quote([str(int(c)) for c in codes], 5)}): kept integer; "
                    "if they are labels without an order, change the type to categorical"
                )
        if all_distinct and not id_evidence:
            notes.append(f"every value is distinct, but {profile.rows} rows are too few to call it an ID")
        entry = {"name": name, "type": ftype, "nullable": nullable}
        entry |= {"minimum": _number(lo, whole), "maximum": _number(hi, whole), "description": ""}
        return ColumnDraft(name, ftype, entry, tuple(notes), missing=profile.missing, sensitive_candidate=sensitive)

    values = list(profile.counts)
    if MISSING_CATEGORY in profile.counts:
        return excluded(f"holds the value {MISSING_CATEGORY!r}, which the contract reserves for missing values")
    if all(DATE_PATTERN.match(v) for v in values):
        return excluded(
            f"dates or times (e.g. {values[0]!r}): the contract has no date type; derive features "
            "(month, day of week, age in days) as new columns if they matter"
        )
    if all_distinct and id_evidence:
        return excluded(f"ID-like: all {profile.rows} values are distinct text")
    if all_distinct:
        notes.append(f"every value is distinct, but {profile.rows} rows are too few to call it an ID")
    lowered = {v.lower() for v in values}
    if any(lowered <= pair for pair in BOOLEAN_SETS) and len(lowered) == len(values):
        notes.append("boolean as text: categorical with the spellings of the data (requests send these strings)")
    numeric_share = [v for v in values if v not in profile.not_numbers]
    markers = [v for v in profile.not_numbers if v.strip().lower() in NA_TOKENS]
    if numeric_share and profile.not_numbers and len(markers) == len(profile.not_numbers):
        rows = sum(profile.counts[m] for m in markers)
        notes.append(
            f"numbers except {_quote(markers)} ({rows} rows), which look like missing-value markers: "
            "make them empty cells and draft again to get a numeric column"
        )
    elif numeric_share and profile.not_numbers and not notes:
        notes.append(f"mostly numbers, but {_quote(list(profile.not_numbers))} are not: typed categorical")
    capped = profile.distinct > options.max_categories
    if capped:
        kept = values[: options.max_categories]
        covered = sum(profile.counts[v] for v in kept) / profile.present
        notes.append(
            f"{profile.distinct} distinct values: the {options.max_categories} most frequent "
            f"(covering {covered:.0%} of the present values) are listed and unknown ones accepted"
        )
        categories = sorted(kept)
    else:
        categories = sorted(values)
    entry = {
        "name": name,
        "type": "categorical",
        "nullable": nullable,
        "categories": categories,
        "unknown_categories": "accept" if capped else "refuse",
        "description": "",
    }
    return ColumnDraft(
        name, "categorical", entry, tuple(notes), missing=profile.missing, sensitive_candidate=sensitive, capped=capped
    )


# ------------------------------------------------------------------------------------------------ target
def class_order(values: Sequence[str]) -> list[str]:
    """Numbers by value ("2" before "10"), text alphabetically."""
    numbers, failed = parse_numbers(list(values))
    if not failed and all(math.isfinite(v) for v in numbers.values()):
        return sorted(values, key=lambda v: (numbers[v], v))
    return sorted(values)


def positive_class(counts: Mapping[str, int], classes: Sequence[str]) -> tuple[str, str]:
    """The proposed positive outcome and why: the conventional member of a known pair, else the rarest class."""
    if len(classes) == 2:
        lowered = {c.lower(): c for c in classes}
        conventional = POSITIVE_BY_PAIR.get(frozenset(lowered))
        if conventional is not None:
            return lowered[conventional], "the conventional positive value of the pair"
    rarest = min(classes, key=lambda c: (counts[c], -classes.index(c)))
    return rarest, f"the rarest class, {counts[rarest]} rows"


def draft_target(profile: ColumnProfile, options: Options) -> TargetDraft:
    name, notes = profile.name, []
    fix = f"pick another TARGET or fix the column {name!r}"
    if profile.present == 0:
        raise DraftError(f"the target column {name!r} has no value in any of its {profile.rows} rows: {fix}")
    numbers = profile.numbers
    whole = numbers is not None and all(v.is_integer() for v in numbers.values())
    k = profile.distinct
    problem_type = options.problem_type
    if problem_type is None:
        if k == 1:
            raise DraftError(
                f"the target column {name!r} has one value only ({next(iter(profile.counts))!r}): "
                f"a model needs at least two classes or varying numbers: {fix}"
            )
        if k == 2:
            problem_type = "binary_classification"
        elif numbers is None:
            if k > options.max_classes:
                raise DraftError(
                    f"the target column {name!r} has {k} distinct text values, more than --max-classes "
                    f"{options.max_classes}: check TARGET, or raise --max-classes if that many classes is intended"
                )
            problem_type = "multiclass_classification"
        elif whole and k <= options.max_classes and 2 * k <= profile.present:
            problem_type = "multiclass_classification"
            notes.append(
                f"{k} distinct whole numbers: drafted as classes; if they are quantities, draft again with "
                "--problem-type regression"
            )
        else:
            problem_type = "regression"
    if problem_type == "regression":
        if numbers is None:
            raise DraftError(
                f"the target column {name!r} holds values that are not numbers "
                f"({_quote(list(profile.not_numbers))}), so it cannot be a regression target: {fix}"
            )
        values = np.repeat(
            np.array([numbers[v] for v in profile.counts]), np.array([profile.counts[v] for v in profile.counts])
        )
        threshold = nice(float(np.median(values)))
        notes.append(
            f"label_values_or_threshold [{threshold}] is the median target: bias metrics call values above it "
            "the positive outcome; confirm or set the threshold that matters"
        )
        return TargetDraft(name, problem_type, (), (threshold,), profile.missing, dict(profile.counts), tuple(notes))
    classes = class_order(list(profile.counts))
    expected = 2 if problem_type == "binary_classification" else 3
    if (problem_type == "binary_classification" and k != 2) or k < expected:
        raise DraftError(
            f"the target column {name!r} has {k} distinct values ({_quote(classes, 5)}), but "
            f"{problem_type} needs {'exactly 2' if expected == 2 else 'at least 3'}: pick the matching --problem-type"
        )
    positive, why = positive_class(profile.counts, classes)
    notes.append(
        f"positive class {positive!r} is a guess ({why}): confirm it, since bias metrics and precision/recall "
        "treat it as the outcome of interest"
    )
    return TargetDraft(
        name, problem_type, tuple(classes), (positive,), profile.missing, dict(profile.counts), tuple(notes)
    )


# ------------------------------------------------------------------------------------------------- draft
def closest_columns(target: str, columns: Sequence[str], limit: int = 5) -> list[str]:
    same_case = [c for c in columns if c.lower() == target.lower()]
    lowered = {c.lower(): c for c in columns}
    near = [lowered[c] for c in difflib.get_close_matches(target.lower(), list(lowered), n=limit, cutoff=0.5)]
    return list(dict.fromkeys(same_case + near))[:limit]


def header_notes(columns: Sequence[str]) -> list[str]:
    """pandas renames duplicate headers to 'a.1' and blank ones to 'Unnamed: 3': the file should name them."""
    names = set(columns)
    notes = []
    for column in columns:
        base = re.match(r"^(.*)\.(\d+)$", column)
        if base and base.group(1) in names:
            notes.append(f"column {column!r}: the header {base.group(1)!r} appears twice; rename one in the file")
        elif re.match(r"^Unnamed: \d+$", column):
            notes.append(f"column {column!r}: the header is blank; name it in the file")
    return notes


def draft(frame: pd.DataFrame, options: Options) -> Draft:
    """A table (cells as dataset.read_table gives them) -> the draft; raises DraftError on unusable input."""
    columns = [str(c) for c in frame.columns]
    if not options.target:
        raise DraftError(
            f"give the label column: make schema DATA=... TARGET=<column>; the table's columns: {_quote(columns, 30)}"
        )
    if options.target not in columns:
        close = closest_columns(options.target, columns)
        hint = f"the closest column names: {_quote(close, 5)}" if close else f"the columns: {_quote(columns, 10)}"
        raise DraftError(f"the target column {options.target!r} is not in the table; {hint}")
    if frame.empty:
        raise DraftError("the table has no rows: give a table with a header and data rows")
    frame = frame.set_axis(columns, axis=1)
    target = draft_target(profile_column(options.target, frame[options.target]), options)
    drafts = tuple(draft_feature(profile_column(c, frame[c]), options) for c in columns if c != options.target)
    if not any(d.entry is not None for d in drafts):
        reasons = "; ".join(f"{d.name!r}: {d.reason}" for d in drafts) or "the table has the target column only"
        raise DraftError(f"no column is usable as a feature ({reasons}): add feature columns to the table")
    keys = [d.name for d in drafts if d.entry is not None] + [options.target]
    duplicates = int(frame.duplicated(subset=keys).sum())
    return Draft(
        rows=len(frame),
        target=target,
        columns=drafts,
        duplicate_rows=duplicates,
        missing_target="drop" if options.drop_missing_target else "refuse",
        header_notes=tuple(header_notes(columns)),
    )


def schema_dict(result: Draft) -> dict:
    target = result.target
    out: dict = {"problem_type": target.problem_type, "target": target.name}
    if target.classes:
        out["classes"] = list(target.classes)
    out["label_values_or_threshold"] = list(target.label_values_or_threshold)
    out["missing_target"] = result.missing_target
    out["features"] = [d.entry for d in result.features]
    out["sensitive_features"] = []
    return out


def render(schema: Mapping) -> str:
    """schema.json as a person writes it: one line per feature, unicode as is."""
    lines = ["{"]
    items = list(schema.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if key == "features":
            lines.append('  "features": [')
            for j, feature in enumerate(value):
                tail = "," if j < len(value) - 1 else ""
                lines.append("    " + json.dumps(feature, ensure_ascii=False) + tail)
            lines.append("  ]" + comma)
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- reporting
def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_range(column: ColumnDraft) -> str:
    entry = column.entry
    if entry is None:
        return ""
    if entry["type"] == "categorical":
        cats = entry["categories"]
        shown = ", ".join(cats[:4]) + (f" (+{len(cats) - 4})" if len(cats) > 4 else "")
        return shown + (" +unknown" if entry["unknown_categories"] == "accept" else "")
    return f"{entry['minimum']} .. {entry['maximum']}"


def summary_table(result: Draft) -> str:
    target = result.target
    classes = ", ".join(target.classes) if target.classes else f"threshold {target.label_values_or_threshold[0]}"
    rows = [("column", "type", "nullable", "range / categories", "note")]
    rows.append((target.name, "target", "-", classes, target.problem_type))
    for c in result.columns:
        if c.entry is None:
            rows.append((c.name, "excluded", "-", "", c.reason))
            continue
        note = "; ".join(c.notes)
        if c.sensitive_candidate:
            note = "sensitive? " + note
        rows.append((c.name, c.kind, "yes" if c.entry["nullable"] else "no", describe_range(c), note))
    limits = (40, 11, 8, 40, 70)
    rows = [tuple(_cell(str(v), w) for v, w in zip(r, limits, strict=True)) for r in rows]
    return text_tables.boxed(rows)


def gate_reminders(result: Draft, baseline: Mapping) -> list[str]:
    """What model/config/baseline.json will refuse about this table, before the pipeline finds out."""
    data = baseline.get("data", {}) if isinstance(baseline, Mapping) else {}
    out = []
    rows = result.rows - (result.target.missing if result.missing_target == "drop" else 0)
    if "min_rows" in data and rows < data["min_rows"]:
        out.append(
            f"the table has {rows} usable rows but baseline.json data.min_rows is {data['min_rows']}: the pipeline "
            "will refuse it; lower min_rows (metrics on few rows are noisy) or add rows"
        )
    if "max_missing_fraction" in data and result.rows:
        high = [c for c in result.features if c.missing / result.rows > data["max_missing_fraction"]]
        for c in high:
            out.append(
                f"feature {c.name!r} is {c.missing / result.rows:.0%} missing, above baseline.json "
                f"data.max_missing_fraction {data['max_missing_fraction']}: drop the feature or raise the gate"
            )
    if "max_duplicate_fraction" in data and result.rows:
        fraction = result.duplicate_rows / result.rows
        if fraction > data["max_duplicate_fraction"]:
            out.append(
                f"{result.duplicate_rows} rows ({fraction:.1%}) repeat another row, above baseline.json "
                f"data.max_duplicate_fraction {data['max_duplicate_fraction']}: deduplicate or raise the gate"
            )
    present = sum(result.target.class_counts.values())
    if "min_class_fraction" in data and result.target.classes and present:
        for cls in result.target.classes:
            share = result.target.class_counts[cls] / present
            if share < data["min_class_fraction"]:
                out.append(
                    f"class {cls!r} is {share:.1%} of the rows, below baseline.json data.min_class_fraction "
                    f"{data['min_class_fraction']}: add examples or lower the gate"
                )
    out.append(
        "the quality gates in baseline.json ('quality') were set for the sample data: set the bounds your "
        "model must meet on this problem"
    )
    return out


def decisions(result: Draft, baseline: Mapping) -> list[str]:
    """What a person must still decide before training on the draft."""
    target = result.target
    out = list(target.notes)
    if target.missing:
        if result.missing_target == "drop":
            out.append(f"{target.missing} rows have no value in {target.name!r}: they will be dropped (missing_target)")
        else:
            out.append(
                f'{target.missing} rows have no value in {target.name!r} and the draft says "missing_target": '
                '"refuse", so the pipeline will stop on them: remove those rows, or draft again with '
                "DROP_MISSING_TARGET=1 (--drop-missing-target) to drop them"
            )
    candidates = [c.name for c in result.columns if c.sensitive_candidate]
    if candidates:
        out.append(
            f"sensitive features: {_quote(candidates, 10)} look like sensitive attributes; the draft declares "
            "none. A person decides which to declare under sensitive_features (with facet_values_or_threshold) "
            "and whether they stay model inputs"
        )
    else:
        out.append("sensitive features: no column name suggests one; bias is not measured until you declare some")
    for c in result.excluded:
        out.append(f"excluded {c.name!r}: {c.reason}")
    for c in result.features:
        if c.capped:
            out.append(f"high cardinality {c.name!r}: {c.notes[-1]}; consider dropping it or grouping rare values")
    out.extend(result.header_notes)
    out.extend(gate_reminders(result, baseline))
    return out


# ------------------------------------------------------------------------------------------ overwriting
def sha256_text(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recorded_digests(record: str | None) -> set[str]:
    """The `sha256sum` lines of model/config/.schema-draft.sha256 -> the digests."""
    return {line.split()[0] for line in (record or "").splitlines() if line.strip()}


def same_json(a: bytes, b: bytes | None) -> bool:
    if b is None:
        return False
    try:
        return json.loads(a) == json.loads(b)
    except (ValueError, UnicodeDecodeError):
        return False


def overwrite_refusal(current: bytes | None, record: str | None, sample: bytes | None) -> str | None:
    """None when the draft may replace schema.json, else why not.

    Replaceable: absent, byte for byte the draft this tool wrote last, or the sample's contract (compared as JSON,
    so line endings do not matter). Anything else holds a person's edits.
    """
    if current is None or sha256_text(current) in recorded_digests(record) or same_json(current, sample):
        return None
    if record is None:
        return "it is neither the sample's contract nor a draft of this tool (no draft recorded)"
    return "it was edited after the last draft (its SHA-256 differs from the recorded one)"


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the same folder, then rename: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_frame(path: Path) -> pd.DataFrame:
    try:
        return dataset.read_table(path)
    except FileNotFoundError as exc:
        raise DraftError(f"DATA={_shown(path)}: {exc}") from None
    except pd.errors.EmptyDataError:
        raise DraftError(f"DATA={_shown(path)} is empty: give a table with a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DraftError(f"DATA={_shown(path)} cannot be read as CSV/Parquet: {exc}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--data", type=Path, required=True, help="CSV/Parquet file or folder (make: DATA)")
    parser.add_argument("--target", default="", help="the label column, exactly as in the header (make: TARGET)")
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH, help="where the draft goes (default: %(default)s)")
    parser.add_argument("--baseline", type=Path, default=BASELINE_PATH, help="the gates the table is checked against")
    parser.add_argument(
        "--sample-schema", type=Path, default=SAMPLE_SCHEMA_PATH, help="the sample's contract, replaceable like a draft"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an edited schema.json (make: FORCE=1)")
    parser.add_argument(
        "--drop-missing-target", action="store_true", help='write "missing_target": "drop" instead of "refuse"'
    )
    parser.add_argument("--problem-type", choices=PROBLEM_TYPES, help="override the inferred problem type")
    parser.add_argument("--max-categories", type=int, default=MAX_CATEGORIES, help="categories listed per feature")
    parser.add_argument("--max-classes", type=int, default=MAX_CLASSES, help="most classes inferred as multiclass")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(
        target=args.target,
        max_categories=max(1, args.max_categories),
        max_classes=max(2, args.max_classes),
        drop_missing_target=args.drop_missing_target,
        problem_type=args.problem_type,
    )
    record_path = args.output.parent / DRAFT_RECORD_NAME
    try:
        result = draft(read_frame(args.data), options)
        schema = schema_dict(result)
        text = render(schema)
        Schema.from_dict(json.loads(text), source="the draft")  # the contract's own check, before anything is written
        refusal = overwrite_refusal(
            _read_bytes(args.output),
            (_read_bytes(record_path) or b"").decode("utf-8", "replace") if record_path.exists() else None,
            _read_bytes(args.sample_schema),
        )
        if refusal and not args.force:
            command = shlex.join(["make", "schema", f"DATA={args.data}", f"TARGET={args.target}", "FORCE=1"])
            raise DraftError(
                f"{_shown(args.output)} was not overwritten: {refusal}. Keep your edits, or replace them with "
                f"the new draft: {command}"
            )
    except (DraftError, SchemaError) as exc:
        print(f"schema draft refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        baseline = json.loads(args.baseline.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        baseline = {}
    print(summary_table(result))
    write_atomic(args.output, text)
    write_atomic(record_path, f"{sha256_text(text.encode('utf-8'))}  {args.output.name}\n")
    features, excluded = len(result.features), len(result.excluded)
    print(
        f"\nwrote {_shown(args.output)}: {target_summary(result)}, {features} features"
        f"{f', {excluded} excluded' if excluded else ''} from {result.rows} rows "
        f"(draft recorded in {_shown(record_path)}; commit both)"
    )
    print("\nto decide before `make pipeline`:")
    for item in decisions(result, baseline):
        print(f"  - {item}")
    return 0


def target_summary(result: Draft) -> str:
    target = result.target
    if target.classes:
        return f"{target.problem_type} on {target.name!r} ({len(target.classes)} classes)"
    return f"regression on {target.name!r}"


if __name__ == "__main__":
    raise SystemExit(main())
