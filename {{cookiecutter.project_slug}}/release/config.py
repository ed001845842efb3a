"""Project and environment settings: pyproject.toml, infra/config/<env>.json, and the endpoint stack parameters.

Every environment file is validated on load; each problem names the key, the value found and what is allowed,
so a typo such as "BLUE" for the deployment strategy stops a release before any AWS call.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import contract, environment_checks
from model.common import paths
from release.errors import ReleaseError

ROOT = paths.REPO_ROOT
CONFIG_DIR = contract.CONFIG_DIR
ENDPOINT_TEMPLATE = contract.LIB / "endpoint.yaml"
MONITORING_DIR = ROOT / "monitoring"  # absent when the repository was generated without monitoring
MONITORING_TEMPLATE = contract.LIB / "monitoring.yaml"
BATCH_TEMPLATE = contract.LIB / "batch.yaml"
BASELINE_FILES = ("statistics.json", "constraints.json", "schema.json")  # the drift job needs these three
OPTIONAL_BASELINE_FILES = ("output_statistics.json",)
ENVIRONMENTS = ("dev", "staging", "prod")
STRATEGIES = ("ALL_AT_ONCE", "CANARY", "LINEAR")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
ACCOUNT_ID = re.compile(r"^(\d{12})?$")
SCHEDULE = re.compile(r"^(rate|cron|at)\(.+\)$")
RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
EMAIL = re.compile(r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_CAPTURE_WINDOW_HOURS = 744  # CaptureWindowHours' MaxValue in infra/lib/monitoring.yaml (31 days)


@dataclass(frozen=True)
class Project:
    """The project's name (PROJECT in resource names) and default region, from pyproject.toml."""

    name: str
    region: str

    @property
    def ssm_prefix(self) -> str:
        return f"/{self.name}/"

    def stack_name(self, environment: str) -> str:
        return f"{self.name}-endpoint-{environment}"

    def batch_stack_name(self, environment: str) -> str:
        return f"{self.name}-batch-{environment}"

    def monitoring_stack_name(self, environment: str) -> str:
        return f"{self.name}-monitoring-{environment}"


def load_project(root: Path = ROOT) -> Project:
    path = root / "pyproject.toml"
    try:
        name, region = contract.project_settings(path)
    except FileNotFoundError:
        raise ReleaseError(f"{path} is missing", "run the release scripts from the project's repository") from None
    except tomllib.TOMLDecodeError as exc:
        raise ReleaseError(f"{path} is not valid TOML: {exc}", "fix the file") from None
    if not name:
        raise ReleaseError(f"{path}: [project] name is missing", "set the project name in pyproject.toml")
    return Project(name=name, region=region)


# ------------------------------------------------------------------------------------------- validation
# key path -> (type, check, allowed); every key is required.
def _int_range(low: int, high: int | None = None):
    def check(value: int) -> bool:
        return value >= low and (high is None or value <= high)

    allowed = f"a whole number from {low} to {high}" if high is not None else f"a whole number >= {low}"
    return int, check, allowed


def _pattern(regex: re.Pattern, allowed: str):
    return str, lambda value: bool(regex.match(value)), allowed


def _one_of(*choices: str):
    return str, lambda value: value in choices, "one of " + ", ".join(choices)


_BOOL = (bool, lambda value: True, "true or false")
_STRINGS = (list, lambda value: all(isinstance(v, str) and v for v in value), "a list of non-empty strings")

FIELDS: dict[str, tuple] = {
    "environment": _one_of(*ENVIRONMENTS),
    "account_id": _pattern(ACCOUNT_ID, 'a 12-digit AWS account id, or "" for the current account'),
    "region": _pattern(REGION, "an AWS region such as eu-west-1"),
    "endpoint.name": _pattern(ENDPOINT_NAME, "letters, digits and hyphens, at most 63 characters"),
    "endpoint.instance_type": _pattern(INSTANCE_TYPE, "a SageMaker instance type such as ml.m5.large"),
    "endpoint.instance_count": _int_range(1),
    # 0 only for an async endpoint (infra.environment_checks.min_capacity_problems)
    "endpoint.autoscaling.min_capacity": _int_range(0),
    "endpoint.autoscaling.max_capacity": _int_range(1),
    "endpoint.autoscaling.target_invocations_per_instance": _int_range(1),
    "endpoint.data_capture.enabled": _BOOL,
    "endpoint.data_capture.sampling_percentage": _int_range(0, 100),
    "endpoint.shadow_variant.enabled": _BOOL,
    "endpoint.shadow_variant.instance_type": _pattern(INSTANCE_TYPE, "a SageMaker instance type such as ml.m5.large"),
    "endpoint.shadow_variant.instance_count": _int_range(1),
    "deployment.strategy": _one_of(*STRATEGIES),
    "deployment.canary_size_percent": _int_range(1, 50),
    "deployment.linear_step_percent": _int_range(1, 50),
    "deployment.wait_interval_seconds": _int_range(0, 3600),
    "deployment.termination_wait_seconds": _int_range(0, 3600),
    "deployment.maximum_execution_timeout_seconds": _int_range(600, 28800),
    "alarms.invocation_5xx_errors": _int_range(1),
    "alarms.model_latency_p99_microseconds": _int_range(1),
    "alarms.evaluation_periods": _int_range(1, 10),
    "network.subnet_ids": _STRINGS,
    "network.security_group_ids": _STRINGS,
    "network.enable_network_isolation": _BOOL,
}

# Checked only by the monitor command: the block is unused (and may be absent) in a repository without monitoring.
MONITORING_FIELDS: dict[str, tuple] = {
    # The expression itself is checked as EventBridge Scheduler checks it (infra.environment_checks).
    "monitoring.schedule_expression": (str, lambda value: True, 'an EventBridge Scheduler expression "rate(1 hour)"'),
    "monitoring.instance_type": _pattern(INSTANCE_TYPE, "a SageMaker instance type such as ml.m5.large"),
    "monitoring.instance_count": _int_range(1, 1),
    "monitoring.alarm_email": _pattern(EMAIL, 'an email address, or "" for no subscription'),
}
# Optional keys: present -> checked, absent -> derived (see monitoring_stack_parameters).
OPTIONAL_MONITORING_FIELDS: dict[str, tuple] = {
    "monitoring.capture_window_hours": _int_range(1, MAX_CAPTURE_WINDOW_HOURS),
}


def _lookup(data: dict, dotted: str) -> tuple[bool, Any]:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _type_ok(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _field_problems(data: dict, fields: dict[str, tuple], source: str, required: bool = True) -> list[str]:
    problems = []
    type_names = {int: "a whole number", str: "a string", bool: "true or false", list: "a list"}
    for key, (expected, check, allowed) in fields.items():
        present, value = _lookup(data, key)
        if not present:
            if required:
                problems.append(f"{source}: {key} is missing: add it ({allowed})")
        elif not _type_ok(value, expected):
            problems.append(f"{source}: {key} = {json.dumps(value)} must be {type_names[expected]} ({allowed})")
        elif not check(value):
            problems.append(f"{source}: {key} = {json.dumps(value)} is not allowed: use {allowed}")
    return problems


def validate_environment(data: Any, environment: str, source: str, monitoring: bool = False) -> list[str]:
    """Every problem of one environment file, each naming the key, the value and what is allowed.

    monitoring=True also checks the "monitoring" block (the monitor command's input).
    """
    if not isinstance(data, dict):
        return [f"{source}: the file must hold a JSON object, found {type(data).__name__}"]
    problems = _field_problems(data, FIELDS, source)
    if monitoring:
        problems += _field_problems(data, MONITORING_FIELDS, source)
        problems += _field_problems(data, OPTIONAL_MONITORING_FIELDS, source, required=False)
    # Every schedule expression, and the batch and retraining blocks when present (the same checks as `make lint`).
    problems += [p for p in environment_checks.environment_problems(data, source) if p not in problems]
    if not problems:
        if data["environment"] != environment:
            problems.append(
                f"{source}: environment = {json.dumps(data['environment'])} but the file is for {environment!r}: "
                f'set it to "{environment}"'
            )
        scaling = data["endpoint"]["autoscaling"]
        if scaling["min_capacity"] > scaling["max_capacity"]:
            problems.append(
                f"{source}: endpoint.autoscaling.min_capacity = {scaling['min_capacity']} is above max_capacity = "
                f"{scaling['max_capacity']}: make min_capacity <= max_capacity"
            )
        if data["network"]["security_group_ids"] and not data["network"]["subnet_ids"]:
            problems.append(
                f"{source}: network.security_group_ids is set but network.subnet_ids is empty: give both or neither"
            )
    return problems


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    data: dict
    path: Path

    @property
    def region(self) -> str:
        return self.data["region"]

    @property
    def account_id(self) -> str:
        return self.data["account_id"]

    @property
    def endpoint_name(self) -> str:
        return self.data["endpoint"]["name"]

    @property
    def endpoint_type(self) -> str:
        """realtime, serverless or async (endpoint.endpoint_type; realtime when absent)."""
        return environment_checks.endpoint_type_of(self.data)

    @property
    def strategy(self) -> str:
        return self.data["deployment"]["strategy"]

    @property
    def shadow_enabled(self) -> bool:
        return self.data["endpoint"]["shadow_variant"]["enabled"]

    @property
    def latency_p99_ms(self) -> float:
        return self.data["alarms"]["model_latency_p99_microseconds"] / 1000


def load_environment(environment: str, config_dir: Path | None = None, monitoring: bool = False) -> EnvironmentConfig:
    if environment not in ENVIRONMENTS:
        raise ReleaseError(
            f"unknown environment {environment!r}", f"use one of {', '.join(ENVIRONMENTS)} (infra/config/<env>.json)"
        )
    source = f"infra/config/{environment}.json"
    try:
        path, data = contract.read_environment(environment, config_dir or CONFIG_DIR)
    except contract.EnvironmentFileError as exc:
        raise ReleaseError(exc.problem, exc.fix) from None
    problems = validate_environment(data, environment, source, monitoring)
    if problems:
        raise ReleaseError(
            f"{source} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems),
            f"edit {source} and run the command again",
        )
    return EnvironmentConfig(environment, data, path)


# ------------------------------------------------------------------------------------- stack parameters
@dataclass(frozen=True)
class StackInputs:
    """What the endpoint stack needs besides the environment file."""

    model_package_arn: str
    execution_role_arn: str
    kms_key_arn: str
    data_capture_s3_uri: str
    shadow_model_package_arn: str = ""
    artifact_bucket: str = ""  # where an async endpoint's output and failure paths are


def async_uri(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}" if bucket and prefix else ""


def data_capture_uri(bucket: str, project: Project, environment: str) -> str:
    return f"s3://{bucket}/{project.name}/data-capture/{environment}"


# Endpoint stack parameter <- its key in infra/config/<env>.json. Numbers, flags and lists become the strings
# CloudFormation takes; the other parameters come from the project and the release (endpoint_stack_parameters).
ENDPOINT_SETTINGS = {
    "EndpointName": "endpoint.name",
    "InstanceType": "endpoint.instance_type",
    "InstanceCount": "endpoint.instance_count",
    "ShadowInstanceType": "endpoint.shadow_variant.instance_type",
    "ShadowInstanceCount": "endpoint.shadow_variant.instance_count",
    "DeploymentStrategy": "deployment.strategy",
    "CanarySizePercent": "deployment.canary_size_percent",
    "LinearStepPercent": "deployment.linear_step_percent",
    "WaitIntervalSeconds": "deployment.wait_interval_seconds",
    "TerminationWaitSeconds": "deployment.termination_wait_seconds",
    "MaximumExecutionTimeoutSeconds": "deployment.maximum_execution_timeout_seconds",
    "DataCaptureEnabled": "endpoint.data_capture.enabled",
    "DataCaptureSamplingPercentage": "endpoint.data_capture.sampling_percentage",
    "AutoScalingMinCapacity": "endpoint.autoscaling.min_capacity",
    "AutoScalingMaxCapacity": "endpoint.autoscaling.max_capacity",
    "TargetInvocationsPerInstance": "endpoint.autoscaling.target_invocations_per_instance",
    "Invocation5xxThreshold": "alarms.invocation_5xx_errors",
    "ModelLatencyP99Microseconds": "alarms.model_latency_p99_microseconds",
    "AlarmEvaluationPeriods": "alarms.evaluation_periods",
    "SubnetIds": "network.subnet_ids",
    "SecurityGroupIds": "network.security_group_ids",
    "EnableNetworkIsolation": "network.enable_network_isolation",
}


def setting(data: dict, key: str):
    """A value of an environment file by its dotted key (endpoint.autoscaling.min_capacity)."""
    for part in key.split("."):
        data = data[part]
    return data


def cloudformation_string(value) -> str:
    if isinstance(value, bool):
        return _flag(value)
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


# Parameters of one endpoint type <- key of its block (endpoint.<type>.<key>); the block may be absent for another
# type, and then the parameter keeps the template's default (the same values as here, so an unchanged stack
# compares equal).
TYPE_SETTINGS = {
    "serverless": {
        "ServerlessMemorySizeMB": ("memory_size_mb", "2048"),
        "ServerlessMaxConcurrency": ("max_concurrency", "5"),
        "ServerlessProvisionedConcurrency": ("provisioned_concurrency", "0"),
    },
    "async": {
        "AsyncNotifications": ("notifications", "true"),
        "AsyncMaxConcurrentInvocations": ("max_concurrent_invocations_per_instance", "4"),
        "AsyncTargetBacklogPerInstance": ("target_backlog_per_instance", "5"),
        "AsyncOldestRequestAgeSeconds": ("oldest_request_alarm_seconds", "900"),
    },
}


def type_parameters(env: EnvironmentConfig, inputs: StackInputs) -> dict[str, str]:
    """EndpointType and the parameters of the serverless and async blocks."""
    values = {"EndpointType": env.endpoint_type}
    for endpoint_type, settings in TYPE_SETTINGS.items():
        for name, (key, default) in settings.items():
            present, value = _lookup(env.data, f"endpoint.{endpoint_type}.{key}")
            values[name] = cloudformation_string(value) if present else default
    block = env.data["endpoint"].get("async", {}) if env.endpoint_type == "async" else {}
    values["AsyncOutputS3Uri"] = async_uri(inputs.artifact_bucket, block.get("output_path", ""))
    values["AsyncFailureS3Uri"] = async_uri(inputs.artifact_bucket, block.get("failure_path", ""))
    return values


def endpoint_stack_parameters(project: Project, env: EnvironmentConfig, inputs: StackInputs) -> dict[str, str]:
    """The endpoint stack's parameters (infra/lib/endpoint.yaml), every value a string as CloudFormation wants."""
    capturing = setting(env.data, ENDPOINT_SETTINGS["DataCaptureEnabled"])
    return {
        **type_parameters(env, inputs),
        "ProjectName": project.name,
        "Environment": env.name,
        "ModelPackageArn": inputs.model_package_arn,
        "ShadowModelPackageArn": inputs.shadow_model_package_arn,
        "ExecutionRoleArn": inputs.execution_role_arn,
        "DataCaptureS3Uri": inputs.data_capture_s3_uri if capturing else "",
        "KmsKeyArn": inputs.kms_key_arn,
        **{name: cloudformation_string(setting(env.data, key)) for name, key in ENDPOINT_SETTINGS.items()},
    }


@dataclass(frozen=True)
class MonitoringInputs:
    """What the monitoring stack needs besides the environment file."""

    execution_role_arn: str
    pipeline_starter_role_arn: str
    kms_key_arn: str
    monitoring_image_uri: str  # with its tag
    capture_s3_uri: str
    reports_s3_uri: str
    baseline_s3_uri: str
    training_pipeline_name: str = ""


def capture_prefix(data_capture_s3_uri: str, endpoint_name: str) -> str:
    """Where SageMaker writes an endpoint's capture: <DataCaptureS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/."""
    return f"{data_capture_s3_uri.rstrip('/')}/{endpoint_name}/"


def monitoring_prefix(project: Project, environment: str) -> str:
    """The key prefix of the environment's monitoring files in the artifact bucket (baselines/, reports/)."""
    return f"{project.name}/monitoring/{environment}"


def capture_window_hours(env: EnvironmentConfig) -> int:
    """Hours of capture each drift run reads: monitoring.capture_window_hours, else the rate() schedule's interval."""
    monitoring = env.data["monitoring"]
    if "capture_window_hours" in monitoring:
        return monitoring["capture_window_hours"]
    expression = monitoring["schedule_expression"]
    match = RATE.match(expression)
    if not match:
        raise ReleaseError(
            f"infra/config/{env.name}.json: monitoring.schedule_expression = {json.dumps(expression)} does not say "
            "how many hours of capture each drift run should read",
            f"add monitoring.capture_window_hours (1-{MAX_CAPTURE_WINDOW_HOURS}, the hours between two runs) or use "
            'a schedule such as "rate(6 hours)"',
        )
    count, unit = int(match.group(1)), match.group(2)
    hours = {"minute": (count + 59) // 60, "hour": count, "day": count * 24}[unit.rstrip("s")]
    if not 1 <= hours <= MAX_CAPTURE_WINDOW_HOURS:
        raise ReleaseError(
            f"infra/config/{env.name}.json: monitoring.schedule_expression = {json.dumps(expression)} would make "
            f"each drift run read {hours} hours of capture; allowed are 1 to {MAX_CAPTURE_WINDOW_HOURS}",
            "use an interval from 1 minute to 31 days",
        )
    return hours


def monitoring_stack_parameters(project: Project, env: EnvironmentConfig, inputs: MonitoringInputs) -> dict[str, str]:
    """The monitoring stack's parameters (infra/lib/monitoring.yaml) that the project sets; the rest keep defaults."""
    monitoring, network = env.data["monitoring"], env.data["network"]
    retraining = env.data.get("retraining", {})
    return {
        "ProjectName": project.name,
        "Environment": env.name,
        "EndpointName": env.endpoint_name,
        "ExecutionRoleArn": inputs.execution_role_arn,
        "PipelineStarterRoleArn": inputs.pipeline_starter_role_arn,
        "MonitoringImageUri": inputs.monitoring_image_uri,
        "CaptureS3Uri": inputs.capture_s3_uri,
        "ReportsS3Uri": inputs.reports_s3_uri,
        "BaselineS3Uri": inputs.baseline_s3_uri,
        "ScheduleExpression": monitoring["schedule_expression"],
        "CaptureWindowHours": str(capture_window_hours(env)),
        "InstanceType": monitoring["instance_type"],
        "InstanceCount": str(monitoring["instance_count"]),
        "AlarmEmail": monitoring["alarm_email"],
        "KmsKeyArn": inputs.kms_key_arn,
        "SubnetIds": ",".join(network["subnet_ids"]),
        "SecurityGroupIds": ",".join(network["security_group_ids"]),
        "RetrainOnAlarms": _flag(bool(retraining.get("on_alarms", False))),
        "TrainingPipelineName": inputs.training_pipeline_name or f"{project.name}-training",
        "RetrainScheduleExpression": retraining.get("schedule_expression", ""),
        "RetrainMinIntervalHours": str(retraining.get("min_interval_hours", 24)),
    }


# Rollback favours speed over caution: every instance switches at once, no baking period, the old fleet goes
# right away (the previous package already served this traffic, so the guard has little to watch).
FAST_ROLLBACK = {"DeploymentStrategy": "ALL_AT_ONCE", "WaitIntervalSeconds": "0", "TerminationWaitSeconds": "0"}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def batch_stack_parameters(
    project: Project,
    env: EnvironmentConfig,
    *,
    pipeline_starter_role_arn: str,
    kms_key_arn: str,
    bucket: str,
    model_package_arn: str,
    image_tag: str,
    model_data_url: str = "",
) -> dict[str, str]:
    """The batch stack's parameters (infra/lib/batch.yaml) from the environment's "batch" block."""
    batch = env.data["batch"]
    return {
        "ProjectName": project.name,
        "Environment": env.name,
        "PipelineStarterRoleArn": pipeline_starter_role_arn,
        "KmsKeyArn": kms_key_arn,
        "ModelPackageArn": model_package_arn,
        "ImageTag": image_tag,
        "ArtifactBucket": bucket,
        "ScheduleExpression": batch["schedule_expression"],
        "ScheduledInputKey": f"{project.name}/batch/{env.name}/input/",
        "UploadPrefix": batch["upload_prefix"],
        "ModelDataUrl": model_data_url if batch.get("attributions") else "",
    }
