"""release.py batch: the batch triggers stack's parameters from infra/config/<env>.json and the newest Approved
package, a dry run that changes nothing, and a bad schedule refused before any AWS call."""

from __future__ import annotations

import pytest

from release import commands
from release.config import load_project
from release.errors import ReleaseError
from release.output import Output
from release.tests.conftest import LOG, add_package, client, edit, writes


@pytest.fixture
def ctx(toolchain, monkeypatch):
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.delenv("CODEBUILD_RESOLVED_SOURCE_VERSION", raising=False)
    return commands.Context(project=load_project(), template=commands.BATCH_TEMPLATE, dry_run=True, out=Output())


def test_a_dry_run_plans_the_stack_with_the_newest_approved_package(ctx, toolchain, config_dir, capsys):
    add_package(toolchain, 1)
    newest = add_package(toolchain, 2)
    add_package(toolchain, 3, status="PendingManualApproval")
    edit(config_dir, "dev", lambda d: d["batch"].update(schedule_expression="cron(0 5 * * ? *)"))
    before = len(writes())

    assert commands.batch(ctx, "dev", "0123abc") == "DRY-RUN"
    out = capsys.readouterr().out
    assert f"{load_project().name}-batch-dev" in out
    assert newest in out and "cron(0 5 * * ? *)" in out
    assert "ScheduledInputKey" in out
    assert writes(before) == []
    names = [s["StackName"] for s in client("cloudformation").describe_stacks()["Stacks"]]
    assert f"{load_project().name}-batch-dev" not in names


def test_no_approved_package_is_refused(ctx, toolchain):
    add_package(toolchain, 1, status="PendingManualApproval")
    with pytest.raises(ReleaseError, match="no Approved model package"):
        commands.batch(ctx, "dev")


def test_a_schedule_the_scheduler_would_reject_stops_before_any_aws_call(ctx, config_dir):
    edit(config_dir, "dev", lambda d: d["batch"].update(schedule_expression="rate(1 hours)"))
    before = len(LOG)
    with pytest.raises(ReleaseError) as raised:
        commands.batch(ctx, "dev")
    assert 'batch.schedule_expression = "rate(1 hours)"' in str(raised.value)
    assert "singular" in str(raised.value)
    assert LOG[before:] == []


def test_with_attributions_the_stack_gets_the_packages_model_data(ctx, toolchain, config_dir, capsys):
    add_package(toolchain, 1)
    newest = add_package(toolchain, 2)
    edit(config_dir, "dev", lambda d: d["batch"].update(attributions=True))
    model_data = client("sagemaker").describe_model_package(ModelPackageName=newest)["InferenceSpecification"][
        "Containers"
    ][0]["ModelDataUrl"]

    assert commands.batch(ctx, "dev", "0123abc") == "DRY-RUN"
    out = capsys.readouterr().out
    assert "ModelDataUrl" in out and model_data in out
