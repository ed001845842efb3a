"""IAM facts for the policy tests, from data cfn-lint ships (no other dependency, no network).

- ``aws_actions()``: every IAM action AWS documents (cfn-lint's ``data/AdditionalSpecs/Policies.json``), so a typo in
  a policy cannot pass.
- ``handler_permissions(kind)``: what CloudFormation's resource handlers call to create, read, update and delete a
  resource type (``handlers.<name>.permissions`` of the resource provider schemas cfn-lint ships).
- ``missing_actions(statements, templates)``: the handler actions a role's policies do not allow for the resources of
  the templates it deploys (wildcards such as ``sagemaker:Describe*`` matched as IAM matches them).

Plain Python without template markup: the template repository's catalog tests load this same file.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

HANDLERS = ("create", "read", "update", "delete")

# Handler permissions a handler calls only when a property is set: (resource type, action pattern) -> property
# ("Name" - the property is present; "Name=value" - it has that value; "A|B" - either). Such an action is not
# required while no resource of the type sets the property. Actions of a read handler are always required.
CONDITIONAL_PERMISSIONS: dict[tuple[str, str], str] = {
    ("AWS::ApplicationAutoScaling::ScalableTarget", "lambda:*"): "ServiceNamespace=lambda",
    ("AWS::ApplicationAutoScaling::ScalableTarget", "application-autoscaling:PutScheduledAction"): "ScheduledActions",
    (
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "application-autoscaling:DeleteScheduledAction",
    ): "ScheduledActions",
    ("AWS::SNS::Topic", "iam:GetRole"): "DeliveryStatusLogging",
    ("AWS::SNS::Topic", "sns:PutDataProtectionPolicy"): "DataProtectionPolicy",
    ("AWS::SNS::Subscription", "iam:GetRole"): "SubscriptionRoleArn",
    ("AWS::S3::Bucket", "s3tables:*"): "MetadataTableConfiguration|MetadataConfiguration",
    ("AWS::S3::Bucket", "s3:*BucketMetadata*"): "MetadataTableConfiguration|MetadataConfiguration",
    ("AWS::S3::Bucket", "s3:PutAnalyticsConfiguration"): "AnalyticsConfigurations",
    ("AWS::S3::Bucket", "s3:DeleteBucketAnalyticsConfiguration"): "AnalyticsConfigurations",
    ("AWS::S3::Bucket", "s3:PutBucketCORS"): "CorsConfiguration",
    ("AWS::S3::Bucket", "s3:DeleteBucketCors"): "CorsConfiguration",
    ("AWS::S3::Bucket", "s3:PutInventoryConfiguration"): "InventoryConfigurations",
    ("AWS::S3::Bucket", "s3:PutMetricsConfiguration"): "MetricsConfigurations",
    ("AWS::S3::Bucket", "s3:DeleteBucketMetricsConfiguration"): "MetricsConfigurations",
    ("AWS::S3::Bucket", "s3:PutBucketNotification"): "NotificationConfiguration",
    ("AWS::S3::Bucket", "s3:PutBucketReplication"): "ReplicationConfiguration",
    ("AWS::S3::Bucket", "s3:PutReplicationConfiguration"): "ReplicationConfiguration",
    ("AWS::S3::Bucket", "s3:DeleteBucketReplication"): "ReplicationConfiguration",
    ("AWS::S3::Bucket", "iam:PassRole"): "ReplicationConfiguration",
    ("AWS::S3::Bucket", "s3:PutBucketWebsite"): "WebsiteConfiguration",
    ("AWS::S3::Bucket", "s3:DeleteBucketWebsite"): "WebsiteConfiguration",
    ("AWS::S3::Bucket", "s3:PutAccelerateConfiguration"): "AccelerateConfiguration",
    ("AWS::S3::Bucket", "s3:Put*ObjectLockConfiguration"): "ObjectLockConfiguration|ObjectLockEnabled",
    ("AWS::S3::Bucket", "s3:PutIntelligentTieringConfiguration"): "IntelligentTieringConfigurations",
    ("AWS::S3::Bucket", "s3:PutBucketAcl"): "AccessControl",
    ("AWS::S3::Bucket", "s3:PutObjectAcl"): "AccessControl",
    ("AWS::S3::Bucket", "s3:PutBucketAbac"): "AbacStatus",
    ("AWS::Logs::LogGroup", "logs:PutDataProtectionPolicy"): "DataProtectionPolicy",
    ("AWS::Logs::LogGroup", "logs:DeleteDataProtectionPolicy"): "DataProtectionPolicy",
    ("AWS::Logs::LogGroup", "logs:CreateLogDelivery"): "DataProtectionPolicy",
    ("AWS::Logs::LogGroup", "firehose:TagDeliveryStream"): "DataProtectionPolicy",
    ("AWS::Logs::LogGroup", "logs:PutResourcePolicy"): "ResourcePolicyDocument",
    ("AWS::Logs::LogGroup", "logs:DeleteResourcePolicy"): "ResourcePolicyDocument",
    ("AWS::Logs::LogGroup", "logs:PutIndexPolicy"): "FieldIndexPolicies",
    ("AWS::Logs::LogGroup", "logs:DeleteIndexPolicy"): "FieldIndexPolicies",
    ("AWS::Logs::LogGroup", "logs:PutBearerTokenAuthentication"): "BearerTokenAuthenticationEnabled",
    ("AWS::Logs::LogGroup", "logs:PutLogGroupDeletionProtection"): "DeletionProtectionEnabled",
    ("AWS::Lambda::Function", "lambda:PutFunctionConcurrency"): "ReservedConcurrentExecutions",
    ("AWS::Lambda::Function", "lambda:DeleteFunctionConcurrency"): "ReservedConcurrentExecutions",
    ("AWS::Lambda::Function", "ec2:*"): "VpcConfig",
    ("AWS::Lambda::Function", "elasticfilesystem:*"): "FileSystemConfigs",
    ("AWS::Lambda::Function", "s3files:*"): "FileSystemConfigs",
    ("AWS::Lambda::Function", "s3:GetObject*"): "Code.S3Bucket",
    ("AWS::Lambda::Function", "kms:CreateGrant"): "KmsKeyArn",
    ("AWS::Lambda::Function", "kms:Encrypt"): "KmsKeyArn",
    ("AWS::Lambda::Function", "kms:GenerateDataKey"): "KmsKeyArn",
    ("AWS::Lambda::Function", "lambda:*CodeSigningConfig"): "CodeSigningConfigArn",
    ("AWS::Lambda::Function", "lambda:GetLayerVersion"): "Layers",
    ("AWS::Lambda::Function", "lambda:PutRuntimeManagementConfig"): "RuntimeManagementConfig",
    ("AWS::Lambda::Function", "lambda:PutFunctionRecursionConfig"): "RecursiveLoop",
    ("AWS::Lambda::Function", "lambda:PutFunctionScalingConfig"): "FunctionScalingConfig",
    ("AWS::Lambda::Function", "lambda:PassCapacityProvider"): "CapacityProviderConfig",
    ("AWS::Lambda::Function", "lambda:AssociateRuntimeAlias"): "CapacityProviderConfig",
    ("AWS::Lambda::Function", "lambda:PublishVersion"): "CapacityProviderConfig|PublishToLatestPublished",
    ("AWS::CodePipeline::Pipeline", "codepipeline:DisableStageTransition"): "DisableInboundStageTransitions",
    ("AWS::CodePipeline::Pipeline", "codepipeline:EnableStageTransition"): "DisableInboundStageTransitions",
    ("AWS::CodePipeline::Pipeline", "codepipeline:StartPipelineExecution"): "RestartExecutionOnUpdate=true",
    ("AWS::CodeCommit::Repository", "codecommit:PutRepositoryTriggers"): "Triggers",
    ("AWS::CodeCommit::Repository", "codecommit:CreateCommit"): "Code",
    ("AWS::CodeCommit::Repository", "s3:GetObject*"): "Code",
    ("AWS::CodeCommit::Repository", "codecommit:UpdateRepositoryEncryptionKey"): "KmsKeyId",
    ("AWS::KMS::Key", "kms:DisableKey"): "Enabled",
    ("AWS::KMS::Key", "kms:EnableKey"): "Enabled",
    ("AWS::IAM::Role", "iam:*RolePermissionsBoundary"): "PermissionsBoundary",
    ("AWS::IAM::Policy", "iam:*UserPolicy"): "Users",
    ("AWS::IAM::Policy", "iam:*GroupPolicy"): "Groups",
    ("AWS::IAM::ManagedPolicy", "iam:*UserPolicy"): "Users",
    ("AWS::IAM::ManagedPolicy", "iam:*GroupPolicy"): "Groups",
}

# Resource types whose schema lists no handler permissions (older, non-registry types), and custom resources.
LEGACY_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "AWS::CodeBuild::Project": {
        "create": ("codebuild:CreateProject", "codebuild:BatchGetProjects", "iam:PassRole"),
        "read": ("codebuild:BatchGetProjects",),
        "update": ("codebuild:UpdateProject", "codebuild:BatchGetProjects", "iam:PassRole"),
        "delete": ("codebuild:DeleteProject",),
    },
    "Custom::*": {
        "create": ("lambda:InvokeFunction",),
        "update": ("lambda:InvokeFunction",),
        "delete": ("lambda:InvokeFunction",),
    },
}


# ------------------------------------------------------------------------------------------- AWS's action list
@functools.cache
def aws_actions() -> dict[str, frozenset[str]]:
    """Service prefix -> its action names, lower case (IAM compares actions without case)."""
    import cfnlint.data.AdditionalSpecs as specs

    data = json.loads((Path(specs.__file__).parent / "Policies.json").read_text(encoding="utf-8"))
    return {service.lower(): frozenset(name.lower() for name in spec["Actions"]) for service, spec in data.items()}


def _pattern(text: str) -> re.Pattern[str]:
    """An IAM action pattern (* any run of characters, ? one character) as a case-insensitive regex."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text), re.IGNORECASE)


def matches(pattern: str, action: str) -> bool:
    return _pattern(pattern).fullmatch(action) is not None


def unknown_actions(actions: Iterable[str]) -> list[str]:
    """The actions (or patterns) that name no AWS action: a typo, or a service prefix that does not exist."""
    unknown = []
    for action in actions:
        if action == "*":
            continue
        service, _, name = action.partition(":")
        names = aws_actions().get(service.lower(), frozenset())
        if not name or not any(_pattern(name).fullmatch(known) for known in names):
            unknown.append(action)
    return unknown


# ------------------------------------------------------------------------------------------- policies
def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def statements_in(node: Any) -> list[dict]:
    """Every policy statement below node (both branches of an Fn::If): key, bucket, topic, trust, role policies."""
    return [n for n in walk(node) if isinstance(n, dict) and "Effect" in n and ("Action" in n or "NotAction" in n)]


def actions_of(statements: Iterable[dict], effect: str) -> list[str]:
    return [a for s in statements if s.get("Effect") == effect for a in as_list(s.get("Action", []))]


def _refers_to(node: Any, name: str) -> bool:
    return any(n == {"Ref": name} for n in walk(node))


def role_statements(template: dict, role: str) -> list[dict]:
    """The statements of a role's inline policies and of the managed and inline policies attached to it."""
    resources = template["Resources"]
    properties = resources[role].get("Properties", {})
    statements = [s for policy in properties.get("Policies", []) for s in statements_in(policy["PolicyDocument"])]
    attached = {n["Ref"] for n in walk(properties.get("ManagedPolicyArns", [])) if isinstance(n, dict) and "Ref" in n}
    for name, resource in resources.items():
        if resource["Type"] not in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            continue
        if name in attached or _refers_to(resource["Properties"].get("Roles", []), role):
            statements += statements_in(resource["Properties"]["PolicyDocument"])
    return statements


# ------------------------------------------------------------------------------------------- handlers
@functools.cache
def handler_permissions(kind: str) -> dict[str, tuple[str, ...]]:
    """What CloudFormation calls for each handler of a resource type (cfn-lint's provider schema, us-east-1)."""
    if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
        return LEGACY_PERMISSIONS["Custom::*"]
    if kind in LEGACY_PERMISSIONS:
        return LEGACY_PERMISSIONS[kind]
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    handlers = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", kind).schema.get("handlers", {})
    permissions = {name: tuple(handlers.get(name, {}).get("permissions", [])) for name in HANDLERS}
    if not any(permissions.values()):
        raise AssertionError(
            f"{kind}: cfn-lint's provider schema lists no handler permissions - add them to LEGACY_PERMISSIONS "
            "in infra/tests/iam_rules.py"
        )
    return permissions


def _property_set(properties: dict, condition: str) -> bool:
    for alternative in condition.split("|"):
        path, _, expected = alternative.partition("=")
        value: Any = properties
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and (not expected or str(value).lower() == expected.lower()):
            return True
    return False


def conditional_property(kind: str, action: str) -> str | None:
    for (exempt_kind, pattern), condition in CONDITIONAL_PERMISSIONS.items():
        if exempt_kind == kind and matches(pattern, action):
            return condition
    return None


def required_actions(templates: Iterable[dict]) -> dict[str, set[str]]:
    """Action -> the '<type> <handler>' that call it, for every resource of the templates."""
    instances: dict[str, list[dict]] = defaultdict(list)
    for template in templates:
        for resource in template["Resources"].values():
            instances[resource["Type"]].append(resource.get("Properties", {}))
    needed: dict[str, set[str]] = defaultdict(set)
    for kind, properties in sorted(instances.items()):
        read = set(handler_permissions(kind).get("read", ()))
        for handler, actions in handler_permissions(kind).items():
            for action in actions:
                if unknown_actions([action]):
                    continue  # the schema names something that is no IAM action (e.g. s3:REST.PUT.OBJECT)
                condition = conditional_property(kind, action)
                if condition and action not in read and not any(_property_set(p, condition) for p in properties):
                    continue
                needed[action].add(f"{kind} {handler}")
    return needed


def missing_actions(statements: Iterable[dict], templates: Iterable[dict]) -> list[str]:
    """'<action> (<type> <handler>, ...)' for each handler action no Allow statement grants."""
    allowed = actions_of(list(statements), "Allow")
    return [
        f"{action} ({', '.join(sorted(callers))})"
        for action, callers in sorted(required_actions(templates).items())
        if not any(matches(pattern, action) for pattern in allowed)
    ]
