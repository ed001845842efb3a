"""The production variant's capacity across an update: auto scaling's count, and instance-type changes.

A new endpoint configuration starts its fleet at InitialInstanceCount (the stack's InstanceCount parameter). If the
release passed infra/config's `instance_count` on every update, a blue/green update of an endpoint auto scaling had
grown to 5 instances would start the new fleet at 2: a capacity drop under load, the latency alarm, a rollback.
So an update passes the variant's current desired count (DescribeEndpoint ProductionVariants DesiredInstanceCount,
kept within the configured min/max capacity) as InstanceCount; a difference in that count alone is no update.

UpdateEndpoint refuses to change the instance type of a variant that is an auto scaling target. Chosen, as the
SageMaker developer guide prescribes ("Update endpoints that use auto scaling"): deregister the scalable target
(which also deletes its scaling policies), run the update with the fleet pinned at the current desired count, then
register the target again and put back the same policies - also when the update fails and rolls back. The
endpoint keeps its name, its traffic and its capacity throughout; only scaling pauses for the update's duration.
Not chosen: replacing the endpoint (a new name or a delete and create) - downtime or a traffic switch outside the
blue/green guardrails.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field

from release.config import EnvironmentConfig
from release.errors import ReleaseError
from release.output import Output

VARIANT = "AllTraffic"  # the production variant's name in infra/lib/endpoint.yaml
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
POLICY_FIELDS = (
    "PolicyName",
    "PolicyType",
    "TargetTrackingScalingPolicyConfiguration",
    "StepScalingPolicyConfiguration",
)


def resource_id(endpoint_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{VARIANT}"


@dataclass
class Plan:
    """What the update does with the variant's capacity."""

    endpoint_name: str
    instance_count: int  # the InstanceCount parameter to pass
    note: str = ""  # why, when it differs from infra/config's instance_count
    release_scaling: bool = False  # instance type changes while a scalable target is registered
    target: dict = field(default_factory=dict)  # the registered target (MinCapacity, MaxCapacity)
    policies: list[dict] = field(default_factory=list)  # its scaling policies, put back afterwards


def live_count(endpoint: dict | None) -> int:
    """The production variant's desired instance count (0 when unknown)."""
    for variant in (endpoint or {}).get("ProductionVariants", []):
        if variant.get("VariantName") == VARIANT:
            return int(variant.get("DesiredInstanceCount") or variant.get("CurrentInstanceCount") or 0)
    return 0


def plan(autoscaling, env: EnvironmentConfig, deployed: dict[str, str], endpoint: dict | None) -> Plan:
    """The capacity of the update. `deployed`: the existing stack's parameters ({} for a creation)."""
    configured = env.data["endpoint"]["instance_count"]
    scaling = env.data["endpoint"]["autoscaling"]
    name = env.endpoint_name
    if env.endpoint_type == "serverless":  # no instances, no scalable target: SageMaker sizes the fleet
        return Plan(name, configured)
    live = live_count(endpoint) if deployed and endpoint and endpoint.get("EndpointStatus") == "InService" else 0
    if not live:
        return Plan(name, configured)
    count = max(scaling["min_capacity"], min(live, scaling["max_capacity"]))
    note = ""
    if count != configured:
        note = (
            f"InstanceCount {count}: the variant's current desired count ({live}, auto scaling) within "
            f"min_capacity {scaling['min_capacity']} and max_capacity {scaling['max_capacity']}, instead of "
            f"instance_count {configured} (used only when the endpoint is created)"
        )
    result = Plan(name, count, note)
    if deployed.get("InstanceType", env.data["endpoint"]["instance_type"]) == env.data["endpoint"]["instance_type"]:
        return result
    targets = autoscaling.describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=[resource_id(name)], ScalableDimension=DIMENSION
    )["ScalableTargets"]
    if targets:
        result.release_scaling = True
        result.target = {k: targets[0][k] for k in ("MinCapacity", "MaxCapacity")}
        result.policies = [
            {k: p[k] for k in POLICY_FIELDS if k in p}
            for page in autoscaling.get_paginator("describe_scaling_policies").paginate(
                ServiceNamespace=NAMESPACE, ResourceId=resource_id(name), ScalableDimension=DIMENSION
            )
            for p in page["ScalingPolicies"]
        ]
    return result


def describe(result: Plan, deployed_type: str, new_type: str) -> list[str]:
    lines = [result.note] if result.note else []
    if result.release_scaling:
        lines.append(
            f"instance type {deployed_type} -> {new_type} while auto scaling manages {result.endpoint_name}: "
            "UpdateEndpoint refuses that, so the scalable target is deregistered first (its policies "
            f"{', '.join(p['PolicyName'] for p in result.policies) or '(none)'} with it), the fleet stays at "
            f"{result.instance_count} instances during the update, and target and policies are registered again "
            "afterwards (also if the update fails)"
        )
    return lines


@contextmanager
def scaling_released(autoscaling, out: Output, result: Plan, restore: tuple[int, int], dry_run: bool):
    """Deregister the variant's scalable target for the update, register it (and its policies) again after.

    `restore`: (min, max) capacity to register after a successful update; after a failed one the previous
    target's values come back.
    """
    if not result.release_scaling:
        yield
        return
    key = {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id(result.endpoint_name),
        "ScalableDimension": DIMENSION,
    }
    if dry_run:
        out.call("application-autoscaling.deregister_scalable_target", key)
        yield
        out.say(
            "[dry-run] after the update: register_scalable_target "
            f"(MinCapacity {restore[0]}, MaxCapacity {restore[1]}) and put_scaling_policy for "
            f"{', '.join(p['PolicyName'] for p in result.policies) or 'no policy'}"
        )
        return
    autoscaling.deregister_scalable_target(**key)
    out.say(f"auto scaling of {result.endpoint_name} deregistered for the instance-type change")
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        low, high = restore if succeeded else (result.target["MinCapacity"], result.target["MaxCapacity"])
        _register_again(autoscaling, out, result, key, low, high)


def _register_again(autoscaling, out: Output, result: Plan, key: dict, low: int, high: int) -> None:
    done = []
    try:
        autoscaling.register_scalable_target(**key, MinCapacity=low, MaxCapacity=high)
        done.append("target")
        for policy in result.policies:
            autoscaling.put_scaling_policy(**key, **policy)
            done.append(policy["PolicyName"])
    except Exception as exc:
        commands = [
            "aws application-autoscaling register-scalable-target --service-namespace sagemaker --resource-id "
            f"{key['ResourceId']} --scalable-dimension {DIMENSION} --min-capacity {low} --max-capacity {high}"
        ]
        for policy in result.policies:
            rest = {k: v for k, v in policy.items() if k != "PolicyName"}
            commands.append(
                f"aws application-autoscaling put-scaling-policy --service-namespace sagemaker --resource-id "
                f"{key['ResourceId']} --scalable-dimension {DIMENSION} --policy-name {policy['PolicyName']} "
                f"--cli-input-json '{json.dumps(rest)}'"
            )
        raise ReleaseError(
            f"auto scaling of {result.endpoint_name} could not be registered again ({exc}); registered so far: "
            f"{', '.join(done) or 'nothing'} - the endpoint runs at a fixed count until it is",
            "run: " + " ; ".join(commands),
        ) from exc
    out.say(
        f"auto scaling of {result.endpoint_name} registered again: {low}-{high} instances, policies "
        f"{', '.join(p['PolicyName'] for p in result.policies) or '(none)'}"
    )
