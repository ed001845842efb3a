"""What an account needs before the first `make deploy`, checked read-only (`make preflight ENV=...`).

Each check names the missing prerequisite and the command that fixes it; none changes anything (every call here is
a Get/List/Describe). deploy and promote run the checks their own first write depends on (quotas of the endpoint's
instance type, the execution role, the auto scaling service-linked role) before that write.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from release.aws import SETTINGS, Clients
from release.config import EnvironmentConfig, Project
from release.errors import ReleaseError
from release.output import Output

QUOTA_SERVICE = "sagemaker"
# Application Auto Scaling registers the endpoint variant through this service-linked role.
SCALING_ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
SCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


# ------------------------------------------------------------------------------------------------ quotas
def endpoint_needs(env: EnvironmentConfig) -> dict[str, int]:
    """Instances per "<type> for endpoint usage" quota: a blue/green update runs old and new fleet side by side."""
    endpoint = env.data["endpoint"]
    needs: dict[str, int] = {}
    if env.endpoint_type == "serverless":  # no instances (concurrency has its own account-wide limit)
        return needs
    most = max(endpoint["instance_count"], endpoint["autoscaling"]["max_capacity"])
    needs[f"{endpoint['instance_type']} for endpoint usage"] = 2 * most
    shadow = endpoint["shadow_variant"]
    if shadow["enabled"]:
        name = f"{shadow['instance_type']} for endpoint usage"
        needs[name] = needs.get(name, 0) + 2 * shadow["instance_count"]
    return needs


def job_needs(env: EnvironmentConfig, monitoring: bool) -> dict[str, int]:
    """Instances per training / processing quota: the training pipeline's jobs and the drift job."""
    needs: dict[str, int] = {}
    training = env.data.get("training")
    if isinstance(training, dict) and "instance_type" in training:
        kind = "spot training job usage" if training.get("use_spot_instances") else "training job usage"
        needs[f"{training['instance_type']} for {kind}"] = int(training.get("instance_count", 1))
        if "processing_instance_type" in training:
            needs[f"{training['processing_instance_type']} for processing job usage"] = 1
    if monitoring and isinstance(env.data.get("monitoring"), dict):
        block = env.data["monitoring"]
        name = f"{block['instance_type']} for processing job usage"
        needs[name] = max(needs.get(name, 0), int(block.get("instance_count", 1)))
    return needs


def check_quotas(quotas, region: str, needs: dict[str, int], source: str) -> list[Check]:
    """Compare each quota's applied value (its default when none was applied) with what the config needs."""
    defaults = {}
    for page in quotas.get_paginator("list_aws_default_service_quotas").paginate(ServiceCode=QUOTA_SERVICE):
        for quota in page["Quotas"]:
            defaults[quota["QuotaName"]] = quota
    checks = []
    for name, wanted in sorted(needs.items()):
        quota = defaults.get(name)
        if quota is None:
            checks.append(
                Check(
                    f"quota {name}",
                    False,
                    f"SageMaker has no quota {name!r} in {region}: the instance type is not offered there",
                    f"choose an instance type available in {region} in {source} (list: aws service-quotas "
                    "list-aws-default-service-quotas --service-code sagemaker --query "
                    "\"Quotas[?ends_with(QuotaName, 'for endpoint usage')].QuotaName\")",
                )
            )
            continue
        try:
            value = quotas.get_service_quota(ServiceCode=QUOTA_SERVICE, QuotaCode=quota["QuotaCode"])["Quota"]["Value"]
        except ClientError as exc:
            if exc.response["Error"].get("Code") != "NoSuchResourceException":
                raise
            value = quota["Value"]  # no applied value: the default applies
        ok = value >= wanted
        checks.append(
            Check(
                f"quota {name}",
                ok,
                f"{value:g} allowed, {wanted} needed by {source}",
                ""
                if ok
                else "request an increase (it takes hours to days): aws service-quotas "
                f"request-service-quota-increase --service-code sagemaker --quota-code {quota['QuotaCode']} "
                f"--desired-value {wanted} --region {region}",
            )
        )
    return checks


# ------------------------------------------------------------------------------------------------- roles
def read_or_none(read, missing_code: str):
    """The answer of an AWS read, or None when it fails only because the thing does not exist."""
    try:
        return read()
    except ClientError as exc:
        if exc.response["Error"].get("Code") != missing_code:
            raise
        return None


def check_role(iam, arn: str, what: str, fix: str, account: str) -> Check:
    name = arn.rsplit("/", 1)[-1]
    if f":{account}:" not in arn:
        return Check(what, True, f"{arn} is in another account: checked there, not from {account}")
    if read_or_none(lambda: iam.get_role(RoleName=name), "NoSuchEntity") is None:
        return Check(what, False, f"{arn} does not exist", fix)
    return Check(what, True, arn)


def check_scaling_role(iam) -> Check:
    if read_or_none(lambda: iam.get_role(RoleName=SCALING_ROLE), "NoSuchEntity") is None:
        return Check(
            "auto scaling service-linked role",
            False,
            f"{SCALING_ROLE} does not exist: the endpoint stack's ScalableTarget cannot be registered",
            f"create it once per account: aws iam create-service-linked-role --aws-service-name {SCALING_SERVICE}",
        )
    return Check("auto scaling service-linked role", True, SCALING_ROLE)


def execution_role_fix() -> str:
    return (
        "deploy the toolchain stack (infra/lib/toolchain.yaml creates it and writes its ARN to SSM), or pass "
        "--execution-role-arn with a role SageMaker may assume"
    )


# ---------------------------------------------------------------------------------------- the toolchain
def check_settings(clients: Clients, project: Project, monitoring: bool) -> tuple[list[Check], dict[str, str]]:
    names = {project.ssm_prefix + ssm: setting for setting, (ssm, _) in SETTINGS.items()}
    if not monitoring:
        names = {k: v for k, v in names.items() if v != "monitoring_image_uri"}
    found = {p["Name"]: p["Value"] for p in clients.ssm.get_parameters(Names=sorted(names))["Parameters"]}
    checks = [
        Check(
            f"SSM {name}",
            name in found,
            found.get(name, "missing"),
            "" if name in found else "deploy the toolchain stack (docs/runbook.md step 3), which writes it",
        )
        for name in sorted(names)
    ]
    return checks, {setting: found[name] for name, setting in names.items() if name in found}


def check_group(sagemaker, group: str) -> Check:
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as exc:
        if exc.response["Error"].get("Code") not in ("ValidationException", "ResourceNotFound"):
            raise
        return Check(
            "model package group",
            False,
            f"{group} does not exist",
            "deploy the toolchain stack, which creates it (or check SSM /PROJECT/model-package-group)",
        )
    return Check("model package group", True, group)


def check_connection(clients: Clients, project: Project, connection_arn: str) -> Check:
    """The CodeConnections connection the source stage uses must be AVAILABLE (it is PENDING until authorised)."""
    if not connection_arn:
        toolchain = f"{project.name}-toolchain"
        try:
            stack = clients.cloudformation.describe_stacks(StackName=toolchain)["Stacks"][0]
        except ClientError:
            return Check(
                "CodeConnections connection",
                False,
                f"no --connection-arn and no toolchain stack {toolchain} to read its ConnectionArn from",
                "create the connection (docs/runbook.md step 2) and pass --connection-arn ARN",
            )
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        if parameters.get("SourceProvider", "CodeConnections") != "CodeConnections":
            return Check("CodeConnections connection", True, f"not used: SourceProvider {parameters['SourceProvider']}")
        connection_arn = parameters.get("ConnectionArn", "")
        if not connection_arn:
            return Check(
                "CodeConnections connection",
                False,
                f"the toolchain stack {toolchain} has no ConnectionArn",
                "create the connection (docs/runbook.md step 2) and update the toolchain with ConnectionArn=ARN",
            )
    found = read_or_none(
        lambda: clients.connections.get_connection(ConnectionArn=connection_arn), "ResourceNotFoundException"
    )
    if found is None:
        return Check(
            "CodeConnections connection",
            False,
            f"{connection_arn} does not exist",
            "create it: aws codeconnections create-connection --provider-type GitHub --connection-name "
            f"{project.name}, authorise it in the console, and pass its ARN to the toolchain stack",
        )
    status = found["Connection"]["ConnectionStatus"]
    if status != "AVAILABLE":
        return Check(
            "CodeConnections connection",
            False,
            f"{connection_arn} is {status}: the source stage cannot read the repository",
            "authorise it: console -> Developer Tools -> Settings -> Connections -> the connection -> "
            "Update pending connection (a PENDING connection cannot be completed from the CLI)",
        )
    return Check("CodeConnections connection", True, f"{connection_arn} AVAILABLE")


# ------------------------------------------------------------------------------------------------ runners
def deploy_checks(clients: Clients, env: EnvironmentConfig, execution_role_arn: str) -> list[Check]:
    """What a deployment's first write depends on (run by deploy and promote before it)."""
    account = clients.sts.get_caller_identity()["Account"]
    source = f"infra/config/{env.name}.json"
    return [
        *check_quotas(clients.quotas, clients.region, endpoint_needs(env), source),
        check_role(clients.iam, execution_role_arn, "SageMaker execution role", execution_role_fix(), account),
        check_scaling_role(clients.iam),
    ]


def require(checks: list[Check], what: str) -> None:
    failed = [c for c in checks if not c.ok]
    if failed:
        raise ReleaseError(
            f"the account lacks what {what} needs (nothing was changed):\n  - "
            + "\n  - ".join(f"{c.name}: {c.detail}" for c in failed),
            "\n  - ".join(f"{c.name}: {c.fix}" for c in failed) + "\n  (make preflight ENV=... checks everything)",
        )


def report(out: Output, checks: list[Check]) -> None:
    out.table(["check", "result", "detail"], [[c.name, "ok" if c.ok else "MISSING", c.detail] for c in checks])
    for check in checks:
        if not check.ok:
            out.say(f"  fix {check.name}: {check.fix}")
