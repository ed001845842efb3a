"""The SageMaker pipeline: its definition (built offline), the upsert against moto's server, and the CLI's errors.

Moto stores pipelines and executions but runs nothing and has no list_pipeline_execution_steps, so following an
execution (--wait) is checked with botocore's Stubber, which still validates every request against the API model.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from pipeline import sagemaker_api
from pipeline import sagemaker_pipeline as sp
from pipeline import sagemaker_settings as ss
from pipeline.tests.conftest import definition_offline

ROOT = Path(__file__).resolve().parents[2]
PROJECT, _ = ss.project_settings()
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
TRAIN_REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/train"
INFERENCE_REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/inference"
SSM_VALUES = {
    "artifact-bucket": "artifacts-bucket",
    "model-package-group": f"{PROJECT}-models",
    "sagemaker-execution-role-arn": ROLE,
    "train-image-uri": TRAIN_REPO,
    "inference-image-uri": INFERENCE_REPO,
    "sagemaker-pipeline-name": f"{PROJECT}-pipeline",
}
ALL_FLAGS = [
    *("--artifact-bucket", "artifacts-bucket", "--execution-role-arn", ROLE, "--model-package-group", "group"),
    *("--train-image-uri", TRAIN_REPO, "--inference-image-uri", INFERENCE_REPO, "--pipeline-name", "flagged"),
    *("--kms-key-arn", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
]


@pytest.fixture(scope="module")
def definition(tmp_path_factory) -> dict:
    """The dev definition as `make pipeline-definition` writes it, built with the network cut off."""
    return definition_offline(sp.main, tmp_path_factory.mktemp("definition") / "definition.json")


def steps_by_name(definition: dict) -> dict[str, dict]:
    found = {}
    for step in definition["Steps"]:
        found[step["Name"]] = step
        if step["Type"] == "Condition":
            for branch in ("IfSteps", "ElseSteps"):
                found.update({s["Name"]: s for s in step["Arguments"][branch]})
    return found


def training_config(env: str = "dev") -> dict:
    return json.loads((ROOT / "infra" / "config" / f"{env}.json").read_text(encoding="utf-8"))["training"]


# ------------------------------------------------------------------------------------------------ definition
def test_definition_runs_the_steps_in_order(definition):
    assert [s["Name"] for s in definition["Steps"]] == [sp.PREPARE_STEP, sp.TRAIN_STEP, sp.EVALUATE_STEP, sp.GATES_STEP]
    gates = definition["Steps"][3]["Arguments"]
    assert [s["Name"] for s in gates["IfSteps"]] == [sp.REGISTER_STEP]
    assert [s["Name"] for s in gates["ElseSteps"]] == [sp.FAIL_STEP]


def test_each_step_consumes_the_previous_steps_output(definition):
    steps = steps_by_name(definition)
    channels = {c["ChannelName"]: c for c in steps[sp.TRAIN_STEP]["Arguments"]["InputDataConfig"]}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": f"Steps.{sp.PREPARE_STEP}.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"
    }
    inputs = {i["InputName"]: i for i in steps[sp.EVALUATE_STEP]["Arguments"]["ProcessingInputs"]}
    assert inputs["model"]["S3Input"]["S3Uri"] == {"Get": f"Steps.{sp.TRAIN_STEP}.ModelArtifacts.S3ModelArtifacts"}
    assert inputs["test"]["S3Input"]["S3Uri"] == {
        "Get": f"Steps.{sp.PREPARE_STEP}.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"
    }


def test_caching_is_on_for_every_job_step(definition):
    jobs = [s for s in steps_by_name(definition).values() if s["Type"] in ("Processing", "Training")]
    assert len(jobs) == 3
    for step in jobs:
        assert step["CacheConfig"] == {"Enabled": True, "ExpireAfter": sp.CACHE_EXPIRE_AFTER}, step["Name"]


def test_parameters_have_their_defaults(definition):
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    config = training_config()
    assert parameters["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    assert parameters["ImageTag"]["DefaultValue"] == "abc123"
    assert parameters["InputDataUrl"]["DefaultValue"].startswith("s3://")
    assert parameters["TrainingInstanceType"]["DefaultValue"] == config["instance_type"]
    assert parameters["TrainingInstanceCount"]["DefaultValue"] == config["instance_count"]
    assert parameters["ProcessingInstanceType"]["DefaultValue"] == config["processing_instance_type"]


def test_jobs_run_the_repository_train_image_with_the_tag_parameter(definition):
    steps = steps_by_name(definition)
    tagged = {
        "Std:Join": {
            "On": ":",
            "Values": [ss.placeholder_values(PROJECT, REGION)["train_image_uri"], {"Get": "Parameters.ImageTag"}],
        }
    }
    assert steps[sp.TRAIN_STEP]["Arguments"]["AlgorithmSpecification"]["TrainingImage"] == tagged
    for name, module in ((sp.PREPARE_STEP, "model.train.prepare"), (sp.EVALUATE_STEP, "model.train.evaluation_job")):
        app = steps[name]["Arguments"]["AppSpecification"]
        assert app["ImageUri"] == tagged
        assert app["ContainerEntrypoint"] == ["python", "-m", module]
        # The image installs the model packages (model/train/Dockerfile: pip install of the project).
        assert (ROOT / Path(*module.split("."))).with_suffix(".py").is_file()


def test_training_job_follows_the_environment_config(definition):
    config = training_config()
    arguments = steps_by_name(definition)[sp.TRAIN_STEP]["Arguments"]
    assert arguments["StoppingCondition"]["MaxRuntimeInSeconds"] == config["max_runtime_seconds"]
    assert arguments["EnableManagedSpotTraining"] is config["use_spot_instances"]
    hyperparameters = json.loads((ROOT / "model" / "config" / "hyperparameters.json").read_text(encoding="utf-8"))
    assert arguments["HyperParameters"] == hyperparameters
    assert arguments["OutputDataConfig"]["S3OutputPath"].startswith("s3://")


def test_spot_training_sets_a_wait_limit(no_network):
    args = sp.build_parser().parse_args(["definition", "--env", "dev", "--region", REGION])
    settings = ss.resolve_settings(args)
    spot = dataclasses.replace(settings, training=dataclasses.replace(settings.training, use_spot_instances=True))
    training = steps_by_name(sp.definition_json(spot))[sp.TRAIN_STEP]["Arguments"]
    assert training["EnableManagedSpotTraining"] is True
    stopping = training["StoppingCondition"]
    assert stopping["MaxWaitTimeInSeconds"] >= stopping["MaxRuntimeInSeconds"]


def test_condition_reads_passed_from_the_evaluation_property_file(definition):
    steps = steps_by_name(definition)
    files = steps[sp.EVALUATE_STEP]["PropertyFiles"]
    assert files == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    (condition,) = steps[sp.GATES_STEP]["Arguments"]["Conditions"]
    assert condition["Type"] == "Equals"
    assert condition["RightValue"] is True
    assert condition["LeftValue"] == {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.{sp.EVALUATE_STEP}.PropertyFiles.EvaluationReport"},
            "Path": sp.GATES_PASSED_PATH,
        }
    }


def test_evaluation_output_is_the_folder_the_script_writes(definition):
    arguments = steps_by_name(definition)[sp.EVALUATE_STEP]["Arguments"]
    (output,) = arguments["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == "evaluation"
    script_args = arguments["AppSpecification"]["ContainerArguments"]
    assert script_args[script_args.index("--output-dir") + 1] == output["S3Output"]["LocalPath"]
    # The gates file is not an argument: it ships in the image as package data (model.common.paths.GATES_FILE).
    assert "--baseline" not in script_args


def test_condition_names_the_gates_of_baseline_json(definition):
    description = steps_by_name(definition)[sp.GATES_STEP]["Description"]
    baseline = json.loads((ROOT / "model" / "config" / "baseline.json").read_text(encoding="utf-8"))
    for group in ("quality", "bias"):
        for metric, bounds in baseline[group].items():
            for kind, limit in bounds.items():
                assert f"{metric} " in description and f"{kind} {limit}" in description


def test_fail_step_reports_the_failed_gates(definition):
    message = steps_by_name(definition)[sp.FAIL_STEP]["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    json_gets = [v["Std:JsonGet"] for v in message if isinstance(v, dict)]
    assert json_gets == [
        {
            "PropertyFile": {"Get": f"Steps.{sp.EVALUATE_STEP}.PropertyFiles.EvaluationReport"},
            "Path": sp.FAILED_GATES_PATH,
        }
    ]


def test_register_step_waits_for_approval_with_the_reports_attached(definition):
    arguments = steps_by_name(definition)[sp.REGISTER_STEP]["Arguments"]
    assert arguments["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert arguments["ModelPackageGroupName"] == PROJECT
    (container,) = arguments["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == {"Get": f"Steps.{sp.TRAIN_STEP}.ModelArtifacts.S3ModelArtifacts"}
    inference_repo = ss.placeholder_values(PROJECT, REGION)["inference_image_uri"]
    assert container["Image"]["Std:Join"]["Values"] == [inference_repo, {"Get": "Parameters.ImageTag"}]
    metrics = arguments["ModelMetrics"]
    evaluation = f"Steps.{sp.EVALUATE_STEP}.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"
    for source, file in (
        (metrics["ModelQuality"]["Statistics"], "evaluation.json"),
        (metrics["Bias"]["Report"], "bias.json"),
        (metrics["Explainability"]["Report"], "explainability.json"),
    ):
        assert source["ContentType"] == "application/json"
        assert source["S3Uri"]["Std:Join"]["Values"] == [{"Get": evaluation}, file]


def test_definition_marks_its_placeholders(no_network, tmp_path, capsys):
    out = tmp_path / "definition.json"
    assert sp.main(["definition", "--env", "dev", "--region", REGION, "--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "PLACEHOLDER" in text and "placeholder-" in text
    assert "placeholders for artifact_bucket, execution_role_arn" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ bad input
def write_config(folder: Path, env: str, mutate, whole: bool = False) -> Path:
    """dev.json changed by `mutate` (given the training block, or with whole=True the whole config) in `folder`."""
    config = json.loads((ROOT / "infra" / "config" / "dev.json").read_text(encoding="utf-8"))
    mutate(config if whole else config["training"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{env}.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t.update(instance_type="m5.xlarge"), ["training.instance_type", "'m5.xlarge'", "ml.m5.xlarge"]),
        (
            lambda t: t.update(processing_instance_type="ml."),
            ["training.processing_instance_type", "'ml.'", "SageMaker instance type"],
        ),
        (lambda t: t.pop("max_runtime_seconds"), ["training.max_runtime_seconds", "missing"]),
        (lambda t: t.update(instance_count="1"), ["training.instance_count", "'1'", "whole number"]),
        (lambda t: t.update(instance_count=0), ["training.instance_count", "0", "at least 1"]),
        (lambda t: t.update(use_spot_instances="no"), ["training.use_spot_instances", "'no'", "true or false"]),
        (lambda t: t.update(max_runtime_seconds=10**9), ["training.max_runtime_seconds", "between 1 and"]),
    ],
    ids=["instance-type", "processing-type", "missing-key", "count-type", "count-zero", "spot-type", "runtime"],
)
def test_bad_config_exits_2_naming_field_value_and_fix(no_network, monkeypatch, tmp_path, capsys, mutate, expected):
    monkeypatch.setattr(ss, "CONFIG_DIR", write_config(tmp_path / "config", "dev", mutate))
    assert sp.main(["definition", "--env", "dev", "--output", str(tmp_path / "d.json")]) == 2
    err = capsys.readouterr().err
    for fragment in expected:
        assert fragment in err
    assert not (tmp_path / "d.json").exists()


def test_unknown_env_lists_the_known_ones(no_network, tmp_path, capsys):
    assert sp.main(["definition", "--env", "qa", "--output", str(tmp_path / "d.json")]) == 2
    err = capsys.readouterr().err
    assert "--env = 'qa'" in err and "dev, prod, staging" in err


def test_tagged_image_uri_is_refused(no_network, tmp_path, capsys):
    argv = ["definition", "--env", "dev", "--train-image-uri", f"{TRAIN_REPO}:v1", "--output", str(tmp_path / "d")]
    assert sp.main(argv) == 2
    assert "without a tag" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- network
SUBNETS = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
GROUPS = ["sg-0123456789abcdef0"]


def network_definition(monkeypatch, tmp_path, network: dict) -> dict:
    def mutate(config: dict) -> None:
        config["network"] = network

    monkeypatch.setattr(ss, "CONFIG_DIR", write_config(tmp_path / "config", "dev", mutate, whole=True))
    out = tmp_path / "definition.json"
    assert sp.main(["definition", "--env", "dev", "--region", REGION, "--output", str(out)]) == 0
    return steps_by_name(json.loads(out.read_text(encoding="utf-8")))


def job_steps(steps: dict[str, dict]) -> dict[str, dict]:
    jobs = {name: s["Arguments"] for name, s in steps.items() if s["Type"] in ("Processing", "Training")}
    assert set(jobs) == {sp.PREPARE_STEP, sp.TRAIN_STEP, sp.EVALUATE_STEP}
    return jobs


def test_no_network_settings_leave_the_jobs_outside_a_vpc(definition):
    for name, arguments in job_steps(steps_by_name(definition)).items():
        assert "VpcConfig" not in arguments and "NetworkConfig" not in arguments, name
        assert not arguments.get("EnableNetworkIsolation"), name


def test_subnets_put_every_job_in_the_vpc(no_network, monkeypatch, tmp_path):
    network = {"subnet_ids": SUBNETS, "security_group_ids": GROUPS, "enable_network_isolation": True}
    jobs = job_steps(network_definition(monkeypatch, tmp_path, network))
    vpc = {"Subnets": SUBNETS, "SecurityGroupIds": GROUPS}
    assert jobs[sp.TRAIN_STEP]["VpcConfig"] == vpc
    assert jobs[sp.TRAIN_STEP]["EnableNetworkIsolation"] is True
    for name in (sp.PREPARE_STEP, sp.EVALUATE_STEP):
        assert jobs[name]["NetworkConfig"] == {"EnableNetworkIsolation": True, "VpcConfig": vpc}, name


def test_isolation_without_a_vpc(no_network, monkeypatch, tmp_path):
    network = {"subnet_ids": [], "security_group_ids": [], "enable_network_isolation": True}
    jobs = job_steps(network_definition(monkeypatch, tmp_path, network))
    assert jobs[sp.TRAIN_STEP]["EnableNetworkIsolation"] is True
    assert "VpcConfig" not in jobs[sp.TRAIN_STEP]
    for name in (sp.PREPARE_STEP, sp.EVALUATE_STEP):
        assert jobs[name]["NetworkConfig"] == {"EnableNetworkIsolation": True}, name


def test_vpc_without_isolation(no_network, monkeypatch, tmp_path):
    network = {"subnet_ids": SUBNETS[:1], "security_group_ids": GROUPS, "enable_network_isolation": False}
    jobs = job_steps(network_definition(monkeypatch, tmp_path, network))
    assert jobs[sp.TRAIN_STEP]["VpcConfig"]["Subnets"] == SUBNETS[:1]
    assert not jobs[sp.TRAIN_STEP].get("EnableNetworkIsolation")
    assert jobs[sp.PREPARE_STEP]["NetworkConfig"]["EnableNetworkIsolation"] is False


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_shipped_network_settings_load(env):
    network = ss.load_network(env)
    assert bool(network.subnet_ids) == bool(network.security_group_ids)


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        (
            {"subnet_ids": SUBNETS, "security_group_ids": []},
            ["dev.json: network.security_group_ids = []", "at least one security group", "sg-"],
        ),
        (
            {"subnet_ids": [], "security_group_ids": GROUPS},
            ["network.subnet_ids = []", "add the subnet- ids", "or empty network.security_group_ids"],
        ),
        (
            {"subnet_ids": ["subnet-0abc", "vpc-0abc"], "security_group_ids": GROUPS},
            ["network.subnet_ids[1] = 'vpc-0abc'", "give an id such as subnet-", "^subnet-[0-9a-f]+$"],
        ),
        (
            {"subnet_ids": SUBNETS, "security_group_ids": ["sg-XYZ"]},
            ["network.security_group_ids[0] = 'sg-XYZ'", "give an id such as sg-", "^sg-[0-9a-f]+$"],
        ),
        ({"subnet_ids": "subnet-0abc", "security_group_ids": GROUPS}, ["network.subnet_ids = 'subnet-0abc'", "list"]),
        ({"enable_network_isolation": "yes"}, ["network.enable_network_isolation = 'yes'", "true or false"]),
        (
            {"subnet_ids": [f"subnet-{i:x}" for i in range(17)], "security_group_ids": GROUPS},
            ["network.subnet_ids", "at most 16"],
        ),
        ([], ["network = []", "give an object"]),
    ],
    ids=["no-groups", "no-subnets", "subnet-id", "group-id", "not-a-list", "isolation", "too-many", "block"],
)
def test_bad_network_exits_2_naming_field_value_and_fix(no_network, monkeypatch, tmp_path, capsys, network, expected):
    def mutate(config: dict) -> None:
        config["network"] = network

    monkeypatch.setattr(ss, "CONFIG_DIR", write_config(tmp_path / "config", "dev", mutate, whole=True))
    assert sp.main(["definition", "--env", "dev", "--output", str(tmp_path / "d.json")]) == 2
    err = capsys.readouterr().err
    for fragment in expected:
        assert fragment in err
    assert not (tmp_path / "d.json").exists()


# ---------------------------------------------------------------------------------------------- upsert (moto)
def put_ssm(region: str, values: dict[str, str]) -> None:
    ssm = boto3.client("ssm", region_name=region)
    for suffix, value in values.items():
        ssm.put_parameter(Name=f"/{PROJECT}/{suffix}", Value=value, Type="String")


def put_data(key: str = "train.csv", body: bytes = b"a,b\n1,2\n") -> None:
    """The raw data where the pipeline reads it by default: s3://<artifact bucket>/<project>/data/."""
    s3 = boto3.client("s3", region_name=REGION)
    if SSM_VALUES["artifact-bucket"] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=SSM_VALUES["artifact-bucket"])
    s3.put_object(Bucket=SSM_VALUES["artifact-bucket"], Key=f"{PROJECT}/data/{key}", Body=body)


def test_upsert_creates_then_updates_the_same_pipeline(aws_env, capsys):
    put_ssm(REGION, SSM_VALUES)
    put_data()
    base = ["upsert", "--env", "dev", "--region", REGION]
    assert sp.main([*base, "--image-tag", "first", "--start"]) == 0
    assert "created pipeline" in capsys.readouterr().out
    assert sp.main([*base, "--image-tag", "second"]) == 0
    assert "updated pipeline" in capsys.readouterr().out

    sm = boto3.client("sagemaker", region_name=REGION)
    names = [p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"]]
    assert names == [SSM_VALUES["sagemaker-pipeline-name"]]
    described = sm.describe_pipeline(PipelineName=names[0])
    assert described["RoleArn"] == ROLE
    stored = json.loads(described["PipelineDefinition"])
    tag = next(p for p in stored["Parameters"] if p["Name"] == "ImageTag")
    assert tag["DefaultValue"] == "second"
    register = steps_by_name(stored)[sp.REGISTER_STEP]["Arguments"]
    assert register["ModelPackageGroupName"] == SSM_VALUES["model-package-group"]
    executions = sm.list_pipeline_executions(PipelineName=names[0])["PipelineExecutionSummaries"]
    assert len(executions) == 1


def test_upsert_start_passes_the_image_tag(aws_env, capsys):
    put_ssm(REGION, SSM_VALUES)
    put_data()
    assert sp.main(["upsert", "--env", "dev", "--region", REGION, "--image-tag", "c0ffee", "--start"]) == 0
    arn = capsys.readouterr().out.split("started execution ")[1].split()[0]
    sm = boto3.client("sagemaker", region_name=REGION)
    parameters = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert {"Name": "ImageTag", "Value": "c0ffee"} in parameters


def test_flags_override_ssm(aws_env, capsys):
    assert sp.main(["upsert", "--env", "dev", "--region", REGION, *ALL_FLAGS]) == 0
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.describe_pipeline(PipelineName="flagged")["RoleArn"] == ROLE


def test_definition_reads_ssm_when_asked(aws_env, tmp_path):
    put_ssm(REGION, SSM_VALUES)
    out = tmp_path / "definition.json"
    assert sp.main(["definition", "--env", "dev", "--region", REGION, "--ssm", "--output", str(out)]) == 0
    definition = json.loads(out.read_text(encoding="utf-8"))
    training = steps_by_name(definition)[sp.TRAIN_STEP]["Arguments"]
    assert training["RoleArn"] == ROLE
    assert training["AlgorithmSpecification"]["TrainingImage"]["Std:Join"]["Values"][0] == TRAIN_REPO
    assert "placeholder" not in out.read_text(encoding="utf-8").lower()


def test_missing_credentials_exit_2_with_the_fix(no_network, monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert sp.main(["upsert", "--env", "dev", "--region", REGION]) == 2
    assert "no AWS credentials found" in capsys.readouterr().err


def test_missing_ssm_parameter_exits_2_naming_it_and_the_flag(aws_env, capsys):
    put_ssm(REGION, {k: v for k, v in SSM_VALUES.items() if k != "train-image-uri"})
    assert sp.main(["upsert", "--env", "dev", "--region", REGION, "--start"]) == 2
    err = capsys.readouterr().err
    assert f"/{PROJECT}/train-image-uri (or pass --train-image-uri)" in err
    assert "toolchain" in err
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_pipelines()["PipelineSummaries"] == []


def test_dry_run_calls_nothing(no_network, capsys):
    assert sp.main(["upsert", "--env", "dev", "--region", REGION, "--start", "--wait", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: would upsert and start pipeline" in out
    assert f"{sp.PREPARE_STEP} -> {sp.TRAIN_STEP} -> {sp.EVALUATE_STEP} -> {sp.GATES_STEP}" in out


# ------------------------------------------------------------------------------------------ --wait (Stubber)
EXECUTION_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc123def456"


def step(name: str, status: str, **extra) -> dict:
    return {"StepName": name, "StepStatus": status, **extra}


def stubbed_client():
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def expect_poll(stubber: Stubber, status: str, steps: list[dict]) -> None:
    stubber.add_response(
        "describe_pipeline_execution", {"PipelineExecutionStatus": status}, {"PipelineExecutionArn": EXECUTION_ARN}
    )
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": steps},
        {"PipelineExecutionArn": EXECUTION_ARN, "SortOrder": "Ascending"},
    )


def test_wait_prints_progress_and_the_failed_step_with_its_reason():
    client, stubber = stubbed_client()
    reason = "Gates of model/config/baseline.json failed, the model was not registered: roc_auc = 0.7000 (gate min 0.8)"
    expect_poll(
        stubber,
        "Executing",
        [
            step(sp.PREPARE_STEP, "Succeeded", CacheHitResult={"SourcePipelineExecutionArn": EXECUTION_ARN}),
            step(sp.TRAIN_STEP, "Executing"),
        ],
    )
    expect_poll(
        stubber,
        "Failed",
        [
            step(sp.PREPARE_STEP, "Succeeded"),
            step(sp.TRAIN_STEP, "Succeeded"),
            step(sp.EVALUATE_STEP, "Succeeded"),
            step(sp.GATES_STEP, "Succeeded"),
            step(sp.FAIL_STEP, "Failed", FailureReason=reason),
        ],
    )
    lines, sleeps = [], []
    with stubber:
        status = sagemaker_api.wait(client, EXECUTION_ARN, poll_seconds=7, out=lines.append, sleep=sleeps.append)
    stubber.assert_no_pending_responses()
    assert status == "Failed"
    assert sleeps == [7]
    assert f"  {sp.TRAIN_STEP}: Executing" in lines and f"  {sp.TRAIN_STEP}: Succeeded" in lines
    assert lines.count(f"  {sp.PREPARE_STEP}: Succeeded") == 0  # the first report said cached
    assert f"  {sp.PREPARE_STEP}: Succeeded (cached)" in lines
    assert lines[-1] == f"failed step {sp.FAIL_STEP}: {reason}"


def test_upsert_wait_exits_1_when_the_execution_fails(no_network, capsys):
    client, stubber = stubbed_client()
    stubber.add_client_error("describe_pipeline", "ResourceNotFound", "Pipeline does not exist")
    stubber.add_response(
        "create_pipeline", {"PipelineArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/flagged"}
    )
    stubber.add_response("start_pipeline_execution", {"PipelineExecutionArn": EXECUTION_ARN})
    expect_poll(stubber, "Failed", [step(sp.TRAIN_STEP, "Failed", FailureReason="AlgorithmError: see the logs")])
    argv = ["upsert", "--env", "dev", "--region", REGION, "--wait", "--poll-seconds", "0", *ALL_FLAGS]
    s3 = boto3.client("s3", region_name=REGION)
    s3_stubber = Stubber(s3)
    s3_stubber.add_response(
        "list_objects_v2", {"Contents": [{"Key": f"{PROJECT}/data/a.csv", "Size": 3, "ETag": '"e"'}]}
    )
    with stubber, s3_stubber:
        code = sp.main(argv, sagemaker_client=client, s3_client=s3)
    assert code == 1
    out = capsys.readouterr().out
    assert "created pipeline flagged" in out
    assert f"failed step {sp.TRAIN_STEP}: AlgorithmError: see the logs" in out


def test_wait_succeeds_without_sleeping_once_done():
    client, stubber = stubbed_client()
    expect_poll(stubber, "Succeeded", [step(sp.REGISTER_STEP, "Succeeded")])
    lines = []
    with stubber:
        assert sagemaker_api.wait(client, EXECUTION_ARN, out=lines.append, sleep=pytest.fail) == "Succeeded"
    assert lines[-1] == f"execution Succeeded: {EXECUTION_ARN}"


# ------------------------------------------------------------------ first run on a real account: no surprises
def test_no_experiments_config_so_the_execution_role_needs_no_experiments_rights(definition):
    assert definition.get("PipelineExperimentConfig") is None


def test_the_data_version_is_in_every_job_environment_so_new_data_misses_the_cache(definition):
    jobs = [s for s in steps_by_name(definition).values() if s["Type"] in ("Processing", "Training")]
    for job in jobs:
        assert job["Arguments"]["Environment"]["INPUT_DATA_VERSION"] == {"Get": "Parameters.InputDataVersion"}, job[
            "Name"
        ]
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert parameters["InputDataVersion"]["DefaultValue"] == sp.UNVERSIONED


def test_start_passes_a_data_version_that_changes_with_the_data(aws_env, capsys):
    put_ssm(REGION, SSM_VALUES)
    put_data()
    sm = boto3.client("sagemaker", region_name=REGION)
    versions = []
    for body in (b"a,b\n1,2\n", b"a,b\n1,2\n", b"a,b\n3,4\n"):  # same data twice, then refreshed in place
        put_data(body=body)
        assert sp.main(["upsert", "--env", "dev", "--region", REGION, "--image-tag", "c0ffee", "--start"]) == 0
        arn = capsys.readouterr().out.split("started execution ")[1].split()[0]
        parameters = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
        versions.append(next(p["Value"] for p in parameters if p["Name"] == "InputDataVersion"))
    assert versions[0] == versions[1] != versions[2]


def test_start_without_data_stops_before_any_change(aws_env, capsys):
    put_ssm(REGION, SSM_VALUES)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=SSM_VALUES["artifact-bucket"])
    assert sp.main(["upsert", "--env", "dev", "--region", REGION, "--start"]) == 2
    assert "no objects under the input data" in capsys.readouterr().err
    assert boto3.client("sagemaker", region_name=REGION).list_pipelines()["PipelineSummaries"] == []


def test_the_package_records_the_inference_image_format(definition):
    register = steps_by_name(definition)[sp.REGISTER_STEP]["Arguments"]
    metadata = register["CustomerMetadataProperties"]
    assert metadata["image_model_format"] == {"Get": "Parameters.InferenceImageFormat"}
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert parameters["InferenceImageFormat"]["DefaultValue"] == ss.inference_image_format(ss.load_hyperparameters())


@pytest.mark.parametrize(("model_format", "image"), [("auto", "onnx"), ("onnx", "onnx"), ("skops", "skops")])
def test_the_image_format_follows_the_build_stage_rule(model_format, image):
    assert ss.inference_image_format({"model_format": model_format}) == image
