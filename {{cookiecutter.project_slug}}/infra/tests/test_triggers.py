"""The EventBridge triggers: the batch stack's schedule and upload rule, and the monitoring stack's retrain rule.

Event patterns are checked by routing real event shapes through moto's EventBridge (its TestEventPattern is a stub,
its rule matching is real: a rule delivers to an SQS queue only the events it matches). Target parameters are
checked as the StartPipelineExecution request EventBridge makes, validated by botocore's Stubber against the API
model, and against the parameters the pipelines declare.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from infra.tests.test_stacks import ACCOUNT, MONITORING, PROJECT, REGION, aws, deploy, effective_template

ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{PROJECT}-staging-%s"


def alarm_event(alarm: str, state: str = "ALARM") -> dict:
    """A CloudWatch "Alarm State Change" event as EventBridge delivers it (the fields rules match on)."""
    return {
        "Source": "aws.cloudwatch",
        "DetailType": "CloudWatch Alarm State Change",
        "Resources": [ALARM_ARN % alarm],
        "Detail": json.dumps(
            {
                "alarmName": f"{PROJECT}-staging-{alarm}",
                "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2030-01-01T00:00:00.000+0000"},
                "previousState": {"value": "OK" if state == "ALARM" else "ALARM"},
                "configuration": {"metrics": []},
            }
        ),
    }


def upload_event(bucket: str, key: str) -> dict:
    return {
        "Source": "aws.s3",
        "DetailType": "Object Created",
        "Resources": [f"arn:aws:s3:::{bucket}"],
        "Detail": json.dumps(
            {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": 10}, "reason": "PutObject"}
        ),
    }


def resolve(node, alarm_arns: dict[str, str]):
    """The pattern with the alarm GetAtts as the ARNs CloudFormation gives."""
    if isinstance(node, dict):
        if "Fn::GetAtt" in node:
            return alarm_arns[node["Fn::GetAtt"][0]]
        return {k: resolve(v, alarm_arns) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, alarm_arns) for v in node]
    return node


def routed(aws_env, pattern: dict, events: list[dict]) -> list[int]:
    """Indexes of the events moto's EventBridge delivers through a rule with this pattern."""
    events_client, sqs = boto3.client("events", region_name=aws_env), boto3.client("sqs", region_name=aws_env)
    queue = sqs.create_queue(QueueName="routed")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events_client.put_rule(Name="under-test", EventPattern=json.dumps(pattern))
    events_client.put_targets(Rule="under-test", Targets=[{"Id": "q", "Arn": queue_arn}])
    for event in events:
        events_client.put_events(Entries=[{**event, "Time": datetime.now(UTC)}])
    got = []
    for _ in range(len(events) + 1):  # bounded: at most one message per event
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            break
        for message in messages:
            body = json.loads(message["Body"])
            got.append(
                next(
                    i
                    for i, e in enumerate(events)
                    if json.loads(e["Detail"]) == body["detail"] and e["Resources"] == body["resources"]
                )
            )
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return sorted(got)


# ------------------------------------------------------------------------------------------- retrain rule
@pytest.mark.skipif(not MONITORING, reason="monitoring is not included: no alarms, no retrain rule")
def test_the_retrain_rule_is_off_unless_asked():
    off, _ = effective_template("monitoring")
    on, _ = effective_template("monitoring", RetrainOnAlarms="true")
    assert "RetrainRule" not in off["Resources"]
    assert "RetrainRule" in on["Resources"]


@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
def test_the_retrain_rule_matches_only_these_alarms_going_to_alarm(aws_env):
    template, _ = effective_template("monitoring", RetrainOnAlarms="true")
    arns = {"DataDriftAlarm": ALARM_ARN % "data-drift", "ModelQualityAlarm": ALARM_ARN % "model-quality"}
    pattern = resolve(template["Resources"]["RetrainRule"]["Properties"]["EventPattern"], arns)
    events = [
        alarm_event("data-drift"),  # 0 matches
        alarm_event("model-quality"),  # 1 matches
        alarm_event("data-drift", state="OK"),  # back to OK: no retrain
        alarm_event("data-drift", state="INSUFFICIENT_DATA"),
        alarm_event("invocation-5xx-errors"),  # another alarm of the endpoint
        {**alarm_event("data-drift"), "Source": "custom.app"},  # not from CloudWatch
    ]
    assert routed(aws_env, pattern, events) == [0, 1]


@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
@pytest.mark.parametrize("resource", ["RetrainRule", "RetrainSchedule"])
def test_the_rule_and_the_schedule_start_the_retrain_guard_with_valid_parameters(resource):
    template, values = effective_template(
        "monitoring", RetrainOnAlarms="true", RetrainScheduleExpression="cron(0 6 ? * MON *)"
    )
    properties = template["Resources"][resource]["Properties"]
    target = properties["Target"] if resource == "RetrainSchedule" else properties["Targets"][0]
    assert target["Arn"]["Fn::Sub"].endswith(":pipeline/${RetrainGuardPipeline}")
    parameters = target["SageMakerPipelineParameters"]["PipelineParameterList"]
    assert parameters == [{"Name": "Trigger", "Value": "alarm" if resource == "RetrainRule" else "schedule"}]
    guard = guard_definition(template, values)
    assert_valid_start({"PipelineName": f"{PROJECT}-retrain-guard-staging", "PipelineParameters": parameters})
    (declared,) = guard["Parameters"]
    assert declared["Name"] == "Trigger" and parameters[0]["Value"] in declared["EnumValues"]


@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
@pytest.mark.parametrize(
    ("on_alarms", "schedule", "expected"),
    [
        ("false", "", set()),
        ("true", "", {"RetrainGuardPipeline", "RetrainRule"}),
        ("false", "rate(7 days)", {"RetrainGuardPipeline", "RetrainSchedule"}),
        ("true", "rate(7 days)", {"RetrainGuardPipeline", "RetrainRule", "RetrainSchedule"}),
    ],
)
def test_the_guard_exists_only_when_something_retrains(on_alarms, schedule, expected):
    template, _ = effective_template("monitoring", RetrainOnAlarms=on_alarms, RetrainScheduleExpression=schedule)
    assert {n for n in template["Resources"] if n.startswith("Retrain")} == expected
    if schedule:
        properties = template["Resources"]["RetrainSchedule"]["Properties"]
        assert properties["ScheduleExpression"] == {"Ref": "RetrainScheduleExpression"}


@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
@pytest.mark.parametrize("network", ["public", "vpc"])
def test_the_guard_runs_retrain_guard_with_the_interval_and_the_training_pipeline(network):
    import botocore.session
    from botocore.validate import validate_parameters

    from monitoring import retrain_guard

    overrides = {"SubnetIds": "subnet-1,subnet-2", "SecurityGroupIds": "sg-1"} if network == "vpc" else {}
    overrides.update(RetrainOnAlarms="true", RetrainMinIntervalHours="12")
    template, values = effective_template("monitoring", **overrides)
    (step,) = guard_definition(template, values)["Steps"]
    arguments = json.loads(json.dumps(step["Arguments"]).replace('{"Get": "Parameters.Trigger"}', '"alarm"'))
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateProcessingJob")
    validate_parameters({"ProcessingJobName": "guard-run", **arguments}, shape.input_shape)
    app = arguments["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python", "-m", "monitoring.retrain_guard"]
    parsed = retrain_guard.build_parser().parse_args(app["ContainerArguments"])
    assert parsed.training_pipeline == values["TrainingPipelineName"] == f"{PROJECT}-training"
    assert retrain_guard.check_interval(parsed.min_interval_hours) == 12
    assert parsed.trigger == "alarm" and parsed.region == REGION
    assert ("NetworkConfig" in arguments) == (network == "vpc")


@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
def test_the_interval_parameter_has_the_config_range():
    from infra import environment_checks
    from infra.tests.test_stacks import load
    from monitoring import retrain_guard

    spec = load("monitoring")["Parameters"]["RetrainMinIntervalHours"]
    assert (spec["MinValue"], spec["MaxValue"]) == (retrain_guard.MIN_INTERVAL_HOURS, retrain_guard.MAX_INTERVAL_HOURS)
    assert retrain_guard.MAX_INTERVAL_HOURS == environment_checks.MAX_INTERVAL_HOURS


@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
def test_the_guard_may_list_and_start_only_the_training_pipeline():
    from infra.tests.test_stacks import load

    role = load("toolchain")["Resources"]["SageMakerExecutionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    listing = [s for s in statements if "sagemaker:ListPipelineExecutions" in json.dumps(s["Action"])]
    arn = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:pipeline/" + PROJECT + "-training"
    assert [s["Resource"] for s in listing] == [{"Fn::Sub": arn}]


@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_retrain_rule_deploys_to_moto(aws):
    deploy(aws, "monitoring", RetrainOnAlarms="true", RetrainScheduleExpression="rate(7 days)")

    rule = aws("events").describe_rule(Name=f"{PROJECT}-retrain-staging")
    assert json.loads(rule["EventPattern"])["detail"] == {"state": {"value": ["ALARM"]}}
    (target,) = aws("events").list_targets_by_rule(Rule=f"{PROJECT}-retrain-staging")["Targets"]
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [{"Name": "Trigger", "Value": "alarm"}]
    # moto's CloudFormation has neither AWS::SageMaker::Pipeline nor AWS::Scheduler::Schedule: the guard pipeline
    # and the schedule are checked above (definition vs CreateProcessingJob, target vs StartPipelineExecution).


def guard_definition(template: dict, values: dict) -> dict:
    """The guard pipeline's definition JSON with the stack's parameters substituted."""
    from infra.tests.test_stacks import pipeline_definition

    return pipeline_definition(template, "RetrainGuardPipeline", values)


# ------------------------------------------------------------------------------------------- batch stack
def test_the_batch_triggers_are_options():
    none, _ = effective_template("batch")
    both, _ = effective_template("batch", ScheduleExpression="cron(0 5 * * ? *)", UploadPrefix="b/incoming/")
    assert set(none["Resources"]) == set()
    assert set(both["Resources"]) == {"BatchSchedule", "UploadRule"}


def test_the_upload_rule_matches_objects_under_the_prefix_of_the_bucket(aws_env):
    template, values = effective_template("batch", UploadPrefix="cc/batch/staging/incoming/")
    pattern = template["Resources"]["UploadRule"]["Properties"]["EventPattern"]
    pattern = json.loads(json.dumps(pattern).replace('{"Ref": "ArtifactBucket"}', json.dumps(values["ArtifactBucket"])))
    pattern = json.loads(json.dumps(pattern).replace('{"Ref": "UploadPrefix"}', json.dumps(values["UploadPrefix"])))
    bucket = values["ArtifactBucket"]
    events = [
        upload_event(bucket, "cc/batch/staging/incoming/2030-01-01.csv"),  # 0
        upload_event(bucket, "cc/batch/staging/output/x.csv"),  # our own outputs never start a run
        upload_event("other-bucket", "cc/batch/staging/incoming/a.csv"),
        {**upload_event(bucket, "cc/batch/staging/incoming/b.csv"), "DetailType": "Object Deleted"},
    ]
    assert routed(aws_env, pattern, events) == [0]


@pytest.mark.parametrize("resource", ["BatchSchedule", "UploadRule"])
def test_the_batch_targets_are_valid_starts_of_the_batch_pipeline(resource):
    from pipeline import batch_pipeline as bp

    template, values = effective_template("batch", ScheduleExpression="rate(1 day)", UploadPrefix="b/in/")
    target = template["Resources"][resource]["Properties"]
    target = target["Target"] if resource == "BatchSchedule" else target["Targets"][0]
    event = {"detail": {"object": {"key": "b/in/today.csv"}}}

    def value(v):
        if isinstance(v, dict):
            return values[v["Ref"]]
        if v.startswith("$."):
            node = event
            for part in v[2:].split("."):
                node = node[part]
            return node
        return v

    parameters = [
        {"Name": p["Name"], "Value": value(p["Value"])}
        for p in target["SageMakerPipelineParameters"]["PipelineParameterList"]
    ]
    assert_valid_start({"PipelineName": bp.batch_pipeline_name(PROJECT, "staging"), "PipelineParameters": parameters})
    assert {p["Name"] for p in parameters} == {"ModelPackageArn", "InputBucket", "InputKey", "ImageTag", "StartedBy"}
    by_name = {p["Name"]: p["Value"] for p in parameters}
    assert by_name["InputKey"] == ("b/in/today.csv" if resource == "UploadRule" else values["ScheduledInputKey"])
    assert target["Arn"]["Fn::Sub"].endswith(":pipeline/${ProjectName}-batch-${Environment}")


@pytest.mark.parametrize("model_data", ["", "s3://artifacts/train/job-2/output/model.tar.gz"])
def test_the_batch_targets_pass_the_model_data_only_when_set(model_data):
    from pipeline import batch_pipeline as bp

    template, values = effective_template(
        "batch", ScheduleExpression="rate(1 day)", UploadPrefix="b/in/", ModelDataUrl=model_data
    )
    for target in (
        template["Resources"]["BatchSchedule"]["Properties"]["Target"],
        template["Resources"]["UploadRule"]["Properties"]["Targets"][0],
    ):
        listed = target["SageMakerPipelineParameters"]["PipelineParameterList"]
        passed = [p for p in listed if p["Name"] == "ModelDataUrl"]
        assert passed == ([{"Name": "ModelDataUrl", "Value": {"Ref": "ModelDataUrl"}}] if model_data else [])
        parameters = [
            {"Name": p["Name"], "Value": values[p["Value"]["Ref"]] if isinstance(p["Value"], dict) else p["Value"]}
            for p in listed
        ]
        assert_valid_start(
            {"PipelineName": bp.batch_pipeline_name(PROJECT, "staging"), "PipelineParameters": parameters}
        )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_batch_stack_deploys_to_moto(aws):
    deploy(aws, "batch", UploadPrefix=f"{PROJECT}/batch/staging/incoming/")

    rule = aws("events").describe_rule(Name=f"{PROJECT}-batch-upload-staging")
    assert json.loads(rule["EventPattern"])["detail"]["object"]["key"] == [
        {"prefix": f"{PROJECT}/batch/staging/incoming/"}
    ]
    (target,) = aws("events").list_targets_by_rule(Rule=f"{PROJECT}-batch-upload-staging")["Targets"]
    assert target["Arn"].endswith(f":pipeline/{PROJECT}-batch-staging")
    names = [p["Name"] for p in target["SageMakerPipelineParameters"]["PipelineParameterList"]]
    assert names == ["ModelPackageArn", "InputBucket", "InputKey", "ImageTag", "StartedBy"]


# ------------------------------------------------------------------------------------------- helpers
def assert_valid_start(request: dict) -> None:
    """Stubber raises when the request breaks the API model (names, lengths, types); the call must go through."""
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{request['PipelineName']}/execution/abc123"
    with Stubber(client) as stub:
        stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": arn}, request)
        assert client.start_pipeline_execution(**request)["PipelineExecutionArn"] == arn


def pipeline_parameter_names(build_parser, definition_json, resolve_settings) -> set[str]:
    args = build_parser().parse_args(["definition", "--env", "dev", "--region", REGION, "--image-tag", "t"])
    return {p["Name"] for p in definition_json(resolve_settings(args))["Parameters"]}


__all__ = ["aws"]  # the moto client fixture of test_stacks
