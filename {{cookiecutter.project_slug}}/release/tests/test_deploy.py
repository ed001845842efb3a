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
from release.tests.conftest import ACCOUNT, REGION, add_package, client, edit


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


def failed_change_set(stubber, reason: str) -> None:
    """CloudFormation's answers to a change set it refuses: created, FAILED with the reason, deleted."""
    stubber.add_response("create_change_set", {"Id": "cs", "StackId": "id"})
    stubber.add_response(
        "describe_change_set", {"Status": "FAILED", "ChangeSetName": "c", "StackName": "s", "StatusReason": reason}
    )
    stubber.add_response("delete_change_set", {})


def deploy_stack_s(cloudformation, exists: bool) -> str:
    """stack.deploy of a one-parameter stack "s" through the given (stubbed) client."""
    return stack.deploy(
        cloudformation,
        Output(),
        stack_name="s",
        exists=exists,
        body="{}",
        parameters={"A": "1"},
        tags={},
        description="d",
        timeout_seconds=60,
    )


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
    failed_change_set(stubber, "The submitted information didn't contain changes. Submit different information.")
    with stubber:
        assert deploy_stack_s(cloudformation, exists=True) == "UNCHANGED"
    assert "nothing to do" in capsys.readouterr().out


def test_a_rejected_create_change_set_leaves_nothing_behind(aws):
    cloudformation, stubber = stubbed_cloudformation()
    failed_change_set(stubber, "Parameter KmsKeyArn failed to satisfy constraint")
    stubber.add_response("delete_stack", {}, {"StackName": "s"})
    with stubber, pytest.raises(ReleaseError, match=r"KmsKeyArn .*the empty stack shell was deleted"):
        deploy_stack_s(cloudformation, exists=False)
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


# ------------------------------------------------------------------------ a first deployment that failed
def set_stack_status(environment, status):
    from moto.backends import get_backend

    for found in get_backend("cloudformation")[ACCOUNT][REGION].stacks.values():
        if found.name.endswith(f"-endpoint-{environment}"):
            found.status = status


def test_a_first_deployment_left_rollback_complete_is_deleted_and_created_again(ctx, toolchain, capsys):
    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    set_stack_status("staging", "ROLLBACK_COMPLETE")  # as a first endpoint that failed its health check leaves it
    ctx.dry_run = True
    assert commands.deploy(ctx, "staging") == "DRY-RUN"
    out = capsys.readouterr().out
    assert "would call cloudformation.delete_stack" in out and '"ChangeSetType": "CREATE"' in out
    assert stack_parameters("staging")[1]["StackStatus"] == "ROLLBACK_COMPLETE"  # the dry run changed nothing
    ctx.dry_run = False
    assert commands.deploy(ctx, "staging") == "CREATE_COMPLETE"
    out = capsys.readouterr().out
    assert "is ROLLBACK_COMPLETE: its creation failed" in out and "/aws/sagemaker/Endpoints/" in out
    assert "deleted" in out and "(CREATE)" in out


def test_promote_from_a_failed_first_deployment_says_nothing_is_deployed(ctx, toolchain):
    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    set_stack_status("staging", "ROLLBACK_COMPLETE")
    with pytest.raises(ReleaseError, match=r"the creation of stack .* failed \(ROLLBACK_COMPLETE\)") as error:
        commands.promote(ctx, "staging", "prod")
    assert "make deploy ENV=staging" in error.value.fix


@pytest.mark.parametrize("status", ["ROLLBACK_FAILED", "DELETE_FAILED"])
def test_a_stack_whose_creation_failed_part_way_gets_the_steps_in_order(ctx, toolchain, status):
    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    set_stack_status("staging", status)
    with pytest.raises(ReleaseError, match=f"is {status}") as error:
        commands.deploy(ctx, "staging")
    fix = error.value.fix
    steps = ["describe-stack-events", "delete-stack", "wait stack-delete-complete", "delete-endpoint", "deploy again"]
    assert [fix.index(step) for step in steps] == sorted(fix.index(step) for step in steps)


def test_a_deletion_that_fails_says_what_is_left(aws):
    cloudformation, stubber = stubbed_cloudformation()
    stubber.add_response(
        "describe_stack_events", {"StackEvents": [event(1, "Endpoint", "CREATE_FAILED", "failed to pass the ping")]}
    )
    stubber.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": "s", "StackId": "id", "StackStatus": "ROLLBACK_COMPLETE", "CreationTime": NOW}]},
    )
    stubber.add_response("delete_stack", {}, {"StackName": "s"})
    stubber.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": "s", "StackId": "id", "StackStatus": "DELETE_FAILED", "CreationTime": NOW}]},
        {"StackName": "id"},
    )
    with stubber, pytest.raises(ReleaseError, match=r"the deletion of s .* failed") as error:
        stack.replace_failed_creation(cloudformation, Output(), "s", 60, False, "e")
    assert "aws sagemaker delete-endpoint --endpoint-name e" in error.value.fix


# ------------------------------------------------------------------------------ capacity across an update
def scale_to(environment, count):
    """The live endpoint at `count` instances (moto's CloudFormation does not create a describable endpoint)."""
    name = config.load_environment(environment).endpoint_name
    sagemaker = client("sagemaker")
    if not sagemaker.list_endpoints(NameContains=name)["Endpoints"]:
        sagemaker.create_model(
            ModelName=f"{name}-m", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/r", PrimaryContainer={"Image": "i:1"}
        )
        variant = {"VariantName": "AllTraffic", "ModelName": f"{name}-m", "InitialInstanceCount": 1}
        sagemaker.create_endpoint_config(
            EndpointConfigName=f"{name}-c", ProductionVariants=[{**variant, "InstanceType": "ml.m5.large"}]
        )
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": count}]
    )


def test_an_update_starts_the_new_fleet_at_the_auto_scaled_count(ctx, toolchain, capsys):
    add_package(toolchain, 1)
    commands.deploy(ctx, "prod")
    assert stack_parameters("prod")[0]["InstanceCount"] == "2"  # instance_count of prod.json
    scale_to("prod", 5)  # auto scaling grew the fleet
    assert commands.deploy(ctx, "prod") == "UNCHANGED"  # the count alone is no reason for an update
    add_package(toolchain, 2)
    assert commands.deploy(ctx, "prod") == "UPDATE_COMPLETE"
    assert stack_parameters("prod")[0]["InstanceCount"] == "5"
    assert "InstanceCount 5: the variant's current desired count (5, auto scaling)" in capsys.readouterr().out
    scale_to("prod", 9)  # above max_capacity 6 (a manual change): kept within the configured range
    add_package(toolchain, 3)
    commands.deploy(ctx, "prod")
    assert stack_parameters("prod")[0]["InstanceCount"] == "6"


def register_scaling(environment, low, high):
    name = config.load_environment(environment).endpoint_name
    autoscaling = client("application-autoscaling")
    key = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": f"endpoint/{name}/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    autoscaling.register_scalable_target(**key, MinCapacity=low, MaxCapacity=high)
    autoscaling.put_scaling_policy(
        **key,
        PolicyName=f"{name}-invocations-per-instance",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 600.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        },
    )
    return autoscaling, key


def scaled_prod_asking_for_another_instance_type(ctx, toolchain, config_dir, instances: int, max_capacity: int):
    """prod deployed, at `instances` instances with auto scaling 2-6; then its config asks for ml.m5.xlarge."""
    add_package(toolchain, 1)
    commands.deploy(ctx, "prod")
    scale_to("prod", instances)
    autoscaling, _ = register_scaling("prod", 2, 6)

    def change(data):
        data["endpoint"]["instance_type"] = "ml.m5.xlarge"
        data["endpoint"]["autoscaling"]["max_capacity"] = max_capacity

    edit(config_dir, "prod", change)
    return autoscaling


def test_an_instance_type_change_deregisters_auto_scaling_and_registers_it_again(
    ctx, toolchain, config_dir, monkeypatch, capsys
):
    autoscaling = scaled_prod_asking_for_another_instance_type(ctx, toolchain, config_dir, 4, 5)
    seen = []
    original = stack.deploy

    def deploy_and_look(*args, **kwargs):  # what auto scaling looks like while the stack updates
        seen.append(autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"])
        return original(*args, **kwargs)

    monkeypatch.setattr(stack, "deploy", deploy_and_look)
    assert commands.deploy(ctx, "prod") == "UPDATE_COMPLETE"
    assert seen == [[]]  # deregistered during the update
    parameters = stack_parameters("prod")[0]
    assert (parameters["InstanceType"], parameters["InstanceCount"]) == ("ml.m5.xlarge", "4")
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(2, 5)]
    policies = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert [p["PolicyName"] for p in policies] == [
        "customer-churn-prod-invocations-per-instance".replace("customer-churn", load_project().name)
    ]
    out = capsys.readouterr().out
    assert "UpdateEndpoint refuses that" in out and "registered again: 2-5 instances" in out


def test_a_failed_instance_type_change_puts_the_old_scaling_back(ctx, toolchain, config_dir, monkeypatch):
    autoscaling = scaled_prod_asking_for_another_instance_type(ctx, toolchain, config_dir, 2, 3)

    def rolled_back(*args, **kwargs):
        raise ReleaseError("the update of the stack failed and CloudFormation rolled it back")

    monkeypatch.setattr(stack, "deploy", rolled_back)
    with pytest.raises(ReleaseError, match="rolled it back"):
        commands.deploy(ctx, "prod")
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(2, 6)]
    assert len(autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]) == 1


# ------------------------------------------------------------------- one artifact path: format guard
def test_deploy_refuses_a_package_its_image_cannot_serve_before_touching_the_endpoint(ctx, toolchain):
    arn = add_package(toolchain, 1, formats=("skops", "onnx"))
    with pytest.raises(ReleaseError) as error:
        commands.deploy(ctx, "staging")
    message = str(error.value)
    assert f"model package {arn} holds a skops model artifact" in message and "is the onnx image" in message
    assert "set model_format=skops in model/config/hyperparameters.json" in error.value.fix
    assert client("cloudformation").list_stacks()["StackSummaries"] == []


@pytest.mark.parametrize("metadata", [True, False])
def test_a_skops_artifact_deploys_with_the_skops_image(ctx, toolchain, metadata, capsys):
    add_package(toolchain, 1, formats=("skops", "skops"), metadata=metadata)
    assert commands.deploy(ctx, "staging") == "CREATE_COMPLETE"
    assert "(skops artifact, skops image)" in capsys.readouterr().out


def test_formats_of_a_package_registered_before_are_read_from_the_artifact_and_ecr(ctx, toolchain):
    add_package(toolchain, 1, formats=("skops", "onnx"), metadata=False)
    with pytest.raises(ReleaseError, match=r"holds a skops model artifact.*is the onnx image"):
        commands.deploy(ctx, "staging")


def test_rollback_refuses_a_previous_package_its_image_cannot_serve(ctx, toolchain):
    add_package(toolchain, 1, formats=("skops", "onnx"), metadata=False)
    current = add_package(toolchain, 2)
    commands.deploy(ctx, "staging")
    with pytest.raises(ReleaseError, match="holds a skops model artifact"):
        commands.rollback(ctx, "staging")
    assert stack_parameters("staging")[0]["ModelPackageArn"] == current
