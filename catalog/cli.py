"""``python -m catalog register|unregister|upload``: make the template a SageMaker Projects template, or take it back.

Both modes upload the release (product template, the generated toolchain stack, the seeding job's source) to
s3://BUCKET/PREFIX/<version>/, then:
  --mode s3               tag the product template for Studio, add Studio's CORS rule to the bucket, tag the domain;
  --mode service-catalog  portfolio, product (tagged for Studio, one provisioning artifact per version), launch role
                          constraint, principal association for the Studio execution role(s).
``upload`` only uploads the release, for catalog/registration-*.yaml. Re-running is safe; --dry-run prints the
plan. A failure undoes what the run created, or prints what is left and the command that removes it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from catalog.errors import CatalogError
from catalog.journal import Journal

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PREFIX = "sagemaker-projects/sagemaker-mlops-template"


def default_cookiecutter() -> str:
    local = ROOT / ".venv" / "bin" / "cookiecutter"
    return shutil.which("cookiecutter") or str(local)


def parse_answer(pair: str) -> tuple[str, str]:
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"'{pair}' is not KEY=VALUE (for example problem_type=regression)")
    return key, value


def add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--bucket", required=True, help="bucket holding the releases (s3://BUCKET/PREFIX/<version>/)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"key prefix (default {DEFAULT_PREFIX})")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")


def add_mode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=["s3", "service-catalog"], required=True)
    parser.add_argument("--domain-id", default="", help="s3 mode: SageMaker domain whose Studio lists the template")
    parser.add_argument("--portfolio-name", default="SageMaker MLOps templates", help="service-catalog mode")
    parser.add_argument("--product-name", default="sagemaker-mlops-template", help="service-catalog mode")
    parser.add_argument("--studio-origin", default="https://*.sagemaker.aws", help="s3 mode: CORS origin of Studio")


def add_release(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template-dir", type=Path, default=ROOT, help="git checkout of the template (default: here)")
    parser.add_argument("--template-ref", default="HEAD", help="git ref to release (default HEAD; must be tagged)")
    parser.add_argument("--template-version", help="version name (default: the tag at --template-ref)")
    parser.add_argument(
        "--template-url", help="URL repositories take template updates from (default: the checkout's origin)"
    )
    parser.add_argument(
        "--answer",
        action="append",
        default=[],
        type=parse_answer,
        metavar="KEY=VALUE",
        help="answer to a template question for every project (repeatable), e.g. ci_provider=github-actions",
    )
    parser.add_argument(
        "--toolchain-parameter",
        action="append",
        default=[],
        type=parse_answer,
        metavar="KEY=VALUE",
        help="toolchain stack parameter for every project (repeatable), e.g. GitHubOidcProviderArn=arn:...",
    )
    parser.add_argument("--use-role", required=True, help="ARN of the role the seeding job runs as (UseRoleArn output)")
    parser.add_argument("--replace", action="store_true", help="overwrite a version registered with other content")
    parser.add_argument("--cookiecutter", default=default_cookiecutter(), help="cookiecutter executable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m catalog", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    register = commands.add_parser("register", help="register a template version (idempotent)")
    add_mode(register)
    add_location(register)
    add_release(register)
    register.add_argument(
        "--launch-role", default="", help="service-catalog mode: launch role ARN (LaunchRoleArn output)"
    )
    register.add_argument(
        "--principal",
        action="append",
        default=[],
        help="service-catalog mode: Studio execution role ARN (repeatable)",
    )
    register.add_argument("--provider-name", default="ML Platform", help="service-catalog mode: shown as the owner")
    unregister = commands.add_parser("unregister", help="remove one version, or everything this tool registered")
    add_mode(unregister)
    add_location(unregister)
    unregister.add_argument("--template-version", help="remove only this version (default: every version)")
    upload = commands.add_parser(
        "upload", help="upload a release only, for registration as code (catalog/registration-*.yaml)"
    )
    add_location(upload)
    add_release(upload)
    return parser


def unregister_command(args: argparse.Namespace, version: str | None) -> str:
    if args.command == "upload":
        prefix = args.prefix.strip("/")
        return shlex.join(["aws", "s3", "rm", "--recursive", f"s3://{args.bucket}/{prefix}/{version}/"])
    words = ["python", "-m", "catalog", "unregister", "--mode", args.mode, "--region", args.region]
    words += ["--bucket", args.bucket, "--prefix", args.prefix]
    if args.mode == "s3":
        words += ["--domain-id", args.domain_id]
    else:
        words += ["--portfolio-name", args.portfolio_name, "--product-name", args.product_name]
    if version:
        words += ["--template-version", version]
    return shlex.join(words)


def registration(args: argparse.Namespace, journal: Journal, clients: dict[str, Any]) -> Any:
    from catalog.s3_mode import S3Registration
    from catalog.service_catalog_mode import ServiceCatalogRegistration
    from catalog.store import ArtifactStore

    store = ArtifactStore(clients["s3"], args.bucket, args.prefix, journal)
    kind = S3Registration if args.mode == "s3" else ServiceCatalogRegistration
    return kind(args, clients, store, journal)


def make_clients(region: str) -> dict[str, Any]:
    from catalog.aws import make_client

    return {service: make_client(service, region) for service in ("s3", "sagemaker", "servicecatalog", "iam")}


def release(args: argparse.Namespace, journal: Journal, prefix: str) -> tuple[str, dict[str, bytes]]:
    """Build the release's objects (the bake takes a few seconds)."""
    from catalog import artifacts

    if not args.use_role.startswith("arn:") or ":role/" not in args.use_role:
        raise CatalogError(
            f"--use-role '{args.use_role}' is not a role ARN (UseRoleArn output of catalog/iam-roles.yaml)."
        )
    journal.say(f"Building the release from {args.template_dir} at {args.template_ref} ...")
    built = artifacts.build_release(
        template_dir=args.template_dir,
        ref=args.template_ref,
        version=getattr(args, "template_version", None),
        template_url=args.template_url,
        answers=dict(args.answer),
        cookiecutter_bin=args.cookiecutter,
    )
    files = artifacts.release_files(
        built,
        bucket=args.bucket,
        prefix=prefix,
        region=args.region,
        use_role_arn=args.use_role,
        toolchain_parameters=dict(args.toolchain_parameter),
    )
    return built.version, files


def upload(args: argparse.Namespace, journal: Journal, clients: dict[str, Any]) -> str:
    """The release objects only; prints the product template's URL for the registration templates."""
    from catalog.artifacts import PRODUCT_KEY, s3_https_url
    from catalog.store import ArtifactStore

    store = ArtifactStore(clients["s3"], args.bucket, args.prefix, journal)
    store.check_bucket()
    version, files = release(args, journal, store.prefix)
    state = store.compare(files)
    if state == "different" and not args.replace:
        raise CatalogError(
            f"template version {version} is already uploaded to {store.location}{version}/ with other content: "
            "tag a new version, or pass --replace to overwrite it."
        )
    if state == "same" and not args.replace:
        journal.keep(f"version {version} already uploaded to {store.location}{version}/")
    else:
        store.upload(files, visible=False)
    journal.say(
        f"ProductTemplateUrl: {s3_https_url(store.bucket, f'{store.prefix}{version}/{PRODUCT_KEY}', args.region)}"
    )
    journal.say(f"TemplateVersion: {version}")
    return version


def run(args: argparse.Namespace, clients: dict[str, Any] | None = None, out: Any = None) -> int:
    """The command; ``clients`` lets tests hand in emulator or stubbed clients."""
    from botocore.exceptions import BotoCoreError, ClientError

    out = out or sys.stdout
    journal = Journal(dry_run=args.dry_run, out=out)
    version = getattr(args, "template_version", None)
    try:
        if not args.region:
            raise CatalogError("no region: pass --region or set AWS_REGION.")
        clients = clients or make_clients(args.region)
        if args.command == "upload":
            version = upload(args, journal, clients)
        elif args.command == "register":
            target = registration(args, journal, clients)
            version, files = release(args, journal, target.store.prefix)
            journal.say(f"{'Plan for' if args.dry_run else 'Registering'} version {version} ({args.mode} mode):")
            target.register(version, files, args.replace)
        else:
            target = registration(args, journal, clients)
            journal.say(
                f"{'Plan for' if args.dry_run else 'Unregistering'} {version or 'every version'} ({args.mode} mode):"
            )
            target.unregister(version)
    except (CatalogError, ClientError, BotoCoreError) as error:
        journal.say(f"error: {error}")
        if journal.created:
            journal.say("Undoing what this run changed:")
            left = journal.rollback()
            if left:
                journal.say("These changes could not be undone and are still in place:")
                for item in left:
                    journal.say(f"  * {item.description}")
                journal.say(f"Remove them with:\n  {unregister_command(args, version)}")
            else:
                journal.say("Nothing is left half-registered.")
        return 1
    if args.dry_run:
        journal.say(f"Dry run: {journal.changes} change(s) planned, nothing changed.")
    elif journal.changes == 0:
        journal.say("Already up to date: nothing changed.")
    else:
        journal.say(f"Done: {journal.changes} change(s).")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
