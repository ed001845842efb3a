"""`make schema`: a table -> a draft schema.json that loads, validates the same table and says what a person decides.

Every table is generated here (seeded), with the column names, labels and shapes real tables have: spaces, slashes,
quotes and commas in headers, unicode, 200-character names, names differing only in case, IDs, missing values.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pandas as pd
import pytest

from model.common.data_contract import Schema
from model.train import dataset, draft_schema
from model.train.draft_schema import Options

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "model" / "config" / "baseline.json"
LONG_NAME = "very long column name " + "x" * 178
HOSTILE = ["monthly charges ($)", "km/h", 'say "hi"', "a, b", "größe ✓", LONG_NAME, "Plan", "plan"]


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def hostile_table(path: Path, rows: int = 120, seed: int = 3) -> Path:
    """Hostile names, every kind of column, an ID, a sensitive-looking column and a learnable yes/no label."""
    rng = random.Random(seed)
    header = ["customer id", *HOSTILE, "Sex", "Will churn? (yes/no)"]
    out = []
    for i in range(rows):
        charges = round(rng.uniform(5, 150), 2)
        speed = rng.randint(0, 130)
        plan = rng.choice(["basic", "pro", "team plan"])
        label = "yes" if charges + rng.gauss(0, 20) > 80 else "no"
        out.append(
            [
                f"C{i:05d}",
                charges if rng.random() > 0.1 else "",
                speed,
                rng.choice(["hello", "bonjour"]),
                rng.choice(["x", "y"]),
                round(rng.gauss(170, 10), 1),
                rng.randint(1, 3),
                plan,
                plan.upper(),
                rng.choice(["F", "M"]),
                label,
            ]
        )
    return write_csv(path, header, out)


def run(tmp_path: Path, data: Path, target: str, *extra: str, output: Path | None = None) -> tuple[int, Path]:
    output = output or tmp_path / "config" / "schema.json"
    args = ["--data", str(data), "--target", target, "--output", str(output), "--baseline", str(BASELINE)]
    args += ["--sample-schema", str(tmp_path / "no-sample.json"), *extra]
    return draft_schema.main(args), output


def drafted(tmp_path: Path, data: Path, target: str, *extra: str) -> dict:
    code, output = run(tmp_path, data, target, *extra)
    assert code == 0
    return json.loads(output.read_text(encoding="utf-8"))


def feature(schema: dict, name: str) -> dict:
    return next(f for f in schema["features"] if f["name"] == name)


def draft_frame(frame: pd.DataFrame, target: str, **options) -> draft_schema.Draft:
    return draft_schema.draft(frame, Options(target=target, **options))


# ------------------------------------------------------------------------------------------ round trip
def test_the_draft_loads_and_validates_the_table_it_was_drafted_from(tmp_path):
    data = hostile_table(tmp_path / "table.csv")
    code, output = run(tmp_path, data, "Will churn? (yes/no)")
    assert code == 0
    schema = Schema.load(output)
    loaded = dataset.load(schema, data)
    assert len(loaded) == 120
    assert schema.target == "Will churn? (yes/no)"
    assert set(HOSTILE) <= set(schema.feature_names), "every hostile name is kept exactly"


def test_names_differing_only_in_case_stay_two_features(tmp_path):
    schema = drafted(tmp_path, hostile_table(tmp_path / "table.csv"), "Will churn? (yes/no)")
    assert feature(schema, "Plan")["categories"] == ["basic", "pro", "team plan"]
    assert feature(schema, "plan")["categories"] == ["BASIC", "PRO", "TEAM PLAN"]


def test_a_parquet_file_and_a_folder_of_them_draft_like_the_csv(tmp_path):
    frame = pd.DataFrame(
        {
            "count": [1, 2, None, 4] * 10,
            "city": ["a", "b", "c", None] * 10,
            "member": [True, False] * 20,
            "y": [0, 1] * 20,
        }
    )
    folder = tmp_path / "channel"
    folder.mkdir()
    frame.iloc[:20].to_parquet(folder / "part-0.parquet")
    frame.iloc[20:].to_parquet(folder / "part-1.parquet")
    frame.to_parquet(tmp_path / "table.parquet")
    for data in (tmp_path / "table.parquet", folder):
        code, output = run(tmp_path, data, "y", "--force")
        assert code == 0
        schema = json.loads(output.read_text(encoding="utf-8"))
        assert schema["classes"] == ["0", "1"]
        assert feature(schema, "count") == {
            "name": "count",
            "type": "integer",
            "nullable": True,
            "minimum": 0,
            "maximum": 5,
            "description": "",
        }
        assert feature(schema, "city")["categories"] == ["a", "b", "c"]
        assert feature(schema, "member")["categories"] == ["False", "True"]
        assert len(dataset.load(Schema.load(output), data)) == 40


def test_a_wide_small_table_drafts_every_column(tmp_path):
    rng = random.Random(5)
    header = [f"f{i}" for i in range(300)] + ["label"]
    rows = [[rng.randint(0, 9) for _ in range(300)] + [rng.choice(["a", "b"])] for _ in range(12)]
    data = write_csv(tmp_path / "wide.csv", header, rows)
    code, output = run(tmp_path, data, "label")
    assert code == 0
    schema = Schema.load(output)
    assert len(schema.features) == 300
    assert len(dataset.load(schema, data)) == 12


# -------------------------------------------------------------------------------------------- features
def test_types_follow_the_values_not_the_names():
    frame = pd.DataFrame(
        {
            "whole": ["1", "2", "3.0", "4"],
            "fraction": ["1.5", "2", "", "4"],
            "text": ["a", "b", "a", "b"],
            "codes": ["02134", "10001", "02134", "10001"],
            "y": ["0", "1", "0", "1"],
        }
    )
    result = draft_schema.schema_dict(draft_frame(frame, "y"))
    types = {f["name"]: f["type"] for f in result["features"]}
    assert types == {"whole": "integer", "fraction": "float", "text": "categorical", "codes": "categorical"}
    assert feature(result, "codes")["categories"] == ["02134", "10001"], "codes keep their leading zeros"


def test_a_feature_is_nullable_exactly_when_a_value_is_missing():
    frame = pd.DataFrame({"full": ["1", "2", "3", "4"], "gaps": ["1", "", "3", "4"], "y": ["a", "b", "a", "b"]})
    result = draft_schema.schema_dict(draft_frame(frame, "y"))
    assert feature(result, "full")["nullable"] is False
    assert feature(result, "gaps")["nullable"] is True


@pytest.mark.parametrize(
    ("low", "high", "integer", "expected"),
    [
        (10, 20, True, (9, 21)),  # 10% of the range on each side, rounded outward
        (0, 7, True, (0, 8)),  # never below 0 when every value is >= 0
        (-5, 5, True, (-6, 6)),  # negative values widen below 0
        (5.0, 160.3, False, (0.0, 180.0)),  # floats outward to two significant digits of the range
        (0.05, 0.95, False, (0.0, 1.1)),
        (3, 3, True, (2, 4)),  # a constant widens by 10% of its value, at least 1
    ],
)
def test_ranges_widen_by_ten_percent_of_the_range(low, high, integer, expected):
    assert draft_schema.widen(low, high, integer) == pytest.approx(expected)


def test_a_zero_one_flag_keeps_its_bounds_and_few_integer_codes_are_flagged():
    frame = pd.DataFrame({"flag": ["0", "1"] * 5, "rating": ["1", "2", "3", "4", "5"] * 2, "y": ["a", "b"] * 5})
    result = draft_frame(frame, "y")
    flag, rating = (next(c for c in result.columns if c.name == n) for n in ("flag", "rating"))
    assert (flag.entry["type"], flag.entry["minimum"], flag.entry["maximum"]) == ("integer", 0, 1)
    assert any("change the type to categorical" in note for note in rating.notes)


def test_booleans_as_text_are_categorical_as_written():
    frame = pd.DataFrame({"active": ["True", "False", "True", "False"], "y": ["a", "b", "a", "b"]})
    column = draft_frame(frame, "y").columns[0]
    assert column.entry["categories"] == ["False", "True"]
    assert any("boolean" in note for note in column.notes)


def test_id_columns_are_excluded_with_their_reason(tmp_path, capsys):
    data = hostile_table(tmp_path / "table.csv")
    schema = drafted(tmp_path, data, "Will churn? (yes/no)")
    assert "customer id" not in [f["name"] for f in schema["features"]]
    out = capsys.readouterr().out
    assert "excluded 'customer id': ID-like: all 120 values are distinct text" in out


def test_distinct_integers_with_an_id_name_are_an_id_and_without_one_in_a_small_table_are_not():
    frame = pd.DataFrame({"order_id": ["7", "3", "9", "1"], "tenure": ["5", "8", "2", "11"], "y": ["a", "b"] * 2})
    result = draft_frame(frame, "y")
    assert [c.name for c in result.excluded] == ["order_id"]
    tenure = next(c for c in result.features if c.name == "tenure")
    assert any("too few to call it an ID" in note for note in tenure.notes)


def test_entirely_missing_columns_are_excluded_and_constant_ones_warned():
    frame = pd.DataFrame({"empty": [""] * 4, "same": ["x"] * 4, "v": ["1", "2", "3", "4"], "y": ["a", "b"] * 2})
    result = draft_frame(frame, "y")
    assert [(c.name, c.reason) for c in result.excluded] == [("empty", draft_schema.EMPTY_REASON)]
    same = next(c for c in result.features if c.name == "same")
    assert same.notes[0].startswith("constant")


def test_missing_value_markers_in_a_numeric_column_are_pointed_out():
    frame = pd.DataFrame({"income": ["10", "NA", "30", "n/a"], "y": ["a", "b"] * 2})
    column = draft_frame(frame, "y").columns[0]
    assert column.entry["type"] == "categorical"
    assert any("look like missing-value markers" in note for note in column.notes)


def test_high_cardinality_lists_the_most_frequent_and_accepts_the_rest(tmp_path, capsys):
    rng = random.Random(1)
    rows = [[f"city {i % 80:02d}" if i < 400 else "city 00", rng.choice(["a", "b"])] for i in range(500)]
    schema = drafted(tmp_path, write_csv(tmp_path / "t.csv", ["city", "y"], rows), "y")
    city = feature(schema, "city")
    assert city["unknown_categories"] == "accept"
    assert len(city["categories"]) == 50 and "city 00" in city["categories"]
    assert city["categories"] == sorted(city["categories"])
    assert "high cardinality 'city': 80 distinct values" in capsys.readouterr().out


def test_high_cardinality_drafts_validate_the_table_they_came_from(tmp_path):
    rows = [[f"city {i % 80:02d}", "a" if i % 2 else "b"] for i in range(400)]
    data = write_csv(tmp_path / "t.csv", ["city", "y"], rows)
    code, output = run(tmp_path, data, "y")
    assert code == 0
    assert len(dataset.load(Schema.load(output), data)) == 400


def test_sensitive_looking_columns_are_named_but_never_declared(tmp_path, capsys):
    schema = drafted(tmp_path, hostile_table(tmp_path / "table.csv"), "Will churn? (yes/no)")
    assert schema["sensitive_features"] == []
    assert "'Sex' look like sensitive attributes" in capsys.readouterr().out
    names = ("Age (years)", "AgeGroup", "usage", "marital_status", "mortgage", "international_calls")
    assert [n for n in names if draft_schema.looks_sensitive(n)] == ["Age (years)", "AgeGroup", "marital_status"]


# ---------------------------------------------------------------------------------------------- target
@pytest.mark.parametrize(
    ("labels", "classes", "positive"),
    [
        (["0", "1", "1", "0"], ["0", "1"], "1"),
        (["True", "False", "True", "False"], ["False", "True"], "True"),
        (["yes please", "no thanks", "no thanks", "no thanks"], ["no thanks", "yes please"], "yes please"),
    ],
)
def test_two_labels_make_a_binary_problem_with_a_positive_class_to_confirm(labels, classes, positive):
    frame = pd.DataFrame({"x": ["1", "2", "3", "4"], "label": labels})
    result = draft_frame(frame, "label")
    assert result.target.problem_type == "binary_classification"
    assert list(result.target.classes) == classes
    assert result.target.label_values_or_threshold == (positive,)
    assert "confirm it" in result.target.notes[0]


def test_a_few_labels_make_a_multiclass_problem_in_numeric_order():
    frame = pd.DataFrame({"x": [str(i) for i in range(12)], "label": ["10", "2", "3"] * 4})
    target = draft_frame(frame, "label").target
    assert (target.problem_type, target.classes) == ("multiclass_classification", ("2", "3", "10"))


def test_many_numbers_make_a_regression_with_the_median_as_threshold(tmp_path, capsys):
    rows = [[i % 7, round(10 + i * 1.37, 2)] for i in range(60)]
    schema = drafted(tmp_path, write_csv(tmp_path / "t.csv", ["x", "value"], rows), "value")
    assert schema["problem_type"] == "regression"
    assert "classes" not in schema
    assert schema["label_values_or_threshold"] == [50.4]
    assert "is the median target" in capsys.readouterr().out


def test_missing_targets_are_counted_and_refused_unless_dropping_is_asked_for(tmp_path, capsys):
    rows = [[i % 7, "" if i % 10 == 0 else "ab"[i % 2]] for i in range(40)]
    data = write_csv(tmp_path / "t.csv", ["x", "y"], rows)
    assert drafted(tmp_path, data, "y")["missing_target"] == "refuse"
    assert "4 rows have no value in 'y'" in capsys.readouterr().out
    assert drafted(tmp_path, data, "y", "--drop-missing-target", "--force")["missing_target"] == "drop"
    loaded = dataset.load(Schema.load(tmp_path / "config" / "schema.json"), data)
    assert (len(loaded), loaded.dropped_rows) == (36, 4)


# -------------------------------------------------------------------------------------------- refusals
def refused(tmp_path: Path, capsys, data: Path, target: str) -> str:
    code, output = run(tmp_path, data, target)
    assert code == draft_schema.EXIT_REFUSED
    assert not output.exists(), "a refusal writes nothing"
    return capsys.readouterr().err


def test_a_missing_file_is_refused(tmp_path, capsys):
    assert "does not exist" in refused(tmp_path, capsys, tmp_path / "nope.csv", "y")


def test_an_unknown_target_lists_the_closest_columns(tmp_path, capsys):
    data = hostile_table(tmp_path / "table.csv")
    err = refused(tmp_path, capsys, data, "will churn")
    assert "the target column 'will churn' is not in the table" in err
    assert "'Will churn? (yes/no)'" in err


def test_an_empty_table_and_an_empty_file_are_refused(tmp_path, capsys):
    header_only = write_csv(tmp_path / "header.csv", ["x", "y"], [])
    assert "the table has no rows" in refused(tmp_path, capsys, header_only, "y")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    assert "is empty" in refused(tmp_path, capsys, tmp_path / "empty.csv", "y")


def test_an_entirely_missing_target_is_refused(tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", ["x", "y"], [[1, ""], [2, ""]])
    assert "the target column 'y' has no value in any of its 2 rows" in refused(tmp_path, capsys, data, "y")


def test_a_single_valued_target_is_refused(tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv", ["x", "y"], [[1, "a"], [2, "a"]])
    assert "has one value only ('a')" in refused(tmp_path, capsys, data, "y")


# ------------------------------------------------------------------------------------------ overwriting
def test_the_last_draft_and_the_sample_contract_are_replaced_but_edits_are_kept(tmp_path, capsys):
    data = hostile_table(tmp_path / "table.csv")
    target = "Will churn? (yes/no)"
    code, output = run(tmp_path, data, target)
    assert code == 0
    assert run(tmp_path, data, target)[0] == 0, "the untouched last draft is replaced"
    edited = output.read_text(encoding="utf-8").replace('"description": ""', '"description": "mine"', 1)
    output.write_text(edited, encoding="utf-8")
    capsys.readouterr()
    assert run(tmp_path, data, target)[0] == draft_schema.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "config/schema.json was not overwritten: it was edited after the last draft" in err
    assert "FORCE=1" in err and "'TARGET=Will churn? (yes/no)'" in err
    assert output.read_text(encoding="utf-8") == edited, "the edits survive"
    assert run(tmp_path, data, target, "--force")[0] == 0
    assert "mine" not in output.read_text(encoding="utf-8")
    assert not [p.name for p in output.parent.iterdir() if p.name.endswith(".tmp")], "no temp file is left"


def test_the_sample_contract_is_replaced_without_force(tmp_path):
    output = tmp_path / "config" / "schema.json"
    output.parent.mkdir()
    sample = (ROOT / "data" / "sample_schema.json").read_bytes()
    output.write_bytes(sample.replace(b"\n", b"\r\n"))  # line endings do not make it an edit
    args = ["--data", str(hostile_table(tmp_path / "t.csv")), "--target", "Sex", "--output", str(output)]
    args += ["--baseline", str(BASELINE), "--sample-schema", str(ROOT / "data" / "sample_schema.json")]
    assert draft_schema.main(args) == 0
    assert json.loads(output.read_text(encoding="utf-8"))["target"] == "Sex"


def test_overwrite_rule_in_isolation():
    draft = b'{"a": 1}\n'
    record = f"{draft_schema.sha256_text(draft)}  schema.json\n"
    assert draft_schema.overwrite_refusal(None, None, None) is None
    assert draft_schema.overwrite_refusal(draft, record, None) is None
    assert draft_schema.overwrite_refusal(b'{"a": 2}', record, None).startswith("it was edited")
    assert draft_schema.overwrite_refusal(b'{"a": 2}', None, b'{ "a": 2 }') is None
    assert "no draft recorded" in draft_schema.overwrite_refusal(b'{"a": 2}', None, None)


def test_the_sample_contract_copy_is_a_valid_contract():
    assert Schema.load(ROOT / "data" / "sample_schema.json").features


# ------------------------------------------------------------------------------------------- reporting
def test_the_report_lists_every_column_and_the_decisions_left(tmp_path, capsys):
    drafted(tmp_path, hostile_table(tmp_path / "table.csv", rows=60), "Will churn? (yes/no)")
    out = capsys.readouterr().out
    assert "| column" in out and "| Will churn? (yes/no)" in out and "| km/h" in out
    assert "very long column name xxxxxxxxxxxxxxxxx…" in out, "long names are shortened in the table only"
    assert "positive class 'yes' is a guess" in out
    baseline = json.loads(BASELINE.read_text(encoding="utf-8"))
    assert f"the table has 60 usable rows but baseline.json data.min_rows is {baseline['data']['min_rows']}" in out


def test_help_describes_the_rules(capsys):
    with pytest.raises(SystemExit) as exit_info:
        draft_schema.main(["--help"])
    assert exit_info.value.code == 0
    assert "widened by 10% of the seen range" in capsys.readouterr().out
