"""Release the model: register, approve, deploy, promote, rollback, status, monitor, batch, preflight.

    python -m release.release preflight --env staging
    python -m release.release deploy --env staging [--package 7] [--dry-run]
    python -m release.release monitor --env staging [--dry-run]

Settings come from SSM Parameter Store (/PROJECT/...) unless a flag gives them; the environment's endpoint
settings from infra/config/<env>.json. Every command accepts --dry-run (prints the calls it would make, changes
nothing) and can be run again safely. Exit status: 0 done (or nothing to do), 2 a problem to fix, 1 an AWS error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from release import commands
from release.aws import SETTINGS
from release.config import ENDPOINT_TEMPLATE, ENVIRONMENTS, MONITORING_TEMPLATE, load_project
from release.errors import ReleaseError
from release.output import Output


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dry-run", action="store_true", help="print the plan and the calls; change nothing")
    common.add_argument("--region", default="", help="AWS region (default: the environment file, then pyproject)")
    for name, (ssm_name, flag) in SETTINGS.items():
        common.add_argument(flag, dest=name, default="", help=f"overrides SSM /PROJECT/{ssm_name}")

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    register = sub.add_parser("register", parents=[common], help="register model.tar.gz as a model package")
    register.add_argument("--model-data", required=True, help="s3://.../model.tar.gz from the training job")
    register.add_argument("--metrics", required=True, help="evaluation.json: a local file (uploaded) or s3://...")
    register.add_argument("--image", default="", help="inference image URI with tag (default: SSM URI + tag)")
    register.add_argument("--image-tag", default="", help="tag of the inference image (default: the git commit)")
    register.add_argument("--description", default="", help="model package description")

    approve = sub.add_parser("approve", parents=[common], help="approve (or --reject) a model package")
    approve.add_argument("--package", required=True, help="model package ARN or version number")
    approve.add_argument("--reject", action="store_true", help="reject instead of approve")
    approve.add_argument("--reason", default="", help="approval description (required with --reject)")

    deploy = sub.add_parser("deploy", parents=[common], help="create or update the environment's endpoint stack")
    deploy.add_argument("--env", required=True, choices=ENVIRONMENTS)
    deploy.add_argument("--package", default="", help="ARN or version (default: the latest Approved package)")
    deploy.add_argument("--shadow-package", default="", help="shadow variant package (with shadow_variant.enabled)")

    promote = sub.add_parser("promote", parents=[common], help="deploy to --to exactly what --from runs")
    promote.add_argument("--from", dest="source", default="staging", choices=ENVIRONMENTS)
    promote.add_argument("--to", dest="target", default="prod", choices=ENVIRONMENTS)
    for command in (deploy, promote):
        command.add_argument(
            "--replace",
            action="store_true",
            help="allow deleting and recreating the endpoint when endpoint.endpoint_type changed (downtime)",
        )

    rollback = sub.add_parser("rollback", parents=[common], help="go back to the previous Approved package")
    rollback.add_argument("--env", required=True, choices=ENVIRONMENTS)

    status = sub.add_parser("status", parents=[common], help="what runs where, and the group's packages")
    status.add_argument("--env", choices=ENVIRONMENTS, help="one environment (default: all)")

    monitor = sub.add_parser(
        "monitor", parents=[common], help="publish the drift baselines; create or update the monitoring stack"
    )
    monitor.add_argument("--env", required=True, choices=ENVIRONMENTS)
    monitor.add_argument("--image", default="", help="monitoring image URI with tag (default: SSM URI + tag)")
    monitor.add_argument(
        "--image-tag", default="", help="tag of the monitoring image (default: the build of the deployed package)"
    )
    monitor.add_argument("--template", type=Path, default=MONITORING_TEMPLATE, help=argparse.SUPPRESS)

    batch = sub.add_parser("batch", parents=[common], help="create or update the batch triggers stack")
    batch.add_argument("--env", required=True, choices=ENVIRONMENTS)
    batch.add_argument("--image-tag", default="", help="tag of the images the optional steps run (default: commit)")
    batch.add_argument("--timeout", type=float, default=3600, help="seconds to follow the deployment")

    preflight = sub.add_parser(
        "preflight", parents=[common], help="read-only: what the account needs before the first deploy"
    )
    preflight.add_argument("--env", required=True, choices=ENVIRONMENTS)
    preflight.add_argument(
        "--connection-arn", default="", help="CodeConnections connection (default: the toolchain stack's ConnectionArn)"
    )

    for command in (deploy, promote, rollback):
        command.add_argument("--template", type=Path, default=ENDPOINT_TEMPLATE, help=argparse.SUPPRESS)
    for command in (deploy, promote, rollback, monitor):
        command.add_argument(
            "--timeout", type=float, default=3 * 3600, help="seconds to follow the deployment (default 3 h)"
        )
    return parser


def run(args: argparse.Namespace, out: Output) -> int:
    monitoring = args.command == "monitor"
    ctx = commands.Context(
        project=load_project(),
        template=ENDPOINT_TEMPLATE if monitoring else getattr(args, "template", ENDPOINT_TEMPLATE),
        monitoring_template=args.template if monitoring else MONITORING_TEMPLATE,
        overrides={name: getattr(args, name) for name in SETTINGS},
        region=args.region,
        dry_run=args.dry_run,
        allow_replacement=getattr(args, "replace", False),
        timeout_seconds=getattr(args, "timeout", 3 * 3600),
        out=out,
    )
    if args.command == "register":
        commands.register(ctx, args.model_data, args.metrics, args.image, args.image_tag, args.description)
    elif args.command == "approve":
        commands.approve(ctx, args.package, args.reject, args.reason)
    elif args.command == "deploy":
        commands.deploy(ctx, args.env, args.package, args.shadow_package)
    elif args.command == "promote":
        commands.promote(ctx, args.source, args.target)
    elif args.command == "rollback":
        commands.rollback(ctx, args.env)
    elif monitoring:
        commands.monitor(ctx, args.env, args.image, args.image_tag)
    elif args.command == "batch":
        commands.batch(ctx, args.env, args.image_tag)
    elif args.command == "preflight":
        return 0 if commands.preflight_checks(ctx, args.env, args.connection_arn) else 2
    else:
        commands.status(ctx, [args.env] if args.env else list(ENVIRONMENTS))
    return 0


def main(argv: list[str] | None = None, out: Output | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = out or Output()
    try:
        return run(args, out)
    except ReleaseError as exc:
        out.say(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        out.say("\nstopped watching: a deployment already started goes on; follow it with release.py status")
        return 130
    except NoCredentialsError:
        out.say("error: no AWS credentials\n  what to do: set AWS_PROFILE or run aws sso login / aws configure")
        return 2
    except NoRegionError:
        out.say("error: no AWS region\n  what to do: pass --region or set aws_region in pyproject.toml")
        return 2
    except ClientError as exc:
        error = exc.response.get("Error", {})
        out.say(
            f"error: AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}\n"
            "  what to do: check the credentials' permissions and the names above; nothing after this call ran"
        )
        return 1
    except BotoCoreError as exc:
        out.say(f"error: {exc}\n  what to do: check the network and the AWS settings; nothing after this call ran")
        return 1


if __name__ == "__main__":
    sys.exit(main())
