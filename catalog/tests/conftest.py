"""AWS-side tests of the catalog: moto's server on 127.0.0.1, botocore's Stubber where moto lacks the API.

Run with the AWS environment (boto3, moto, cfn-lint): ``<aws-venv>/bin/python -m pytest catalog/tests`` from the
template's root. Baking needs cookiecutter: $CATALOG_COOKIECUTTER, else the template's .venv/bin/cookiecutter.
Every AWS operation a test makes is appended to $CATALOG_CALL_LOG when set (tests/test_catalog.py checks that
each operation in the catalog's source is exercised).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from tests.baking import ROOT, TEMPLATE_DIR_NAME, git, make_template_repo

import catalog.artifacts
from catalog import cli

REGION = "us-east-1"
ACCOUNT = "123456789012"
TEMPLATE_URL = "https://github.com/example-org/sagemaker-mlops-template.git"
MUTATING_PREFIXES = ("Put", "Create", "Delete", "Add", "Associate", "Disassociate", "Update", "Tag", "Untag")


def cookiecutter_bin() -> str:
    return (
        os.environ.get("CATALOG_COOKIECUTTER") or shutil.which("cookiecutter") or str(ROOT / ".venv/bin/cookiecutter")
    )


class CallLog:
    """Every AWS operation made through a recorded client, in order, as (service, OperationName)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.params: list[dict[str, Any]] = []
        self.path = os.environ.get("CATALOG_CALL_LOG")

    def attach(self, client: Any) -> Any:
        service = client.meta.service_model.service_name
        client.meta.events.register(
            f"before-parameter-build.{service}",
            lambda model, params, **_: self.record(service, model.name, params),
        )
        return client

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        self.calls.append((service, operation))
        self.params.append(dict(params))
        if self.path:
            with open(self.path, "a", encoding="utf-8") as log:
                log.write(f"{service} {operation}\n")

    def mutating(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[1].startswith(MUTATING_PREFIXES)]

    def of(self, operation: str) -> list[dict[str, Any]]:
        """The parameters of every call of one operation."""
        return [params for (_, name), params in zip(self.calls, self.params, strict=True) if name == operation]

    def clear(self) -> None:
        self.calls.clear()
        self.params.clear()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    # One log record per request would be captured for every test: keep only the server's warnings.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).read()
    yield


@pytest.fixture
def calls() -> CallLog:
    return CallLog()


_SESSION: list[Any] = []


def client(service: str, calls: CallLog, endpoint: str | None = None) -> Any:
    """A fresh client per test (tests add event handlers to them), from one session: its loaded models are reused."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    kwargs = {"endpoint_url": endpoint} if endpoint else {}
    return calls.attach(_SESSION[0].client(service, region_name=REGION, config=config, **kwargs))


@pytest.fixture
def clients(calls: CallLog) -> dict[str, Any]:
    return {service: client(service, calls) for service in ("s3", "sagemaker", "servicecatalog", "iam")}


class Routed:
    """A Service Catalog client: moto serves what it implements, a Stubber answers the rest (same validation)."""

    MOTO_OPERATIONS = frozenset(
        {
            "create_portfolio",
            "list_portfolios",
            "delete_portfolio",
            "create_product",
            "delete_product",
            "describe_product",
        }
    )

    def __init__(self, moto: Any, stubbed: Any) -> None:
        self.moto = moto
        self.stubbed = stubbed
        self.meta = moto.meta

    def __getattr__(self, name: str) -> Any:
        return getattr(self.moto if name in self.MOTO_OPERATIONS else self.stubbed, name)

    def get_paginator(self, operation: str) -> Any:
        """botocore's paginator of the client that serves the operation."""
        return (self.moto if operation in self.MOTO_OPERATIONS else self.stubbed).get_paginator(operation)


@pytest.fixture
def sc_stub(clients: dict[str, Any], calls: CallLog) -> Iterator[Stubber]:
    """Routes the servicecatalog client: moto for the portfolio/product calls, this Stubber for the others."""
    stubbed = client("servicecatalog", calls, endpoint="https://servicecatalog.invalid")
    stubber = Stubber(stubbed)
    clients["servicecatalog"] = Routed(clients["servicecatalog"], stubbed)
    with stubber:
        yield stubber


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template work tree as a git repository with two releases, v0.0.0 and v0.1.0."""
    repo = make_template_repo(tmp_path_factory.mktemp("template") / "sagemaker-mlops-template", tag="v0.0.0")
    readme = repo / TEMPLATE_DIR_NAME / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nRelease notes: v0.1.0.\n", encoding="utf-8")
    git(repo, "commit", "--quiet", "--all", "--message", "v0.1.0")
    git(repo, "tag", "v0.1.0")
    return repo


@pytest.fixture(scope="session")
def roles() -> dict[str, str]:
    return {
        "launch": f"arn:aws:iam::{ACCOUNT}:role/service-role/SageMakerMlopsTemplateLaunchRole",
        "use": f"arn:aws:iam::{ACCOUNT}:role/service-role/SageMakerMlopsTemplateUseRole",
        "studio": f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-20250101T000000",
    }


@pytest.fixture
def iam_roles(clients: dict[str, Any], roles: dict[str, str]) -> dict[str, str]:
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    for arn in roles.values():
        clients["iam"].create_role(
            RoleName=arn.rsplit("/", 1)[1], Path="/service-role/", AssumeRolePolicyDocument=trust
        )
    return roles


@pytest.fixture
def bucket(clients: dict[str, Any]) -> str:
    clients["s3"].create_bucket(Bucket="ml-platform-templates")
    return "ml-platform-templates"


@pytest.fixture
def domain_id(clients: dict[str, Any], roles: dict[str, str]) -> str:
    domain = clients["sagemaker"].create_domain(
        DomainName="ml-studio",
        AuthMode="IAM",
        DefaultUserSettings={"ExecutionRole": roles["studio"]},
        SubnetIds=["subnet-0123456789abcdef0"],
        VpcId="vpc-0123456789abcdef0",
        Tags=[{"Key": "team", "Value": "ml-platform"}],
    )
    return domain["DomainArn"].rsplit("/", 1)[1]


class Runner:
    """Runs ``python -m catalog`` in-process with the test's clients; returns (exit code, output)."""

    def __init__(self, clients: dict[str, Any], template_repo: Path) -> None:
        self.clients = clients
        self.template_repo = template_repo

    def __call__(self, *argv: str) -> tuple[int, str]:
        words = list(argv)
        if words[0] in ("register", "upload"):
            words += ["--template-dir", str(self.template_repo), "--template-url", TEMPLATE_URL]
            words += ["--cookiecutter", cookiecutter_bin()]
        args = cli.build_parser().parse_args([*words, "--region", REGION])
        out = io.StringIO()
        code = cli.run(args, clients=self.clients, out=out)
        return code, out.getvalue()


def s3_registration(bucket: str, domain_id: str, use_role: str, *extra: str) -> list[str]:
    """The command line of an S3-mode registration of v0.0.0 (extra options appended)."""
    options = ["--bucket", bucket, "--domain-id", domain_id, "--use-role", use_role, "--template-ref", "v0.0.0"]
    return ["register", "--mode", "s3", *options, *extra]


@pytest.fixture
def run(clients: dict[str, Any], template_repo: Path) -> Runner:
    return Runner(clients, template_repo)


@pytest.fixture
def dry_run(run: Runner, calls: CallLog):
    """`register ... --dry-run`: returns the printed plan after checking that it succeeded and changed nothing."""

    def plan(*args: str) -> str:
        calls.clear()
        code, out = run("register", *args, "--template-ref", "v0.0.0", "--dry-run")
        assert code == 0, out
        assert calls.mutating() == []
        return out

    return plan


_RELEASES: dict[tuple, Any] = {}
_build_release = catalog.artifacts.build_release


def cached_release(**kwargs: Any) -> Any:
    """Each (ref, answers) release baked once per session: baking takes seconds, the tests only need its bytes."""
    key = tuple(sorted((name, json.dumps(value, sort_keys=True, default=str)) for name, value in kwargs.items()))
    if key not in _RELEASES:
        _RELEASES[key] = _build_release(**kwargs)
    return _RELEASES[key]


@pytest.fixture(autouse=True)
def reuse_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog.artifacts, "build_release", cached_release)
