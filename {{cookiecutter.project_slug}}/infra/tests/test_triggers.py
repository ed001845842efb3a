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
def test_the_retrain_target_is_a_valid_start_of_the_training_pipeline_needing_approval():
    from pipeline import sagemaker_pipeline as sp

    template, values = effective_template("monitoring", RetrainOnAlarms="true")
    (target,) = template["Resources"]["RetrainRule"]["Properties"]["Targets"]
    assert target["Arn"]["Fn::Sub"].endswith(":pipeline/${TrainingPipelineName}")
    assert values["TrainingPipelineName"] == f"{PROJECT}-training"
    parameters = target["SageMakerPipelineParameters"]["PipelineParameterList"]
    assert {"Name": "ModelApprovalStatus", "Value": "PendingManualApproval"} in parameters
    event = {"id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718"}
    request = {
        "PipelineName": values["TrainingPipelineName"],
        "PipelineParameters": [
            {"Name": p["Name"], "Value": event[p["Value"][2:]] if p["Value"].startswith("$.") else p["Value"]}
            for p in parameters
        ],
    }
    assert_valid_start(request)
    declared = pipeline_parameter_names(sp.build_parser, sp.definition_json, sp.resolve_settings)
    assert {p["Name"] for p in parameters} <= declared


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
