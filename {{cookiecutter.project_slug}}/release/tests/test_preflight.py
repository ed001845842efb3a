"""make preflight: read-only checks of an account before the first deploy, on moto (Service Quotas answering for
SageMaker through the `quotas` fixture) and a Stubber for CodeConnections (which moto lacks). Every test also
checks that nothing but Get/List/Describe calls were made."""

from __future__ import annotations

import json

import pytest
from botocore.stub import Stubber

from release import commands, preflight, release
from release.config import load_project
from release.errors import ReleaseError
from release.output import Output
from release.tests.conftest import ACCOUNT, LOG, REGION, SAGEMAKER_QUOTAS, add_package, client, edit, writes

CONNECTION = f"arn:aws:codeconnections:{REGION}:{ACCOUNT}:connection/0a1b2c3d-1111-2222-3333-444455556666"


@pytest.fixture
def ctx(toolchain, moto_template):
    return commands.Context(project=load_project(), template=moto_template, out=Output())


def connection_status(ctx, status: str | None) -> Stubber:
    """Stub CodeConnections on the context's clients: the connection is `status`, or absent (None)."""
    stubber = Stubber(ctx.clients(REGION).connections)
    if status is None:
        stubber.add_client_error("get_connection", "ResourceNotFoundException", "no such connection", 400)
    else:
        stubber.add_response(
            "get_connection",
            {"Connection": {"ConnectionArn": CONNECTION, "ConnectionStatus": status, "ProviderType": "GitHub"}},
            {"ConnectionArn": CONNECTION},
        )
    return stubber


def test_a_ready_account_passes_every_check_and_nothing_is_written(ctx, capsys):
    with connection_status(ctx, "AVAILABLE"):
        assert commands.preflight_checks(ctx, "prod", CONNECTION, ci_provider="codepipeline") is True
    out = capsys.readouterr().out
    assert "MISSING" not in out and "checks passed" in out
    assert "ml.m5.large for endpoint usage" in out and "12 allowed, 12 needed" in out  # 2 x max_capacity 6
    assert "ml.m5.xlarge for training job usage" in out and "CodeConnections connection" in out
    assert LOG and writes() == []


def test_each_missing_prerequisite_is_named_with_its_fix_and_nothing_changes(ctx, config_dir, project, capsys):
    client("ssm").delete_parameter(Name=f"/{project.name}/kms-key-arn")
    client("iam").delete_role(RoleName=preflight.SCALING_ROLE)
    client("iam").delete_role(RoleName=f"{project.name}-sagemaker")
    edit(config_dir, "staging", lambda d: d["endpoint"].update(instance_type="ml.c5.large"))
    with connection_status(ctx, "PENDING"):
        assert commands.preflight_checks(ctx, "staging", CONNECTION, ci_provider="codepipeline") is False
    out = capsys.readouterr().out
    assert f"/{project.name}/kms-key-arn" in out and "deploy the toolchain stack" in out
    assert (
        "aws iam create-service-linked-role --aws-service-name sagemaker.application-autoscaling.amazonaws.com" in out
    )
    assert f"role/{project.name}-sagemaker does not exist" in out
    code = SAGEMAKER_QUOTAS["ml.c5.large for endpoint usage"][0]
    assert f"--quota-code {code} --desired-value" in out and "0 allowed" in out
    assert "is PENDING" in out and "Update pending connection" in out
    assert writes() == []


def test_an_applied_quota_increase_counts_and_an_unknown_type_is_named(ctx, config_dir, quotas, capsys):
    edit(config_dir, "staging", lambda d: d["endpoint"].update(instance_type="ml.c5.large"))
    quotas[SAGEMAKER_QUOTAS["ml.c5.large for endpoint usage"][0]] = 8.0
    edit(config_dir, "dev", lambda d: d["endpoint"].update(instance_type="ml.z9.large", endpoint_type="realtime"))
    with connection_status(ctx, "AVAILABLE"):
        assert commands.preflight_checks(ctx, "staging", CONNECTION, ci_provider="codepipeline") is True
    assert commands.preflight_checks(ctx, "dev", ci_provider="github-actions") is False
    out = capsys.readouterr().out
    assert "8 allowed" in out and "has no quota 'ml.z9.large for endpoint usage'" in out


def test_a_serverless_endpoint_needs_no_instance_quota(ctx, config_dir, capsys):
    edit(config_dir, "dev", lambda d: d["endpoint"].update(instance_type="ml.z9.large", endpoint_type="serverless"))
    assert commands.preflight_checks(ctx, "dev", ci_provider="github-actions") is True
    assert "for endpoint usage" not in capsys.readouterr().out


def test_the_connection_comes_from_the_toolchain_stack(ctx, project, capsys):
    template = {
        "Parameters": {"SourceProvider": {"Type": "String"}, "ConnectionArn": {"Type": "String"}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    }
    client("cloudformation").create_stack(
        StackName=f"{project.name}-toolchain",
        TemplateBody=json.dumps(template),
        Parameters=[
            {"ParameterKey": "SourceProvider", "ParameterValue": "CodeConnections"},
            {"ParameterKey": "ConnectionArn", "ParameterValue": CONNECTION},
        ],
    )
    with connection_status(ctx, None):
        assert commands.preflight_checks(ctx, "dev", ci_provider="codepipeline") is False
    out = capsys.readouterr().out
    assert f"{CONNECTION} does not exist" in out and "aws codeconnections create-connection" in out


def test_without_toolchain_stack_or_flag_the_connection_check_says_what_to_pass(ctx, capsys):
    assert commands.preflight_checks(ctx, "dev", ci_provider="codepipeline") is False
    assert "pass --connection-arn ARN" in capsys.readouterr().out


def test_the_cli_exits_2_when_a_check_fails(toolchain, project, monkeypatch, capsys):
    monkeypatch.setattr(commands, "ci_provider_of_repository", lambda: "github-actions")
    client("iam").delete_role(RoleName=preflight.SCALING_ROLE)
    assert release.main(["preflight", "--env", "dev", "--connection-arn", CONNECTION]) in (2,)
    assert "MISSING" in capsys.readouterr().out


def test_a_missing_group_is_named(ctx, project, capsys):
    ctx.overrides = {"model_package_group": f"{project.name}-elsewhere"}
    assert commands.preflight_checks(ctx, "dev", ci_provider="github-actions") is False
    assert f"{project.name}-elsewhere does not exist" in capsys.readouterr().out


# ----------------------------------------------------------------------- a release stops before its first write
def test_a_deploy_to_an_account_without_the_scaling_role_stops_before_its_first_write(ctx, toolchain):
    add_package(toolchain, 1)
    client("iam").delete_role(RoleName=preflight.SCALING_ROLE)
    start = len(LOG)
    with pytest.raises(ReleaseError, match="the account lacks what deploy to staging needs") as error:
        commands.deploy(ctx, "staging")
    assert "create-service-linked-role" in error.value.fix and "make preflight" in error.value.fix
    assert writes(start) == []
    assert client("cloudformation").list_stacks()["StackSummaries"] == []


def test_a_promote_beyond_the_quota_stops_before_its_first_write(ctx, toolchain, config_dir):
    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    edit(config_dir, "prod", lambda d: d["endpoint"].update(instance_type="ml.c5.large"))  # 0 allowed, 12 needed
    start = len(LOG)
    with pytest.raises(ReleaseError, match=r"ml.c5.large for endpoint usage: 0 allowed, 12 needed") as error:
        commands.promote(ctx, "staging", "prod")
    assert "request-service-quota-increase" in error.value.fix
    assert writes(start) == []
