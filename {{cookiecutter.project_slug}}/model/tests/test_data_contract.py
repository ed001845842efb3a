"""The data contract: schema.json is checked on load, and data is checked against it row by row.

The tests use a small contract of their own (one feature of each kind and nullability) so every rule has a
column to break; one test checks the project's own schema.json.
"""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

from model.common.data_contract import MAX_REPORTED_ISSUES, MISSING_CATEGORY, DataValidationError, Schema, SchemaError

CONTRACTS = {
    "binary_classification": {"target": "churned", "classes": ["no", "yes"], "label_values_or_threshold": ["yes"]},
    "multiclass_classification": {
        "target": "plan_next",
        "classes": ["basic", "standard", "premium"],
        "label_values_or_threshold": ["premium"],
    },
    "regression": {"target": "value", "label_values_or_threshold": [600.0]},
}
FEATURES = [
    {"name": "age", "type": "integer", "minimum": 0, "maximum": 120, "nullable": False},
    {"name": "income", "type": "float", "minimum": 0},
    {"name": "plan", "type": "categorical", "categories": ["basic", "pro"], "nullable": False},
    {"name": "region", "type": "categorical", "categories": ["north", "south"]},
]
SENSITIVE = [{"name": "age_group", "categories": ["young", "old"], "facet_values_or_threshold": ["old"]}]


def contract(problem_type: str = "binary_classification", **changes) -> dict:
    data = {
        "problem_type": problem_type,
        **CONTRACTS[problem_type],
        "features": FEATURES,
        "sensitive_features": SENSITIVE,
    }
    return copy.deepcopy({**data, **changes})


def with_feature(index: int, **changes) -> dict:
    """A contract whose features[index] has the given fields (None removes a field)."""
    features = copy.deepcopy(FEATURES)
    features[index].update(changes)
    features[index] = {k: v for k, v in features[index].items() if v is not None}
    return contract(features=features)


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema.from_dict(contract())


def valid_columns(**overrides) -> dict:
    columns = {
        "age": ["30", "45", "61"],
        "income": ["1200.5", "", "800"],
        "plan": ["basic", "pro", "basic"],
        "region": ["north", "", "south"],
    }
    return {**columns, **overrides}


def issues_of(schema: Schema, columns: dict) -> DataValidationError:
    with pytest.raises(DataValidationError) as caught:
        schema.coerce_columns(columns)
    return caught.value


# ---------------------------------------------------------------------------------------------- schema.json
def test_project_schema_loads(project_root):
    schema = Schema.load(project_root / "model" / "config" / "schema.json")
    assert schema.feature_names


@pytest.mark.parametrize("problem_type", sorted(CONTRACTS))
def test_valid_contract_loads_for_each_problem_type(problem_type):
    schema = Schema.from_dict(contract(problem_type))
    assert (schema.problem_type, schema.feature_names) == (problem_type, ["age", "income", "plan", "region"])


@pytest.mark.parametrize(
    ("data", "field", "value"),
    [
        pytest.param(
            contract(problem_type="binary_classification") | {"problem_type": "ranking"},
            "problem_type",
            "ranking",
            id="unknown-problem-type",
        ),
        pytest.param(contract(target=""), "target", "", id="empty-target"),
        pytest.param(contract(features=[]), "features", [], id="no-features"),
        pytest.param(contract(features=["age"]), "features[0]", "age", id="feature-not-an-object"),
        pytest.param(with_feature(0, name=None), "features[0].name", None, id="feature-without-name"),
        pytest.param(with_feature(1, name="age"), "features[1].name", "age", id="duplicate-feature"),
        pytest.param(with_feature(0, name="churned"), "features[0].name", "churned", id="feature-named-as-target"),
        pytest.param(with_feature(0, type="string"), "features[0].type", "string", id="unknown-feature-type"),
        pytest.param(with_feature(0, nullable="no"), "features[0].nullable", "no", id="nullable-not-boolean"),
        pytest.param(with_feature(0, minimum="0"), "features[0].minimum", "0", id="minimum-not-a-number"),
        pytest.param(with_feature(0, maximum=True), "features[0].maximum", True, id="maximum-boolean"),
        pytest.param(with_feature(0, minimum=130), "features[0].minimum", 130, id="minimum-above-maximum"),
        pytest.param(with_feature(2, minimum=0), "features[2].minimum", 0, id="bound-on-categorical"),
        pytest.param(with_feature(2, categories=[]), "features[2].categories", [], id="categorical-without-categories"),
        pytest.param(
            with_feature(2, categories=["basic", ""]), "features[2].categories", ["basic", ""], id="empty-category"
        ),
        pytest.param(
            with_feature(2, categories=["basic", MISSING_CATEGORY]),
            "features[2].categories",
            MISSING_CATEGORY,
            id="reserved-missing-token",
        ),
        pytest.param(with_feature(0, categories=["a"]), "features[0].categories", ["a"], id="categories-on-numeric"),
        pytest.param(
            contract("regression", classes=["low", "high"]), "classes", ["low", "high"], id="classes-for-regression"
        ),
        pytest.param(
            contract(classes=["no", "yes", "maybe"]), "classes", ["no", "yes", "maybe"], id="binary-with-three-classes"
        ),
        pytest.param(
            contract("multiclass_classification", classes=["basic", "premium"]),
            "classes",
            ["basic", "premium"],
            id="multiclass-with-two-classes",
        ),
        pytest.param(
            contract("multiclass_classification", classes=["basic", "basic", "premium"]),
            "classes",
            ["basic", "basic", "premium"],
            id="duplicate-classes",
        ),
        pytest.param(
            contract(label_values_or_threshold=["maybe"]),
            "label_values_or_threshold",
            ["maybe"],
            id="positive-label-not-a-class",
        ),
        pytest.param(
            contract(label_values_or_threshold="yes"),
            "label_values_or_threshold",
            "yes",
            id="positive-label-not-a-list",
        ),
        pytest.param(
            contract("regression", label_values_or_threshold=["high"]),
            "label_values_or_threshold",
            ["high"],
            id="regression-threshold-not-a-number",
        ),
        pytest.param(
            contract(sensitive_features=[{"name": "age_group", "facet_values_or_threshold": "old"}]),
            "sensitive_features[0].facet_values_or_threshold",
            "old",
            id="facet-values-not-a-list",
        ),
        pytest.param(
            contract(sensitive_features=[{**SENSITIVE[0], "facet_values_or_threshold": ["ancient"]}]),
            "sensitive_features[0].facet_values_or_threshold",
            ["ancient"],
            id="facet-value-unknown",
        ),
    ],
)
def test_schema_error_names_the_field_and_the_value(data, field, value):
    with pytest.raises(SchemaError) as caught:
        Schema.from_dict(data)
    assert f"'{field}' = {value!r}:" in str(caught.value)


def test_missing_schema_file_is_named(tmp_path):
    with pytest.raises(SchemaError, match=re.escape(f"schema file {tmp_path / 'schema.json'} does not exist")):
        Schema.load(tmp_path / "schema.json")


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text('{"problem_type": ', encoding="utf-8")
    with pytest.raises(SchemaError, match=re.escape(f"{path} is not valid JSON")):
        Schema.load(path)


def test_schema_error_names_the_file_it_came_from(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(contract(target="")), encoding="utf-8")
    with pytest.raises(SchemaError, match="^" + re.escape(f"{path}: 'target'")):
        Schema.load(path)


def test_top_level_must_be_an_object():
    with pytest.raises(SchemaError, match="top level must be a JSON object, got list"):
        Schema.from_dict([])


# ------------------------------------------------------------------------------------------- coerce_columns
def test_csv_strings_become_float64_and_object_columns(schema):
    columns = schema.coerce_columns(valid_columns())
    np.testing.assert_array_equal(columns["age"], [30.0, 45.0, 61.0])
    assert columns["age"].dtype == np.float64
    assert list(columns["plan"]) == ["basic", "pro", "basic"]


def test_missing_numeric_value_becomes_nan(schema):
    assert np.isnan(schema.coerce_columns(valid_columns())["income"][1])


def test_missing_categorical_value_becomes_none(schema):
    assert schema.coerce_columns(valid_columns())["region"][1] is None


def test_integral_float_is_accepted_as_an_integer(schema):
    assert schema.coerce_columns(valid_columns(age=[30.0, "45.0", 61]))["age"].tolist() == [30.0, 45.0, 61.0]


# One bad cell in otherwise valid columns: (column, row, value, what the message says about it).
NOT_NULLABLE = "is missing but the feature is not nullable"
BAD_CELLS = [
    ("income", 1, "lots", "value 'lots' is not a number (float expected)"),
    ("age", 1, "45.5", "value '45.5' is not an integer"),
    ("age", 2, "121", "value '121' is above the maximum 120"),
    ("income", 0, "-0.01", "value '-0.01' is below the minimum 0"),
    ("plan", 1, "gold", "value 'gold' is not one of the categories ['basic', 'pro']"),
    ("age", 1, "", NOT_NULLABLE),
    ("age", 1, None, NOT_NULLABLE),
    ("age", 1, float("nan"), NOT_NULLABLE),
    ("plan", 2, None, NOT_NULLABLE),
]


@pytest.mark.parametrize(("column", "row", "value", "problem"), BAD_CELLS)
def test_a_bad_cell_is_reported_with_row_column_value_and_problem(schema, column, row, value, problem):
    cells = list(valid_columns()[column])
    cells[row] = value
    assert str(issues_of(schema, valid_columns(**{column: cells}))) == f"row {row}, column '{column}': {problem}"


@pytest.mark.parametrize("infinite", ["inf", "-Infinity", "1e400", float("inf")])
def test_infinite_value_is_reported(schema, infinite):
    error = issues_of(schema, valid_columns(income=["1200.5", infinite, "800"]))
    assert [(i.row, i.column, i.problem) for i in error.issues] == [(1, "income", "is not finite")]


@pytest.mark.parametrize("values", [[30, True, 61], [False, 45, 61], ["30", True, "61"]])
def test_json_boolean_is_not_a_number(schema, values):
    error = issues_of(schema, valid_columns(age=values))
    assert [(i.column, i.problem) for i in error.issues] == [("age", "is not a number (integer expected)")]


def test_json_boolean_is_not_a_category(schema):
    error = issues_of(schema, valid_columns(region=["north", True, "south"]))
    assert str(error) == "row 1, column 'region': value True is not a category string"


def test_nested_value_is_not_a_number(schema):
    error = issues_of(schema, valid_columns(income=[[1200.5], 3.0, 800]))
    assert [(i.row, i.problem) for i in error.issues] == [(0, "is not a number (float expected)")]


def test_every_broken_rule_is_reported_in_row_order(schema):
    error = issues_of(schema, valid_columns(age=["30", "45", "999"], plan=["gold", "pro", "basic"]))
    assert [(i.row, i.column) for i in error.issues] == [(0, "plan"), (2, "age")]


def test_issues_beyond_the_report_limit_are_counted(schema):
    rows = MAX_REPORTED_ISSUES + 5
    error = issues_of(
        schema, {"age": ["-1"] * rows, "income": [""] * rows, "plan": ["pro"] * rows, "region": ["north"] * rows}
    )
    assert (len(error.issues), error.total) == (MAX_REPORTED_ISSUES, rows)
    assert str(error).endswith("; and 5 more")


def test_only_the_requested_columns_are_checked(schema):
    assert list(schema.coerce_columns({"age": ["7"]}, names=["age"])) == ["age"]


def test_issue_serialises_for_an_error_response(schema):
    error = issues_of(schema, valid_columns(age=["30", "45", "121"]))
    assert error.issues[0].to_dict() == {
        "column": "age",
        "problem": "is above the maximum 120",
        "row": 2,
        "value": "121",
    }


# --------------------------------------------------------------------------------------------- coerce_target
def test_class_labels_become_class_indices():
    schema = Schema.from_dict(contract("multiclass_classification"))
    assert schema.coerce_target(["premium", "basic", "standard"]).tolist() == [2, 0, 1]


def test_integral_float_label_matches_a_numeric_class_name():
    schema = Schema.from_dict(contract(classes=["0", "1"], label_values_or_threshold=["1"]))
    assert schema.coerce_target([1.0, 0, "1"]).tolist() == [1, 0, 1]


def test_unknown_label_is_reported_with_the_classes():
    schema = Schema.from_dict(contract())
    with pytest.raises(DataValidationError) as caught:
        schema.coerce_target(["no", "maybe"])
    assert str(caught.value) == "row 1, column 'churned': value 'maybe' is not one of the classes ['no', 'yes']"


def test_regression_target_becomes_float64():
    schema = Schema.from_dict(contract("regression"))
    target = schema.coerce_target(["12.5", "700"])
    assert (target.dtype, target.tolist()) == (np.float64, [12.5, 700.0])


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "is missing but the feature is not nullable"), ("high", "is not a number (float expected)")],
)
def test_bad_regression_target_is_reported(value, problem):
    schema = Schema.from_dict(contract("regression"))
    with pytest.raises(DataValidationError) as caught:
        schema.coerce_target(["12.5", value])
    assert [(i.row, i.column, i.problem) for i in caught.value.issues] == [(1, "value", problem)]


# ---------------------------------------------------------------------------------------------- model inputs
def test_model_inputs_are_named_column_tensors(schema):
    inputs = schema.to_model_inputs(schema.coerce_columns(valid_columns()))
    assert list(inputs) == schema.feature_names
    assert {name: (t.dtype, t.shape) for name, t in inputs.items()} == {
        "age": (np.float32, (3, 1)),
        "income": (np.float32, (3, 1)),
        "plan": (np.dtype(object), (3, 1)),
        "region": (np.dtype(object), (3, 1)),
    }


def test_missing_category_becomes_the_sentinel_in_model_inputs(schema):
    inputs = schema.to_model_inputs(schema.coerce_columns(valid_columns()))
    assert inputs["region"].ravel().tolist() == ["north", MISSING_CATEGORY, "south"]


def test_missing_category_becomes_the_sentinel_in_the_training_frame(schema):
    frame = schema.to_frame(schema.coerce_columns(valid_columns()))
    assert list(frame.columns) == schema.feature_names
    assert frame["region"].tolist() == ["north", MISSING_CATEGORY, "south"]
    assert frame["income"].dtype == np.float64


# ---------------------------------------------------------------------------------------------- rows, records
def test_rows_become_columns_in_schema_order(schema):
    columns = schema.columns_from_rows([["30", "1.5", "pro", "north"], ["40", "", "basic", ""]])
    assert {k: list(v) for k, v in columns.items()} == {
        "age": ["30", "40"],
        "income": ["1.5", ""],
        "plan": ["pro", "basic"],
        "region": ["north", ""],
    }


def test_row_of_the_wrong_width_is_reported_with_the_expected_columns(schema):
    with pytest.raises(DataValidationError) as caught:
        schema.columns_from_rows([["30", "1.5", "pro", "north"], ["30", "1.5", "pro"]])
    assert str(caught.value) == "row 1, column '*': has 3 values, expected 4 (age, income, plan, region)"


def test_no_rows_give_empty_columns(schema):
    assert schema.columns_from_rows([]) == {"age": [], "income": [], "plan": [], "region": []}


def test_records_become_columns_in_schema_order(schema):
    records = [{"region": None, "plan": "pro", "income": 1.5, "age": 30}]
    assert schema.columns_from_records(records) == {"age": [30], "income": [1.5], "plan": ["pro"], "region": [None]}


def test_record_with_a_missing_key_is_reported(schema):
    with pytest.raises(DataValidationError) as caught:
        schema.columns_from_records(
            [{"age": 30, "income": 1.5, "plan": "pro", "region": "north"}, {"age": 30, "income": 1.5, "plan": "pro"}]
        )
    assert str(caught.value) == "row 1, column 'region': is missing from the record"


def test_record_with_an_unknown_key_is_reported(schema):
    with pytest.raises(DataValidationError) as caught:
        schema.columns_from_records([{"age": 30, "income": 1.5, "plan": "pro", "region": "north", "colour": "red"}])
    assert str(caught.value) == "row 0, column 'colour': is not a feature in schema.json"


def test_allowed_extra_keys_are_not_reported(schema):
    record = {"age": 30, "income": 1.5, "plan": "pro", "region": "north", "age_group": "old"}
    assert schema.columns_from_records([record], extra_allowed=["age_group"])["age"] == [30]


def test_record_that_is_not_an_object_is_reported(schema):
    with pytest.raises(DataValidationError, match=re.escape("row 0, column '*': value [30] is not a JSON object")):
        schema.columns_from_records([[30]])


@pytest.mark.parametrize("rows", [3, 40])  # below and above the small-batch fast path
@pytest.mark.parametrize(
    ("bad", "problem"),
    [("130", "is above the maximum"), ("30.5", "is not an integer"), ("", "is missing"), ("nan", "is missing")],
)
def test_every_rule_holds_for_small_and_large_batches(schema, rows, bad, problem):
    ages = ["30"] * rows
    ages[rows - 1] = bad
    columns = valid_columns(age=ages, income=["1.0"] * rows, plan=["basic"] * rows, region=["north"] * rows)
    error = issues_of(schema, columns)
    assert [(i.row, i.column) for i in error.issues] == [(rows - 1, "age")]
    assert problem in error.issues[0].problem
