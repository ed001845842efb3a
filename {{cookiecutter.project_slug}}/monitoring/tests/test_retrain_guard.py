"""The retrain guard's decision, against SageMaker's API model (botocore Stubber validates every request).

moto 5.2.5 ignores ListPipelineExecutions' CreatedAfter and StartPipelineExecution's ClientRequestToken, the two
things the guard relies on, so the calls are stubbed: each test states the exact requests SageMaker must receive.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from monitoring import retrain_guard as guard

PIPELINE = "customer-churn-training"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:pipeline/{PIPELINE}/execution/%s"
NOW = datetime(2030, 3, 14, 15, 9, 26, tzinfo=UTC)


@pytest.fixture
def sagemaker():
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def expect_list(stub, now: datetime, hours: int, summaries: list[dict]) -> None:
    stub.add_response(
        "list_pipeline_executions",
        {"PipelineExecutionSummaries": summaries},
        {
            "PipelineName": PIPELINE,
            "CreatedAfter": now - timedelta(hours=hours),
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )


def test_no_recent_run_starts_training_once_needing_approval(sagemaker):
    client, stub = sagemaker
    expect_list(stub, NOW, 24, [])
    window = datetime(2030, 3, 14, tzinfo=UTC)  # 24 h windows from the epoch start at midnight UTC
    stub.add_response(
        "start_pipeline_execution",
        {"PipelineExecutionArn": ARN % "new1"},
        {
            "PipelineName": PIPELINE,
            "PipelineExecutionDisplayName": "retrain-20300314-0000",
            "PipelineExecutionDescription": stub_any(),
            "PipelineParameters": [
                {"Name": "ModelApprovalStatus", "Value": "PendingManualApproval"},
                {"Name": "InputDataVersion", "Value": "retrain-20300314T0000Z"},
            ],
            "ClientRequestToken": guard.request_token(PIPELINE, 24, window),
        },
    )

    decision = guard.decide(client, PIPELINE, 24, NOW, trigger="alarm")

    assert decision.started and decision.started_execution == ARN % "new1"
    assert decision.window_start == window.isoformat()
    assert 32 <= len(decision.client_request_token) <= 128


def test_a_run_inside_the_interval_blocks_the_start(sagemaker):
    client, stub = sagemaker
    expect_list(
        stub,
        NOW,
        6,
        [
            {
                "PipelineExecutionArn": ARN % "old1",
                "StartTime": NOW - timedelta(hours=5),
                "PipelineExecutionStatus": "Failed",
            }
        ],
    )

    decision = guard.decide(client, PIPELINE, 6, NOW, trigger="schedule")  # a start call would break the Stubber

    assert not decision.started and decision.started_execution is None
    assert decision.recent_execution == ARN % "old1"
    assert "Failed" in decision.reason


def test_two_guards_in_one_window_send_the_same_request(sagemaker):
    client, stub = sagemaker
    sent = []
    for now in (NOW, NOW + timedelta(minutes=40)):  # same 6 h window (12:00-18:00 UTC), e.g. both alarms at once
        expect_list(stub, now, 6, [])
        stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": ARN % "same"}, stub_any_request())
    original = client.start_pipeline_execution

    def recording(**request):
        sent.append(request)
        return original(**request)

    client.start_pipeline_execution = recording
    first = guard.decide(client, PIPELINE, 6, NOW, trigger="alarm")
    second = guard.decide(client, PIPELINE, 6, NOW + timedelta(minutes=40), trigger="schedule")

    assert first.client_request_token == second.client_request_token
    assert sent[0] == sent[1]  # identical requests: SageMaker starts one execution for the token
    next_window = guard.start_request(PIPELINE, 6, guard.window_start(NOW + timedelta(hours=3), 6))
    assert next_window["ClientRequestToken"] != first.client_request_token


def test_windows_cut_utc_time_into_interval_slices():
    assert guard.window_start(NOW, 1) == datetime(2030, 3, 14, 15, tzinfo=UTC)
    assert guard.window_start(NOW, 6) == datetime(2030, 3, 14, 12, tzinfo=UTC)
    assert guard.window_start(NOW.astimezone(timezone_plus(5)), 6) == datetime(2030, 3, 14, 12, tzinfo=UTC)


@pytest.mark.parametrize("value", ["0", "-3", "721", "1.5", "soon", ""])
def test_a_bad_interval_is_refused_naming_the_field(value, capsys):
    code = guard.main(["--training-pipeline", PIPELINE, "--min-interval-hours", value], sagemaker_client=object())

    err = capsys.readouterr().err
    assert code == 2
    assert "--min-interval-hours" in err and "retraining.min_interval_hours" in err
    assert repr(value) in err or value.lstrip("-") in err


def test_main_logs_and_writes_the_decision(sagemaker, tmp_path, caplog):
    client, stub = sagemaker
    expect_list(stub, NOW, 24, [])
    stub.add_response("start_pipeline_execution", {"PipelineExecutionArn": ARN % "new2"}, stub_any_request())
    out = tmp_path / "decision.json"

    with caplog.at_level("INFO", logger="retrain_guard"):
        code = guard.main(
            ["--training-pipeline", PIPELINE, "--min-interval-hours", "24", "--trigger", "alarm", "--output", str(out)],
            sagemaker_client=client,
            now=NOW,
        )

    assert code == 0
    assert json.loads(out.read_text())["started_execution"] == ARN % "new2"
    assert "started training" in caplog.text and "client_request_token" in caplog.text


def test_the_range_matches_the_config_check():
    from infra import environment_checks

    assert guard.MAX_INTERVAL_HOURS == environment_checks.MAX_INTERVAL_HOURS


# ------------------------------------------------------------------------------------------------ helpers
def stub_any():
    from botocore.stub import ANY

    return ANY


def stub_any_request() -> dict:
    """Every parameter of a guard's start present (the Stubber still validates the values against the model)."""
    from botocore.stub import ANY

    keys = ("PipelineName", "PipelineExecutionDisplayName", "PipelineExecutionDescription", "PipelineParameters")
    return {**dict.fromkeys(keys, ANY), "ClientRequestToken": ANY}


def timezone_plus(hours: int):
    from datetime import timezone

    return timezone(timedelta(hours=hours))
