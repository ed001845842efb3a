"""Credentials of the toolchain's CI roles on moto, with moto's IAM enforcement on.

The policies are read from infra/lib/toolchain.yaml (never copied): the role's inline policies plus every
AWS::IAM::ManagedPolicy / AWS::IAM::Policy that names the role, after resolving the template's conditions for this
repository's CI provider. moto then authorises every call of the release code against them.

What moto checks (moto 5, docs "IAM-like Access Control"): the action of every request, and for S3 the bucket and
object ARN. It evaluates other services' requests against the resource "*" and cannot evaluate most condition
keys, so Allow statements are given with their actions, their S3 resources resolved to the test bucket, every
other resource widened to "*" and no Condition; Deny statements keep only their S3 actions on S3 objects (a deny
scoped to production endpoints cannot be scoped by moto and is left out). A missing action fails a test; a too
narrow non-S3 resource pattern does not (cfn-lint and infra/tests look at those).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable
from contextlib import contextmanager

import yaml

from infra.tests import conditions
from release.config import ROOT
from release.template import load_template

TOOLCHAIN = ROOT / "infra" / "lib" / "toolchain.yaml"
# The roles the scripts run as, per CI provider: (release stages, build/train stages).
ROLES = {
    "codepipeline": {"release": "CodeBuildReleaseRole", "build": "CodeBuildBuildRole"},
    "github-actions": {"release": "GitHubDeployRole", "build": "GitHubCiRole"},
}


def ci_provider() -> str:
    path = ROOT / ".copier-answers.yml"
    answers = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return str((answers or {}).get("ci_provider", "codepipeline"))


def _parameter_values(document: dict, provider: str) -> dict:
    values = {name: spec.get("Default", "") for name, spec in document.get("Parameters", {}).items()}
    values.update(CiProvider=provider)
    if provider == "codepipeline":
        values.update(
            SourceProvider="CodeConnections", ConnectionArn="arn:aws:codeconnections:us-east-1:1:connection/x"
        )
    values.update(FullRepositoryId="owner/repo", GitHubOidcProviderArn="")
    return values


def _s3_arn(resource, bucket: str) -> str | None:
    """An S3 resource of the template as an ARN of the test bucket; None for other services' resources."""
    if resource in ({"Fn::GetAtt": "ArtifactBucket.Arn"}, {"Fn::GetAtt": ["ArtifactBucket", "Arn"]}):
        return f"arn:aws:s3:::{bucket}"
    if (
        isinstance(resource, dict)
        and isinstance(resource.get("Fn::Sub"), str)
        and "${ArtifactBucket.Arn}" in resource["Fn::Sub"]
    ):
        text = resource["Fn::Sub"].replace("${ArtifactBucket.Arn}", f"arn:aws:s3:::{bucket}")
        return None if "${" in text else text
    if isinstance(resource, str) and resource.startswith("arn:aws:s3:::"):
        return resource
    return None


def _for_moto(statement: dict, bucket: str) -> dict | None:
    """The statement as moto can enforce it (see the module docstring); None when moto cannot scope it."""
    actions = statement.get("Action", [])
    actions = [actions] if isinstance(actions, str) else list(actions)
    resources = statement.get("Resource", "*")
    resources = resources if isinstance(resources, list) else [resources]
    s3 = [arn for arn in (_s3_arn(r, bucket) for r in resources) if arn]
    if statement.get("Effect") == "Deny":  # keep what moto can scope: S3 objects; a wider deny would be wrong
        actions = [a for a in actions if a.startswith("s3:")]
        return {"Effect": "Deny", "Action": actions, "Resource": s3} if actions and s3 else None
    if all(a.startswith("s3:") for a in actions) and s3:
        return {"Effect": "Allow", "Action": actions, "Resource": s3}
    return {"Effect": "Allow", "Action": actions, "Resource": ["*"]}


def toolchain_resources(provider: str | None = None) -> dict:
    """The resources of infra/lib/toolchain.yaml for the CI provider, with its conditions resolved."""
    _, document = load_template(TOOLCHAIN)
    values = _parameter_values(document, provider or ci_provider())
    return conditions.effective(document, values)["Resources"]


def role_policies(role: str, bucket: str, provider: str | None = None, without: Iterable[str] = ()) -> list[dict]:
    """The policy documents attached to the toolchain role `role`, as moto can enforce them.

    `without` removes actions from the Allow statements: a test proves with it that a missing action fails.
    """
    provider = provider or ci_provider()
    resources = toolchain_resources(provider)
    assert role in resources, f"infra/lib/toolchain.yaml has no role {role} for ci_provider {provider}"
    documents = [p["PolicyDocument"] for p in resources[role]["Properties"].get("Policies", [])]
    for resource in resources.values():
        if resource.get("Type") in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            names = resource["Properties"].get("Roles", [])
            names = names if isinstance(names, list) else [names]
            if {"Ref": role} in names:
                documents.append(resource["Properties"]["PolicyDocument"])
    removed = set(without)
    converted = []
    for document in documents:
        statements = [_for_moto(s, bucket) for s in document["Statement"] if isinstance(s, dict)]
        statements = [s for s in statements if s]
        for statement in statements:
            if statement["Effect"] == "Allow":
                statement["Action"] = [a for a in statement["Action"] if a not in removed]
        statements = [s for s in statements if s["Action"]]
        if statements:
            converted.append({"Version": "2012-10-17", "Statement": statements})
    return converted


@contextmanager
def acting_as(role: str, moto_url: str, bucket: str, monkeypatch, without: Iterable[str] = ()):
    """Run the block with the role's credentials and moto's IAM enforcement on; the test's setup must come first.

    `without`: actions taken out of the role's policies (see role_policies).
    """
    import boto3

    iam = boto3.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    arn = iam.create_role(RoleName=f"test-{role}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    for n, policy in enumerate(role_policies(role, bucket, without=without)):
        iam.put_role_policy(RoleName=f"test-{role}", PolicyName=f"p{n}", PolicyDocument=json.dumps(policy))
    credentials = boto3.client("sts").assume_role(RoleArn=arn, RoleSessionName="release")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    _set_auth(moto_url, "0")
    try:
        yield arn
    finally:
        _set_auth(moto_url, "inf")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def _set_auth(moto_url: str, count: str) -> None:
    request = urllib.request.Request(
        f"{moto_url}/moto-api/reset-auth", data=count.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=10).read()
