"""The batch scoring pipeline: its definition (offline), the Transform settings of infra/config/<env>.json as
CreateTransformJob takes them, and the upsert + start against moto with the group's newest Approved package."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.validate import ParamValidator

from pipeline import batch_pipeline as bp
from pipeline.tests.conftest import definition_offline
from pipeline.tests.test_sagemaker_pipeline import PROJECT, REGION, SSM_VALUES, put_ssm

MONITORING_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/monitoring"


def batch_config(env: str = "dev") -> dict:
    return json.loads((bp.ROOT / "infra" / "config" / f"{env}.json").read_text(encoding="utf-8"))["batch"]


@pytest.fixture(scope="module")
def definition(tmp_path_factory) -> dict:
    """`make batch-definition ENV=dev`, built with the network cut off."""
    return definition_offline(bp.main, tmp_path_factory.mktemp("batch") / "batch-definition.json")


def concrete(node, values: dict):
    """A step's arguments with the pipeline's parameters and step properties replaced by sample values."""
    if isinstance(node, dict):
        if set(node) == {"Get"}:
            return values.get(node["Get"], "sample-" + node["Get"].split(".")[-1].lower())
        if set(node) == {"Std:Join"}:
            join = node["Std:Join"]
            return join["On"].join(str(concrete(v, values)) for v in join["Values"])
        return {k: concrete(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [concrete(v, values) for v in node]
    return node


def validate(operation: str, request: dict) -> None:
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def test_the_steps_create_the_model_from_the_package_then_score(definition):
    names = [s["Name"] for s in definition["Steps"]]
    assert names[:2] == [bp.CREATE_MODEL_STEP, bp.TRANSFORM_STEP]
    assert (bp.DATA_QUALITY_STEP in names) == (bp.MONITORING_INCLUDED and batch_config()["data_quality_check"])
    assert (bp.ATTRIBUTIONS_STEP in names) == batch_config()["attributions"]
    model = definition["Steps"][0]["Arguments"]
    assert model["Containers"] == [{"ModelPackageName": {"Get": "Parameters.ModelPackageArn"}}]
    assert "PrimaryContainer" not in model
    validate("CreateModel", {"ModelName": "m", **concrete(model, {})})


def test_the_transform_job_takes_the_environments_batch_settings(definition):
    config = batch_config()
    transform = definition["Steps"][1]["Arguments"]
    request = concrete(transform, {"Parameters.InputBucket": "in-bucket", "Parameters.InputKey": "batch/x.csv"})
    validate("CreateTransformJob", {"TransformJobName": "t", **request})

    assert transform["ModelName"] == {"Get": f"Steps.{bp.CREATE_MODEL_STEP}.ModelName"}
    assert request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://in-bucket/batch/x.csv"
    for key in ("BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms", "DataProcessing", "TransformResources"):
        assert request[key] == config[key], key
    assert request["TransformInput"]["SplitType"] == config["TransformInput"]["SplitType"]
    assert request["TransformInput"]["ContentType"] == config["TransformInput"]["ContentType"]
    assert request["TransformOutput"]["AssembleWith"] == config["TransformOutput"]["AssembleWith"]
    assert request["TransformOutput"]["Accept"] == config["TransformOutput"]["Accept"]
    assert request["TransformOutput"]["S3OutputPath"].endswith("/batch/dev/sample-pipelineexecutionid/predictions")


@pytest.mark.skipif(not bp.MONITORING_INCLUDED, reason="monitoring is not included: no data-quality step")
def test_the_data_quality_step_runs_the_drift_job_and_publishes_like_the_monitor(definition):
    step = next(s for s in definition["Steps"] if s["Name"] == bp.DATA_QUALITY_STEP)
    request = concrete(step["Arguments"], {"Parameters.InputBucket": "in", "Parameters.InputKey": "k/"})
    validate("CreateProcessingJob", {"ProcessingJobName": "p", **request})
    app = request["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python", "-m", bp.DRIFT_MODULE]
    arguments = app["ContainerArguments"]
    options = dict(zip(arguments[::2], arguments[1::2], strict=False))
    assert options["--input"] == "s3://in/k/"
    assert options["--cloudwatch-namespace"] == bp.monitoring_namespace(PROJECT)
    assert options["--job-name"] == bp.DATA_QUALITY_JOB
    assert "--no-fail-on-violations" in arguments
    source = (bp.ROOT / "monitoring" / "drift_job.py").read_text(encoding="utf-8")
    assert [a for a in arguments if a.startswith("--") and f'"{a}"' not in source] == []
    (baseline,) = request["ProcessingInputs"]
    assert baseline["S3Input"]["S3Uri"].endswith(f"/{PROJECT}/monitoring/dev/baselines")


def with_attributions(monkeypatch, tmp_path, **changes) -> None:
    """infra/config/dev.json with batch.attributions on (and the data-quality step off), as the config to read."""
    config = json.loads((bp.ROOT / "infra" / "config" / "dev.json").read_text(encoding="utf-8"))
    config["batch"].update({"attributions": True, "data_quality_check": False, **changes})
    (tmp_path / "dev.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setattr("pipeline.sagemaker_settings.CONFIG_DIR", tmp_path)


def test_attributions_are_an_option_of_the_config(monkeypatch, tmp_path):
    with_attributions(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    out = tmp_path / "definition.json"

    assert bp.main(["definition", "--env", "dev", "--region", REGION, "--image-tag", "t", "--output", str(out)]) == 0
    definition = json.loads(out.read_text())
    steps = {s["Name"]: s for s in definition["Steps"]}
    assert list(steps) == [bp.CREATE_MODEL_STEP, bp.TRANSFORM_STEP, bp.ATTRIBUTIONS_STEP]
    explain = steps[bp.ATTRIBUTIONS_STEP]
    assert explain["DependsOn"] == [bp.TRANSFORM_STEP]
    assert explain["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == ["python", "-m", bp.EXPLAIN_MODULE]
    assert "ModelDataUrl" in {p["Name"] for p in definition["Parameters"]}

    # The model is the package's model.tar.gz (the ModelDataUrl parameter), the batch the Transform's input;
    # explain reads it as headerless schema-ordered CSV. Arguments parse with explain's own parser.
    from model.train import explain as explain_module

    request = concrete(explain["Arguments"], {})
    validate("CreateProcessingJob", {"ProcessingJobName": "explain", **request})
    inputs = {i["InputName"]: i["S3Input"] for i in explain["Arguments"]["ProcessingInputs"]}
    assert inputs["model"]["S3Uri"] == {"Get": "Parameters.ModelDataUrl"}
    assert inputs["model"]["LocalPath"] == f"{bp.PROCESSING}/model"
    batch_uri = concrete(inputs["batch"]["S3Uri"], {"Parameters.InputBucket": "b", "Parameters.InputKey": "in/x.csv"})
    assert batch_uri == "s3://b/in/x.csv"
    parsed = explain_module.build_parser().parse_args(request["AppSpecification"]["ContainerArguments"])
    assert parsed.no_header and str(parsed.model) == f"{bp.PROCESSING}/model"
    assert str(parsed.data) == inputs["batch"]["LocalPath"]
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert str(parsed.output).startswith(output["S3Output"]["LocalPath"] + "/")


def test_attributions_need_csv_input(monkeypatch, tmp_path, capsys):
    with_attributions(
        monkeypatch, tmp_path, TransformInput={"ContentType": "application/jsonlines", "SplitType": "Line"}
    )

    assert bp.main(["upsert", "--env", "dev", "--region", REGION, "--dry-run", "--input", "s3://b/k/"]) == 2
    assert "batch.attributions" in capsys.readouterr().err


@pytest.mark.parametrize(
    "key,value,words",
    [
        ("BatchStrategy", "MULTI_RECORD", 'batch.BatchStrategy = "MULTI_RECORD"'),
        ("schedule_expression", "cron(0 5 * * *)", "batch.schedule_expression"),
    ],
)
def test_a_bad_batch_setting_exits_2_naming_it(monkeypatch, tmp_path, capsys, key, value, words):
    config = json.loads((bp.ROOT / "infra" / "config" / "dev.json").read_text(encoding="utf-8"))
    config["batch"][key] = value
    (tmp_path / "dev.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setattr("pipeline.sagemaker_settings.CONFIG_DIR", tmp_path)

    assert bp.main(["upsert", "--env", "dev", "--region", REGION, "--dry-run", "--input", "s3://b/k/"]) == 2
    assert words in capsys.readouterr().err


def test_an_input_that_is_no_s3_uri_exits_2(capsys):
    assert bp.main(["upsert", "--env", "dev", "--region", REGION, "--dry-run", "--input", "/tmp/batch.csv"]) == 2
    assert "--input = '/tmp/batch.csv'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- moto
def approved_package(region: str, group: str, approved: bool = True, model_data: str | None = None) -> str:
    sm = boto3.client("sagemaker", region_name=region)
    if not sm.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]:
        sm.create_model_package_group(ModelPackageGroupName=group)
    container = {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/inference:abc"}
    if model_data:
        container["ModelDataUrl"] = model_data
    arn = sm.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [container],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus="Approved" if approved else "PendingManualApproval",
    )["ModelPackageArn"]
    return arn


def upsert_and_start(capsys) -> str:
    """`make batch-remote INPUT=s3://batch-in/today/` with one headerless CSV there: succeeds; returns its output."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="batch-in")
    s3.put_object(Bucket="batch-in", Key="today/part-1.csv", Body=b"12,70.5,1,35.2,month_to_month,card\n")
    code = bp.main(["upsert", "--env", "dev", "--region", REGION, "--input", "s3://batch-in/today/", "--start"])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_remote_scores_with_the_newest_approved_package(aws_env, capsys):
    put_ssm(REGION, {**SSM_VALUES, "monitoring-image-uri": MONITORING_IMAGE})
    group = SSM_VALUES["model-package-group"]
    approved_package(REGION, group)
    newest = approved_package(REGION, group)
    approved_package(REGION, group, approved=False)  # newer, but not approved: never used
    out = upsert_and_start(capsys)
    assert f"created pipeline {bp.batch_pipeline_name(PROJECT, 'dev')}" in out
    arn = out.split("started execution ")[1].split()[0]
    sm = boto3.client("sagemaker", region_name=REGION)
    parameters = {
        p["Name"]: p["Value"]
        for p in sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    }
    assert parameters["ModelPackageArn"] == newest
    assert (parameters["InputBucket"], parameters["InputKey"]) == ("batch-in", "today/")
    stored = json.loads(sm.describe_pipeline(PipelineName=bp.batch_pipeline_name(PROJECT, "dev"))["PipelineDefinition"])
    default = next(p for p in stored["Parameters"] if p["Name"] == "ModelPackageArn")["DefaultValue"]
    assert default == newest


@pytest.mark.skipif(not bp.MONITORING_INCLUDED, reason="monitoring is not included: no drift job image")
def test_remote_without_the_monitoring_image_parameter_exits_2_naming_it(aws_env, capsys):
    put_ssm(REGION, SSM_VALUES)  # the toolchain's parameters, but not /<project>/monitoring-image-uri
    approved_package(REGION, SSM_VALUES["model-package-group"])

    assert bp.main(["upsert", "--env", "dev", "--region", REGION, "--input", "s3://batch-in/x/", "--start"]) == 2
    err = capsys.readouterr().err
    assert f"/{PROJECT}/monitoring-image-uri" in err and "--monitoring-image-uri" in err
    assert boto3.client("sagemaker", region_name=REGION).list_pipelines()["PipelineSummaries"] == []


def test_remote_without_an_approved_package_exits_2_before_any_change(aws_env, capsys):
    put_ssm(REGION, {**SSM_VALUES, "monitoring-image-uri": MONITORING_IMAGE})
    approved_package(REGION, SSM_VALUES["model-package-group"], approved=False)

    assert bp.main(["upsert", "--env", "dev", "--region", REGION, "--input", "s3://batch-in/x/", "--start"]) == 2
    assert "has no Approved package" in capsys.readouterr().err
    assert boto3.client("sagemaker", region_name=REGION).list_pipelines()["PipelineSummaries"] == []


def test_remote_with_an_empty_input_exits_2_before_any_change(aws_env, capsys):
    put_ssm(REGION, {**SSM_VALUES, "monitoring-image-uri": MONITORING_IMAGE})
    approved_package(REGION, SSM_VALUES["model-package-group"])
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="batch-in")

    assert bp.main(["upsert", "--env", "dev", "--region", REGION, "--input", "s3://batch-in/none/", "--start"]) == 2
    assert "no object there" in capsys.readouterr().err
    assert boto3.client("sagemaker", region_name=REGION).list_pipelines()["PipelineSummaries"] == []


def test_remote_with_attributions_passes_the_packages_model_data(aws_env, monkeypatch, tmp_path, capsys):
    with_attributions(monkeypatch, tmp_path)
    put_ssm(REGION, {**SSM_VALUES, "monitoring-image-uri": MONITORING_IMAGE})
    group = SSM_VALUES["model-package-group"]
    older = approved_package(REGION, group, model_data="s3://artifacts/train/job-1/output/model.tar.gz")
    newest = approved_package(REGION, group, model_data="s3://artifacts/train/job-2/output/model.tar.gz")
    out = upsert_and_start(capsys)
    arn = out.split("started execution ")[1].split()[0]
    sm = boto3.client("sagemaker", region_name=REGION)
    parameters = {
        p["Name"]: p["Value"]
        for p in sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    }
    assert parameters["ModelPackageArn"] == newest != older
    assert parameters["ModelDataUrl"] == "s3://artifacts/train/job-2/output/model.tar.gz"
    stored = json.loads(sm.describe_pipeline(PipelineName=bp.batch_pipeline_name(PROJECT, "dev"))["PipelineDefinition"])
    defaults = {p["Name"]: p.get("DefaultValue") for p in stored["Parameters"]}
    assert defaults["ModelDataUrl"] == parameters["ModelDataUrl"]


def test_attributions_with_a_package_without_model_data_exit_2_before_any_change(
    aws_env, monkeypatch, tmp_path, capsys
):
    with_attributions(monkeypatch, tmp_path)
    put_ssm(REGION, {**SSM_VALUES, "monitoring-image-uri": MONITORING_IMAGE})
    approved_package(REGION, SSM_VALUES["model-package-group"])  # no ModelDataUrl

    assert bp.main(["upsert", "--env", "dev", "--region", REGION, "--input", "s3://batch-in/x/"]) == 2
    err = capsys.readouterr().err
    assert "ModelDataUrl" in err and "batch.attributions" in err
    assert boto3.client("sagemaker", region_name=REGION).list_pipelines()["PipelineSummaries"] == []
