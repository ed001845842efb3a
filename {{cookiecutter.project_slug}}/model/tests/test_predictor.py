"""The four handler functions, one behaviour per test, against artifacts written by train.run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from model.common.model_artifact import ArtifactError, Scorer
from model.inference import predictor
from model.inference.predictor import InferenceError, input_fn, model_fn, output_fn, predict_fn
from model.tests.fixtures_inference import csv_body, feature_records, feature_rows

pytest_plugins = ("model.tests.fixtures_inference",)


@pytest.fixture(scope="module")
def scorer(artifacts) -> Scorer:
    return model_fn(artifacts["binary_classification"])


@pytest.fixture(scope="module")
def schema(scorer):
    return scorer.schema


def rejected(body: bytes, content_type: str, schema, **kwargs) -> InferenceError:
    with pytest.raises(InferenceError) as caught:
        input_fn(body, content_type, schema, **kwargs)
    return caught.value


def feature_where(schema, predicate):
    return next(i for i, f in enumerate(schema.features) if predicate(f))


# ------------------------------------------------------------------------------------------------ model_fn
def test_model_fn_loads_the_artifact_and_its_schema(artifact):
    scorer = model_fn(artifact)
    assert scorer.schema.feature_names
    assert scorer.model_version


def test_model_fn_refuses_a_tampered_artifact(artifacts, tmp_path):
    copy = shutil.copytree(artifacts["binary_classification"], tmp_path / "model")
    model_file = copy / json.loads((copy / "metadata.json").read_text())["model_file"]
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match="SHA-256"):
        model_fn(copy)


def test_a_skops_artifact_answers_like_its_onnx_twin(artifacts, skops_artifact):
    onnx_scorer, skops_scorer = model_fn(artifacts["binary_classification"]), model_fn(skops_artifact)
    assert skops_scorer.format == "skops"
    body = csv_body(feature_rows(20))
    onnx_answer = predict_fn(input_fn(body, "text/csv", onnx_scorer.schema), onnx_scorer)
    skops_answer = predict_fn(input_fn(body, "text/csv", skops_scorer.schema), skops_scorer)
    np.testing.assert_allclose(skops_answer.probabilities, onnx_answer.probabilities, atol=1e-3)


# ------------------------------------------------------------------------------------------------ input_fn
def test_csv_rows_become_typed_columns_in_schema_order(schema):
    rows = feature_rows(5)
    columns = input_fn(csv_body(rows), "text/csv", schema)
    assert list(columns) == schema.feature_names
    for feature in schema.features:
        column = columns[feature.name]
        assert len(column) == 5
        assert column.dtype == (np.float64 if feature.is_numeric else object)


def test_csv_missing_values_become_nan_or_none(schema):
    row = feature_rows(1)[0]
    nullable_numeric = feature_where(schema, lambda f: f.is_numeric and f.nullable)
    row[nullable_numeric] = ""
    columns = input_fn(csv_body([row]), "text/csv", schema)
    assert np.isnan(columns[schema.features[nullable_numeric].name][0])


def test_csv_accepts_a_charset_parameter_quotes_blank_lines_and_a_byte_order_mark(schema):
    rows = feature_rows(3)
    quoted = "\n".join(",".join(f'"{v}"' for v in row) for row in rows)
    body = ("\ufeff" + quoted + "\n\n").encode()
    columns = input_fn(body, "text/csv; charset=UTF-8", schema)
    plain = input_fn(csv_body(rows), "text/csv", schema)
    for name in schema.feature_names:
        assert list(columns[name].astype(str)) == list(plain[name].astype(str))


def test_json_instances_as_records(schema):
    records = feature_records(4)
    columns = input_fn(json.dumps({"instances": records}).encode(), "application/json", schema)
    assert len(columns[schema.feature_names[0]]) == 4


def test_json_instances_as_lists_in_schema_order(schema):
    records = feature_records(2)
    lists = [[r[name] for name in schema.feature_names] for r in records]
    by_list = input_fn(json.dumps({"instances": lists}).encode(), "application/json", schema)
    by_record = input_fn(json.dumps({"instances": records}).encode(), "application/json", schema)
    for name in schema.feature_names:
        assert list(by_list[name].astype(str)) == list(by_record[name].astype(str))


@pytest.mark.parametrize(
    "content_type", ["application/jsonlines", "application/x-jsonlines", "application/jsonlines; charset=utf-8"]
)
def test_jsonlines_one_record_per_line(schema, content_type):
    body = "\n".join(json.dumps(r) for r in feature_records(3)).encode()
    assert len(input_fn(body, content_type, schema)[schema.feature_names[0]]) == 3


def test_jsonlines_lists_per_line(schema):
    lists = [[r[name] for name in schema.feature_names] for r in feature_records(2)]
    body = ("\n".join(json.dumps(v) for v in lists) + "\n").encode()
    assert len(input_fn(body, "application/jsonlines", schema)[schema.feature_names[0]]) == 2


# ---------------------------------------------------------------------------------------- input_fn errors
@pytest.mark.parametrize("body", [b"", b"  \n\n"])
def test_an_empty_body_is_a_bad_request(schema, body):
    error = rejected(body, "text/csv", schema)
    assert (error.status, error.error) == (400, "empty_body")


def test_json_without_instances_records_is_empty(schema):
    error = rejected(b'{"instances": []}', "application/json", schema)
    assert (error.status, error.error) == (400, "empty_body")


def test_an_unsupported_content_type_is_415(schema):
    error = rejected(b"x", "application/x-parquet", schema)
    assert error.status == 415
    assert "text/csv" in error.message


def test_a_missing_content_type_is_415(schema):
    assert rejected(csv_body(feature_rows(1)), None, schema).status == 415


def test_an_unknown_charset_is_415(schema):
    error = rejected(csv_body(feature_rows(1)), "text/csv; charset=klingon", schema)
    assert (error.status, error.error) == (415, "unsupported_charset")


def test_bytes_that_are_not_utf8_are_malformed(schema):
    error = rejected(b"\xff\xfe\x00bad", "text/csv", schema)
    assert (error.status, error.error) == (400, "malformed_body")


def test_a_body_over_the_limit_is_413(schema):
    body = csv_body(feature_rows(20))
    error = rejected(body, "text/csv", schema, max_bytes=len(body) - 1)
    assert error.status == 413
    assert str(len(body)) in error.message


def test_the_limit_comes_from_sagemaker_max_payload_in_mb(monkeypatch):
    monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "2")
    assert predictor.max_payload_bytes() == 2 * 1024 * 1024
    monkeypatch.delenv("SAGEMAKER_MAX_PAYLOAD_IN_MB")
    assert predictor.max_payload_bytes() == 6 * 1024 * 1024


@pytest.mark.parametrize("value", ["six", "0"])
def test_a_bad_payload_limit_setting_is_named(value):
    with pytest.raises(ValueError, match="SAGEMAKER_MAX_PAYLOAD_IN_MB"):
        predictor.max_payload_bytes({"SAGEMAKER_MAX_PAYLOAD_IN_MB": value})


def test_malformed_csv_is_a_bad_request(schema):
    error = rejected(b'1,"unclosed\n', "text/csv", schema)
    assert (error.status, error.error) == (400, "malformed_body")


def test_a_csv_header_line_is_named_as_such(schema):
    body = csv_body([schema.feature_names, *feature_rows(1)])
    error = rejected(body, "text/csv", schema)
    assert error.status == 400
    assert "header" in error.message


def test_a_wrong_column_count_names_the_row_and_the_expected_columns(schema):
    rows = feature_rows(3)
    rows[1] = rows[1][:-1]
    error = rejected(csv_body(rows), "text/csv", schema)
    assert (error.status, error.error) == (400, "invalid_data")
    assert error.issues[0]["row"] == 1
    assert schema.feature_names[0] in error.issues[0]["problem"]


def test_text_in_a_numeric_column_is_invalid(schema):
    rows = feature_rows(2)
    index = feature_where(schema, lambda f: f.is_numeric)
    rows[0][index] = "lots"
    error = rejected(csv_body(rows), "text/csv", schema)
    assert error.issues[0] == {
        "column": schema.features[index].name,
        "problem": error.issues[0]["problem"],
        "row": 0,
        "value": "lots",
    }
    assert "not a number" in error.issues[0]["problem"]


def test_a_value_above_the_schema_maximum_is_invalid(schema):
    index = feature_where(schema, lambda f: f.maximum is not None)
    row = feature_rows(1)[0]
    row[index] = str(schema.features[index].maximum + 1)
    error = rejected(csv_body([row]), "text/csv", schema)
    assert "maximum" in error.issues[0]["problem"]


def test_an_unknown_category_is_invalid(schema):
    index = feature_where(schema, lambda f: not f.is_numeric)
    row = feature_rows(1)[0]
    row[index] = "no_such_category"
    error = rejected(csv_body([row]), "text/csv", schema)
    assert error.issues[0]["value"] == "no_such_category"


def test_a_missing_value_in_a_required_feature_is_invalid(schema):
    index = feature_where(schema, lambda f: not f.nullable)
    row = feature_rows(1)[0]
    row[index] = ""
    error = rejected(csv_body([row]), "text/csv", schema)
    assert "not nullable" in error.issues[0]["problem"]


def test_issues_are_capped_and_counted(schema):
    index = feature_where(schema, lambda f: f.is_numeric)
    rows = feature_rows(40)
    for row in rows:
        row[index] = "bad"
    error = rejected(csv_body(rows), "text/csv", schema)
    assert len(error.issues) == 10
    assert error.total == 40
    assert json.loads(error.body())["total_issues"] == 40


def test_malformed_json_is_a_bad_request(schema):
    error = rejected(b'{"instances": [', "application/json", schema)
    assert (error.status, error.error) == (400, "malformed_body")


def test_json_without_an_instances_list_explains_the_shape(schema):
    error = rejected(b'[{"a": 1}]', "application/json", schema)
    assert "instances" in error.message


def test_json_records_mixing_objects_and_lists_are_malformed(schema):
    record = feature_records(1)[0]
    body = json.dumps({"instances": [record, list(record.values())]}).encode()
    error = rejected(body, "application/json", schema)
    assert "record 1" in error.message


def test_json_records_with_missing_and_unknown_keys_name_them(schema):
    record = feature_records(1)[0]
    missing = schema.feature_names[0]
    del record[missing]
    record["colour"] = "blue"
    error = rejected(json.dumps({"instances": [record]}).encode(), "application/json", schema)
    named = {issue["column"] for issue in error.issues}
    assert {missing, "colour"} <= named


def test_a_json_boolean_is_not_a_number(schema):
    record = feature_records(1)[0]
    name = schema.features[feature_where(schema, lambda f: f.is_numeric)].name
    record[name] = True
    error = rejected(json.dumps({"instances": [record]}).encode(), "application/json", schema)
    assert error.issues[0]["column"] == name


def test_a_bad_jsonlines_line_is_named_by_number(schema):
    good = json.dumps(feature_records(1)[0])
    error = rejected((good + "\n" + good + "\n{oops\n").encode(), "application/jsonlines", schema)
    assert "line 3" in error.message


def test_two_json_values_on_one_line_are_malformed(schema):
    good = json.dumps(feature_records(1)[0])
    error = rejected(f"{good} {good}\n".encode(), "application/jsonlines", schema)
    assert error.error == "malformed_body"


def test_an_inference_error_body_is_json_naming_the_problem():
    error = InferenceError(400, "invalid_data", "row 0 is bad", [{"column": "x", "problem": "bad"}])
    assert json.loads(error.body()) == {
        "error": "invalid_data",
        "message": "row 0 is bad",
        "issues": [{"column": "x", "problem": "bad"}],
        "total_issues": 1,
    }


# ---------------------------------------------------------------------------------------------- predict_fn
def test_predict_fn_gives_one_prediction_per_row(artifact):
    scorer = model_fn(artifact)
    predictions = predict_fn(input_fn(csv_body(feature_rows(7)), "text/csv", scorer.schema), scorer)
    assert len(predictions) == 7
    if scorer.schema.is_classification:
        assert predictions.classes == scorer.schema.classes
        assert predictions.probabilities.shape == (7, len(scorer.schema.classes))
        np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0, atol=1e-5)
        assert set(predictions.values.tolist()) <= set(range(len(scorer.schema.classes)))
    else:
        assert predictions.probabilities is None
        assert np.isfinite(predictions.values).all()


# ----------------------------------------------------------------------------------------------- output_fn
@pytest.fixture(scope="module")
def classified():
    probabilities = np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32)
    return predictor.Predictions(("no", "yes"), np.array([1, 0]), probabilities)


@pytest.fixture(scope="module")
def scored():
    return predictor.Predictions((), np.array([12.5, 3.0]))


def test_classification_as_json_names_labels_and_probabilities(classified):
    body, content_type = output_fn(classified, "application/json")
    assert content_type == "application/json"
    assert json.loads(body) == {
        "predictions": [
            {"predicted_label": "yes", "probability": 0.8, "probabilities": [0.2, 0.8], "labels": ["no", "yes"]},
            {"predicted_label": "no", "probability": 0.9, "probabilities": [0.9, 0.1], "labels": ["no", "yes"]},
        ]
    }


def test_classification_as_csv_is_label_then_probabilities(classified):
    body, content_type = output_fn(classified, "text/csv")
    assert (body, content_type) == (b"yes,0.200000,0.800000\nno,0.900000,0.100000\n", "text/csv")


def test_csv_labels_with_commas_are_quoted():
    predictions = predictor.Predictions(("a,b", "c"), np.array([0]), np.array([[0.7, 0.3]]))
    assert output_fn(predictions, "text/csv")[0] == b'"a,b",0.700000,0.300000\n'


def test_csv_probabilities_have_six_decimals_from_zero_to_one():
    predictions = predictor.Predictions(("no", "yes"), np.array([1, 0]), np.array([[0.0, 1.0], [0.1234567, 0.8765433]]))
    assert output_fn(predictions, "text/csv")[0] == b"yes,0.000000,1.000000\nno,0.123457,0.876543\n"


def test_csv_probabilities_are_the_same_for_few_and_many_rows():
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet([1.0, 1.0, 1.0], size=predictor.FEW_ROWS + 5)
    many = predictor.Predictions(("a", "b", "c"), probabilities.argmax(axis=1), probabilities)
    few = predictor.Predictions(("a", "b", "c"), many.values[:3], probabilities[:3])
    assert output_fn(many, "text/csv")[0].splitlines()[:3] == output_fn(few, "text/csv")[0].splitlines()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csv_probabilities_of_few_rows_round_as_the_array_path_does(dtype):
    rng = np.random.default_rng(7)
    edges = [[0.0000005, 0.9999995], [0.0000025, 0.9999975], [0.5, 0.5], [1.0000001, -0.0000001]]
    probabilities = np.vstack([edges, rng.random((predictor.FEW_ROWS + 4, 2))]).astype(dtype)
    many = predictor.Predictions(("n", "y"), probabilities.argmax(axis=1), probabilities)
    lines = output_fn(many, "text/csv")[0].splitlines()
    for start in range(0, len(probabilities), 4):
        few = predictor.Predictions(("n", "y"), many.values[start : start + 4], probabilities[start : start + 4])
        assert output_fn(few, "text/csv")[0].splitlines() == lines[start : start + 4]
    with np.errstate(invalid="ignore"):  # a NaN (no model should answer one) still renders, as 0
        broken = predictor.Predictions(("n", "y"), np.array([0]), np.array([[np.nan, 0.5]], dtype=dtype))
        assert output_fn(broken, "text/csv")[0] == b"n,0.000000,0.500000\n"


def test_csv_answers_every_problem_type_one_line_per_record(artifact):
    scorer = model_fn(artifact)
    columns = input_fn(csv_body(feature_rows(6)), "text/csv", scorer.schema)
    lines = output_fn(predict_fn(columns, scorer), "text/csv")[0].decode().splitlines()
    assert len(lines) == 6
    for line in lines:
        fields = line.split(",")
        if scorer.schema.is_classification:
            assert fields[0] in scorer.schema.classes
            assert len(fields) == 1 + len(scorer.schema.classes)
            assert abs(sum(map(float, fields[1:])) - 1) < 1e-5
        else:
            assert len(fields) == 1 and float(fields[0]) == float(fields[0])


def test_classification_as_jsonlines_is_one_object_per_line(classified):
    body, content_type = output_fn(classified, "application/jsonlines")
    lines = body.decode().splitlines()
    assert content_type == "application/jsonlines"
    assert [json.loads(line)["predicted_label"] for line in lines] == ["yes", "no"]


def test_regression_as_json_and_csv(scored):
    assert json.loads(output_fn(scored, "application/json")[0]) == {"predictions": [{"score": 12.5}, {"score": 3.0}]}
    assert output_fn(scored, "text/csv")[0] == b"12.5\n3.0\n"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("text/csv; charset=utf-8", "text/csv"),
        ("application/xml, text/csv;q=0.5", "text/csv"),
        ("application/json;q=0.1, text/csv", "text/csv"),
        ("application/x-jsonlines", "application/jsonlines"),
    ],
)
def test_the_accept_header_chooses_the_format(classified, accept, expected):
    assert output_fn(classified, accept)[1] == expected


@pytest.mark.parametrize("accept", ["application/xml", "image/png, text/html", "text/csv;q=0"])
def test_an_unsupported_accept_is_406(classified, accept):
    with pytest.raises(InferenceError) as caught:
        output_fn(classified, accept)
    assert caught.value.status == 406


def test_the_round_trip_from_bytes_to_bytes(artifact):
    scorer = model_fn(artifact)
    columns = input_fn(csv_body(feature_rows(3)), "text/csv", scorer.schema)
    body, _ = output_fn(predict_fn(columns, scorer), "application/json")
    records = json.loads(body)["predictions"]
    assert len(records) == 3
    if scorer.schema.is_classification:
        assert {r["predicted_label"] for r in records} <= set(scorer.schema.classes)
    else:
        assert all(isinstance(r["score"], float) for r in records)
