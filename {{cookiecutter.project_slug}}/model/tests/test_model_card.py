"""The model card: every section, the numbers of the run it describes, a SageMaker-shaped JSON, failing gates shown."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from model.common import model_artifact
from model.tests.fixtures_train import CONFIG, GIT_COMMIT
from model.train import evaluate, explain, model_card
from pipeline.local_registry import LocalRegistry

SECTIONS = (
    "## Model overview",
    "## Intended use",
    "## Data",
    "## Metrics",
    "## Bias",
    "## Explanations",
    "## Limitations",
    "## Lineage",
)
JSON_KEYS = {
    "model_overview",
    "intended_uses",
    "business_details",
    "training_details",
    "evaluation_details",
    "additional_information",
}


@pytest.fixture(scope="module")
def evaluation(trained) -> dict:
    return evaluate.run(trained.model_dir, trained.test_path, CONFIG / "baseline.json")


@pytest.fixture(scope="module")
def importance(scorer, trained) -> dict:
    return explain.importance_report(scorer, trained.validation_path, n_repeats=1)


@pytest.fixture(scope="module")
def package(trained, evaluation, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("registry")
    tar = model_artifact.package(trained.model_dir, work / "model.tar.gz")
    lineage = {"pipeline_run": "run-42", "git_commit": GIT_COMMIT}
    return LocalRegistry(work / "registry", "test-group").register(tar, evaluation, lineage)


@pytest.fixture(scope="module")
def data_report(trained) -> dict | None:
    path = Path(trained.train_path).parent / "report" / "data_report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write(scorer, evaluation, importance, package, data_report, out_dir: Path, card: dict | None = None):
    project_info = {"name": "Customer Churn", "pipeline_run": "run-42", "data_report": data_report}
    if card is not None:
        project_info["card"] = card
    files = model_card.write_model_card(
        scorer.metadata, evaluation, scorer.schema, importance, package, out_dir, project_info
    )
    markdown = files["markdown"].read_text(encoding="utf-8")
    content = json.loads(files["json"].read_text(encoding="utf-8"))
    return markdown, content


@pytest.fixture(scope="module")
def card(scorer, evaluation, importance, package, data_report, tmp_path_factory):
    return write(scorer, evaluation, importance, package, data_report, tmp_path_factory.mktemp("card"))


def test_markdown_has_every_section_in_order(card):
    markdown, _ = card
    positions = [markdown.index(section) for section in SECTIONS]
    assert positions == sorted(positions)


def test_json_has_the_model_card_content_sections(card):
    _, content = card
    assert set(content) == JSON_KEYS


def test_json_passes_the_documented_structure_check(card):
    _, content = card
    model_card.check_card_content(content)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c["intended_uses"].update(risk_rating="Severe"), "intended_uses.risk_rating"),
        (
            lambda c: c["evaluation_details"][0]["metric_groups"][0]["metric_data"][0].update(value="high"),
            "evaluation_details[0].metric_groups[0].metric_data[0].value",
        ),
        (lambda c: c.pop("training_details"), "training_details"),
        (lambda c: c["business_details"].update(business_problem="x" * 1025), "business_details.business_problem"),
    ],
    ids=["risk_rating", "metric_type", "missing_section", "too_long"],
)
def test_structure_check_names_the_broken_field(card, mutate, field):
    _, content = card
    broken = copy.deepcopy(content)
    mutate(broken)
    with pytest.raises(model_card.ModelCardError, match=field.replace("[", r"\[").replace("]", r"\]")):
        model_card.check_card_content(broken)


def test_metrics_are_the_holdout_metrics_of_evaluation_json(card, evaluation):
    markdown, content = card
    key = next(k for k in evaluation if k.endswith("_metrics") and k != "bias_metrics")
    holdout = content["evaluation_details"][0]["metric_groups"][0]
    assert {m["name"]: m["value"] for m in holdout["metric_data"]} == {
        name: entry["value"] for name, entry in evaluation[key].items()
    }
    for name, entry in evaluation[key].items():
        assert f"| {name} | {entry['value']:.4f} |" in markdown


def test_bias_section_uses_clarify_names_per_facet(card, schema):
    markdown, content = card
    for facet in schema.sensitive_features:
        assert f"Facet `{facet.name}`" in markdown
        group = next(g for g in content["evaluation_details"][0]["metric_groups"] if g["name"] == f"bias: {facet.name}")
        assert {"CI", "DPL", "DPPL", "DI"} <= {m["name"] for m in group["metric_data"]}


def test_explanations_table_and_chart_follow_the_importance(card, importance, tmp_path_factory):
    markdown, content = card
    top = importance["features"][0]
    assert f"| 1 | {top['feature']} |" in markdown
    assert f"![global feature importance]({model_card.CHART_FILE})" in markdown
    explained = next(e for e in content["evaluation_details"] if e["name"] == "global feature importance")
    assert [m["name"] for m in explained["metric_groups"][0]["metric_data"]] == [
        r["feature"] for r in importance["features"]
    ]


def test_data_section_lists_rows_splits_features_and_sensitive_features(card, schema, scorer, data_report):
    markdown, _ = card
    assert scorer.metadata["training_data_sha256"] in markdown
    if data_report is not None:
        assert data_report["data_sha256"] in markdown
        assert f"| rows (all splits) | {sum(data_report['splits'].values())} |" in markdown
    for feature in schema.features:
        assert f"| {feature.name} | {feature.type} |" in markdown
    for facet in schema.sensitive_features:
        assert f"| {facet.name} |" in markdown


def test_lineage_names_version_hashes_commit_run_and_registry(card, scorer, package):
    markdown, content = card
    metadata = scorer.metadata
    for value in (metadata["model_version"], metadata["model_sha256"], metadata["git_commit"], "run-42"):
        assert str(value) in markdown
    assert f"test-group v{package['ModelPackageVersion']} (PendingManualApproval)" in markdown
    assert package["ModelDataSha256"] in markdown
    for name, value in metadata["hyperparameters"].items():
        assert f"| hyperparameter {name} | {value} |" in markdown
    assert content["model_overview"]["model_version"] == float(package["ModelPackageVersion"])
    assert content["additional_information"]["custom_details"]["model_sha256"] == metadata["model_sha256"]


def test_card_shows_a_failing_bias_gate(scorer, trained, baseline, importance, data_report, tmp_path):
    if not scorer.schema.sensitive_features:
        pytest.skip("the schema declares no sensitive features")
    # No data set has exactly as many rows in facet d as outside it, so a zero class-imbalance bound always fails.
    strict = copy.deepcopy(baseline)
    strict["bias"]["CI"] = {"max_abs": 0.0}
    (tmp_path / "baseline.json").write_text(json.dumps(strict), encoding="utf-8")
    failing = evaluate.run(trained.model_dir, trained.test_path, tmp_path / "baseline.json")
    assert not failing["passed"]
    markdown, content = write(scorer, failing, importance, None, data_report, tmp_path / "card")
    facet = scorer.schema.sensitive_features[0].name
    assert "**Bias gates FAILED**" in markdown
    assert f"CI[{facet}]" in markdown.split("## Bias")[1]
    assert "gate(s) FAILED" in markdown.split("## Model overview")[0]
    assert "not registered" in markdown
    gates = next(g for g in content["evaluation_details"][0]["metric_groups"] if g["name"].startswith("gates"))
    assert {"name": f"CI[{facet}]", "value": "failed"}.items() <= next(
        m for m in gates["metric_data"] if m["name"] == f"CI[{facet}]"
    ).items()
    assert content["additional_information"]["custom_details"]["gates_passed"] == "false"


def test_passing_run_says_every_gate_passed(card):
    markdown, content = card
    assert "All gates of model/config/baseline.json passed." in markdown
    assert "Bias gates FAILED" not in markdown
    assert content["additional_information"]["custom_details"]["gates_passed"] == "true"


def test_config_fields_fill_the_card_and_missing_ones_say_what_to_fill_in(
    scorer, evaluation, importance, package, data_report, tmp_path
):
    config = tmp_path / "model_card.json"
    config.write_text(
        json.dumps(
            {
                "purpose_of_model": "Rank customers by churn risk for the retention team.",
                "risk_rating": "Medium",
                "limitations": ["Trained on synthetic data only."],
            }
        ),
        encoding="utf-8",
    )
    card = model_card.load_card_config(config)
    markdown, content = write(scorer, evaluation, importance, package, data_report, tmp_path / "card", card)
    assert "Rank customers by churn risk for the retention team." in markdown
    assert "- Trained on synthetic data only." in markdown
    assert content["intended_uses"]["risk_rating"] == "Medium"
    assert "fill in 'business_problem' in model/config/model_card.json" in markdown
    assert content["intended_uses"]["purpose_of_model"] == "Rank customers by churn risk for the retention team."


def test_absent_config_gives_defaults_naming_each_field(tmp_path):
    config = model_card.load_card_config(tmp_path / "absent.json")
    assert config["risk_rating"] == "Unknown"
    assert "'intended_uses'" in config["intended_uses"]
    assert "'limitations'" in config["limitations"][0]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"purpose": "x"}, "unknown field"),
        ({"risk_rating": "Severe"}, "'risk_rating' = 'Severe'"),
        ({"limitations": "one string"}, "'limitations'"),
        ({"model_owner": ""}, "'model_owner'"),
    ],
    ids=["unknown", "risk_rating", "limitations_type", "empty"],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, config, message):
    path = tmp_path / "model_card.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(model_card.ModelCardError, match=message):
        model_card.load_card_config(path)


def test_card_without_importance_says_it_was_not_computed(scorer, evaluation, data_report, tmp_path):
    markdown, content = write(scorer, evaluation, None, None, data_report, tmp_path)
    assert "Global importance was not computed" in markdown
    assert not (tmp_path / model_card.CHART_FILE).exists()
    assert [e["name"] for e in content["evaluation_details"]] == ["holdout evaluation"]
    model_card.check_card_content(content)


def test_cli_writes_the_card_from_a_model_tar_gz(trained, evaluation, importance, package, tmp_path, capsys):
    tar = model_artifact.package(trained.model_dir, tmp_path / "model.tar.gz")
    for name, document in (("evaluation", evaluation), ("importance", importance), ("package", package)):
        (tmp_path / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")
    code = model_card.main(
        [
            *("--model", str(tar), "--evaluation", str(tmp_path / "evaluation.json")),
            *("--importance", str(tmp_path / "importance.json")),
            *("--registry-package", str(tmp_path / "package.json"), "--pipeline-run", "run-7"),
            *("--config", str(tmp_path / "absent.json"), "--name", "Customer Churn", "--out-dir", str(tmp_path / "d")),
        ]
    )
    assert code == 0, capsys.readouterr().err
    markdown = (tmp_path / "d" / model_card.MARKDOWN_FILE).read_text(encoding="utf-8")
    assert markdown.startswith("# Model card: Customer Churn")
    assert "run-7" in markdown
    model_card.check_card_content(json.loads((tmp_path / "d" / model_card.JSON_FILE).read_text(encoding="utf-8")))


def test_cli_reports_a_missing_evaluation_file(trained, tmp_path, capsys):
    args = ["--model", str(trained.model_dir), "--evaluation", str(tmp_path / "none.json"), "--out-dir", str(tmp_path)]
    assert model_card.main(args) == 1
    assert "none.json does not exist" in capsys.readouterr().err
