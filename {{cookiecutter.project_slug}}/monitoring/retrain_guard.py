"""The retrain guard: start the training pipeline for an alarm or a schedule, at most once per minimum interval.

    python -m monitoring.retrain_guard --training-pipeline <project>-training --min-interval-hours 24 \\
        [--trigger alarm|schedule|manual] [--region us-east-1] [--output decision.json]

The monitoring stack (infra/lib/monitoring.yaml) runs it as the one step of the retrain-guard pipeline, which the
retrain rule (drift or model-quality alarm -> ALARM) and the retrain schedule start. An alarm that flaps starts the
guard each time; the guard starts training only when no execution of the training pipeline - whoever started it,
whatever its status - was created in the last --min-interval-hours hours.

Two guards running at once (an alarm and the schedule, or both alarms) send the same StartPipelineExecution
request: the ClientRequestToken, display name and InputDataVersion derive from the interval window (UTC time cut
into min-interval-hours slices from the epoch), and SageMaker starts one execution per token. The run it starts
registers its model PendingManualApproval (passed explicitly) after the gates of model/config/baseline.json, as
every training run does.

Exit codes: 0 decided (started or skipped, logged either way), 2 bad arguments, 1 an AWS call failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger("retrain_guard")


class GuardUsageError(ValueError):
    """An argument the guard cannot work with; the message names the field, the value and the fix."""


# The range infra/environment_checks.py allows for retraining.min_interval_hours (infra/tests check they agree).
MIN_INTERVAL_HOURS, MAX_INTERVAL_HOURS = 1, 720
APPROVAL_STATUS = "PendingManualApproval"
TRIGGERS = ("alarm", "schedule", "manual")
INTERVAL_FIELD = "--min-interval-hours (retraining.min_interval_hours in infra/config/<env>.json)"


@dataclass(frozen=True)
class Decision:
    started: bool
    reason: str
    training_pipeline: str
    trigger: str
    min_interval_hours: int
    window_start: str  # ISO time of the interval window the request belongs to
    client_request_token: str
    recent_execution: str | None = None  # the execution inside the interval that blocked this start
    recent_execution_time: str | None = None
    started_execution: str | None = None


def check_interval(value) -> int:
    """The minimum interval in whole hours, or a GuardUsageError naming the field."""
    text = str(value).strip()
    try:
        hours = int(text)
    except ValueError:
        raise GuardUsageError(
            f"{INTERVAL_FIELD} = {value!r}: not a whole number of hours; "
            f"give {MIN_INTERVAL_HOURS} to {MAX_INTERVAL_HOURS} (e.g. 24)"
        ) from None
    if not MIN_INTERVAL_HOURS <= hours <= MAX_INTERVAL_HOURS:
        raise GuardUsageError(
            f"{INTERVAL_FIELD} = {hours}: outside {MIN_INTERVAL_HOURS} to {MAX_INTERVAL_HOURS} hours; "
            "use at least 1 so a flapping alarm cannot start back-to-back runs"
        )
    return hours


def window_start(now: datetime, hours: int) -> datetime:
    """Start of the interval window holding `now`: UTC time cut into `hours`-long slices from the epoch."""
    seconds = hours * 3600
    epoch = int(now.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def request_token(pipeline: str, hours: int, window: datetime) -> str:
    """The ClientRequestToken of the window's start (32 to 128 characters, the same for every guard in it)."""
    digest = hashlib.sha256(f"{pipeline}|{hours}|{window.isoformat()}".encode()).hexdigest()[:16]
    return f"retrain-{window:%Y%m%dT%H%MZ}-{hours}h-{digest}"


def start_request(pipeline: str, hours: int, window: datetime) -> dict:
    """The StartPipelineExecution request: identical for every guard in the window, so the token deduplicates it."""
    stamp = f"{window:%Y%m%dT%H%MZ}"
    return {
        "PipelineName": pipeline,
        "PipelineExecutionDisplayName": f"retrain-{window:%Y%m%d-%H%M}",
        "PipelineExecutionDescription": (
            f"Started by the retrain guard (at most one run per {hours} h window from {window.isoformat()})"
        ),
        "PipelineParameters": [
            {"Name": "ModelApprovalStatus", "Value": APPROVAL_STATUS},
            # A new value per window: step caching never replays an older run's preparation or training.
            {"Name": "InputDataVersion", "Value": f"retrain-{stamp}"},
        ],
        "ClientRequestToken": request_token(pipeline, hours, window),
    }


def decide(client, pipeline: str, min_interval_hours, now: datetime, trigger: str = "alarm") -> Decision:
    """Start the training pipeline unless an execution of it was created in the last min_interval_hours hours."""
    hours = check_interval(min_interval_hours)
    if trigger not in TRIGGERS:
        raise GuardUsageError(f"--trigger = {trigger!r}: give one of {', '.join(TRIGGERS)}")
    now = now.astimezone(UTC)
    window = window_start(now, hours)
    request = start_request(pipeline, hours, window)
    common = {
        "training_pipeline": pipeline,
        "trigger": trigger,
        "min_interval_hours": hours,
        "window_start": window.isoformat(),
        "client_request_token": request["ClientRequestToken"],
    }
    cutoff = now - timedelta(hours=hours)
    recent = client.list_pipeline_executions(
        PipelineName=pipeline, CreatedAfter=cutoff, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
    ).get("PipelineExecutionSummaries", [])
    if recent:
        newest = recent[0]
        when = newest.get("StartTime")
        return Decision(
            started=False,
            reason=f"an execution was created within the last {hours} h ({newest.get('PipelineExecutionStatus')})",
            recent_execution=newest.get("PipelineExecutionArn"),
            recent_execution_time=when.isoformat() if isinstance(when, datetime) else None,
            **common,
        )
    arn = client.start_pipeline_execution(**request)["PipelineExecutionArn"]
    return Decision(started=True, reason=f"no execution in the last {hours} h", started_execution=arn, **common)


def decision_table(decision: Decision) -> str:
    rows = [(k, "" if v is None else str(v)) for k, v in asdict(decision).items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training-pipeline", required=True, help="name or ARN of the training pipeline")
    parser.add_argument("--min-interval-hours", required=True, help="retraining.min_interval_hours (1 to 720)")
    parser.add_argument("--trigger", default="manual", choices=TRIGGERS, help="what started the guard (logged)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    parser.add_argument("--output", type=Path, help="also write the decision as JSON here")
    return parser


def main(argv: list[str] | None = None, sagemaker_client=None, now: datetime | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        check_interval(args.min_interval_hours)
    except GuardUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if sagemaker_client is None:
            import boto3
            from botocore.config import Config

            region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            sagemaker_client = boto3.client(
                "sagemaker", region_name=region, config=Config(retries={"max_attempts": 5, "mode": "standard"})
            )
        decision = decide(
            sagemaker_client, args.training_pipeline, args.min_interval_hours, now or datetime.now(UTC), args.trigger
        )
    except GuardUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"error: AWS call failed: {exc}", file=sys.stderr)
        return 1
    verb = "started training" if decision.started else "skipped: training ran recently"
    log.info("%s (%s)\n%s", verb, decision.reason, decision_table(decision))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(asdict(decision), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
