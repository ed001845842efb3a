"""A corpus of generated tables, each with the schema.json, hyperparameters.json and baseline.json it needs.

The sample data set is one table among many: a generated repository must train, register and serve any table
its data contract can describe, whatever its column names, labels, shape or missing values. Every table here
is made by code, deterministically from a seed (no numpy: the template's own environment has none), with a
learnable target (a noisy function of the features), so a few trees pass loose quality gates.

    corpus()      the tables that must go through validate -> train -> register -> serve
    bad_inputs()  tables the pipeline must refuse at its validate step, naming the columns

``Table.write(folder)`` writes data.csv (the training table), holdout.csv (rows never trained on, the same
columns) and config/{schema,hyperparameters,baseline,model_card}.json.
"""

from __future__ import annotations

import csv
import io
import json
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SEED = 20240611
HOLDOUT_ROWS = 40
MISSING_TARGET_ROWS = tuple(range(20, 280, 20))  # 13 rows without a target; no row number prints as "13"
# Few, shallow trees: the contract under test does not depend on model quality, and the corpus stays fast.
HYPERPARAMETERS = {
    "estimator": "gradient_boosting",
    "n_estimators": "10",
    "learning_rate": "0.3",
    "max_depth": "3",
    "min_samples_leaf": "5",
    "random_state": "7",
    # ONNX or nothing: a fallback to skops could not be served from the inference requirements alone.
    "model_format": "onnx",
}
# Loose gates: the corpus tests what the pipeline accepts and serves, not how good ten trees are.
QUALITY_GATES = {
    "binary_classification": {"accuracy": {"min": 0.5}},
    "multiclass_classification": {"accuracy": {"min": 0.3}},
    "regression": {"r2": {"min": 0.1}},
}
BIAS_GATES = {
    "CI": {"max_abs": 1.0},
    "DPL": {"max_abs": 1.0},
    "DPPL": {"max_abs": 1.0},
    "DI": {"min": 0.0, "max": 1000.0},
    "AD": {"max_abs": 1.0},
    "RD": {"max_abs": 1.0},
    "SD": {"max_abs": 1.0},
}
DATA_GATES = {
    "min_rows": 200,
    "max_missing_fraction": 0.2,
    "max_duplicate_fraction": 0.01,
    "min_class_fraction": 0.05,
}
MODEL_CARD = {
    "model_description": "A table of the template's test corpus.",
    "model_owner": "template tests <template-tests@example.com>",
    "risk_rating": "Low",
    "limitations": ["Trained on generated data for a test."],
}


@dataclass(frozen=True)
class Col:
    """One column of a generated table.

    role: feature (a model input), sensitive (a facet that is not a feature), extra (in the data, not in the
    schema: must be ignored) or id. A feature with ``facet`` set is also a sensitive feature.
    """

    name: str
    kind: str = "float"  # float | integer | categorical
    role: str = "feature"
    low: float = 0.0
    high: float = 100.0
    categories: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()  # draw probabilities of the categories (uniform when empty)
    null_rate: float = 0.0
    nullable: bool | None = None  # schema flag; defaults to null_rate > 0
    weight: float = 1.0  # contribution to the latent score the target is made from
    unknown_categories: str | None = None  # "accept" | "refuse": written to the schema when set
    holdout_unknown: tuple[str, ...] = ()  # values outside the categories that the held-out rows use
    facet: tuple | None = None  # facet_values_or_threshold when this column is a facet
    facet_type: str | None = None  # "categorical" | "numeric" (written when set)
    json_as_number: bool = False  # an integer-coded categorical: JSON requests send it as a number

    @property
    def is_feature(self) -> bool:
        return self.role == "feature"

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("float", "integer")


@dataclass
class Table:
    name: str
    shape: str  # one line: what this table is about
    problem_type: str
    target: str
    classes: tuple[str, ...]  # as the data holds them (as strings); empty for regression
    columns: list[Col]
    header: list[str]  # CSV column order: features, extras, facets and the target, interleaved
    rows: list[dict]  # training table: name -> value (float | int | str | None)
    holdout: list[dict]  # rows never trained on, valid under the schema
    schema: dict
    hyperparameters: dict
    baseline: dict
    expect: str = "register"  # register | refuse (at the validate step)
    must_name: tuple[str, ...] = ()  # refuse: exact column names the error must name
    must_say: tuple[str, ...] = ()  # refuse: other text the error must hold (e.g. the count of bad rows)
    dropped: int = 0  # rows without a target that "missing_target": "drop" must leave out
    notes: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ views
    @property
    def features(self) -> list[Col]:
        by_name = {c.name: c for c in self.columns}
        return [by_name[f["name"]] for f in self.schema["features"] if f["name"] in by_name]

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.schema["features"]]

    @property
    def sensitive_names(self) -> list[str]:
        return [s["name"] for s in self.schema.get("sensitive_features", [])]

    def json_records(self, rows: Sequence[dict] | None = None) -> list[dict]:
        """Held-out rows as JSON records keyed by the exact feature names, in schema order."""
        out = []
        for row in self.holdout if rows is None else rows:
            record = {}
            for col in self.features:
                value = row[col.name]
                if col.json_as_number and value is not None:
                    value = int(value)
                record[col.name] = value
            out.append(record)
        return out

    def csv_body(self, rows: Sequence[dict] | None = None) -> str:
        """Held-out rows as headerless CSV, values in schema order, empty fields for missing values."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in self.holdout if rows is None else rows:
            writer.writerow([_text(row[name]) for name in self.feature_names])
        return buffer.getvalue()

    # ------------------------------------------------------------------ files
    def write(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config"
        config.mkdir(exist_ok=True)
        paths = {"data": folder / "data.csv", "holdout": folder / "holdout.csv", "config": config}
        _write_csv(paths["data"], self.header, self.rows)
        _write_csv(paths["holdout"], self.header, self.holdout)
        for name, document in (
            ("schema.json", self.schema),
            ("hyperparameters.json", self.hyperparameters),
            ("baseline.json", self.baseline),
            ("model_card.json", MODEL_CARD),
        ):
            (config / name).write_text(
                json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        return paths


def _text(value) -> str:
    return "" if value is None else (repr(value) if isinstance(value, float) else str(value))


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_text(row.get(name)) for name in header])


# ----------------------------------------------------------------------------------------------- generation
def _rng(name: str, seed: int) -> random.Random:
    return random.Random(seed * 1_000_003 + zlib.crc32(name.encode("utf-8")))


def _draw(col: Col, rng: random.Random, holdout: bool):
    if col.null_rate and rng.random() < col.null_rate:
        return None
    if col.kind == "float":
        return round(rng.uniform(col.low, col.high), 3)
    if col.kind == "integer":
        return rng.randint(int(col.low), int(col.high))
    if holdout and col.holdout_unknown and rng.random() < 0.25:
        return rng.choice(col.holdout_unknown)
    if col.weights:
        return rng.choices(col.categories, weights=col.weights)[0]
    return rng.choice(col.categories)


def _contribution(col: Col, value, effects: dict) -> float:
    if value is None or col.weight == 0:
        return 0.0
    if col.is_numeric:
        middle, half = (col.low + col.high) / 2, max((col.high - col.low) / 2, 1e-9)
        return col.weight * (float(value) - middle) / half
    return col.weight * effects[col.name].get(value, 0.0)


def make_table(
    name: str,
    shape: str,
    problem_type: str,
    columns: list[Col],
    *,
    target: str = "target",
    classes: Sequence[str] = (),
    positive: Sequence = (),
    class_shares: Sequence[float] = (),
    rows: int = 300,
    holdout_rows: int = HOLDOUT_ROWS,
    target_position: int | None = None,
    noise: float = 0.3,
    data_gates: dict | None = None,
    hyperparameters: dict | None = None,
    schema_extra: dict | None = None,
    seed: int = SEED,
) -> Table:
    """Draw rows + held-out rows, make the target from the features, and write the matching contract.

    Binary: the top ``class_shares[1]`` of a noisy score are the second class. Multiclass: the score's
    quantiles (``class_shares``, equal by default) cut it into the classes in order. Regression:
    100 + 30 * score + noise.
    """
    rng = _rng(name, seed)
    effects = {
        c.name: {v: rng.uniform(-1.5, 1.5) for v in c.categories} for c in columns if c.kind == "categorical"
    }
    drawn = [{c.name: _draw(c, rng, holdout=i >= rows) for c in columns} for i in range(rows + holdout_rows)]
    scores = [
        sum(_contribution(c, row[c.name], effects) for c in columns if c.is_feature) + rng.gauss(0.0, noise)
        for row in drawn
    ]
    if problem_type == "regression":
        for row, score in zip(drawn, scores, strict=True):
            row[target] = round(100.0 + 30.0 * score, 3)
    else:
        shares = list(class_shares) or [1.0 / len(classes)] * len(classes)
        ordered = sorted(scores)
        cuts, total = [], 0.0
        for share in shares[:-1]:
            total += share
            cuts.append(ordered[min(len(ordered) - 1, int(total * len(ordered)))])
        for row, score in zip(drawn, scores, strict=True):
            row[target] = classes[sum(score >= cut for cut in cuts)]
    features = [c for c in columns if c.is_feature]
    header = [c.name for c in columns]
    header.insert(len(header) if target_position is None else target_position, target)
    schema: dict = {"problem_type": problem_type, "target": target}
    if problem_type == "regression":
        schema["label_values_or_threshold"] = list(positive) or [100.0]
    else:
        schema["classes"] = list(classes)
        schema["label_values_or_threshold"] = list(positive) or [classes[-1]]
    schema["features"] = [_feature_entry(c) for c in features]
    schema["sensitive_features"] = [_facet_entry(c) for c in columns if c.facet is not None]
    schema.update(schema_extra or {})
    gates = {**DATA_GATES, **(data_gates or {})}
    if problem_type == "regression":
        gates.pop("min_class_fraction", None)
    baseline = {"quality": QUALITY_GATES[problem_type], "bias": BIAS_GATES, "data": gates}
    return Table(
        name=name,
        shape=shape,
        problem_type=problem_type,
        target=target,
        classes=tuple(classes),
        columns=columns,
        header=header,
        rows=drawn[:rows],
        holdout=drawn[rows:],
        schema=schema,
        hyperparameters={**HYPERPARAMETERS, **(hyperparameters or {})},
        baseline=baseline,
    )


def _feature_entry(col: Col) -> dict:
    entry: dict = {
        "name": col.name,
        "type": col.kind,
        "nullable": col.null_rate > 0 if col.nullable is None else col.nullable,
    }
    if col.is_numeric:
        entry["minimum"], entry["maximum"] = col.low, col.high
    else:
        entry["categories"] = list(col.categories)
        if col.unknown_categories:
            entry["unknown_categories"] = col.unknown_categories
    entry["description"] = ""
    return entry


def _facet_entry(col: Col) -> dict:
    entry: dict = {"name": col.name, "facet_values_or_threshold": list(col.facet)}
    if col.kind == "categorical":
        entry["categories"] = list(col.categories)
    if col.facet_type:
        entry["type"] = col.facet_type
    return entry


# --------------------------------------------------------------------------------------------------- corpus
def _long(prefix: str) -> str:
    return (prefix + ": a very long column name with spaces, ünïcode and punctuation; " * 4)[:199] + "!"


LONG_NAME = _long("feature")
assert len(LONG_NAME) == 200


def hostile_names() -> Table:
    sure = ("no way", "yes, sure")
    columns = [
        Col("mean radius", "float", low=5, high=30),
        Col("od280/od315_of_diluted_wines", "float", low=1, high=4),
        Col("pH.level", "float", low=2, high=9, weight=0.5),
        Col("x-ray", "integer", low=0, high=10),
        Col('say "hi"', "categorical", categories=("hello", "bye"), facet=("bye",)),
        Col("it's", "float", low=0, high=1, weight=0.3),
        Col("a, b", "float", low=-5, high=5),
        Col("température °C", "float", low=-10, high=40),
        Col("日本語の列", "categorical", categories=("赤", "青", "緑")),
        Col("3rd_place", "integer", low=1, high=3),
        Col("Speed", "float", low=0, high=200),
        Col("speed", "float", low=0, high=200, weight=-1.0),
        Col("a b", "float", low=0, high=1),
        Col("a_b", "float", low=0, high=1, weight=-0.5),
        Col("a-b", "float", low=0, high=1, weight=0.7),
        Col(LONG_NAME, "float", low=0, high=10),
        # skl2onnx's own tensor names: a graph whose inputs are named like its outputs must be fed right.
        Col("label", "float", low=0, high=1, weight=0.4),
        Col("probabilities", "categorical", categories=("lo", "hi"), weight=0.4),
        Col("variable", "integer", low=-3, high=3, weight=0.2),
        Col(" padded name ", "float", low=0, high=1, weight=0.3),
        Col(
            "Région, pays",
            "categorical",
            role="sensitive",
            categories=("Île-de-France", "Bretagne"),
            facet=("Bretagne",),
        ),
    ]
    table = make_table(
        "hostile_names",
        "binary; 20 features named with spaces, / . - quotes commas unicode, a leading digit, case-only and "
        "sanitise-colliding names, a 200-character name, ONNX's own tensor names, "
        "padding spaces; hostile target, class and facet names",
        "binary_classification",
        columns,
        target='Outcome: "churned?" (y/n)',
        classes=sure,
        positive=("yes, sure",),
        target_position=3,
    )
    return table


def long_names() -> Table:
    """200-character names as a feature that is also a numeric facet, as the target and as a facet."""
    columns = [
        Col(_long("feature"), "float", low=0, high=10, facet=(5,), facet_type="numeric"),
        Col("x", "float", low=0, high=1),
        Col(_long("facet"), "categorical", role="sensitive", categories=("one", "two"), facet=("two",)),
    ]
    return make_table(
        "long_names",
        "binary; 200-character names for a feature (also a numeric facet), the target and another facet",
        "binary_classification",
        columns,
        target=_long("target"),
        classes=("n", "y"),
    )


def nulls_everywhere() -> Table:
    columns = [
        Col("income", "float", low=0, high=1000, null_rate=0.1),
        Col("visits", "integer", low=0, high=50, null_rate=0.3),
        Col("score", "float", low=-1, high=1, null_rate=0.2),
        Col("plan", "categorical", categories=("basic", "plus", "pro"), null_rate=0.25),
        Col("channel", "categorical", categories=("web", "phone", "shop", "partner"), null_rate=0.15),
        Col("device", "categorical", categories=("ios", "android"), null_rate=0.3, weight=0.5),
    ]
    table = make_table(
        "nulls_everywhere",
        "binary; every feature nullable, 10-30% missing, numeric and categorical; "
        f'{len(MISSING_TARGET_ROWS)} rows without a target and "missing_target": "drop"',
        "binary_classification",
        columns,
        classes=("stay", "leave"),
        data_gates={"max_missing_fraction": 0.4},
        schema_extra={"missing_target": "drop"},
    )
    for i in MISSING_TARGET_ROWS:
        table.rows[i][table.target] = None
    table.dropped = len(MISSING_TARGET_ROWS)
    return table


def single_feature() -> Table:
    table = make_table(
        "single_feature",
        "regression; one float feature; no sensitive_features key",
        "regression",
        [Col("x", "float", low=-50, high=50, weight=2.0)],
        target="y",
        noise=0.1,
    )
    del table.schema["sensitive_features"]  # no facets, and not even the key
    return table


def wide() -> Table:
    rng = _rng("wide-weights", SEED)
    # Ten features carry the signal, the other 290 a little each: learnable by ten shallow trees.
    columns = [
        Col(
            f"f{i:03d}",
            "float",
            low=0,
            high=1,
            weight=rng.choice((-2.0, 2.0)) if i % 30 == 0 else rng.uniform(-0.05, 0.05),
        )
        for i in range(300)
    ]
    # One make_table call per table: the repetition tool pairs wide_300 and high_cardinality by shape alone
    # (a declaration each, with its own name, description and sizes).
    return make_table(
        "wide_300",
        "binary; 300 float features, 300 rows",
        "binary_classification",
        columns,
        classes=("neg", "pos"),
        noise=0.5,
    )


def small() -> Table:
    columns = [
        Col("height", "float", low=140, high=200),
        Col("weight", "float", low=40, high=120),
        Col("group", "categorical", categories=("g1", "g2", "g3")),
    ]
    return make_table(
        "small_150_labels_0_1",
        "binary; 150 rows (data gate min_rows loosened to 100); labels 0/1 written as integers",
        "binary_classification",
        columns,
        target="label",
        classes=("0", "1"),
        rows=150,
        data_gates={"min_rows": 100},
    )


def minority() -> Table:
    columns = [
        Col("amount", "float", low=0, high=5000, weight=2.0),
        Col("hour", "integer", low=0, high=23),
        Col("merchant", "categorical", categories=("shop", "online", "atm", "travel")),
    ]
    return make_table(
        "minority_1pct",
        "binary; 1% minority class (2000 rows, 20 positives; min_class_fraction loosened to 0.005)",
        "binary_classification",
        columns,
        classes=("legit", "fraud"),
        class_shares=(0.99, 0.01),
        rows=2000,
        noise=0.1,
        data_gates={"min_class_fraction": 0.005},
        hyperparameters={"min_samples_leaf": "2"},
    )


def _label_columns() -> list[Col]:
    return [
        Col("u", "float", low=0, high=1),
        Col("v", "float", low=0, high=10),
        Col("w", "categorical", categories=("p", "q", "r")),
    ]


def labels_int123() -> Table:
    columns = [
        Col("grade", "categorical", categories=("1", "2", "3", "4"), json_as_number=True),
        Col("zone", "categorical", categories=("10", "20", "30"), json_as_number=True),
        Col("load", "float", low=0, high=1),
    ]
    return make_table(
        "labels_int_1_2_3",
        "multiclass; labels 1/2/3 written as integers; categoricals coded as integers (sent as JSON numbers)",
        "multiclass_classification",
        columns,
        classes=("1", "2", "3"),
        positive=("3",),
        target="label",
    )


def unicode_categories() -> Table:
    columns = [
        Col("ville", "categorical", categories=("Zürich", "São Paulo", "Kraków", "東京", "Москва")),
        Col("mood", "categorical", categories=("🙂 happy", "😐 neutral", "☹ sad")),
        Col("note", "categorical", categories=('quote "q"', "comma, inside", "plain")),
        Col("amount", "float", low=0, high=10),
    ]
    return make_table(
        "unicode_categories_spaced_labels",
        "multiclass; unicode categories (accents, CJK, Cyrillic, emoji), categories with quotes and commas; "
        "string labels with spaces",
        "multiclass_classification",
        columns,
        target="answer given",
        classes=("no thanks", "maybe later", "yes please"),
        positive=("yes please",),
    )


def facets() -> Table:
    columns = [
        Col("income", "float", low=0, high=200),
        Col(
            "region",
            "categorical",
            categories=("north", "south", "east", "west"),
            facet=("south",),
            facet_type="categorical",
        ),
        Col("tenure", "integer", low=0, high=60),
        Col(
            "gender",
            "categorical",
            role="sensitive",
            categories=("female", "male", "other"),
            weights=(45, 50, 5),
            facet=("female",),
        ),
        Col("age", "integer", role="sensitive", low=18, high=80, facet=(40,), facet_type="numeric"),
        Col("segment", "categorical", role="sensitive", categories=("a", "b"), null_rate=0.15, facet=("b",)),
    ]
    return make_table(
        "facets_labels_bool",
        "binary; facets: one also a feature, one not, a numeric facet with a threshold, a nullable facet; "
        "labels True/False",
        "binary_classification",
        columns,
        target="is_approved",
        classes=("False", "True"),
        target_position=0,
    )


def high_cardinality() -> Table:
    categories = tuple(f"sku-{i:03d}" for i in range(500))
    columns = [
        Col(
            "product",
            "categorical",
            categories=categories,
            unknown_categories="accept",
            holdout_unknown=("sku-new-1", "sku-new-2", "never seen"),
        ),
        Col("price", "float", low=1, high=100),
    ]
    # One make_table call per table: the repetition tool pairs wide_300 and high_cardinality by shape alone
    # (a declaration each, with its own name, description and sizes).
    return make_table(
        "high_cardinality",
        'binary; a categorical with 500 values, "unknown_categories": "accept" (held-out rows hold unseen '
        "values)",
        "binary_classification",
        columns,
        classes=("no", "yes"),
        rows=1000,
    )


def extra_columns() -> Table:
    columns = [
        Col("customer_id", "categorical", role="id", categories=("",)),
        Col("amount", "float", low=0, high=500),
        Col("notes", "categorical", role="extra", categories=('free text, with "quotes"', "", "n/a")),
        Col("Amount", "float", role="extra", low=-1e6, high=1e6),
        Col("days", "integer", low=0, high=365),
        Col("ignored_score", "float", role="extra", low=0, high=1),
    ]
    table = make_table(
        "extra_columns_and_id",
        "regression; an ID column, extra columns not in the schema (one differs from a feature only in "
        "case); "
        "zero sensitive features",
        "regression",
        columns,
        target="spend",
        positive=(120.0,),
    )
    for i, row in enumerate([*table.rows, *table.holdout]):
        row["customer_id"] = f"C{i:06d}"
    return table


def corpus() -> list[Table]:
    return [
        hostile_names(),
        long_names(),
        nulls_everywhere(),
        single_feature(),
        wide(),
        small(),
        minority(),
        labels_int123(),
        unicode_categories(),
        facets(),
        high_cardinality(),
        extra_columns(),
    ]


# ----------------------------------------------------------------------------------------------- bad inputs
EMPTY_NAME = "empty / ø column"
TARGET_NAME = "label (y/n)"


def all_null_feature() -> Table:
    columns = [
        Col("x", "float", low=0, high=1),
        Col(EMPTY_NAME, "float", low=0, high=1, null_rate=1.0, weight=0),
        Col("c", "categorical", categories=("k", "l")),
    ]
    table = make_table(
        "bad_all_null_feature",
        "a nullable feature with no value at all (max_missing_fraction 1.0: only the contract can refuse it)",
        "binary_classification",
        columns,
        classes=("n", "y"),
        data_gates={"max_missing_fraction": 1.0},
    )
    table.expect, table.must_name = "refuse", (EMPTY_NAME,)
    return table


def missing_target() -> Table:
    """Rows without a target under "missing_target": "refuse" (nulls_everywhere covers "drop")."""
    table = make_table(
        "bad_missing_target_refuse",
        f'{len(MISSING_TARGET_ROWS)} rows without a target, "missing_target": "refuse"',
        "binary_classification",
        _label_columns(),
        classes=("n", "y"),
        target=TARGET_NAME,
        schema_extra={"missing_target": "refuse"},
    )
    for i in MISSING_TARGET_ROWS:
        table.rows[i][TARGET_NAME] = None
    table.expect, table.must_name = "refuse", (TARGET_NAME,)
    table.must_say = (str(len(MISSING_TARGET_ROWS)),)
    return table


def schema_mismatch() -> Table:
    """Six columns break the contract in six ways; one error must list every one of them.

    Each column's problems start at a different row (the first one's fill rows 0-19), so an error that shows
    only the first few problems in row order would hide the later columns.
    """
    columns = [
        Col("Age (years)", "integer", low=18, high=90),
        Col("plan type", "categorical", categories=("basic", "premium")),
        Col("score, raw", "float", low=0, high=1),
        Col("ok", "float", low=0, high=1),
        Col("région", "categorical", role="sensitive", categories=("nord", "sud"), facet=("sud",)),
    ]
    table = make_table(
        "bad_schema_mismatch",
        "the schema disagrees with the data in six columns at once",
        "binary_classification",
        columns,
        classes=("n", "y"),
        target="outcome",
    )
    table.schema["features"].append(
        {"name": "not in the data", "type": "float", "nullable": True, "description": ""}
    )
    for i in range(0, 20):
        table.rows[i]["Age (years)"] = "n/a"  # text in an integer column
    for i in range(40, 45):
        table.rows[i]["plan type"] = "platinum"  # outside the categories
    for i in range(80, 85):
        table.rows[i]["score, raw"] = None  # missing in a non-nullable feature
    for i in range(120, 125):
        table.rows[i]["outcome"] = "maybe"  # not one of the classes
    table.header.remove("région")  # a sensitive feature the data does not hold
    for row in table.rows:
        row.pop("région")
    table.expect = "refuse"
    table.must_name = ("Age (years)", "plan type", "score, raw", "outcome", "not in the data", "région")
    return table


def bad_inputs() -> list[Table]:
    return [all_null_feature(), missing_target(), schema_mismatch()]


def by_name() -> dict[str, Table]:
    return {t.name: t for t in [*corpus(), *bad_inputs()]}
