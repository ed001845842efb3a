"""The release commands: what each one checks, decides and changes. release.py only parses the command line."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from release import capacity, config, drift_baselines, formats, preflight, pricing, registry, stack
from release.aws import Clients, Settings, check_account
from release.config import (
    BATCH_TEMPLATE,
    FAST_ROLLBACK,
    MONITORING_TEMPLATE,
    ROOT,
    EnvironmentConfig,
    MonitoringInputs,
    Project,
    StackInputs,
    batch_stack_parameters,
    capture_prefix,
    data_capture_uri,
    endpoint_stack_parameters,
    load_environment,
    monitoring_prefix,
    monitoring_stack_parameters,
)
from release.errors import ReleaseError
from release.output import Output
from release.template import MAX_TEMPLATE_BODY, check_parameters, defaults, load_template

# A blue/green rollback on ml.m5 instances: about 4 minutes to start and health-check the new fleet, under a
# minute of CloudFormation bookkeeping (see release/README.md).
ROLLBACK_ESTIMATE = "about 4-5 minutes"
ROLLED_BACK_FROM = "rolled-back-from"  # stack tag set by rollback, cleared by the next deploy


@dataclass
class Context:
    project: Project
    template: Path
    overrides: dict[str, str] = field(default_factory=dict)
    monitoring_template: Path = MONITORING_TEMPLATE
    region: str = ""
    dry_run: bool = False
    allow_replacement: bool = False  # --replace: an endpoint type change deletes and recreates the endpoint
    timeout_seconds: float = 3 * 3600
    out: Output = field(default_factory=Output)
    _clients: dict[str, Clients] = field(default_factory=dict)

    def clients(self, region: str = "") -> Clients:
        region = self.region or region or self.project.region
        if not region:
            raise ReleaseError(
                "no AWS region: neither --region, the environment file nor pyproject.toml gives one",
                "set [tool.sagemaker-mlops] aws_region in pyproject.toml or pass --region",
            )
        if region not in self._clients:
            self._clients[region] = Clients(region)
        return self._clients[region]

    def settings(self, clients: Clients) -> Settings:
        return Settings(self.project, clients, self.overrides)


# ---------------------------------------------------------------------------------------- register/approve
def image_tag(explicit: str, image: str = "inference") -> str:
    """An image's tag: --image-tag, else the commit CI builds, else the local HEAD (the build stage's tag)."""
    for candidate in (
        explicit,
        os.environ.get("GITHUB_SHA", ""),
        os.environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION", ""),
    ):
        if candidate:
            return candidate
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        )
        return head.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        raise ReleaseError(
            f"cannot tell which {image} image tag to use (no --image-tag, GITHUB_SHA or git repository)",
            "pass --image-tag <commit> or --image <repository-uri>:<tag>",
        ) from None


def register(ctx: Context, model_data: str, metrics: str, image: str, tag: str, description: str) -> str | None:
    clients = ctx.clients()
    settings = ctx.settings(clients)
    values = settings.get("model_package_group", "artifact_bucket")
    if not image:
        image = f"{settings.one('inference_image_uri')}:{image_tag(tag)}"
    return registry.register(
        clients,
        ctx.out,
        group=values["model_package_group"],
        bucket=values["artifact_bucket"],
        project=ctx.project.name,
        model_data_url=model_data,
        image=image,
        metrics=metrics,
        description=description or f"{ctx.project.name} model from {model_data}",
        dry_run=ctx.dry_run,
    )


def approve(ctx: Context, ref: str, reject: bool, reason: str) -> None:
    if reject and not reason:
        raise ReleaseError("--reject needs --reason", 'say why, e.g. --reason "recall below the gate on segment X"')
    clients = ctx.clients()
    group = ctx.settings(clients).one("model_package_group")
    package = registry.resolve(clients.sagemaker, group, ref)
    registry.set_approval(clients, ctx.out, package, "Rejected" if reject else "Approved", reason, ctx.dry_run)


# ------------------------------------------------------------------------------------------------- deploy
def deploy(
    ctx: Context,
    environment: str,
    package_ref: str = "",
    shadow_ref: str = "",
    overrides: dict[str, str] | None = None,
    why: str = "deploy",
    extra_tags: dict[str, str] | None = None,
) -> str:
    """Create or update the environment's endpoint stack; returns the final status or 'UNCHANGED'/'DRY-RUN'.

    Every check (package approved and servable by its image, stack and endpoint ready, the account's quotas and
    roles) runs before the first write.
    """
    env = load_environment(environment)
    clients = ctx.clients(env.region)
    check_account(clients, env.account_id, f"infra/config/{env.name}.json")
    settings = ctx.settings(clients)
    group = settings.one("model_package_group")
    package = registry.resolve(clients.sagemaker, group, package_ref) if package_ref else None
    package = package or registry.latest_approved(clients.sagemaker, group)
    registry.require_approved(package)
    artifact_format, image_format = formats.require_servable(clients, registry.describe(clients.sagemaker, package.arn))
    shadow_arn = _shadow_package(clients, env, group, shadow_ref)
    if shadow_arn:
        formats.require_servable(clients, registry.describe(clients.sagemaker, shadow_arn))
    values = settings.get("execution_role_arn", "kms_key_arn", "artifact_bucket")
    stack_name = ctx.project.stack_name(env.name)
    current = stack.read_stack(clients.cloudformation, stack_name)
    stack.check_stack_ready(current, stack_name, endpoint_name=env.endpoint_name)
    endpoint = stack.read_endpoint(clients.sagemaker, env.endpoint_name)
    stack.check_endpoint_ready(endpoint, env.endpoint_name, stack_name)
    failed_creation = current is not None and current["StackStatus"] == stack.FAILED_CREATION
    exists = current is not None and current["StackStatus"] not in ("REVIEW_IN_PROGRESS", stack.FAILED_CREATION)
    deployed = stack.parameters_of(current) if exists else {}
    replacement = _type_change(ctx, env, stack_name, deployed) if exists else ""
    preflight.require(preflight.deploy_checks(clients, env, values["execution_role_arn"]), f"{why} to {env.name}")
    fleet = capacity.plan(clients.autoscaling, env, {} if replacement else deployed, endpoint)
    inputs = StackInputs(
        model_package_arn=package.arn,
        execution_role_arn=values["execution_role_arn"],
        kms_key_arn=values["kms_key_arn"],
        data_capture_s3_uri=data_capture_uri(values["artifact_bucket"], ctx.project, env.name),
        shadow_model_package_arn=shadow_arn,
        artifact_bucket=values["artifact_bucket"],
    )
    parameters = {
        **endpoint_stack_parameters(ctx.project, env, inputs),
        "InstanceCount": str(fleet.instance_count),
        **(overrides or {}),
    }
    body, _ = _template(ctx.template, parameters, "endpoint")
    before = deployed.get("ModelPackageArn", "")
    ctx.out.say(
        f"{why}: {env.name} endpoint {env.endpoint_name} (stack {stack_name}, {clients.region}): "
        f"{_describe_arn(before) if exists else 'not deployed yet'} -> {_describe_arn(package.arn)} "
        f"({artifact_format} artifact, {image_format} image), {env.endpoint_type} endpoint, strategy "
        f"{parameters['DeploymentStrategy']}"
    )
    ctx.out.say(f"  {pricing.describe(env)}")
    for line in capacity.describe(fleet, deployed.get("InstanceType", ""), parameters["InstanceType"]):
        ctx.out.say(f"  {line}")
    if exists and stack.is_unchanged(clients.cloudformation, current, body, parameters, frozenset({"InstanceCount"})):
        ctx.out.say(f"{stack_name} already runs {_describe_arn(package.arn)} with this configuration; nothing to do")
        return "UNCHANGED"
    if failed_creation:
        stack.replace_failed_creation(
            clients.cloudformation, ctx.out, stack_name, ctx.timeout_seconds, ctx.dry_run, env.endpoint_name
        )
    if replacement:
        ctx.out.say(replacement)
        stack.delete_for_replacement(
            clients.cloudformation, ctx.out, stack_name, ctx.timeout_seconds, ctx.dry_run, env.endpoint_name
        )
        exists, deployed = False, {}
    restore = (int(parameters["AutoScalingMinCapacity"]), int(parameters["AutoScalingMaxCapacity"]))
    if ctx.dry_run:
        with capacity.scaling_released(clients.autoscaling, ctx.out, fleet, restore, dry_run=True):
            _show_plan(ctx.out, stack_name, exists, deployed, parameters, _relative(ctx.template))
        return "DRY-RUN"
    with capacity.scaling_released(clients.autoscaling, ctx.out, fleet, restore, dry_run=False):
        status = _deploy_stack(
            ctx, clients, env, stack_name, exists, body, parameters, f"{why}: {package.arn}", extra_tags
        )
    if status != "UNCHANGED":
        endpoint = stack.read_endpoint(clients.sagemaker, env.endpoint_name)
        state = endpoint["EndpointStatus"] if endpoint else "not visible yet"
        ctx.out.say(f"done: stack {stack_name} {status}; endpoint {env.endpoint_name} {state}")
        if monitoring_included():
            ctx.out.say(
                f"next: create or update the drift monitoring of {env.endpoint_name}: "
                f"make monitor-deploy ENV={env.name} (release.py monitor --env {env.name})"
            )
    return status


def _type_change(ctx: Context, env: EnvironmentConfig, stack_name: str, deployed: dict[str, str]) -> str:
    """'' when the deployed endpoint has the configured type; else the replacement plan (refused without --replace).

    SageMaker moves an endpoint to a new endpoint configuration with a blue/green update only within one type: an
    instance endpoint cannot become serverless (UpdateEndpoint answers ValidationException), nor can an
    asynchronous configuration replace a real-time one in place. So a type change deletes the endpoint stack and
    creates it again: the endpoint serves nothing in between.
    """
    before = deployed.get("EndpointType", "realtime")
    if before == env.endpoint_type:
        return ""
    plan = (
        f"endpoint type {before} -> {env.endpoint_type} (endpoint.endpoint_type in infra/config/{env.name}.json): "
        "SageMaker cannot change the type of an endpoint in place, so this is a REPLACEMENT - stack "
        f"{stack_name} is deleted (endpoint {env.endpoint_name} stops serving, its alarms and scaling go with it) and "
        "created again with the new type; the endpoint is unavailable until the new one is InService (typically "
        "5-10 minutes)"
    )
    if not ctx.allow_replacement and not ctx.dry_run:
        raise ReleaseError(
            plan,
            f"run it deliberately: make deploy ENV={env.name} REPLACE=1 (release.py deploy --env {env.name} "
            f"--replace), or keep endpoint.endpoint_type {json.dumps(before)}",
        )
    return plan


def _template(path: Path, parameters: dict[str, str], kind: str) -> tuple[str, dict]:
    """The template's text and document, after checking the parameters against its declarations and its size."""
    body, document = load_template(path)
    check_parameters(parameters, document, _relative(path), kind)
    if len(body.encode()) > MAX_TEMPLATE_BODY:
        raise ReleaseError(
            f"{_relative(path)} is over CloudFormation's {MAX_TEMPLATE_BODY}-byte template body limit",
            "shorten the template (descriptions, comments)",
        )
    return body, document


def _shadow_package(clients: Clients, env: EnvironmentConfig, group: str, shadow_ref: str) -> str:
    if not env.shadow_enabled:
        if shadow_ref:
            raise ReleaseError(
                f"--shadow-package given but endpoint.shadow_variant.enabled is false in infra/config/{env.name}.json",
                "set it to true to run a shadow variant, or drop --shadow-package",
            )
        return ""
    if not shadow_ref:
        raise ReleaseError(
            f"endpoint.shadow_variant.enabled is true in infra/config/{env.name}.json but no shadow package is given",
            "pass --shadow-package <arn|version> (the candidate to test on a copy of the traffic) or disable it",
        )
    return registry.resolve(clients.sagemaker, group, shadow_ref).arn


def _deploy_stack(ctx, clients, env, stack_name, exists, body, parameters, description, extra_tags=None, **kwargs):
    """Create or update one of the environment's stacks through a change set, tagged with project and environment."""
    return stack.deploy(
        clients.cloudformation,
        ctx.out,
        stack_name=stack_name,
        exists=exists,
        body=body,
        parameters=parameters,
        tags={"project": ctx.project.name, "environment": env.name, **(extra_tags or {})},
        description=description,
        timeout_seconds=ctx.timeout_seconds,
        **kwargs,
    )


def _show_plan(out: Output, stack_name: str, exists: bool, before: dict, after: dict, template: str) -> None:
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    if exists:
        out.say("[dry-run] parameters that change:")
        out.table(["parameter", "now", "new"], [[k, before.get(k, ""), v] for k, v in sorted(changed.items())])
    kind = "UPDATE" if exists else "CREATE"
    out.call(
        "cloudformation.create_change_set",
        {
            "StackName": stack_name,
            "ChangeSetName": "release-<UTC time>",
            "ChangeSetType": kind,
            "TemplateBody": f"<{template}>",
            "Parameters": after,
            "Capabilities": stack.CAPABILITIES,
        },
    )
    out.say("[dry-run] then: describe_change_set until CREATE_COMPLETE, print the changes, execute_change_set,")
    out.say("[dry-run]       follow describe_stack_events until the stack settles. Nothing was changed.")


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _describe_arn(arn: str) -> str:
    return f"model package version {registry.package_version(arn)}" if arn else "nothing"


# ------------------------------------------------------------------------------------ promote / rollback
def deployed_package(ctx: Context, environment: str) -> tuple[EnvironmentConfig, str, dict]:
    """(config, the model package the environment's endpoint stack runs, the stack's tags)."""
    env = load_environment(environment)
    clients = ctx.clients(env.region)
    stack_name = ctx.project.stack_name(env.name)
    current = stack.read_stack(clients.cloudformation, stack_name)
    if current is None or current["StackStatus"] == "REVIEW_IN_PROGRESS":
        raise ReleaseError(
            f"nothing is deployed in {env.name}: stack {stack_name} does not exist in {clients.region}",
            f"deploy first: make deploy ENV={env.name}",
        )
    if current["StackStatus"] == stack.FAILED_CREATION:
        raise ReleaseError(
            f"nothing is deployed in {env.name}: the creation of stack {stack_name} failed (ROLLBACK_COMPLETE), "
            "so no endpoint serves a model there",
            f"fix the cause and deploy first: make deploy ENV={env.name} (it deletes the failed stack and creates "
            "it again)",
        )
    stack.check_stack_ready(current, stack_name)
    arn = stack.parameters_of(current).get("ModelPackageArn", "")
    if not arn:
        raise ReleaseError(f"stack {stack_name} has no ModelPackageArn parameter", "redeploy it with release.py deploy")
    return env, arn, {t["Key"]: t["Value"] for t in current.get("Tags", [])}


def promote(ctx: Context, source: str, target: str) -> str:
    if source == target:
        raise ReleaseError(f"--from and --to are both {source}", "promote from staging to prod")
    env, arn, _ = deployed_package(ctx, source)
    clients = ctx.clients(env.region)
    endpoint = stack.read_endpoint(clients.sagemaker, env.endpoint_name)
    if endpoint is not None and endpoint["EndpointStatus"] != "InService":
        raise ReleaseError(
            f"{source} endpoint {env.endpoint_name} is {endpoint['EndpointStatus']}, not InService: "
            "what it runs has not been proven",
            f"let the {source} deployment finish and pass make test-endpoint ENV={source}, then promote",
        )
    ctx.out.say(f"promote: {source} runs {_describe_arn(arn)} ({arn}); deploying exactly that to {target}")
    return deploy(ctx, target, package_ref=arn, why=f"promote {source} -> {target}")


def rollback(ctx: Context, environment: str) -> str:
    env, arn, tags = deployed_package(ctx, environment)
    if ROLLED_BACK_FROM in tags:
        ctx.out.say(
            f"{env.name} already runs {_describe_arn(arn)} after a rollback from "
            f"{_describe_arn(tags[ROLLED_BACK_FROM])}; "
            "nothing to do. To go back further, deploy a version explicitly: release.py deploy --env "
            f"{env.name} --package N"
        )
        return "UNCHANGED"
    clients = ctx.clients(env.region)
    group = ctx.settings(clients).one("model_package_group")
    current = registry.Package(arn, registry.package_version(arn), "deployed", None)
    previous = registry.previous_approved(clients.sagemaker, group, current)
    ctx.out.say(
        f"rollback of {env.name}: {env.endpoint_name} serves {_describe_arn(arn)}; it will serve "
        f"{_describe_arn(previous.arn)}, the newest Approved package before it.\n"
        f"how: a CloudFormation update of {ctx.project.stack_name(env.name)} with a blue/green ALL_AT_ONCE shift, "
        f"no baking period and no termination wait (instead of {env.strategy} from infra/config/{env.name}.json; "
        f"the next deploy restores it); the alarms still guard the switch. Expected duration: {ROLLBACK_ESTIMATE}."
    )
    return deploy(
        ctx,
        environment,
        package_ref=previous.arn,
        overrides=FAST_ROLLBACK,
        why=f"rollback {env.name}",
        extra_tags={ROLLED_BACK_FROM: arn},
    )


# ------------------------------------------------------------------------------------------------- status
def status(ctx: Context, environments: list[str]) -> None:
    rows = []
    group = ""
    clients = None
    for name in environments:
        try:
            env = load_environment(name)
            clients = ctx.clients(env.region)
            stack_name = ctx.project.stack_name(name)
            current = stack.read_stack(clients.cloudformation, stack_name)
            endpoint = stack.read_endpoint(clients.sagemaker, env.endpoint_name)
            params = stack.parameters_of(current)
            rows.append(
                [
                    name,
                    stack_name,
                    current["StackStatus"] if current else "-",
                    env.endpoint_name,
                    endpoint["EndpointStatus"] if endpoint else "-",
                    str(registry.package_version(params["ModelPackageArn"])) if params.get("ModelPackageArn") else "-",
                    params.get("DeploymentStrategy", "-"),
                    _type_column(env, params),
                    pricing.describe(env),
                ]
            )
        except (ReleaseError, ClientError, BotoCoreError) as exc:
            rows.append([name, "", f"error: {str(exc).splitlines()[0]}", "", "", "", "", "", ""])
    ctx.out.table(
        [
            "env",
            "stack",
            "stack status",
            "endpoint",
            "endpoint status",
            "package",
            "strategy",
            "type",
            "cost (estimate)",
        ],
        rows,
    )
    ctx.out.say(pricing.FOOTNOTE)
    if clients is None:
        return
    group = ctx.settings(clients).one("model_package_group")
    packages = registry.list_packages(clients.sagemaker, group)
    ctx.out.say(f"\nmodel package group {group} (newest first):")
    ctx.out.table(
        ["version", "approval", "created"],
        [[str(p.version), p.status, p.created.strftime("%Y-%m-%d %H:%M") if p.created else ""] for p in packages[:10]],
    )


def _type_column(env: EnvironmentConfig, deployed: dict[str, str]) -> str:
    """The configured type, and the deployed one when they differ (the next deploy replaces the endpoint)."""
    running = deployed.get("EndpointType", "realtime") if deployed else env.endpoint_type
    if running == env.endpoint_type:
        return env.endpoint_type
    return f"{running} (configured {env.endpoint_type}: next deploy replaces)"


# ---------------------------------------------------------------------------------------------- preflight
def ci_provider_of_repository() -> str:
    """codepipeline or github-actions, from the template answers (.copier-answers.yml) the repository keeps."""
    import yaml

    try:
        answers = yaml.safe_load((ROOT / ".copier-answers.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ""
    return str(answers.get("ci_provider", ""))


def preflight_checks(ctx: Context, environment: str, connection_arn: str = "", ci_provider: str = "") -> bool:
    """Every read-only check of what the account needs before the first deploy; True when all pass."""
    env = load_environment(environment)
    clients = ctx.clients(env.region)
    source = f"infra/config/{env.name}.json"
    identity = clients.sts.get_caller_identity()["Account"]
    checks = [
        preflight.Check(
            "account",
            not env.account_id or env.account_id == identity,
            f"credentials of {identity}" + (f", {source} wants {env.account_id}" if env.account_id else ""),
            f"switch to credentials of account {env.account_id} (AWS_PROFILE)",
        )
    ]
    found, values = preflight.check_settings(clients, ctx.project, monitoring_included())
    checks += found
    values.update({k: v for k, v in ctx.overrides.items() if v})
    if values.get("model_package_group"):
        checks.append(preflight.check_group(clients.sagemaker, values["model_package_group"]))
    if values.get("execution_role_arn"):
        checks.append(
            preflight.check_role(
                clients.iam,
                values["execution_role_arn"],
                "SageMaker execution role",
                preflight.execution_role_fix(),
                identity,
            )
        )
    checks.append(preflight.check_scaling_role(clients.iam))
    checks += preflight.check_quotas(clients.quotas, clients.region, preflight.endpoint_needs(env), source)
    checks += preflight.check_quotas(
        clients.quotas, clients.region, preflight.job_needs(env, monitoring_included()), source
    )
    if (ci_provider or ci_provider_of_repository()) == "codepipeline":
        checks.append(preflight.check_connection(clients, ctx.project, connection_arn))
    ctx.out.say(f"preflight of {env.name} ({clients.region}, account {identity}): read-only, nothing is changed")
    preflight.report(ctx.out, checks)
    failed = sum(not c.ok for c in checks)
    ctx.out.say(f"{len(checks) - failed} of {len(checks)} checks passed" + ("" if not failed else f"; {failed} to fix"))
    return not failed


# ------------------------------------------------------------------------------------------------ monitor
def monitoring_included() -> bool:
    """Whether this repository was generated with monitoring (the drift job and its stack template)."""
    return config.MONITORING_DIR.is_dir() and config.MONITORING_TEMPLATE.is_file()


def monitor(ctx: Context, environment: str, image: str = "", tag: str = "") -> str:
    """Publish the baselines and create or update the environment's monitoring stack.

    Returns the final stack status, 'BASELINES-UPDATED' (only the baselines changed), 'UNCHANGED' or 'DRY-RUN'.
    """
    if not monitoring_included():
        raise ReleaseError(
            "this repository was generated without monitoring (no monitoring/ folder or infra/lib/monitoring.yaml): "
            "there is no monitoring stack to deploy",
            "drop the monitor step, or regenerate the project with include_monitoring=true to get the drift job, "
            "its baselines and infra/lib/monitoring.yaml",
        )
    env = load_environment(environment, monitoring=True)
    source = f"infra/config/{env.name}.json"
    if env.endpoint_type == "serverless":
        raise ReleaseError(
            f"{source}: endpoint.endpoint_type is serverless: SageMaker captures no traffic of serverless endpoints, "
            "so the drift job would have nothing to read",
            f'monitor a realtime or async environment, or set endpoint.endpoint_type to "realtime" in {source} '
            f"(then make deploy ENV={env.name} REPLACE=1, which replaces the endpoint)",
        )
    if not env.data["endpoint"]["data_capture"]["enabled"]:
        raise ReleaseError(
            f"{source}: endpoint.data_capture.enabled is false, so the endpoint records no traffic for the drift job",
            f"set it to true, run make deploy ENV={env.name}, then run the command again",
        )
    files = drift_baselines.read_folder(config.MONITORING_DIR / "baselines")
    clients = ctx.clients(env.region)
    check_account(clients, env.account_id, source)
    settings = ctx.settings(clients)
    values = settings.get("execution_role_arn", "pipeline_starter_role_arn", "kms_key_arn", "artifact_bucket")
    if not image:
        image = f"{settings.one('monitoring_image_uri')}:{tag or _deployed_image_tag(ctx, clients, env)}"
    formats.describe_image(clients.ecr, image, "monitoring image")  # refuses an image no build pushed
    bucket = values["artifact_bucket"]
    prefix = monitoring_prefix(ctx.project, env.name)
    capture = capture_prefix(data_capture_uri(bucket, ctx.project, env.name), env.endpoint_name)
    inputs = MonitoringInputs(
        execution_role_arn=values["execution_role_arn"],
        pipeline_starter_role_arn=values["pipeline_starter_role_arn"],
        kms_key_arn=values["kms_key_arn"],
        monitoring_image_uri=image,
        capture_s3_uri=capture,
        reports_s3_uri=f"s3://{bucket}/{prefix}/reports",
        baseline_s3_uri=f"s3://{bucket}/{prefix}/baselines",
    )
    parameters = monitoring_stack_parameters(ctx.project, env, inputs)
    body, document = _template(ctx.monitoring_template, parameters, "monitoring")
    parameters = {**defaults(document), **parameters}  # every parameter, so an unchanged stack compares equal
    stack_name = ctx.project.monitoring_stack_name(env.name)
    current = stack.read_stack(clients.cloudformation, stack_name)
    stack.check_stack_ready(current, stack_name, stack.MONITORING)
    failed_creation = current is not None and current["StackStatus"] == stack.FAILED_CREATION
    exists = current is not None and current["StackStatus"] not in ("REVIEW_IN_PROGRESS", stack.FAILED_CREATION)
    ctx.out.say(
        f"monitor: {env.name} endpoint {env.endpoint_name} (stack {stack_name}, {clients.region}): drift job "
        f"{image.rsplit('/', 1)[-1]} {parameters['ScheduleExpression']} over the last "
        f"{parameters['CaptureWindowHours']} h of {capture}"
    )
    _check_endpoint_capture(ctx, clients, env, capture)
    published = drift_baselines.publish(clients.s3, ctx.out, bucket, f"{prefix}/baselines", files, ctx.dry_run)
    baselines_changed = bool(published.upload or published.delete)
    if exists and stack.is_unchanged(clients.cloudformation, current, body, parameters):
        if not baselines_changed:
            ctx.out.say(f"{stack_name} already runs this configuration; nothing to do")
            return "UNCHANGED"
        if ctx.dry_run:
            ctx.out.say(f"[dry-run] {stack_name} already runs this configuration; only the baselines would change")
            return "DRY-RUN"
        ctx.out.say(f"{stack_name} already runs this configuration; the next drift run reads the new baselines")
        return "BASELINES-UPDATED"
    if failed_creation:
        stack.replace_failed_creation(clients.cloudformation, ctx.out, stack_name, ctx.timeout_seconds, ctx.dry_run)
    if ctx.dry_run:
        before = stack.parameters_of(current) if exists else {}
        _show_plan(ctx.out, stack_name, exists, before, parameters, _relative(ctx.monitoring_template))
        return "DRY-RUN"
    description = f"monitor: {env.endpoint_name} with {image}"
    status = _deploy_stack(
        ctx, clients, env, stack_name, exists, body, parameters, description, subject=stack.MONITORING
    )
    if status == "UNCHANGED":
        if not baselines_changed:
            return "UNCHANGED"
        ctx.out.say("the next drift run reads the new baselines")
        return "BASELINES-UPDATED"
    ctx.out.say(f"done: stack {stack_name} {status}")
    for output in (stack.read_stack(clients.cloudformation, stack_name) or {}).get("Outputs", []):
        ctx.out.say(f"  {output['OutputKey']}: {output['OutputValue']}")
    if parameters["AlarmEmail"]:
        ctx.out.say(f"  {parameters['AlarmEmail']} receives a subscription mail from SNS: confirm it to get the alarms")
    return status


def _deployed_image_tag(ctx: Context, clients: Clients, env: EnvironmentConfig) -> str:
    """The commit the endpoint's model package was built from: the build stage tags all images with it."""
    endpoint_stack = stack.read_stack(clients.cloudformation, ctx.project.stack_name(env.name))
    arn = stack.parameters_of(endpoint_stack).get("ModelPackageArn", "")
    if not arn or endpoint_stack["StackStatus"] not in stack.HEALTHY:
        tag = image_tag("", "monitoring")
        ctx.out.say(f"note: no endpoint deployed in {env.name}; the monitoring image tag is the commit {tag}")
        return tag
    containers = registry.describe(clients.sagemaker, arn).get("InferenceSpecification", {}).get("Containers", [])
    image = containers[0].get("Image", "") if containers else ""
    tag = formats.parse_image(image).get("tag") or ""
    if not tag:
        raise ReleaseError(
            f"the model package {arn} that {env.name} serves names its image {image!r} without a tag",
            "pass --image-tag <commit> (a tag the build stage pushed to the monitoring repository)",
        )
    ctx.out.say(f"monitoring image tag {tag}: the build of the model package {env.name} serves")
    return tag


def _check_endpoint_capture(ctx: Context, clients: Clients, env: EnvironmentConfig, capture: str) -> None:
    """Say when the endpoint does not (yet) write its capture where the drift job will read it."""
    endpoint_stack = stack.read_stack(clients.cloudformation, ctx.project.stack_name(env.name))
    if endpoint_stack is None:
        ctx.out.say(
            f"note: the endpoint stack {ctx.project.stack_name(env.name)} is not deployed yet; the drift job finds "
            f"no capture until make deploy ENV={env.name} has run"
        )
        return
    deployed = stack.parameters_of(endpoint_stack)
    if (
        deployed.get("DataCaptureEnabled") != "true"
        or capture_prefix(deployed.get("DataCaptureS3Uri", ""), env.endpoint_name) != capture
    ):
        ctx.out.say(
            f"note: the endpoint stack captures to {deployed.get('DataCaptureS3Uri') or 'nowhere'} "
            f"(DataCaptureEnabled={deployed.get('DataCaptureEnabled', '?')}), not where the drift job reads; "
            f"make deploy ENV={env.name} applies {_relative(env.path)}"
        )


# -------------------------------------------------------------------------------------------------- batch
def batch(ctx: Context, environment: str, tag: str = "") -> str:
    """Create or update the environment's batch triggers stack: the schedule and the upload rule that start the
    batch pipeline with the newest Approved package. Returns the stack status, 'UNCHANGED' or 'DRY-RUN'."""
    env = load_environment(environment)
    source = f"infra/config/{env.name}.json"
    if "batch" not in env.data:
        raise ReleaseError(f"{source} has no batch block", "copy the batch block of infra/config/dev.json")
    clients = ctx.clients(env.region)
    check_account(clients, env.account_id, source)
    values = ctx.settings(clients).get(
        "pipeline_starter_role_arn", "kms_key_arn", "artifact_bucket", "model_package_group"
    )
    package = registry.latest_approved(clients.sagemaker, values["model_package_group"])
    model_data_url = ""
    if env.data["batch"].get("attributions"):  # the attributions step explains with the package's own artifact
        model_data_url = registry.model_data_url(clients.sagemaker, package.arn)
    parameters = batch_stack_parameters(
        ctx.project,
        env,
        pipeline_starter_role_arn=values["pipeline_starter_role_arn"],
        kms_key_arn=values["kms_key_arn"],
        bucket=values["artifact_bucket"],
        model_package_arn=package.arn,
        image_tag=image_tag(tag),
        model_data_url=model_data_url,
    )
    body, document = _template(BATCH_TEMPLATE, parameters, "batch")
    parameters = {**defaults(document), **parameters}
    stack_name = ctx.project.batch_stack_name(env.name)
    current = stack.read_stack(clients.cloudformation, stack_name)
    stack.check_stack_ready(current, stack_name, stack.BATCH)
    exists = current is not None and current["StackStatus"] not in ("REVIEW_IN_PROGRESS", stack.FAILED_CREATION)
    ctx.out.say(
        f"batch: {env.name} scores with {_describe_arn(package.arn)}; schedule "
        f"{parameters['ScheduleExpression'] or 'none'}; upload prefix {parameters['UploadPrefix'] or 'none'}"
    )
    if exists and stack.is_unchanged(clients.cloudformation, current, body, parameters):
        ctx.out.say(f"{stack_name} already runs this configuration; nothing to do")
        return "UNCHANGED"
    if current is not None and current["StackStatus"] == stack.FAILED_CREATION:
        stack.replace_failed_creation(clients.cloudformation, ctx.out, stack_name, ctx.timeout_seconds, ctx.dry_run)
    if ctx.dry_run:
        _show_plan(
            ctx.out,
            stack_name,
            exists,
            stack.parameters_of(current) if exists else {},
            parameters,
            _relative(BATCH_TEMPLATE),
        )
        return "DRY-RUN"
    status = _deploy_stack(
        ctx, clients, env, stack_name, exists, body, parameters, f"batch: {package.arn}", subject=stack.BATCH
    )
    ctx.out.say(
        f"done: stack {stack_name} {status}; the triggers start pipeline {ctx.project.name}-batch-{env.name}: "
        f"create or update it with make batch-remote ENV={env.name} INPUT=s3://... (or pipeline.batch_pipeline upsert)"
    )
    return status
