"""monitor: the baselines in S3 and the monitoring stack, against moto; the parameters against monitoring.yaml.

The repository may have been generated without monitoring, so these tests bring their own monitoring/ folder
(tiny baseline files) and, when infra/lib/monitoring.yaml is absent, the parameter contract of the stack.
"""

from __future__ import annotations

import json
import shutil

import pytest
from botocore.stub import Stubber

from release import commands, config, release, stack
from release.config import MonitoringInputs, load_environment, load_project, monitoring_stack_parameters
from release.errors import ReleaseError
from release.output import Output
from release.template import check_parameters, load_template
from release.tests.conftest import ACCOUNT, REGION, add_package, client, edit, push_image

BASELINES = {
    "statistics.json": {"version": 0.0, "dataset": {"item_count": 3}, "features": []},
    "constraints.json": {"version": 0.0, "features": [], "monitoring_config": {}},
    "schema.json": {"features": [], "target": "label"},
    "output_statistics.json": {"version": 0.0, "features": []},
}
INPUTS = MonitoringInputs(
    execution_role_arn="arn:aws:iam::123456789012:role/churn-sagemaker",
    pipeline_starter_role_arn="arn:aws:iam::123456789012:role/churn-pipeline-starter",
    kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    monitoring_image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/churn/monitoring:0123abc",
    capture_s3_uri="s3://churn-artifacts/churn/data-capture/staging/churn-staging/",
    reports_s3_uri="s3://churn-artifacts/churn/monitoring/staging/reports",
    baseline_s3_uri="s3://churn-artifacts/churn/monitoring/staging/baselines",
)


@pytest.fixture
def monitoring_dir(tmp_path, monkeypatch, moto_monitoring_template):
    """A monitoring/ folder with baselines, as make pipeline leaves it; the stack template is present."""
    folder = tmp_path / "monitoring"
    (folder / "baselines").mkdir(parents=True)
    for name, content in BASELINES.items():
        (folder / "baselines" / name).write_text(json.dumps(content), encoding="utf-8")
    monkeypatch.setattr(config, "MONITORING_DIR", folder)
    if not config.MONITORING_TEMPLATE.is_file():  # generated without monitoring: stand in for the template
        monkeypatch.setattr(config, "MONITORING_TEMPLATE", moto_monitoring_template)
    return folder


@pytest.fixture
def ctx(toolchain, moto_template, moto_monitoring_template, monitoring_dir, monkeypatch):
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.delenv("CODEBUILD_RESOLVED_SOURCE_VERSION", raising=False)
    for tag in ("0123abc", "4567def"):  # monitoring images the build stage pushed
        push_image(toolchain["monitoring-image-uri"], tag, image_format=None)
    push_image(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/other/monitoring", "v2", image_format=None)
    return commands.Context(
        project=load_project(), template=moto_template, monitoring_template=moto_monitoring_template, out=Output()
    )


def stack_of(kind, environment):
    found = client("cloudformation").describe_stacks(StackName=f"{load_project().name}-{kind}-{environment}")
    found = found["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in found["Parameters"]}, found


def baseline_objects(toolchain, environment="staging"):
    s3 = client("s3")
    prefix = f"{load_project().name}/monitoring/{environment}/baselines/"
    listing = s3.list_objects_v2(Bucket=toolchain["artifact-bucket"], Prefix=prefix).get("Contents", [])
    return {
        item["Key"].removeprefix(prefix): json.loads(
            s3.get_object(Bucket=toolchain["artifact-bucket"], Key=item["Key"])["Body"].read()
        )
        for item in listing
    }


# ------------------------------------------------------------------------------------------ without monitoring
def test_a_repository_without_monitoring_exits_2_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config, "MONITORING_DIR", tmp_path / "monitoring")
    assert release.main(["monitor", "--env", "staging"]) == 2
    out = capsys.readouterr().out
    assert "this repository was generated without monitoring" in out and "what to do:" in out


def test_deploy_prints_no_monitor_hint_without_monitoring(ctx, toolchain, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config, "MONITORING_DIR", tmp_path / "absent")
    add_package(toolchain, 1)
    assert commands.deploy(ctx, "staging") == "CREATE_COMPLETE"
    assert "monitor-deploy" not in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------- moto
def test_deploy_then_monitor_creates_the_stack_on_the_endpoint_capture(ctx, toolchain, capsys):
    add_package(toolchain, 1)
    assert commands.deploy(ctx, "staging") == "CREATE_COMPLETE"
    assert "make monitor-deploy ENV=staging" in capsys.readouterr().out

    assert commands.monitor(ctx, "staging", tag="0123abc") == "CREATE_COMPLETE"
    endpoint, _ = stack_of("endpoint", "staging")
    monitoring, found = stack_of("monitoring", "staging")
    env = load_environment("staging", monitoring=True)
    bucket, project = toolchain["artifact-bucket"], load_project().name
    assert monitoring["CaptureS3Uri"] == f"{endpoint['DataCaptureS3Uri']}/{env.endpoint_name}/"
    assert monitoring["EndpointName"] == endpoint["EndpointName"] == env.endpoint_name
    assert monitoring["MonitoringImageUri"] == f"{toolchain['monitoring-image-uri']}:0123abc"
    assert monitoring["BaselineS3Uri"] == f"s3://{bucket}/{project}/monitoring/staging/baselines"
    assert monitoring["ReportsS3Uri"] == f"s3://{bucket}/{project}/monitoring/staging/reports"
    assert (monitoring["ScheduleExpression"], monitoring["CaptureWindowHours"]) == ("rate(1 hour)", "1")
    assert monitoring["ExecutionRoleArn"] == toolchain["sagemaker-execution-role-arn"]
    assert monitoring["PipelineStarterRoleArn"] == toolchain["pipeline-starter-role-arn"]
    assert monitoring["KmsKeyArn"] == toolchain["kms-key-arn"]
    assert {"Key": "environment", "Value": "staging"} in found["Tags"]
    assert baseline_objects(toolchain) == BASELINES
    out = capsys.readouterr().out
    assert "uploaded statistics.json" in out and "creating change set" in out and "done: stack" in out
    assert "note:" not in out  # the endpoint captures where the drift job reads


def test_monitor_again_is_a_no_op(ctx, toolchain, capsys):
    commands.monitor(ctx, "staging", tag="0123abc")
    assert commands.monitor(ctx, "staging", tag="0123abc") == "UNCHANGED"
    out = capsys.readouterr().out.split("nothing to upload")
    assert len(out) == 2 and "nothing to do" in out[1] and "uploaded" not in out[1]


def test_a_new_image_tag_updates_the_stack(ctx, toolchain, monkeypatch):
    commands.monitor(ctx, "staging", tag="0123abc")
    monkeypatch.setenv("GITHUB_SHA", "4567def")
    assert commands.monitor(ctx, "staging") == "UPDATE_COMPLETE"
    assert stack_of("monitoring", "staging")[0]["MonitoringImageUri"].endswith(":4567def")


def test_new_baselines_replace_the_old_ones_and_leftovers_go(ctx, toolchain, monitoring_dir, capsys):
    commands.monitor(ctx, "staging", tag="0123abc")
    statistics = {**BASELINES["statistics.json"], "dataset": {"item_count": 4}}
    (monitoring_dir / "baselines" / "statistics.json").write_text(json.dumps(statistics))
    (monitoring_dir / "baselines" / "output_statistics.json").unlink()
    capsys.readouterr()
    assert commands.monitor(ctx, "staging", tag="0123abc") == "BASELINES-UPDATED"
    objects = baseline_objects(toolchain)
    assert objects["statistics.json"] == statistics and "output_statistics.json" not in objects
    out = capsys.readouterr().out
    assert "uploaded statistics.json" in out and "deleted" in out and "constraints.json, schema.json unchanged" in out
    assert "the next drift run reads the new baselines" in out


def test_dry_run_changes_nothing(ctx, toolchain, capsys):
    ctx.dry_run = True
    assert commands.monitor(ctx, "staging", tag="0123abc") == "DRY-RUN"
    out = capsys.readouterr().out
    assert "would call s3.put_object" in out and "would call cloudformation.create_change_set" in out
    assert '"ChangeSetType": "CREATE"' in out and "note: the endpoint stack" in out
    assert baseline_objects(toolchain) == {}
    assert stack.read_stack(client("cloudformation"), f"{load_project().name}-monitoring-staging") is None


def test_cli_dry_run(ctx, toolchain, moto_monitoring_template, capsys):
    argv = ["monitor", "--env", "prod", "--dry-run", "--image-tag", "0123abc", "--template"]
    assert release.main([*argv, str(moto_monitoring_template)]) == 0
    assert f"{load_project().name}-monitoring-prod" in capsys.readouterr().out


def test_missing_baselines_say_how_to_make_them(ctx, monitoring_dir):
    (monitoring_dir / "baselines" / "schema.json").unlink()
    with pytest.raises(ReleaseError, match=r"lacks schema\.json") as error:
        commands.monitor(ctx, "staging", tag="0123abc")
    assert "make pipeline" in error.value.fix


def test_no_baselines_folder(ctx, monitoring_dir):
    shutil.rmtree(monitoring_dir / "baselines")
    with pytest.raises(ReleaseError, match="baselines/ is missing"):
        commands.monitor(ctx, "staging", tag="0123abc")


def test_a_baseline_that_is_not_json_is_refused(ctx, monitoring_dir, toolchain):
    (monitoring_dir / "baselines" / "constraints.json").write_text("{")
    with pytest.raises(ReleaseError, match=r"constraints\.json is not valid JSON"):
        commands.monitor(ctx, "staging", tag="0123abc")
    assert baseline_objects(toolchain) == {}


def test_missing_monitoring_image_setting_names_the_parameter_and_the_flag(ctx, project):
    client("ssm").delete_parameter(Name=f"/{project.name}/monitoring-image-uri")
    with pytest.raises(ReleaseError, match=f"/{project.name}/monitoring-image-uri \\(or the flag --monitoring-image"):
        commands.monitor(ctx, "staging", tag="0123abc")


def test_an_explicit_image_is_used_as_is(ctx, toolchain):
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/other/monitoring:v2"
    commands.monitor(ctx, "staging", image=image)
    assert stack_of("monitoring", "staging")[0]["MonitoringImageUri"] == image


def test_capture_off_is_refused(ctx, config_dir):
    edit(config_dir, "staging", lambda d: d["endpoint"]["data_capture"].update(enabled=False))
    with pytest.raises(ReleaseError, match=r"data_capture\.enabled is false"):
        commands.monitor(ctx, "staging", tag="0123abc")


def test_a_capture_elsewhere_is_noted(ctx, toolchain, config_dir, capsys):
    add_package(toolchain, 1)
    edit(config_dir, "staging", lambda d: d["endpoint"]["data_capture"].update(enabled=False))
    commands.deploy(ctx, "staging")
    edit(config_dir, "staging", lambda d: d["endpoint"]["data_capture"].update(enabled=True))
    commands.monitor(ctx, "staging", tag="0123abc")
    assert "note: the endpoint stack captures to nowhere (DataCaptureEnabled=false)" in capsys.readouterr().out


def test_monitoring_block_mistakes_are_named(ctx, config_dir):
    def change(d):
        d["monitoring"].update(instance_count=2, alarm_email="ops-at-example", schedule_expression="hourly")

    edit(config_dir, "prod", change)
    with pytest.raises(ReleaseError, match="3 problem") as error:
        commands.monitor(ctx, "prod", tag="0123abc")
    message = str(error.value)
    assert "monitoring.instance_count = 2 is not allowed: use a whole number from 1 to 1" in message
    assert 'monitoring.alarm_email = "ops-at-example"' in message
    assert 'monitoring.schedule_expression = "hourly"' in message


def test_the_monitoring_block_is_not_required_by_deploy(config_dir):
    edit(config_dir, "dev", lambda d: d.pop("monitoring"))
    assert load_environment("dev").name == "dev"
    with pytest.raises(ReleaseError, match=r"monitoring\.schedule_expression is missing"):
        load_environment("dev", monitoring=True)


def test_a_stack_left_broken_is_refused_with_monitoring_words(ctx, toolchain):
    from moto.backends import get_backend

    commands.monitor(ctx, "staging", tag="0123abc")
    for found in get_backend("cloudformation")[ACCOUNT][REGION].stacks.values():
        found.status = "ROLLBACK_FAILED"
    with pytest.raises(ReleaseError, match="it holds no drift schedule and no alarms") as error:
        commands.monitor(ctx, "staging", tag="4567def")
    assert "wait stack-delete-complete" in error.value.fix


def test_a_failed_first_monitoring_stack_is_deleted_and_created_again(ctx, toolchain, capsys):
    from moto.backends import get_backend

    commands.monitor(ctx, "staging", tag="0123abc")
    for found in get_backend("cloudformation")[ACCOUNT][REGION].stacks.values():
        found.status = "ROLLBACK_COMPLETE"
    assert commands.monitor(ctx, "staging", tag="4567def") == "CREATE_COMPLETE"
    assert stack_of("monitoring", "staging")[0]["MonitoringImageUri"].endswith(":4567def")
    out = capsys.readouterr().out
    assert "is ROLLBACK_COMPLETE: its creation failed" in out and "deleted" in out


# ------------------------------------------------------------------------------------ the monitoring image
def test_a_monitoring_image_no_build_pushed_is_refused_before_any_write(ctx, toolchain):
    with pytest.raises(ReleaseError, match=r"monitoring image .*:feedbee does not exist in ECR") as error:
        commands.monitor(ctx, "staging", tag="feedbee")
    assert "aws ecr describe-images --repository-name" in error.value.fix
    assert baseline_objects(toolchain) == {}


def test_the_default_tag_is_the_build_of_the_deployed_package(ctx, toolchain, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_SHA", "4567def")  # the current commit: not what the endpoint runs
    add_package(toolchain, 7)  # image ...-inference:c7, built with the monitoring image ...:c7
    commands.deploy(ctx, "staging")
    with pytest.raises(ReleaseError, match=r"monitoring:c7 does not exist in ECR"):
        commands.monitor(ctx, "staging")
    push_image(toolchain["monitoring-image-uri"], "c7", image_format=None)
    assert commands.monitor(ctx, "staging") == "CREATE_COMPLETE"
    assert stack_of("monitoring", "staging")[0]["MonitoringImageUri"] == f"{toolchain['monitoring-image-uri']}:c7"
    assert "monitoring image tag c7: the build of the model package staging serves" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- capture window
@pytest.mark.parametrize(
    ("schedule", "hours"),
    [("rate(1 hour)", 1), ("rate(6 hours)", 6), ("rate(30 minutes)", 1), ("rate(90 minutes)", 2), ("rate(1 day)", 24)],
)
def test_the_capture_window_follows_a_rate_schedule(config_dir, schedule, hours):
    edit(config_dir, "staging", lambda d: d["monitoring"].update(schedule_expression=schedule))
    env = load_environment("staging", monitoring=True)
    assert monitoring_stack_parameters(load_project(), env, INPUTS)["CaptureWindowHours"] == str(hours)


def test_a_cron_schedule_needs_the_capture_window(config_dir):
    edit(config_dir, "staging", lambda d: d["monitoring"].update(schedule_expression="cron(0 6 * * ? *)"))
    env = load_environment("staging", monitoring=True)
    with pytest.raises(ReleaseError, match="does not say how many hours") as error:
        monitoring_stack_parameters(load_project(), env, INPUTS)
    assert "monitoring.capture_window_hours" in error.value.fix
    edit(config_dir, "staging", lambda d: d["monitoring"].update(capture_window_hours=24))
    env = load_environment("staging", monitoring=True)
    assert monitoring_stack_parameters(load_project(), env, INPUTS)["CaptureWindowHours"] == "24"


def test_a_rate_beyond_the_window_limit_is_refused(config_dir):
    edit(config_dir, "staging", lambda d: d["monitoring"].update(schedule_expression="rate(40 days)"))
    env = load_environment("staging", monitoring=True)
    with pytest.raises(ReleaseError, match="960 hours of capture; allowed are 1 to 744"):
        monitoring_stack_parameters(load_project(), env, INPUTS)


def test_a_bad_capture_window_is_named(config_dir):
    edit(config_dir, "staging", lambda d: d["monitoring"].update(capture_window_hours=0))
    with pytest.raises(ReleaseError, match=r"monitoring\.capture_window_hours = 0 is not allowed"):
        load_environment("staging", monitoring=True)


# --------------------------------------------------------------------------- the real infra/lib/monitoring.yaml
@pytest.mark.skipif(not config.MONITORING_TEMPLATE.is_file(), reason="generated without monitoring")
@pytest.mark.parametrize("environment", config.ENVIRONMENTS)
def test_monitoring_template_accepts_the_parameters_of_every_environment(environment):
    _, document = load_template(config.MONITORING_TEMPLATE)
    parameters = monitoring_stack_parameters(load_project(), load_environment(environment, monitoring=True), INPUTS)
    check_parameters(parameters, document, "infra/lib/monitoring.yaml", "monitoring")  # patterns, values, bounds
    required = {name for name, spec in document["Parameters"].items() if "Default" not in spec}
    assert required <= set(parameters)
    assert set(parameters) <= set(document["Parameters"])
    assert all(isinstance(value, str) for value in parameters.values())


@pytest.mark.skipif(not config.MONITORING_TEMPLATE.is_file(), reason="generated without monitoring")
def test_the_contract_names_the_template_parameters_the_project_sets():
    from release.tests.conftest import MONITORING_CONTRACT_PARAMETERS

    _, document = load_template(config.MONITORING_TEMPLATE)
    parameters = monitoring_stack_parameters(load_project(), load_environment("prod", monitoring=True), INPUTS)
    assert sorted(parameters) == sorted(MONITORING_CONTRACT_PARAMETERS)
    assert set(MONITORING_CONTRACT_PARAMETERS) <= set(document["Parameters"])


def test_the_monitoring_template_check_names_the_stack(ctx):
    parameters = monitoring_stack_parameters(load_project(), load_environment("staging", monitoring=True), INPUTS)
    document = {"Parameters": {"CaptureS3Uri": {"Type": "String", "AllowedPattern": "^s3://.+$"}}}
    with pytest.raises(ReleaseError, match="the monitoring stack would reject these parameters"):
        check_parameters({**parameters, "CaptureS3Uri": "bucket/x"}, document, "monitoring.yaml", "monitoring")


# ------------------------------------------------------------------------- what is left after a failure
def test_a_failed_monitoring_update_says_the_old_monitoring_runs(aws):
    cloudformation = client("cloudformation")
    stubber = Stubber(cloudformation)
    stubber.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": "s"})
    stubber.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": "s", "StackStatus": "UPDATE_ROLLBACK_COMPLETE", "CreationTime": "2026-01-01"}]},
        {"StackName": "s"},
    )
    with stubber, pytest.raises(ReleaseError, match="the drift job, its schedule and the alarms run as before"):
        stack.wait_for_stack(cloudformation, Output(), "s", set(), 60, stack.MONITORING)
