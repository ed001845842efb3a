"""The training data honours the contract in schema.json and the data gates in baseline.json."""

from __future__ import annotations

import numpy as np
import pytest

from model.common.data_contract import DataValidationError
from model.train import data_quality, dataset


@pytest.fixture(scope="module")
def data(schema, sample_data):
    return dataset.load(schema, sample_data)


@pytest.fixture(scope="module")
def profile(schema, data):
    return data_quality.profile(schema, data)


def test_every_column_the_schema_names_is_present(schema, sample_data):
    header = dataset.read_table(sample_data).columns
    expected = [*schema.feature_names, schema.target, *(s.name for s in schema.sensitive_features)]
    assert [c for c in expected if c not in header] == []


def test_every_value_passes_the_schema(data, schema):
    assert len(data) > 0
    assert set(data.columns) == set(schema.feature_names)


def test_has_enough_rows(profile, baseline):
    assert profile["rows"] >= baseline["data"]["min_rows"]


def test_missing_values_stay_under_the_gate(profile, baseline):
    limit = baseline["data"]["max_missing_fraction"]
    over = {name: f for name, f in profile["missing_fraction"].items() if f > limit}
    assert over == {}, f"columns with more than {limit:.0%} missing values: {over}"


def test_non_nullable_features_have_no_missing_values(schema, profile):
    assert {f.name: profile["missing_fraction"][f.name] for f in schema.features if not f.nullable} == {
        f.name: 0.0 for f in schema.features if not f.nullable
    }


def test_duplicate_rows_stay_under_the_gate(profile, baseline):
    assert profile["duplicate_fraction"] <= baseline["data"]["max_duplicate_fraction"]


def test_numeric_features_stay_within_their_ranges(schema, data):
    for feature in schema.features:
        if not feature.is_numeric:
            continue
        values = data.columns[feature.name]
        present = values[~np.isnan(values)]
        if feature.minimum is not None:
            assert present.min() >= feature.minimum, feature.name
        if feature.maximum is not None:
            assert present.max() <= feature.maximum, feature.name


def test_labels_are_balanced_enough(schema, profile, baseline, data):
    if schema.is_classification:
        limit = baseline["data"]["min_class_fraction"]
        rare = {label: f for label, f in profile["class_fraction"].items() if f < limit}
        assert rare == {}, f"classes below {limit:.0%} of rows: {rare}"
    else:
        assert np.isfinite(data.target).all()
        assert profile["target"]["std"] > 0


def test_sensitive_features_cover_both_facets(schema, data):
    for facet in schema.sensitive_features:
        in_d, _known = facet.groups(data.sensitive[facet.name])
        assert 0 < in_d.sum() < len(in_d), f"{facet.name}: facet d must be neither empty nor everyone"


def test_a_value_outside_the_schema_is_caught(schema, sample_data):
    frame = dataset.read_table(sample_data).head(50).copy()
    numeric = next(f for f in schema.features if f.is_numeric and f.minimum is not None)
    frame.loc[7, numeric.name] = str(numeric.minimum - 1)
    with pytest.raises(DataValidationError) as caught:
        dataset.validate(schema, frame)
    assert f"row 7, column '{numeric.name}'" in str(caught.value)


def test_the_data_gates_fail_on_a_tiny_sample(schema, sample_data, baseline):
    small = dataset.validate(schema, dataset.read_table(sample_data).head(10))
    results = data_quality.check(data_quality.profile(schema, small), baseline["data"])
    assert any(r.metric == "rows" and not r.passed for r in results)
