"""The tuning step: when model/config/tuning.json enables tuning for an environment, the SageMaker Pipeline's training
step is a TuningStep (built by the real SDK, offline) with the file's ranges and objective, metric definitions that
read train.py's own log, and the best training job's model going through evaluation, the gates and registration."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from model.common import tuning_config
from pipeline import sagemaker_pipeline as sp
from pipeline import sagemaker_settings as ss
from pipeline.tests.conftest import offline
from pipeline.tests.test_sagemaker_pipeline import REGION, steps_by_name, write_config

ROOT = Path(__file__).resolve().parents[2]
TUNING = json.loads((ROOT / "model" / "config" / "tuning.json").read_text(encoding="utf-8"))
BASELINE = json.loads((ROOT / "model" / "config" / "baseline.json").read_text(encoding="utf-8"))
HYPERPARAMETERS = json.loads((ROOT / "model" / "config" / "hyperparameters.json").read_text(encoding="utf-8"))
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def tuning_file(folder: Path, **fields) -> Path:
    raw = {**json.loads(json.dumps(TUNING)), **fields}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tuning.json").write_text(json.dumps(raw), encoding="utf-8")
    return folder / "tuning.json"


def build(argv: list[str]) -> tuple[int, dict | None]:
    out = Path(argv[argv.index("--output") + 1])
    code = sp.main(argv)
    return code, json.loads(out.read_text(encoding="utf-8")) if code == 0 else None


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> dict:
    """The dev definition, tuning enabled for dev, with a KMS key and network isolation; built with no network."""
    root = tmp_path_factory.mktemp("tuned")
    with offline() as attempts, pytest.MonkeyPatch.context() as patch:
        patch.setattr(ss, "TUNING_FILE", tuning_file(root, environments={"dev": True, "staging": False, "prod": False}))
        isolated = write_config(
            root / "config", "dev", lambda c: c["network"].update(enable_network_isolation=True), True
        )
        for env in ("staging", "prod"):
            (isolated / f"{env}.json").write_text(
                (ROOT / "infra" / "config" / f"{env}.json").read_text("utf-8"), "utf-8"
            )
        patch.setattr(ss, "CONFIG_DIR", isolated)
        argv = ["definition", "--env", "dev", "--region", REGION, "--image-tag", "abc123", "--kms-key-arn", KMS]
        code, definition = build([*argv, "--output", str(root / "definition.json")])
    assert code == 0
    assert attempts == []
    return definition


@pytest.fixture(scope="module")
def config() -> tuning_config.TuningConfig:
    return tuning_config.parse(TUNING, BASELINE)


def tuning_arguments(definition: dict) -> dict:
    return steps_by_name(definition)[sp.TUNE_STEP]["Arguments"]


def test_the_training_step_becomes_a_tuning_step(tuned):
    assert [s["Name"] for s in tuned["Steps"]] == [sp.PREPARE_STEP, sp.TUNE_STEP, sp.EVALUATE_STEP, sp.GATES_STEP]
    step = steps_by_name(tuned)[sp.TUNE_STEP]
    assert step["Type"] == "Tuning"
    assert step["CacheConfig"] == {"Enabled": True, "ExpireAfter": sp.CACHE_EXPIRE_AFTER}


def test_the_tuning_job_config_is_tuning_json(tuned, config):
    job = tuning_arguments(tuned)["HyperParameterTuningJobConfig"]
    assert job["Strategy"] == TUNING["Strategy"]
    assert job["HyperParameterTuningJobObjective"] == TUNING["HyperParameterTuningJobObjective"]
    assert job["ResourceLimits"] == TUNING["ResourceLimits"]
    assert job.get("RandomSeed") == TUNING.get("RandomSeed")
    ranges = {kind: items for kind, items in job["ParameterRanges"].items() if items}
    expected = {kind: items for kind, items in config.parameter_ranges().items() if items}
    assert ranges == expected
    for kind, items in TUNING["ParameterRanges"].items():  # the values as the file writes them
        for item in items:
            assert item in ranges[kind]


def test_the_objective_is_a_gated_validation_metric_of_the_metric_definitions(tuned):
    arguments = tuning_arguments(tuned)
    objective = arguments["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    definitions = arguments["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
    names = [d["Name"] for d in definitions]
    assert names[0] == objective
    assert sorted(names) == sorted(f"validation:{m}" for m in BASELINE["quality"])


def test_trials_run_like_the_training_step(tuned, config):
    definition = tuning_arguments(tuned)["TrainingJobDefinition"]
    image = definition["AlgorithmSpecification"]["TrainingImage"]
    assert image["Std:Join"]["Values"][1] == {"Get": "Parameters.ImageTag"}
    assert [c["ChannelName"] for c in definition["InputDataConfig"]] == ["train", "validation"]
    assert definition["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": f"Steps.{sp.PREPARE_STEP}.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"
    }
    tuned_names = {r.name for r in config.ranges}
    assert definition["StaticHyperParameters"] == {k: v for k, v in HYPERPARAMETERS.items() if k not in tuned_names}
    assert definition["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert definition["ResourceConfig"]["VolumeKmsKeyId"] == KMS
    assert definition["OutputDataConfig"]["KmsKeyId"] == KMS
    assert definition["EnableNetworkIsolation"] is True
    assert definition["Environment"]["INPUT_DATA_VERSION"] == {"Get": "Parameters.InputDataVersion"}


def test_the_best_training_jobs_model_is_evaluated_and_registered(tuned):
    steps = steps_by_name(tuned)
    output = tuning_arguments(tuned)["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"]
    best_job = {"Get": f"Steps.{sp.TUNE_STEP}.TrainingJobSummaries[0].TrainingJobName"}
    inputs = {i["InputName"]: i for i in steps[sp.EVALUATE_STEP]["Arguments"]["ProcessingInputs"]}
    model = inputs["model"]["S3Input"]["S3Uri"]["Std:Join"]
    assert model["On"] == "/"
    scheme, bucket, prefix, job, tail = model["Values"]
    # <S3OutputPath>/<training job name>/output/model.tar.gz: where SageMaker writes each trial's model.
    assert "/".join((scheme, bucket, prefix)) == output
    assert (job, tail) == (best_job, "output/model.tar.gz")
    (container,) = steps[sp.REGISTER_STEP]["Arguments"]["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == inputs["model"]["S3Input"]["S3Uri"]


def test_an_environment_without_tuning_keeps_the_training_step(no_network, monkeypatch, tmp_path):
    monkeypatch.setattr(ss, "TUNING_FILE", tuning_file(tmp_path, environments={"dev": True, "staging": False}))
    code, definition = build(["definition", "--env", "staging", "--output", str(tmp_path / "d.json")])
    assert code == 0
    assert sp.TRAIN_STEP in steps_by_name(definition) and sp.TUNE_STEP not in steps_by_name(definition)


def test_the_shipped_tuning_json_names_only_known_environments():
    known = {p.stem for p in (ROOT / "infra" / "config").glob("*.json")}
    assert set(TUNING.get("environments", {})) <= known


@pytest.mark.parametrize(
    ("fields", "fragments"),
    [
        ({"environments": {"dve": True}}, ["environments.dve", "no infra/config/dve.json", "dev"]),
        ({"Strategy": "Hyperband"}, ["Strategy = 'Hyperband'", "Bayesian, Random or Grid"]),
        (
            {"HyperParameterTuningJobObjective": {"MetricName": "validation:nope", "Type": "Maximize"}},
            ["HyperParameterTuningJobObjective.MetricName = 'validation:nope'"],
        ),
    ],
    ids=["unknown-env", "hyperband", "objective"],
)
def test_a_bad_tuning_json_exits_2_naming_the_field(no_network, monkeypatch, tmp_path, capsys, fields, fragments):
    monkeypatch.setattr(ss, "TUNING_FILE", tuning_file(tmp_path, **fields))
    code, _ = build(["definition", "--env", "dev", "--output", str(tmp_path / "d.json")])
    assert code == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "d.json").exists()


# ------------------------------------------------------------------------- metric definitions vs train.py's log
def _model_python() -> str | None:
    for candidate in (os.environ.get("SMT_MODEL_PYTHON", ""), str(ROOT / ".venv" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.mark.skipif(_model_python() is None, reason="no model environment: set SMT_MODEL_PYTHON or run make setup")
def test_the_metric_definitions_read_the_metrics_from_a_real_train_py_log(tuned, tmp_path):
    """train.py (in the model environment) trains a small model; each regex of the definition finds its metric."""
    python = _model_python()
    data = tmp_path / "data.csv"
    subprocess.run(
        [python, "-m", "model.common.sample_data", "--rows", "600", "--out", str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    hyperparameters = tmp_path / "hyperparameters.json"
    hyperparameters.write_text(json.dumps({**HYPERPARAMETERS, "n_estimators": "10"}), encoding="utf-8")
    args = ["--train", str(data), "--validation", str(data), "--model-dir", str(tmp_path / "model")]
    args += ["--hyperparameters", str(hyperparameters), "--output-data-dir", str(tmp_path / "output")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_") and k != "OPT_ML_ROOT"}
    env["OPT_ML_ROOT"] = str(tmp_path / "opt_ml")
    trained = subprocess.run(
        [python, "-m", "model.train.train", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert trained.returncode == 0, trained.stderr
    log = trained.stdout + trained.stderr
    computed = json.loads((tmp_path / "model" / "metadata.json").read_text(encoding="utf-8"))["metrics"]
    definitions = tuning_arguments(tuned)["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
    for definition in definitions:
        found = re.findall(definition["Regex"], log)
        assert len(found) == 1, (definition, log)
        assert float(found[0]) == pytest.approx(computed[definition["Name"].split(":", 1)[1]], abs=1e-6)


def _concrete(value, shape):
    """The request with each pipeline variable ({"Get": ...}, {"Std:Join": ...}) replaced by a value of its type."""
    if isinstance(value, dict) and set(value) <= {"Get", "Std:Join"} and len(value) == 1:
        return {"integer": 1, "long": 1, "boolean": True, "float": 1.0, "double": 1.0}.get(shape.type_name, "x")
    if shape.type_name == "structure":
        return {k: _concrete(v, shape.members[k]) for k, v in value.items() if k in shape.members} | {
            k: v for k, v in value.items() if k not in shape.members
        }
    if shape.type_name == "list":
        return [_concrete(v, shape.member) for v in value]
    if shape.type_name == "map":
        return {k: _concrete(v, shape.value) for k, v in value.items()}
    return value


def test_the_tuning_request_is_valid_against_the_sagemaker_api_model(tuned):
    """CreateHyperParameterTuningJob's input shape (botocore's model) accepts the step's arguments."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateHyperParameterTuningJob").input_shape
    request = {"HyperParameterTuningJobName": "tune", **_concrete(tuning_arguments(tuned), shape)}
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def test_spot_training_carries_into_the_tuning_jobs(no_network, monkeypatch, tmp_path):
    monkeypatch.setattr(ss, "TUNING_FILE", tuning_file(tmp_path, environments={"dev": True}))
    settings = ss.resolve_settings(sp.build_parser().parse_args(["definition", "--env", "dev", "--region", REGION]))
    spot = dataclasses.replace(settings, training=dataclasses.replace(settings.training, use_spot_instances=True))
    definition = tuning_arguments(sp.definition_json(spot))["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    stopping = definition["StoppingCondition"]
    assert stopping["MaxWaitTimeInSeconds"] >= stopping["MaxRuntimeInSeconds"]
