"""What the project's SageMaker Pipelines (training: sagemaker_pipeline.py, batch scoring: batch_pipeline.py) share
on the SageMaker API and the command line: create-or-update, following an execution, and one CLI shape
(`definition` writes the JSON offline; `upsert` creates or updates, `--start`, `--wait`, `--dry-run`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.sagemaker_settings import SSM_FLAGS, SSM_PARAMETERS, UsageError, client_factory, display_path

TERMINAL = ("Succeeded", "Failed", "Stopped")


def not_found(exc) -> bool:
    """SageMaker answers ResourceNotFound; some emulators a ValidationException saying the pipeline is unknown."""
    error = exc.response["Error"]
    message = error.get("Message", "").lower()
    return error["Code"] == "ResourceNotFound" or (
        error["Code"] == "ValidationException" and ("could not find" in message or "does not exist" in message)
    )


def upsert_pipeline(
    client,
    name: str,
    role_arn: str,
    definition: dict,
    description: str,
    tags: dict[str, str],
    out: Callable[[str], None] = print,
) -> str:
    """Create the pipeline, or update it when it exists (never a duplicate); returns its ARN."""
    from botocore.exceptions import ClientError

    request = {
        "PipelineName": name,
        "PipelineDefinition": json.dumps(definition),
        "PipelineDescription": description[:3072],
        "RoleArn": role_arn,
    }
    try:
        client.describe_pipeline(PipelineName=name)
    except ClientError as exc:
        if not not_found(exc):
            raise
        arn = client.create_pipeline(
            **request,
            ClientRequestToken=str(uuid.uuid4()),
            Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
        )["PipelineArn"]
        out(f"created pipeline {name} ({arn})")
        return arn
    arn = client.update_pipeline(**request)["PipelineArn"]
    out(f"updated pipeline {name} ({arn})")
    return arn


def wait(
    client,
    execution_arn: str,
    poll_seconds: float = 30,
    timeout_seconds: float = 6 * 3600,
    out: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll until the execution ends, printing each step's status change; returns the final status.

    On failure it prints the failed steps with their FailureReason (the fail step's message names the gates).
    """
    seen: dict[str, str] = {}
    deadline = clock() + timeout_seconds
    while True:
        status = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)["PipelineExecutionStatus"]
        steps = execution_steps(client, execution_arn)
        for step in steps:
            name, step_status = step["StepName"], step["StepStatus"]
            if seen.get(name) != step_status:
                seen[name] = step_status
                cached = " (cached)" if "CacheHitResult" in step else ""
                out(f"  {name}: {step_status}{cached}")
        if status in TERMINAL:
            break
        if clock() > deadline:
            out(f"execution still {status} after {timeout_seconds:.0f}s; follow it in SageMaker Studio")
            return status
        sleep(poll_seconds)
    out(f"execution {status}: {execution_arn}")
    if status != "Succeeded":
        for step in steps:
            if step["StepStatus"] == "Failed":
                out(f"failed step {step['StepName']}: {step.get('FailureReason', '(no reason given)')}")
    return status


def execution_steps(client, execution_arn: str) -> list[dict]:
    pages = client.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=execution_arn, SortOrder="Ascending"
    )
    return [step for page in pages for step in page.get("PipelineExecutionSteps", [])]


# ---------------------------------------------------------------------------------------------------- CLI
def build_parser(
    doc: str, output: Path, config_use: str, add_options: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """`definition` and `upsert`, with the options both pipelines take (`add_options` adds a pipeline's own)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--env", required=True, help=f"the infra/config/<env>.json to use ({config_use})")
        sub.add_argument("--region", help="AWS region (default: the config's region, else pyproject.toml's)")
        sub.add_argument("--image-tag", help="tag of the images to run (default: the git commit of HEAD)")
        add_options(sub)
        for key, flag in SSM_FLAGS.items():
            sub.add_argument(flag, dest=key, help=f"overrides SSM /<project>/{SSM_PARAMETERS[key]}")

    definition = commands.add_parser("definition", help="write the pipeline definition JSON (offline)")
    common(definition)
    definition.add_argument("--output", type=Path, default=output)
    definition.add_argument("--ssm", dest="use_ssm", action="store_true", help="read unset values from AWS")

    up = commands.add_parser("upsert", help="create or update the pipeline in SageMaker, optionally start it")
    common(up)
    up.add_argument("--start", action="store_true", help="start an execution after the upsert")
    up.add_argument("--wait", action="store_true", help="follow the execution until it ends (implies --start)")
    up.add_argument(
        "--dry-run", action="store_true", help="build and show, call nothing (values from flags/placeholders)"
    )
    up.add_argument("--poll-seconds", type=float, default=30.0)
    up.add_argument("--timeout-seconds", type=float, default=6 * 3600.0)
    return parser


@dataclass(frozen=True)
class PipelineCommand:
    """One pipeline's part of the shared command line: how it resolves its settings, builds its definition, says
    its dry run, checks its input before anything changes, upserts and starts. `settings` has `pipeline_name` and
    `region`; `check_input` returns what `start` needs (a data version, an object count) or raises UsageError."""

    build_parser: Callable[[], argparse.ArgumentParser]
    resolve: Callable[[argparse.Namespace, object, object], object]  # (args, sagemaker client, ssm factory)
    definition: Callable[[object], dict]
    dry_run_lines: Callable[[object, dict], list[str]]
    check_input: Callable[[object, object], object]  # (settings, s3 client)
    upsert: Callable[[object, object, dict], str]
    start: Callable[[object, object, object], str]  # (client, settings, checked input)

    def main(self, argv: list[str] | None = None, sagemaker_client=None, ssm_client_factory=None, s3_client=None):
        """Parse, run, and turn what AWS refuses into a message and an exit status (2: usage, 1: a call failed)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            args = self.build_parser().parse_args(argv)
            if args.command == "upsert":
                args.use_ssm = not args.dry_run
            return self.run(args, sagemaker_client, ssm_client_factory, s3_client)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except NoCredentialsError:
            print(
                "error: no AWS credentials found: configure them (aws configure, AWS_PROFILE, aws sso login), "
                "or build the definition offline with `definition`",
                file=sys.stderr,
            )
            return 2
        except (BotoCoreError, ClientError) as exc:
            print(f"error: AWS call failed: {exc}", file=sys.stderr)
            return 1

    def run(self, args: argparse.Namespace, sagemaker_client=None, ssm_client_factory=None, s3_client=None) -> int:
        settings = self.resolve(args, sagemaker_client, ssm_client_factory)
        definition = self.definition(settings)
        if args.command == "definition":
            write_definition(args.output, definition, settings.pipeline_name)
            return 0
        starting = args.start or args.wait
        if args.dry_run:
            steps = " -> ".join(step["Name"] for step in definition["Steps"])
            action = "upsert" + (" and start" if starting else "")
            print(f"dry run: would {action} pipeline {settings.pipeline_name} in {settings.region} ({steps})")
            for line in self.dry_run_lines(settings, definition):
                print(f"  {line}")
            return 0
        client = sagemaker_client or client_factory("sagemaker")(settings.region)
        checked = None
        if starting:  # before the upsert: a missing input stops the run before any change
            checked = self.check_input(settings, s3_client or client_factory("s3")(settings.region))
        self.upsert(client, settings, definition)
        if not starting:
            return 0
        execution = self.start(client, settings, checked)
        if not args.wait:
            return 0
        status = wait(client, execution, poll_seconds=args.poll_seconds, timeout_seconds=args.timeout_seconds)
        return 0 if status == "Succeeded" else 1


def write_definition(output: Path, definition: dict, pipeline_name: str) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(definition, indent=2) + "\n", encoding="utf-8")
    steps = " -> ".join(step["Name"] for step in definition["Steps"])
    print(f"wrote {display_path(output)}: pipeline {pipeline_name}, steps {steps}")
