"""register and approve against moto: packages appear once, approvals change once, bad input is named."""

from __future__ import annotations

import json

import pytest

from release import commands
from release.config import load_project
from release.errors import ReleaseError
from release.output import Output
from release.tests.conftest import add_package, client, model_tar, push_image


@pytest.fixture
def ctx(toolchain, capsys):
    return commands.Context(project=load_project(), template=None, out=Output())


@pytest.fixture
def model_data(toolchain):
    """An onnx artifact as training writes it, and the onnx inference image of commit abc123 in ECR."""
    bucket = toolchain["artifact-bucket"]
    client("s3").put_object(Bucket=bucket, Key="training/job-1/output/model.tar.gz", Body=model_tar("onnx"))
    push_image(toolchain["inference-image-uri"], "abc123", "onnx")
    return f"s3://{bucket}/training/job-1/output/model.tar.gz"


def artifact(toolchain, model_format, name="job-2"):
    key = f"training/{name}/output/model.tar.gz"
    client("s3").put_object(Bucket=toolchain["artifact-bucket"], Key=key, Body=model_tar(model_format))
    return f"s3://{toolchain['artifact-bucket']}/{key}"


@pytest.fixture
def evaluation(tmp_path):
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps({"passed": True, "metrics": {"roc_auc": 0.91}}))
    return path


def packages(toolchain):
    group = toolchain["model-package-group"]
    return client("sagemaker").list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]


def test_register_creates_a_pending_package_with_uploaded_metrics(ctx, toolchain, model_data, evaluation):
    arn = commands.register(ctx, model_data, str(evaluation), "", "abc123", "")
    details = client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert details["ModelApprovalStatus"] == "PendingManualApproval"
    container = details["InferenceSpecification"]["Containers"][0]
    assert container == {**container, "ModelDataUrl": model_data, "Image": f"{toolchain['inference-image-uri']}:abc123"}
    metrics_uri = details["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, key = metrics_uri[len("s3://") :].split("/", 1)
    assert json.loads(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())["passed"] is True


def test_register_records_the_artifact_and_image_formats(ctx, toolchain, model_data, evaluation):
    arn = commands.register(ctx, model_data, str(evaluation), "", "abc123", "")
    metadata = client("sagemaker").describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert (metadata["model_format"], metadata["image_model_format"]) == ("onnx", "onnx")


@pytest.mark.parametrize(("model_format", "image_format"), [("skops", "skops"), ("onnx", "skops"), ("onnx", "onnx")])
def test_register_accepts_what_the_image_serves(ctx, toolchain, evaluation, model_format, image_format):
    image = push_image(toolchain["inference-image-uri"], "def456", image_format)
    arn = commands.register(ctx, artifact(toolchain, model_format), str(evaluation), image, "", "")
    metadata = client("sagemaker").describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert (metadata["model_format"], metadata["image_model_format"]) == (model_format, image_format)


def test_register_refuses_a_skops_artifact_for_the_onnx_image_before_any_write(ctx, toolchain, model_data, evaluation):
    skops = artifact(toolchain, "skops")
    with pytest.raises(ReleaseError) as error:
        commands.register(ctx, skops, str(evaluation), "", "abc123", "")
    message = str(error.value)
    assert f"the model {skops} holds a skops model artifact" in message
    assert f"inference image {toolchain['inference-image-uri']}:abc123 is the onnx image" in message
    assert "set model_format=skops in model/config/hyperparameters.json" in error.value.fix
    assert "choose an estimator that exports to ONNX" in error.value.fix
    assert packages(toolchain) == []
    listing = client("s3").list_objects_v2(Bucket=toolchain["artifact-bucket"], Prefix=f"{load_project().name}/")
    assert listing.get("KeyCount", 0) == 0  # the metrics were not uploaded either


def test_register_refuses_an_image_no_build_pushed(ctx, toolchain, model_data, evaluation):
    with pytest.raises(ReleaseError, match=r"inference-image:0000000 does not exist in ECR|:0000000 does not exist"):
        commands.register(ctx, model_data, str(evaluation), "", "0000000", "")
    assert packages(toolchain) == []


def test_register_refuses_an_image_without_a_format_tag(ctx, toolchain, model_data, evaluation):
    push_image(toolchain["inference-image-uri"], "old1", image_format=None)
    with pytest.raises(ReleaseError, match="has no model-format tags") as error:
        commands.register(ctx, model_data, str(evaluation), "", "old1", "")
    assert "--image-tag old1-onnx" in error.value.fix and "aws ecr put-image" in error.value.fix


def test_register_refuses_an_artifact_without_metadata(ctx, toolchain, model_data, evaluation):
    with pytest.raises(ReleaseError, match=r"records no model format \(no metadata.json\)"):
        commands.register(ctx, artifact(toolchain, None), str(evaluation), "", "abc123", "")


def test_register_twice_keeps_one_package(ctx, toolchain, model_data, evaluation, capsys):
    first = commands.register(ctx, model_data, str(evaluation), "", "abc123", "")
    second = commands.register(ctx, model_data, str(evaluation), "", "abc123", "")
    assert first == second
    assert len(packages(toolchain)) == 1
    assert "already registered" in capsys.readouterr().out


def test_register_with_metrics_already_in_s3(ctx, toolchain, model_data):
    bucket = toolchain["artifact-bucket"]
    client("s3").put_object(Bucket=bucket, Key="runs/1/evaluation.json", Body=b"{}")
    image = push_image(toolchain["inference-image-uri"], "v1", "skops")
    arn = commands.register(ctx, model_data, f"s3://{bucket}/runs/1/evaluation.json", image, "", "first")
    assert arn.endswith("/1")


def test_register_dry_run_changes_nothing(ctx, toolchain, model_data, evaluation, capsys):
    ctx.dry_run = True
    assert commands.register(ctx, model_data, str(evaluation), "", "abc123", "") is None
    out = capsys.readouterr().out
    assert "would call sagemaker.create_model_package" in out and "would call s3.put_object" in out
    assert packages(toolchain) == []


def test_register_refuses_a_missing_artifact(ctx, toolchain, evaluation):
    missing = f"s3://{toolchain['artifact-bucket']}/nope/model.tar.gz"
    with pytest.raises(ReleaseError, match=r"model artifact .* cannot be read"):
        commands.register(ctx, missing, str(evaluation), "", "abc123", "")


def test_register_refuses_metrics_that_are_not_json(ctx, toolchain, model_data, tmp_path):
    bad = tmp_path / "evaluation.json"
    bad.write_text("not json")
    with pytest.raises(ReleaseError, match="is not valid JSON"):
        commands.register(ctx, model_data, str(bad), "", "abc123", "")


def test_register_refuses_a_missing_metrics_object(ctx, toolchain, model_data):
    with pytest.raises(ReleaseError, match=r"metrics file .* cannot be read"):
        commands.register(ctx, model_data, f"s3://{toolchain['artifact-bucket']}/none.json", "", "abc123", "")


def test_missing_ssm_settings_are_listed_with_their_flags(aws, capsys):
    ctx = commands.Context(project=load_project(), template=None, out=Output())
    with pytest.raises(ReleaseError) as error:
        commands.approve(ctx, "1", False, "")
    assert "/model-package-group (or the flag --model-package-group)" in str(error.value)
    assert "toolchain stack" in str(error.value)


def test_approve_by_version_then_again_is_a_no_op(ctx, toolchain, capsys):
    arn = add_package(toolchain, 1, "PendingManualApproval")
    commands.approve(ctx, "1", False, "")
    assert client("sagemaker").describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
    commands.approve(ctx, arn, False, "")
    assert "already Approved; nothing to do" in capsys.readouterr().out


def test_reject_needs_a_reason(ctx, toolchain):
    add_package(toolchain, 1, "PendingManualApproval")
    with pytest.raises(ReleaseError, match="--reject needs --reason"):
        commands.approve(ctx, "1", True, "")


def test_reject_records_the_reason(ctx, toolchain):
    arn = add_package(toolchain, 1, "PendingManualApproval")
    commands.approve(ctx, "1", True, "recall below the gate")
    details = client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert (details["ModelApprovalStatus"], details["ApprovalDescription"]) == ("Rejected", "recall below the gate")


def test_approve_dry_run_changes_nothing(ctx, toolchain, capsys):
    arn = add_package(toolchain, 1, "PendingManualApproval")
    ctx.dry_run = True
    commands.approve(ctx, "1", False, "")
    assert "would call sagemaker.update_model_package" in capsys.readouterr().out
    assert client("sagemaker").describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] != "Approved"


@pytest.mark.parametrize(
    ("ref", "message"),
    [("7", "has no version 7"), ("latest", "neither an ARN nor a version"), ("arn:aws:s3:::x", "not a model package")],
)
def test_unknown_package_references_are_named(ctx, toolchain, ref, message):
    add_package(toolchain, 1)
    with pytest.raises(ReleaseError, match=message):
        commands.approve(ctx, ref, False, "")
