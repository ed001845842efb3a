"""The release commands run as the CI role that runs them on AWS (policies read from infra/lib/toolchain.yaml), with
moto's IAM enforcement on: a call the role may not make fails here, not on the first real deployment."""

from __future__ import annotations

import json

import pytest

from release import commands
from release.config import load_project
from release.output import Output
from release.tests.conftest import add_package, client, model_tar, push_image
from release.tests.roles import ROLES, acting_as, ci_provider, role_policies


@pytest.fixture
def ctx(toolchain, moto_template):
    return commands.Context(project=load_project(), template=moto_template, out=Output())


def test_the_roles_policies_are_read_from_the_toolchain_template(toolchain):
    actions = {
        action
        for document in role_policies(ROLES[ci_provider()]["release"], toolchain["artifact-bucket"])
        for statement in document["Statement"]
        for action in statement["Action"]
    }
    assert {"cloudformation:CreateChangeSet", "sagemaker:DescribeEndpoint"} <= actions


def test_deploy_promote_rollback_and_status_run_as_the_release_role(ctx, toolchain, moto_url, monkeypatch):
    add_package(toolchain, 1)
    add_package(toolchain, 2)
    with acting_as(ROLES[ci_provider()]["release"], moto_url, toolchain["artifact-bucket"], monkeypatch):
        assert commands.deploy(ctx, "staging", package_ref="2") == "CREATE_COMPLETE"
        assert commands.promote(ctx, "staging", "prod") == "CREATE_COMPLETE"
        assert commands.rollback(ctx, "prod") == "UPDATE_COMPLETE"
        commands.status(ctx, ["staging", "prod"])


def test_deploy_of_a_package_without_recorded_formats_runs_as_the_release_role(ctx, toolchain, moto_url, monkeypatch):
    add_package(toolchain, 1, metadata=False)  # formats read from model.tar.gz (S3) and the image tags (ECR)
    with acting_as(ROLES[ci_provider()]["release"], moto_url, toolchain["artifact-bucket"], monkeypatch):
        assert commands.deploy(ctx, "staging") == "CREATE_COMPLETE"


def test_approve_runs_as_the_release_role(ctx, toolchain, moto_url, monkeypatch):
    add_package(toolchain, 1, "PendingManualApproval")
    with acting_as(ROLES[ci_provider()]["release"], moto_url, toolchain["artifact-bucket"], monkeypatch):
        commands.approve(ctx, "1", False, "")


def test_register_runs_as_the_build_role(ctx, toolchain, moto_url, monkeypatch, tmp_path):
    bucket = toolchain["artifact-bucket"]
    client("s3").put_object(Bucket=bucket, Key="training/job-1/output/model.tar.gz", Body=model_tar("onnx"))
    push_image(toolchain["inference-image-uri"], "abc123", "onnx")
    metrics = tmp_path / "evaluation.json"
    metrics.write_text(json.dumps({"passed": True}))
    with acting_as(ROLES[ci_provider()]["build"], moto_url, bucket, monkeypatch):
        arn = commands.register(
            ctx, f"s3://{bucket}/training/job-1/output/model.tar.gz", str(metrics), "", "abc123", ""
        )
    assert arn.endswith("/1")


def test_monitor_runs_as_the_release_role(ctx, toolchain, moto_url, monkeypatch, tmp_path, moto_monitoring_template):
    from release import config

    folder = tmp_path / "monitoring"
    (folder / "baselines").mkdir(parents=True)
    for name in ("statistics.json", "constraints.json", "schema.json"):
        (folder / "baselines" / name).write_text("{}")
    monkeypatch.setattr(config, "MONITORING_DIR", folder)
    if not config.MONITORING_TEMPLATE.is_file():
        monkeypatch.setattr(config, "MONITORING_TEMPLATE", moto_monitoring_template)
    ctx.monitoring_template = moto_monitoring_template
    push_image(toolchain["monitoring-image-uri"], "0123abc", image_format=None)
    with acting_as(ROLES[ci_provider()]["release"], moto_url, toolchain["artifact-bucket"], monkeypatch):
        assert commands.monitor(ctx, "staging", tag="0123abc") == "CREATE_COMPLETE"


def test_an_action_taken_out_of_the_release_role_fails_the_deploy_naming_it(ctx, toolchain, moto_url, monkeypatch):
    """The guard itself, under either CI provider: one action fewer and the release role's deploy is refused."""
    from botocore.exceptions import ClientError

    add_package(toolchain, 1)
    role = ROLES[ci_provider()]["release"]
    with (
        acting_as(
            role, moto_url, toolchain["artifact-bucket"], monkeypatch, without=["cloudformation:CreateChangeSet"]
        ),
        pytest.raises(ClientError, match=r"(AccessDenied|not authorized).*cloudformation:CreateChangeSet"),
    ):
        commands.deploy(ctx, "staging")


@pytest.mark.skipif(
    ci_provider() == "github-actions", reason="the GitHub CI role also deploys staging (it holds the release policy)"
)
def test_the_build_role_may_not_deploy(ctx, toolchain, moto_url, monkeypatch):
    """CodeBuild's build and train projects cannot touch an endpoint stack; moto says so."""
    from botocore.exceptions import ClientError

    add_package(toolchain, 1)
    role = ROLES[ci_provider()]["build"]
    with (
        acting_as(role, moto_url, toolchain["artifact-bucket"], monkeypatch),
        pytest.raises(ClientError, match=r"AccessDenied|not authorized"),
    ):
        commands.deploy(ctx, "staging")
