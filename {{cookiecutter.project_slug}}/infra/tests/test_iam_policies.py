"""The roles that deploy or delete stacks may call everything CloudFormation's handlers call, every action named in a
policy exists, and the CI role cannot change production.

The handler actions come from the resource provider schemas cfn-lint ships (infra/tests/iam_rules.py): a resource
type added to a stack, or a handler that starts calling a new action in a newer schema, fails here with the actions
to add, instead of failing a first deployment (or a rollback, or a stack deletion) on a real account.
"""

from __future__ import annotations

import json
import re

import pytest

from infra.tests import iam_rules
from infra.tests.test_stacks import MONITORING, PROJECT, STACKS, effective_template, load

RELEASE_STACKS = ["endpoint", "batch"] + (["monitoring"] if MONITORING else [])
# Roles that create, update and delete the endpoint and monitoring stacks (release/release.py, CloudFormation
# acting with the caller's credentials), per CI provider.
RELEASE_ROLES = [
    ("codepipeline", "CodeBuildReleaseRole"),
    ("github-actions", "GitHubCiRole"),
    ("github-actions", "GitHubDeployRole"),
]
# Mutating actions of the release policy the CI role keeps for production, and why.
SHARED_ACROSS_ENVIRONMENTS = {
    "kms:*": "one key encrypts every environment's data; the key policy is not per environment",
    "iam:PassRole": "one SageMaker execution role serves every environment",
    "iam:CreateServiceLinkedRole": "Application Auto Scaling's service-linked role is account-wide",
    "logs:*": "the CodeBuild log group of the stages (CodePipeline only)",
    "application-autoscaling:*": (
        "scalable targets have opaque ids (no name to deny); the production stack, which declares them, is denied"
    ),
}
MUTATING = re.compile(
    r":(Create|Update|Delete|Put|Register|Deregister|Tag|Untag|Set|Subscribe|Unsubscribe|Execute|Continue|Add|Remove"
    r"|Start|Stop)",
)


def release_templates() -> list[dict]:
    return [load(stack) for stack in RELEASE_STACKS]


@pytest.mark.parametrize("ci,role", RELEASE_ROLES)
def test_release_roles_may_call_every_handler_action_of_the_stacks_they_deploy(ci, role):
    toolchain, _ = effective_template("toolchain", CiProvider=ci)
    statements = iam_rules.role_statements(toolchain, role)

    missing = iam_rules.missing_actions(statements, release_templates())
    assert not missing, (
        f"{role} (CiProvider={ci}) creates, updates and deletes the stacks {', '.join(RELEASE_STACKS)}, but its "
        f"policies allow none of these actions CloudFormation's handlers call:\n  " + "\n  ".join(missing) + "\n"
        "add them to ReleasePolicy in infra/lib/toolchain.yaml (scoped to this project's resources), or, if a "
        "handler calls one only for a property the stacks never set, to CONDITIONAL_PERMISSIONS in iam_rules.py"
    )


def test_the_handler_check_fails_without_an_action_and_honours_wildcards():
    toolchain, _ = effective_template("toolchain", CiProvider="codepipeline")
    statements = iam_rules.role_statements(toolchain, "CodeBuildReleaseRole")

    def without(action: str, *extra: str) -> list[dict]:
        out = []
        for statement in statements:
            actions = [a for a in iam_rules.as_list(statement.get("Action", [])) if a != action]
            out.append({**statement, "Action": actions})
        if extra:
            out.append({"Effect": "Allow", "Action": list(extra), "Resource": "*"})
        return out

    missing = iam_rules.missing_actions(without("sagemaker:DeleteEndpoint"), release_templates())
    assert [m.split(" ")[0] for m in missing] == ["sagemaker:DeleteEndpoint"]
    assert "AWS::SageMaker::Endpoint delete" in missing[0]
    assert (
        iam_rules.missing_actions(without("sagemaker:DeleteEndpoint", "SageMaker:Delete*"), release_templates()) == []
    )
    assert (
        iam_rules.missing_actions(without("sagemaker:DeleteEndpoint", "sagemaker:Delete?ndpoint"), [load("endpoint")])
        == []
    )
    assert iam_rules.missing_actions(without("sagemaker:DeleteEndpoint", "sagemaker:Delete"), release_templates())


def test_the_conditional_handler_permissions_name_real_actions_and_properties():
    """Each exemption names actions its resource type's handlers call and a property of that type's schema."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    for (kind, pattern), condition in iam_rules.CONDITIONAL_PERMISSIONS.items():
        actions = {a for handler in iam_rules.handler_permissions(kind).values() for a in handler}
        assert any(iam_rules.matches(pattern, a) for a in actions), f"{kind}: no handler calls {pattern}"
        properties = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", kind).schema["properties"]
        names = {alternative.split("=")[0].split(".")[0] for alternative in condition.split("|")}
        assert names & set(properties), f"{kind}: {condition} is no property of the type"


@pytest.mark.parametrize("stack", STACKS)
def test_every_action_in_a_policy_is_an_aws_action(stack):
    statements = iam_rules.statements_in(load(stack))
    actions = [a for s in statements for a in iam_rules.as_list(s.get("Action", s.get("NotAction", [])))]

    assert actions or stack in ("endpoint", "batch")  # these two create no policy
    unknown = iam_rules.unknown_actions(actions)
    assert not unknown, (
        f"infra/lib/{stack}.yaml names actions AWS does not have: {unknown} - check the spelling against the "
        "Service Authorization Reference (cfn-lint's Policies.json lists every action)"
    )


def test_the_action_list_catches_typos():
    assert iam_rules.unknown_actions(["sagemaker:DescribeEndpoint", "kms:ReEncrypt*", "s3:*", "*"]) == []
    assert iam_rules.unknown_actions(["sagemaker:DescribeEndpont", "sagemkr:DescribeEndpoint", "s3:Get*Foo"]) == [
        "sagemaker:DescribeEndpont",
        "sagemkr:DescribeEndpoint",
        "s3:Get*Foo",
    ]


def test_the_ci_role_cannot_change_production():
    toolchain, _ = effective_template("toolchain", CiProvider="github-actions")
    release = iam_rules.statements_in(toolchain["Resources"]["ReleasePolicy"]["Properties"]["PolicyDocument"])
    ci = iam_rules.role_statements(toolchain, "GitHubCiRole")
    denied = iam_rules.actions_of(ci, "Deny")

    uncovered = sorted(
        {
            action
            for action in iam_rules.actions_of(release, "Allow")
            if MUTATING.search(action)
            and not any(iam_rules.matches(d, action) for d in denied)
            and not any(iam_rules.matches(s, action) for s in SHARED_ACROSS_ENVIRONMENTS)
        }
    )
    assert not uncovered, (
        f"GitHubCiRole may {uncovered} on production resources: add them to its not-production deny statements "
        "(infra/lib/toolchain.yaml), or to SHARED_ACROSS_ENVIRONMENTS here with the reason"
    )
    for statement in (s for s in ci if s["Effect"] == "Deny"):
        text = json.dumps([statement.get("Resource"), statement.get("Condition", {})])
        is_production = "-prod" in text or "/prod/" in text or '/environment": "prod"' in text
        assert is_production or statement["Action"] == "sagemaker:UpdateModelPackage", statement
    approval = [s for s in ci if s["Effect"] == "Deny" and "sagemaker:UpdateModelPackage" in s["Action"]]
    assert approval, "approving a model version is a person's decision: GitHubCiRole must not UpdateModelPackage"


def test_the_release_role_may_delete_only_stale_baselines():
    if not MONITORING:
        pytest.skip("monitoring is not included: no baselines")
    toolchain, _ = effective_template("toolchain")
    statements = iam_rules.statements_in(toolchain["Resources"]["ReleasePolicy"]["Properties"]["PolicyDocument"])
    deleting = [s for s in statements if "s3:DeleteObject" in iam_rules.as_list(s["Action"])]

    assert [s["Resource"] for s in deleting] == [
        {"Fn::Sub": "${ArtifactBucket.Arn}/" + PROJECT + "/monitoring/*/baselines/*"}
    ]
