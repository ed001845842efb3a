"""Explanations: permutation importance ranks what the model uses, SHAP attributions add up to the model output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from model.common import model_artifact
from model.common.data_contract import DataValidationError
from model.tests.fixtures_train import FAST, csv_head, csv_with_value, project_hyperparameters
from model.train import dataset, explain, train

# Small, so the suite stays fast; the behaviour under test does not depend on the sizes.
ROWS = 12
BACKGROUND = 25


@pytest.fixture(scope="module")
def batch(scorer, trained):
    return explain.load_batch(scorer.schema, trained.test_path)


@pytest.fixture(scope="module")
def background(scorer, trained):
    return explain.load_batch(scorer.schema, trained.train_path)


@pytest.fixture(scope="module")
def attributions(scorer, batch, background):
    rows = {k: v[:ROWS] for k, v in batch.columns.items()}
    return explain.explain_records(scorer, rows, background.columns, background_size=BACKGROUND)


@pytest.fixture(scope="module")
def noisy_model(schema, trained, tmp_path_factory):
    """A model trained with an extra feature of pure noise next to the real ones."""
    work = tmp_path_factory.mktemp("noisy")
    rng = np.random.default_rng(7)
    raw = {**schema.raw, "features": [*schema.raw["features"], {"name": "noise", "type": "float", "nullable": False}]}
    (work / "schema.json").write_text(json.dumps(raw), encoding="utf-8")
    for split, source in (("train", trained.train_path), ("validation", trained.validation_path)):
        frame = dataset.read_table(source)
        frame["noise"] = rng.uniform(0, 1, len(frame)).round(6).astype(str)
        frame.to_csv(work / f"{split}.csv", index=False)
    train.run(
        work / "train.csv",
        work / "model",
        {**project_hyperparameters(), **FAST},
        work / "schema.json",
        validation_path=work / "validation.csv",
    )
    return model_artifact.Scorer(work / "model"), work / "validation.csv"


def test_codec_round_trips_categories_and_missing_values(schema, batch):
    codec = explain.FeatureCodec(schema)
    decoded = codec.decode(codec.encode(batch.columns))
    for feature in schema.features:
        expected, actual = batch.columns[feature.name], decoded[feature.name]
        if feature.is_numeric:
            np.testing.assert_array_equal(actual, expected)
        else:
            assert list(actual) == list(expected), feature.name


@pytest.mark.slow
def test_importance_ranks_an_informative_feature_above_shuffled_noise(noisy_model):
    scorer, validation_path = noisy_model
    data = dataset.load(scorer.schema, validation_path, require_sensitive=False)
    ranking = explain.global_importance(scorer, data.columns, data.target, n_repeats=3)
    by_name = {r["feature"]: r["importance_mean"] for r in ranking}
    assert ranking[0]["feature"] != "noise"
    assert by_name["noise"] < ranking[0]["importance_mean"] / 10, ranking
    assert [r["feature"] for r in ranking].index("noise") >= len(ranking) // 2, ranking


def test_importance_covers_each_raw_feature_once_sorted(scorer, trained):
    data = dataset.load(scorer.schema, trained.validation_path, require_sensitive=False)
    ranking = explain.global_importance(scorer, data.columns, data.target, n_repeats=1)
    assert sorted(r["feature"] for r in ranking) == sorted(scorer.schema.feature_names)
    means = [r["importance_mean"] for r in ranking]
    assert means == sorted(means, reverse=True)
    assert all(set(r) == {"feature", "importance_mean", "importance_std"} for r in ranking)


def test_importance_is_reproducible_with_a_fixed_seed(scorer, trained):
    data = dataset.load(scorer.schema, trained.validation_path, require_sensitive=False)
    first = explain.global_importance(scorer, data.columns, data.target, n_repeats=2, seed=3)
    second = explain.global_importance(scorer, data.columns, data.target, n_repeats=2, seed=3)
    assert first == second


def test_importance_uses_the_problem_types_main_metric(scorer, trained):
    report = explain.importance_report(scorer, trained.validation_path, n_repeats=1)
    assert report["metric"] == explain.MAIN_METRICS[scorer.schema.problem_type]
    assert report["higher_is_better"] == (report["metric"] != "rmse")


def test_attributions_plus_base_value_equal_the_model_output(attributions):
    total = attributions.base_values + attributions.values.sum(axis=1)
    np.testing.assert_allclose(total, attributions.outputs, atol=1e-6)
    assert attributions.additivity_error < 1e-6


def test_attributions_explain_what_the_scorer_predicts(scorer, batch, attributions):
    rows = {k: v[:ROWS] for k, v in batch.columns.items()}
    prediction = scorer.predict(rows)
    schema = scorer.schema
    if schema.problem_type == "binary_classification":
        expected = prediction.probabilities[:, schema.classes.index(schema.label_values_or_threshold[0])]
    elif schema.problem_type == "multiclass_classification":
        expected = prediction.probabilities[np.arange(ROWS), prediction.values]
    else:
        expected = prediction.values
    np.testing.assert_allclose(attributions.outputs, expected, atol=1e-6)
    assert attributions.values.shape == (ROWS, len(schema.features))
    assert attributions.background_rows == BACKGROUND


def test_exact_algorithm_for_few_features(schema, attributions):
    assert len(schema.features) <= explain.EXACT_MAX_FEATURES
    assert attributions.algorithm == "exact"


def test_permutation_algorithm_is_additive_too(scorer, batch, background, monkeypatch):
    monkeypatch.setattr(explain, "EXACT_MAX_FEATURES", 1)
    rows = {k: v[:4] for k, v in batch.columns.items()}
    result = explain.explain_records(scorer, rows, background.columns, background_size=10)
    assert result.algorithm == "permutation"
    assert result.additivity_error < 1e-6


def test_batch_breaking_the_contract_is_refused_naming_the_row(schema, trained, tmp_path):
    bad = csv_with_value(trained.test_path, tmp_path / "bad.csv", 3, "tenure_months", "many")
    with pytest.raises(DataValidationError, match=r"row 3, column 'tenure_months'"):
        explain.load_batch(schema, bad)


def test_cli_reports_the_bad_row_and_exits_1(trained, tmp_path, capsys):
    bad = csv_with_value(trained.test_path, tmp_path / "bad.csv", 2, "contract_type", "lifetime")
    code = explain.main(["--model", str(trained.model_dir), "--data", str(bad), "--output", str(tmp_path / "o.csv")])
    assert code == 1
    assert "row 2, column 'contract_type'" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_batch_over_max_rows_is_refused_with_the_option_named(trained, tmp_path, capsys):
    data = csv_head(trained.test_path, tmp_path / "batch.csv", 6)
    args = ["--model", str(trained.model_dir), "--data", str(data), "--output", str(tmp_path / "o.csv")]
    assert explain.main([*args, "--max-rows", "5"]) == 1
    err = capsys.readouterr().err
    assert "6 rows" in err and "--max-rows" in err


def test_cli_writes_one_attribution_per_feature_and_a_report(schema, trained, tmp_path):
    data = csv_head(trained.test_path, tmp_path / "batch.csv", 5)
    out, report = tmp_path / "out" / "attributions.csv", tmp_path / "out" / "explain.md"
    code = explain.main(
        [
            *("--model", str(trained.model_dir), "--data", str(data), "--output", str(out)),
            *("--report", str(report), "--background", str(trained.train_path), "--background-size", "20"),
        ]
    )
    assert code == 0
    frame = pd.read_csv(out)
    shap_columns = [explain.ATTRIBUTION_PREFIX + n for n in schema.feature_names]
    assert list(frame.columns) == ["row", "prediction", "explained_output", "base_value", *shap_columns]
    assert len(frame) == 5
    total = frame["base_value"] + frame[shap_columns].sum(axis=1)
    np.testing.assert_allclose(total, frame["explained_output"], atol=1e-6)
    text = report.read_text(encoding="utf-8")
    assert "additivity" in text and "explain_attributions.png" in text
    assert (report.parent / "explain_attributions.png").stat().st_size > 0


def test_cli_accepts_a_model_tar_gz(trained, tmp_path):
    tar = model_artifact.package(trained.model_dir, tmp_path / "model.tar.gz")
    data = csv_head(trained.test_path, tmp_path / "batch.csv", 2)
    args = ["--model", str(tar), "--data", str(data), "--output", str(tmp_path / "o.csv"), "--background-size", "10"]
    assert explain.main(args) == 0
    assert len(pd.read_csv(tmp_path / "o.csv")) == 2


def test_importance_cli_writes_json_and_chart(scorer, trained, tmp_path):
    target = tmp_path / "explainability" / "importance.json"
    args = ["--model", str(trained.model_dir), "--data", str(trained.validation_path), "--importance", str(target)]
    assert explain.main([*args, "--n-repeats", "1"]) == 0
    report = json.loads(target.read_text(encoding="utf-8"))
    assert report["model_version"] == scorer.model_version
    assert [r["feature"] for r in report["features"]] != []
    assert target.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_importance_needs_the_labels(schema, trained, tmp_path, capsys):
    unlabelled = tmp_path / "unlabelled.csv"
    dataset.read_table(trained.validation_path).drop(columns=[schema.target]).to_csv(unlabelled, index=False)
    args = ["--model", str(trained.model_dir), "--data", str(unlabelled), "--importance", str(tmp_path / "i.json")]
    assert explain.main(args) == 1
    assert f"'{schema.target}'" in capsys.readouterr().err


def test_cli_without_an_output_asks_for_one(trained, capsys):
    with pytest.raises(SystemExit):
        explain.main(["--model", str(trained.model_dir), "--data", str(trained.test_path)])
    assert "--output" in capsys.readouterr().err


def test_headerless_batch_gives_the_same_attributions_as_with_a_header(schema, trained, tmp_path):
    """Batch Transform input: schema-ordered features, no header row (odd values and a missing cell included)."""
    frame = dataset.read_table(trained.test_path).head(4)[list(schema.feature_names)]
    nullable = next(i for i, f in enumerate(schema.features) if f.nullable)
    frame.iloc[1, nullable] = ""  # a missing value stays missing without a header too
    with_header, headerless = tmp_path / "header.csv", tmp_path / "split" / "part-0.csv"
    frame.to_csv(with_header, index=False)
    headerless.parent.mkdir()
    frame.to_csv(headerless, index=False, header=False)
    (tmp_path / "split" / "part-1.csv").write_text("", encoding="utf-8")  # an empty split file is skipped
    common = ["--model", str(trained.model_dir), "--background", str(trained.train_path), "--background-size", "10"]

    assert explain.main([*common, "--data", str(with_header), "--output", str(tmp_path / "a.csv")]) == 0
    args = [*common, "--data", str(headerless.parent), "--no-header", "--output", str(tmp_path / "b.csv")]
    assert explain.main(args) == 0

    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))
    assert len(pd.read_csv(tmp_path / "b.csv")) == 4


def test_headerless_rows_of_the_wrong_width_are_refused_naming_the_features(schema, trained, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,4\n", encoding="utf-8")
    args = ["--model", str(trained.model_dir), "--data", str(bad), "--no-header", "--output", str(tmp_path / "o.csv")]
    assert explain.main(args) == 1
    err = capsys.readouterr().err
    assert "2 columns per row" in err and schema.feature_names[0] in err
    assert not (tmp_path / "o.csv").exists()


def test_no_header_is_refused_for_importance(trained, tmp_path, capsys):
    args = ["--model", str(trained.model_dir), "--data", str(trained.test_path), "--no-header"]
    with pytest.raises(SystemExit):
        explain.main([*args, "--importance", str(tmp_path / "i.json")])
    assert "--no-header" in capsys.readouterr().err
