"""deploy, promote, rollback and status against moto's CloudFormation and SageMaker; failure paths with Stubber."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from release import commands, config, stack
from release.config import load_project
from release.errors import ReleaseError
from release.output import Output

from .conftest import ACCOUNT, REGION, add_package, client


@pytest.fixture
def ctx(toolchain, moto_template):
    return commands.Context(project=load_project(), template=moto_template, out=Output())


def stack_parameters(environment):
    name = f"{load_project().name}-endpoint-{environment}"
    found = client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in found["Parameters"]}, found


def test_deploy_without_an_approved_package_says_what_to_do(ctx, toolchain):
    add_package(toolchain, 1, "PendingManualApproval")
    with pytest.raises(ReleaseError, match="has no Approved model package") as error:
        commands.deploy(ctx, "staging")
    assert "approve" in error.value.fix


def test_deploy_refuses_a_package_that_is_not_approved(ctx, toolchain):
    add_package(toolchain, 1, "PendingManualApproval")
    with pytest.raises(ReleaseError, match="is PendingManualApproval, not Approved"):
        commands.deploy(ctx, "staging", package_ref="1")


def test_deploy_creates_the_stack_with_the_latest_approved_package(ctx, toolchain, capsys):
    add_package(toolchain, 1)
    latest = add_package(toolchain, 2)
    add_package(toolchain, 3, "PendingManualApproval")
    assert commands.deploy(ctx, "staging") == "CREATE_COMPLETE"
    parameters, found = stack_parameters("staging")
    assert parameters["ModelPackageArn"] == latest
    assert parameters["DeploymentStrategy"] == "ALL_AT_ONCE"
    assert parameters["KmsKeyArn"] == toolchain["kms-key-arn"]
    assert parameters["DataCaptureS3Uri"].startswith(f"s3://{toolchain['artifact-bucket']}/")
    assert {"Key": "environment", "Value": "staging"} in found["Tags"]
    out = capsys.readouterr().out
    assert "creating change set" in out and "Add" in out and "done: stack" in out


def test_deploying_the_same_package_again_is_a_no_op(ctx, toolchain, capsys):
    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    assert commands.deploy(ctx, "staging") == "UNCHANGED"
    assert "nothing to do" in capsys.readouterr().out


def test_dry_run_prints_the_plan_and_creates_nothing(ctx, toolchain, capsys):
    add_package(toolchain, 1)
    ctx.dry_run = True
    assert commands.deploy(ctx, "staging") == "DRY-RUN"
    out = capsys.readouterr().out
    assert "would call cloudformation.create_change_set" in out and '"ChangeSetType": "CREATE"' in out
    assert stack.read_stack(client("cloudformation"), f"{load_project().name}-endpoint-staging") is None


def test_dry_run_of_an_update_lists_the_changing_parameters(ctx, toolchain, capsys):
    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    add_package(toolchain, 2)
    ctx.dry_run = True
    commands.deploy(ctx, "staging")
    out = capsys.readouterr().out
    assert "parameters that change" in out and "ModelPackageArn" in out


def test_unknown_strategy_stops_before_any_aws_call(ctx, toolchain, tmp_path, monkeypatch):
    target = tmp_path / "config"
    shutil.copytree(config.CONFIG_DIR, target)
    data = json.loads((target / "prod.json").read_text())
    data["deployment"]["strategy"] = "BLUE"
    (target / "prod.json").write_text(json.dumps(data))
    monkeypatch.setattr(config, "CONFIG_DIR", target)
    with pytest.raises(ReleaseError, match=r'deployment\.strategy = "BLUE" is not allowed: use one of ALL_AT_ONCE'):
        commands.deploy(ctx, "prod")


def test_deploy_refuses_another_account(ctx, toolchain, tmp_path, monkeypatch):
    target = tmp_path / "config"
    shutil.copytree(config.CONFIG_DIR, target)
    data = json.loads((target / "prod.json").read_text())
    data["account_id"] = "999999999999"
    (target / "prod.json").write_text(json.dumps(data))
    monkeypatch.setattr(config, "CONFIG_DIR", target)
    with pytest.raises(ReleaseError, match=f"belong to account {ACCOUNT}, but infra/config/prod.json sets"):
        commands.deploy(ctx, "prod")


def test_deploy_refuses_an_endpoint_in_failed_state(ctx, toolchain):
    from moto.backends import get_backend

    add_package(toolchain, 1)
    name = config.load_environment("staging").endpoint_name
    sagemaker = client("sagemaker")
    sagemaker.create_model(
        ModelName="m",
        ExecutionRoleArn=toolchain["sagemaker-execution-role-arn"],
        PrimaryContainer={"Image": "repo/image:1"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="c")
    endpoint = get_backend("sagemaker")[ACCOUNT][REGION].endpoints[name]
    endpoint.endpoint_status = "Failed"
    with pytest.raises(ReleaseError, match=f"endpoint {name} is Failed") as error:
        commands.deploy(ctx, "staging")
    assert "delete-stack" in error.value.fix and "/aws/sagemaker/Endpoints" in error.value.fix


def test_deploy_refuses_while_an_update_is_in_progress(ctx, toolchain):
    from moto.backends import get_backend

    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    for found in get_backend("cloudformation")[ACCOUNT][REGION].stacks.values():
        found.status = "UPDATE_IN_PROGRESS"
    with pytest.raises(ReleaseError, match="is UPDATE_IN_PROGRESS: another deployment is running"):
        commands.deploy(ctx, "staging")


def test_deploy_promote_rollback_end_to_end(ctx, toolchain, capsys):
    first = add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    second = add_package(toolchain, 2)
    assert commands.deploy(ctx, "staging") == "UPDATE_COMPLETE"
    assert stack_parameters("staging")[0]["ModelPackageArn"] == second

    add_package(toolchain, 3)  # approved later, never tested in staging: promote must not pick it
    assert commands.promote(ctx, "staging", "prod") == "CREATE_COMPLETE"
    prod = stack_parameters("prod")[0]
    assert (prod["ModelPackageArn"], prod["DeploymentStrategy"]) == (second, "CANARY")
    assert commands.promote(ctx, "staging", "prod") == "UNCHANGED"

    assert commands.rollback(ctx, "prod") == "UPDATE_COMPLETE"
    prod, _ = stack_parameters("prod")
    assert prod["ModelPackageArn"] == first
    assert (prod["DeploymentStrategy"], prod["WaitIntervalSeconds"], prod["TerminationWaitSeconds"]) == (
        "ALL_AT_ONCE",
        "0",
        "0",
    )
    # CloudFormation gives the stack the tags of an executed UPDATE change set; moto does not, so copy them.
    from moto.backends import get_backend

    backend = get_backend("cloudformation")[ACCOUNT][REGION]
    executed = [cs for cs in backend.change_sets.values() if cs.stack_name.endswith("-endpoint-prod")][-1]
    assert executed.tags["rolled-back-from"] == second
    backend.stacks[executed.stack_id].tags = dict(executed.tags)
    out = capsys.readouterr().out
    assert "it will serve model package version 1" in out and "Expected duration" in out

    assert commands.rollback(ctx, "prod") == "UNCHANGED"
    assert "already runs model package version 1 after a rollback" in capsys.readouterr().out

    commands.status(ctx, ["staging", "prod"])
    table = capsys.readouterr().out
    assert "ALL_AT_ONCE" in table and "model package group" in table


def test_rollback_without_an_earlier_approved_package(ctx, toolchain):
    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    with pytest.raises(ReleaseError, match="no Approved model package is older than the deployed version 1"):
        commands.rollback(ctx, "staging")


def test_rollback_of_an_environment_never_deployed(ctx, toolchain):
    with pytest.raises(ReleaseError, match="nothing is deployed in prod"):
        commands.rollback(ctx, "prod")


def test_promote_needs_a_staging_deployment(ctx, toolchain):
    add_package(toolchain, 1)
    with pytest.raises(ReleaseError, match="nothing is deployed in staging") as error:
        commands.promote(ctx, "staging", "prod")
    assert "make deploy ENV=staging" in error.value.fix


# ------------------------------------------------------------------ paths moto cannot produce: Stubber
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def event(n, resource, status, reason=""):
    item = {
        "StackId": "id",
        "EventId": f"e{n}",
        "StackName": "s",
        "LogicalResourceId": resource,
        "ResourceStatus": status,
        "Timestamp": NOW,
    }
    if reason:
        item["ResourceStatusReason"] = reason
    return item


def stubbed_cloudformation():
    cloudformation = client("cloudformation")
    return cloudformation, Stubber(cloudformation)


@pytest.mark.parametrize(
    ("final", "message"),
    [
        ("UPDATE_ROLLBACK_COMPLETE", "rolled it back .*Endpoint: capacity.*the endpoint is InService with the model"),
        ("ROLLBACK_COMPLETE", "creation of s failed .*no endpoint serves traffic"),
        ("UPDATE_ROLLBACK_FAILED", "ended UPDATE_ROLLBACK_FAILED .*uncertain"),
    ],
)
def test_a_deployment_that_ends_rolled_back_says_what_is_left(aws, final, message, capsys):
    cloudformation, stubber = stubbed_cloudformation()
    stubber.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                event(2, "Endpoint", "UPDATE_FAILED", "capacity"),
                event(1, "Endpoint", "UPDATE_IN_PROGRESS"),
            ]
        },
        {"StackName": "s"},
    )
    stubber.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": "s", "StackStatus": final, "CreationTime": NOW}]},
        {"StackName": "s"},
    )
    with stubber, pytest.raises(ReleaseError, match=message):
        stack.wait_for_stack(cloudformation, Output(), "s", set(), 60)
    assert "Endpoint" in capsys.readouterr().out


def test_an_empty_change_set_is_a_no_op(aws, capsys):
    cloudformation, stubber = stubbed_cloudformation()
    stubber.add_response("create_change_set", {"Id": "cs", "StackId": "id"})
    stubber.add_response(
        "describe_change_set",
        {
            "Status": "FAILED",
            "ChangeSetName": "c",
            "StackName": "s",
            "StatusReason": "The submitted information didn't contain changes. Submit different information.",
        },
    )
    stubber.add_response("delete_change_set", {})
    with stubber:
        assert (
            stack.deploy(
                cloudformation,
                Output(),
                stack_name="s",
                exists=True,
                body="{}",
                parameters={"A": "1"},
                tags={},
                description="d",
                timeout_seconds=60,
            )
            == "UNCHANGED"
        )
    assert "nothing to do" in capsys.readouterr().out


def test_a_rejected_create_change_set_leaves_nothing_behind(aws):
    cloudformation, stubber = stubbed_cloudformation()
    stubber.add_response("create_change_set", {"Id": "cs", "StackId": "id"})
    stubber.add_response(
        "describe_change_set",
        {
            "Status": "FAILED",
            "ChangeSetName": "c",
            "StackName": "s",
            "StatusReason": "Parameter KmsKeyArn failed to satisfy constraint",
        },
    )
    stubber.add_response("delete_change_set", {})
    stubber.add_response("delete_stack", {}, {"StackName": "s"})
    with stubber, pytest.raises(ReleaseError, match=r"KmsKeyArn .*the empty stack shell was deleted"):
        stack.deploy(
            cloudformation,
            Output(),
            stack_name="s",
            exists=False,
            body="{}",
            parameters={"A": "1"},
            tags={},
            description="d",
            timeout_seconds=60,
        )
    stubber.assert_no_pending_responses()


def test_an_empty_update_refused_by_create_change_set_is_a_no_op(aws, capsys):
    cloudformation, stubber = stubbed_cloudformation()
    stubber.add_client_error("create_change_set", "ValidationError", "No updates are to be performed.", 400)
    stubber.add_client_error("create_change_set", "ValidationError", "Template format error", 400)
    arguments = {
        "stack_name": "s",
        "exists": True,
        "body": "{}",
        "parameters": {"A": "1"},
        "tags": {},
        "description": "d",
        "timeout_seconds": 60,
    }
    with stubber:
        assert stack.deploy(cloudformation, Output(), **arguments) == "UNCHANGED"
        with pytest.raises(ClientError, match="Template format error"):
            stack.deploy(cloudformation, Output(), **arguments)
    assert "nothing to do" in capsys.readouterr().out
