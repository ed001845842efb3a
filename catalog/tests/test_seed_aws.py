"""The AWS side of seeding: the remote behind a CodeConnections connection (Secrets Manager on moto, CodeConnections
on the Stubber: moto lacks it), and the custom resources' inline functions (product.yaml, registration-s3.yaml)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from catalog.seed import seed_repository
from catalog.seed.seed_repository import SeedError, connection_remote
from catalog.toolchain import load_template

CATALOG = Path(seed_repository.__file__).resolve().parent.parent
CONNECTION = "arn:aws:codeconnections:us-east-1:123456789012:connection/0f2a3b4c-1111-2222-3333-444455556666"
HOST = "arn:aws:codeconnections:us-east-1:123456789012:host/ghes-0123abcd"


class Session:
    """A boto3 session whose codeconnections client is stubbed; other services go to moto."""

    def __init__(self, calls) -> None:
        self.codeconnections = calls.attach(boto3.client("codeconnections", region_name="us-east-1"))
        self.stub = Stubber(self.codeconnections)
        self.calls = calls

    def client(self, service: str) -> Any:
        if service == "codeconnections":
            return self.codeconnections
        return self.calls.attach(boto3.client(service, region_name="us-east-1"))


@pytest.fixture
def session(calls) -> Session:
    session = Session(calls)
    with session.stub:
        yield session


@pytest.fixture
def token_secret() -> str:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    return client.create_secret(Name="sagemaker-projects/github-push", SecretString="ghp_example/token+1")["ARN"]


def connection(provider: str, status: str = "AVAILABLE", **extra: str) -> dict[str, Any]:
    return {
        "Connection": {
            "ConnectionArn": CONNECTION,
            "ProviderType": provider,
            "ConnectionStatus": status,
            **extra,
        }
    }


def test_a_github_connection_pushes_over_https_with_the_stored_token(session: Session, token_secret: str) -> None:
    session.stub.add_response("get_connection", connection("GitHub"), {"ConnectionArn": CONNECTION})

    remote = connection_remote(CONNECTION, "example-org/churn-model", token_secret, session=session)

    assert remote == "https://x-access-token:ghp_example%2Ftoken%2B1@github.com/example-org/churn-model.git"
    assert seed_repository.redact(remote) == "https://***@github.com/example-org/churn-model.git"


def test_a_self_managed_host_is_looked_up(session: Session, calls) -> None:
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="sagemaker-projects/gitlab", SecretString=json.dumps({"token": "glpat-1"})
    )["ARN"]
    session.stub.add_response(
        "get_connection", connection("GitLabSelfManaged", HostArn=HOST), {"ConnectionArn": CONNECTION}
    )
    session.stub.add_response(
        "get_host",
        {
            "Name": "gitlab",
            "ProviderType": "GitLabSelfManaged",
            "ProviderEndpoint": "https://gitlab.example.com",
        },
        {"HostArn": HOST},
    )

    remote = connection_remote(CONNECTION, "ml/churn-model", secret, session=session)

    assert remote == "https://oauth2:glpat-1@gitlab.example.com/ml/churn-model.git"


def test_a_pending_connection_is_refused(session: Session, token_secret: str) -> None:
    session.stub.add_response(
        "get_connection", connection("Bitbucket", status="PENDING"), {"ConnectionArn": CONNECTION}
    )

    with pytest.raises(SeedError, match="is PENDING: complete the handshake"):
        connection_remote(CONNECTION, "ml/churn-model", token_secret, session=session)


def test_no_token_means_no_seeding_with_the_reason(session: Session) -> None:
    with pytest.raises(SeedError, match="no RepositoryTokenSecretArn was given") as error:
        connection_remote(CONNECTION, "ml/churn-model", "", session=session)
    assert error.value.exit_code == 2


def inline_function(template: str, logical_id: str) -> str:
    document = load_template((CATALOG / template).read_text())
    return document["Resources"][logical_id]["Properties"]["Code"]["ZipFile"]


class Context:
    def __init__(self, remaining_ms: int = 600_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def cfnresponse(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Lambda's cfnresponse module (it exists only in the Lambda runtime), recording the responses."""
    sent: list[dict[str, Any]] = []
    module = types.ModuleType("cfnresponse")
    module.SUCCESS, module.FAILED = "SUCCESS", "FAILED"

    def send(event, context, status, data, physical_id=None, no_echo=False, reason=None):
        sent.append({"status": status, "data": data, "id": physical_id, "reason": reason})

    module.send = send
    monkeypatch.setitem(sys.modules, "cfnresponse", module)
    return sent


def load_handler(template: str, logical_id: str, monkeypatch: pytest.MonkeyPatch, clients: dict[str, Any]):
    namespace: dict[str, Any] = {}
    exec(compile(inline_function(template, logical_id), f"{template}:{logical_id}", "exec"), namespace)
    monkeypatch.setattr(namespace["boto3"], "client", lambda service, **_: clients[service])
    if "time" in namespace:
        monkeypatch.setattr(namespace["time"], "sleep", lambda _: None)
    return namespace["handler"]


def create_event(**properties: str) -> dict[str, Any]:
    return {"RequestType": "Create", "ResourceProperties": properties}


@pytest.fixture
def codebuild(calls) -> tuple[Any, Stubber]:
    client = calls.attach(boto3.client("codebuild", region_name="us-east-1"))
    stub = Stubber(client)
    with stub:
        yield client, stub


def test_the_seed_starter_waits_for_the_build_and_reports_success(codebuild, cfnresponse, monkeypatch) -> None:
    client, stub = codebuild
    stub.add_response("start_build", {"build": {"id": "seed:1"}}, {"projectName": "sagemaker-seed-churn-p-1"})
    stub.add_response(
        "batch_get_builds", {"builds": [{"id": "seed:1", "buildStatus": "IN_PROGRESS"}]}, {"ids": ["seed:1"]}
    )
    stub.add_response(
        "batch_get_builds", {"builds": [{"id": "seed:1", "buildStatus": "SUCCEEDED"}]}, {"ids": ["seed:1"]}
    )
    handler = load_handler("product.yaml", "SeedStarter", monkeypatch, {"codebuild": client})

    handler(create_event(ProjectName="sagemaker-seed-churn-p-1"), Context())

    assert cfnresponse == [{"status": "SUCCESS", "data": {"BuildId": "seed:1"}, "id": "seed:1", "reason": None}]
    stub.assert_no_pending_responses()


def test_a_failed_seeding_build_fails_the_stack_with_where_to_look(codebuild, cfnresponse, monkeypatch) -> None:
    client, stub = codebuild
    stub.add_response("start_build", {"build": {"id": "seed:2"}}, {"projectName": "p"})
    stub.add_response(
        "batch_get_builds",
        {"builds": [{"id": "seed:2", "buildStatus": "FAILED", "logs": {"deepLink": "https://console/logs/seed-2"}}]},
        {"ids": ["seed:2"]},
    )
    handler = load_handler("product.yaml", "SeedStarter", monkeypatch, {"codebuild": client})

    handler(create_event(ProjectName="p"), Context())

    [response] = cfnresponse
    assert response["status"] == "FAILED"
    assert (
        response["reason"]
        == "Seeding build seed:2 FAILED: the reason is at the end of its log, https://console/logs/seed-2"
    )


def test_updates_and_deletes_never_seed_again(codebuild, cfnresponse, monkeypatch) -> None:
    client, _ = codebuild
    handler = load_handler("product.yaml", "SeedStarter", monkeypatch, {"codebuild": client})

    handler({"RequestType": "Delete", "PhysicalResourceId": "seed:1", "ResourceProperties": {}}, Context())

    assert cfnresponse == [{"status": "SUCCESS", "data": {}, "id": "seed:1", "reason": None}]


def test_the_domain_tagger_tags_and_untags_the_domain(clients, domain_id, cfnresponse, monkeypatch) -> None:
    arn = clients["sagemaker"].describe_domain(DomainId=domain_id)["DomainArn"]
    handler = load_handler("registration-s3.yaml", "DomainTagger", monkeypatch, {"sagemaker": clients["sagemaker"]})

    def location() -> str | None:
        tags = clients["sagemaker"].list_tags(ResourceArn=arn)["Tags"]
        return next((tag["Value"] for tag in tags if tag["Key"] == "sagemaker:projectS3TemplatesLocation"), None)

    handler(create_event(DomainArn=arn, Location="s3://templates/p/"), Context())
    assert location() == "s3://templates/p/"
    handler({"RequestType": "Delete", "ResourceProperties": {"DomainArn": arn}}, Context())
    assert location() is None
    assert [response["status"] for response in cfnresponse] == ["SUCCESS", "SUCCESS"]
