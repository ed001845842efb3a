"""`python -m catalog register|unregister` run as the registering principal, with catalog/registrar-policy.json only.

No role of the catalog runs the script: LaunchRole (iam-roles.yaml) is what Service Catalog or SageMaker act with
when they create a project's stacks, UseRole is the seeding job's. The person or pipeline registering gets
catalog/registrar-policy.json. Here it is attached to a role on moto's server with moto's IAM enforcement on
(INITIAL_NO_AUTH_ACTION_COUNT, through /moto-api/reset-auth) and the script runs with that role's credentials.

What moto checks: the action of every request, and for S3 the bucket and object ARN; other services' requests are
checked against the resource "*", so the policy's other resources are widened to "*" here. Service Catalog calls
moto lacks are answered by botocore's Stubber (as in test_register_service_catalog.py); before each of those the
same policy is evaluated with moto's own evaluator (moto.iam.access_control.IAMPolicy), so a missing
servicecatalog action fails there too. Not checked here: iam:PassRole (no API call of the script; Service Catalog
checks it on CreateConstraint) and s3:PutObjectTagging (moto authorises a tagged PutObject as s3:PutObject).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from catalog.aws import ACTION_NAMES
from catalog.tests.conftest import ACCOUNT, REGION, CallLog, Routed, Runner
from catalog.tests.test_register_service_catalog import (
    expect_fresh_registration,
    expect_product,
    portfolios,
    product_id,
)

POLICY = Path(__file__).resolve().parents[1] / "registrar-policy.json"
PREFIX = "sagemaker-projects/sagemaker-mlops-template"
LAUNCH_ROLE_NAME = "SageMakerMlopsTemplateLaunchRole"
SERVICES = ("s3", "sagemaker", "servicecatalog", "iam")


def registrar_policy(bucket: str, domain_id: str, without: tuple[str, ...] = ()) -> dict[str, Any]:
    """catalog/registrar-policy.json with its placeholders filled in, less the actions in `without`."""
    text = POLICY.read_text(encoding="utf-8")
    for token, value in {
        "TEMPLATE_BUCKET": bucket,
        "TEMPLATE_PREFIX": PREFIX,
        "REGION": REGION,
        "ACCOUNT_ID": ACCOUNT,
        "DOMAIN_ID": domain_id,
        "LAUNCH_ROLE_NAME": LAUNCH_ROLE_NAME,
    }.items():
        text = text.replace(token, value)
    policy = json.loads(text)
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        statement["Action"] = [action for action in actions if action not in without]
    policy["Statement"] = [statement for statement in policy["Statement"] if statement["Action"]]
    return policy


def for_moto(policy: dict[str, Any]) -> dict[str, Any]:
    """S3 statements as written; every other resource widened to "*" (moto checks those against "*").

    Two of moto's S3 authorisations differ from AWS's and are granted from what AWS checks: AWS authorises
    HeadBucket as s3:ListBucket, moto asks for "s3:HeadBucket"; AWS authorises DeleteObjects as s3:DeleteObject on
    each key, moto on the bucket ARN.
    """
    statements = []
    for statement in policy["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if not all(resource.startswith("arn:aws:s3:::") for resource in resources):
            statement = {**statement, "Resource": "*"}
        if "s3:ListBucket" in statement["Action"]:
            statement = {**statement, "Action": [*statement["Action"], "s3:HeadBucket"]}
        if "s3:DeleteObject" in statement["Action"]:
            buckets = sorted({resource.split("/", 1)[0] for resource in resources})
            statements.append({"Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": buckets})
        statements.append(statement)
    return {**policy, "Statement": statements}


def set_auth(endpoint: str, count: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=count.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=10).read()


class Registrar:
    """The registering principal: a role with the registrar policy, its clients and the command runner."""

    def __init__(self, policy: dict[str, Any], session: Any, calls: CallLog, template_repo: Path) -> None:
        from moto.iam.access_control import IAMPolicy, PermissionResult

        config = Config(retries={"max_attempts": 1, "mode": "standard"})
        self.clients = {service: calls.attach(session.client(service, config=config)) for service in SERVICES}
        self.run = Runner(self.clients, template_repo)
        stubbed = calls.attach(
            session.client("servicecatalog", config=config, endpoint_url="https://servicecatalog.invalid")
        )
        evaluator = IAMPolicy(json.dumps(for_moto(policy)))

        def authorise(model: Any, **_: Any) -> None:
            action = f"servicecatalog:{model.name}"
            if evaluator.is_action_permitted(action) != PermissionResult.PERMITTED:
                message = f"User: registrar is not authorized to perform: {action} on resource: *"
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": message}}, model.name)

        service = stubbed.meta.service_model.service_id.hyphenize()
        stubbed.meta.events.register_first(f"before-parameter-build.{service}", authorise)  # before the Stubber
        self.sc_stub = Stubber(stubbed)
        self.clients["servicecatalog"] = Routed(self.clients["servicecatalog"], stubbed)


@pytest.fixture
def acting(
    moto_endpoint: str, clients: dict[str, Any], calls: CallLog, template_repo: Path, bucket: str, domain_id: str
):
    """acting(without=()) runs its block as a role holding the registrar policy, moto's IAM enforcement on."""

    @contextmanager
    def act(without: tuple[str, ...] = ()) -> Iterator[Registrar]:
        policy = registrar_policy(bucket, domain_id, without)
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
        }
        name = f"Registrar{len(clients['iam'].list_roles()['Roles'])}"
        role = clients["iam"].create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        clients["iam"].put_role_policy(
            RoleName=name, PolicyName="registrar", PolicyDocument=json.dumps(for_moto(policy))
        )
        sts = boto3.session.Session().client("sts", region_name=REGION)
        credentials = sts.assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="platform-team")["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=REGION,
        )
        registrar = Registrar(policy, session, calls, template_repo)
        set_auth(moto_endpoint, "0")
        try:
            with registrar.sc_stub:
                yield registrar
        finally:
            set_auth(moto_endpoint, "inf")

    return act


def s3_args(bucket: str, domain_id: str, roles: dict[str, str]) -> list[str]:
    return ["--mode", "s3", "--bucket", bucket, "--domain-id", domain_id, "--use-role", roles["use"]]


def sc_args(bucket: str, roles: dict[str, str]) -> list[str]:
    words = ["--mode", "service-catalog", "--bucket", bucket, "--use-role", roles["use"]]
    return [*words, "--launch-role", roles["launch"], "--principal", roles["studio"]]


def test_s3_mode_registers_and_unregisters_with_the_registrar_policy(acting, iam_roles, bucket, domain_id):
    with acting() as registrar:
        code, out = registrar.run("register", *s3_args(bucket, domain_id, iam_roles), "--template-ref", "v0.0.0")
        assert code == 0, out
        code, out = registrar.run("register", *s3_args(bucket, domain_id, iam_roles), "--template-ref", "v0.0.0")
        assert code == 0 and "Already up to date" in out, out
        code, out = registrar.run("unregister", "--mode", "s3", "--bucket", bucket, "--domain-id", domain_id)
        assert code == 0, out
    assert "Done:" in out


def test_service_catalog_mode_registers_and_unregisters_with_the_registrar_policy(acting, clients, iam_roles, bucket):
    with acting() as registrar:
        expect_fresh_registration(registrar.sc_stub, iam_roles["launch"], iam_roles["studio"])
        code, out = registrar.run("register", *sc_args(bucket, iam_roles), "--template-ref", "v0.0.0")
        assert code == 0, out
        registrar.sc_stub.assert_no_pending_responses()
    pid = product_id(clients)
    with acting() as registrar:
        expect_product(registrar.sc_stub, pid, {"v0.0.0": "pa-first", "v0.1.0": "pa-second"})
        registrar.sc_stub.add_response(
            "delete_provisioning_artifact", {}, {"ProductId": pid, "ProvisioningArtifactId": "pa-first"}
        )
        code, out = registrar.run(
            "unregister", "--mode", "service-catalog", "--bucket", bucket, "--template-version", "v0.0.0"
        )
        assert code == 0, out
        registrar.sc_stub.assert_no_pending_responses()
    assert len(portfolios(clients)) == 1 and product_id(clients) == pid


@pytest.mark.parametrize(
    "action",
    ["s3:PutObject", "s3:PutBucketCORS", "sagemaker:AddTags"],
)
def test_s3_mode_fails_naming_an_action_missing_from_the_policy(acting, iam_roles, bucket, domain_id, action):
    with acting(without=(action,)) as registrar:
        code, out = registrar.run("register", *s3_args(bucket, domain_id, iam_roles), "--template-ref", "v0.0.0")
    assert code == 1, out
    assert f"the caller lacks {action}" in out, out


@pytest.mark.parametrize(
    "action",
    [
        "iam:GetRole",
        "servicecatalog:CreatePortfolio",  # served and authorised by moto
        "servicecatalog:CreateProduct",
        "servicecatalog:DescribeProductAsAdmin",  # the Stubber answers, the policy is evaluated first
        "servicecatalog:CreateConstraint",
    ],
)
def test_service_catalog_mode_fails_naming_an_action_missing_from_the_policy(acting, iam_roles, bucket, action):
    with acting(without=(action,)) as registrar:
        expect_fresh_registration(registrar.sc_stub, iam_roles["launch"], iam_roles["studio"])
        code, out = registrar.run("register", *sc_args(bucket, iam_roles), "--template-ref", "v0.0.0")
    assert code == 1, out
    assert f"the caller lacks {action}" in out, out


# A call is self.<client>.call/pages("operation", ...), or a Service Catalog call kept for later:
# self.op("operation", ...) or self.portfolio_op("operation", ...).
CALL = re.compile(r'self\.(?:(s3|sc|iam|sagemaker)\.(?:call|pages)|(?:portfolio_)?op)\(\s*"([a-z0-9_]+)"')
PREFIX_OF = {"s3": "s3", "sc": "servicecatalog", "iam": "iam", "sagemaker": "sagemaker"}
# Authorised by AWS without an API call of the script's own: tagging an object as it is put, passing the launch
# role to Service Catalog when the launch constraint is created.
IMPLIED = {"s3:PutObjectTagging", "iam:PassRole"}


def test_the_policy_allows_every_call_of_the_script_and_nothing_else():
    """Every operation in the catalog's code (also those the tests above do not reach under the role, such as
    UpdateProduct or DisassociatePrincipalFromPortfolio) has its action in the policy, and the policy no other."""
    called = set()
    for path in sorted(POLICY.parent.glob("*.py")):
        for client, operation in CALL.findall(path.read_text(encoding="utf-8")):
            service = client or "sc"
            name = "".join(word.title() for word in operation.split("_"))
            called.add(ACTION_NAMES.get(name, f"{PREFIX_OF[service]}:{name}"))
    policy = json.loads(POLICY.read_text(encoding="utf-8"))
    allowed = {action for statement in policy["Statement"] for action in _actions(statement)}
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
    assert len(called) > 20, called
    assert called - allowed == set(), f"catalog/registrar-policy.json lacks {sorted(called - allowed)}"
    assert allowed - called - IMPLIED == set(), f"the script never calls {sorted(allowed - called - IMPLIED)}"


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
