"""The SageMaker Pipeline's settings: the environment's training and network configuration (infra/config), the
hyperparameters, the toolchain's SSM parameters (or the flags that override them), and the checks that name the
field, the value and the fix before any AWS call. pipeline.sagemaker_pipeline builds and runs the pipeline from them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra import contract
from model.common import image_formats, paths, tuning_config

ROOT = paths.REPO_ROOT
CONFIG_DIR = contract.CONFIG_DIR
TUNING_FILE = paths.TUNING_FILE
INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+(\.[a-z0-9-]+)+$")
MAX_RUNTIME_LIMIT = 28 * 24 * 3600  # SageMaker's ceiling for MaxRuntimeInSeconds
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]+$")
SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]+$")
MAX_SUBNETS, MAX_SECURITY_GROUPS = 16, 5  # SageMaker's VpcConfig limits

# The SSM parameters (infra.contract) the pipeline reads, by setting: name under /<project>/ and the flag.
SSM_SETTINGS = (
    "artifact_bucket",
    "kms_key_arn",
    "model_package_group",
    "execution_role_arn",
    "train_image_uri",
    "inference_image_uri",
    "pipeline_name",
)
SSM_PARAMETERS = {key: contract.SSM_PARAMETERS[key][0] for key in SSM_SETTINGS}
SSM_FLAGS = {key: contract.SSM_PARAMETERS[key][1] for key in SSM_SETTINGS}
PLACEHOLDER_ACCOUNT = "000000000000"


class UsageError(RuntimeError):
    """Bad input (flags, configuration, missing SSM parameters): the message names the field, value and fix."""


# ------------------------------------------------------------------------------------------------ settings
# Plain records of infra/config and SSM fields: field lists alike in shape to other records by nature.
@dataclass(frozen=True)
class Training:
    instance_type: str
    instance_count: int
    processing_instance_type: str
    max_runtime_seconds: int
    use_spot_instances: bool
    inference_instance_type: str


@dataclass(frozen=True)
class Network:
    """The "network" block of infra/config/<env>.json: the VPC and isolation of every Processing and training job."""

    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    enable_network_isolation: bool = False

    @property
    def in_vpc(self) -> bool:
        return bool(self.subnet_ids)


@dataclass(frozen=True)
class Settings:
    """Everything the definition depends on; `placeholders` lists the fields not taken from flags or SSM."""

    project: str
    env: str
    region: str
    training: Training
    hyperparameters: dict[str, str]
    baseline: dict
    artifact_bucket: str
    execution_role_arn: str
    train_image_uri: str
    inference_image_uri: str
    model_package_group: str
    pipeline_name: str
    image_tag: str
    input_data_url: str
    kms_key_arn: str | None = None
    placeholders: tuple[str, ...] = field(default=())
    network: Network = field(default=Network())
    # model/config/tuning.json when it enables tuning for this environment: the training step becomes a tuning step.
    tuning: tuning_config.TuningConfig | None = None


def project_settings(root: Path = ROOT) -> tuple[str, str]:
    """(AWS resource name, region) from pyproject.toml: [project].name with `_` -> `-`, [tool.sagemaker-mlops]."""
    return contract.project_settings(root / "pyproject.toml")


def _config_error(path: Path, key: str, value, fix: str) -> UsageError:
    return UsageError(f"{display_path(path)}: {key} = {value!r}: {fix}")


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def read_config(env: str, config_dir: Path | None = None) -> tuple[Path, object]:
    """infra/config/<env>.json, parsed (infra.contract reads it): (its path, its content)."""
    try:
        return contract.read_environment(env, config_dir or CONFIG_DIR)
    except contract.EnvironmentFileError as exc:
        raise UsageError(f"--env = {env!r}: {exc}") from None


def load_training(env: str, config_dir: Path | None = None) -> tuple[Training, str | None]:
    """The "training" block of infra/config/<env>.json, validated; also the file's region (may be empty)."""
    path, config = read_config(env, config_dir)
    if not isinstance(config, dict) or not isinstance(config.get("training"), dict):
        raise _config_error(
            path, "training", config.get("training") if isinstance(config, dict) else config, "add a training object"
        )
    block = config["training"]

    def get(key: str, kind: type, fix: str):
        if key not in block:
            raise _config_error(path, f"training.{key}", None, f"the key is missing; {fix}")
        value = block[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise _config_error(path, f"training.{key}", value, fix)
        if not isinstance(value, kind):
            raise _config_error(path, f"training.{key}", value, fix)
        return value

    def instance_type(value, key: str) -> str:
        if not INSTANCE_TYPE.match(value):
            raise _config_error(path, key, value, "give a SageMaker instance type such as ml.m5.xlarge (^ml\\.)")
        return value

    count = get("instance_count", int, "give a whole number of instances, at least 1")
    if count < 1:
        raise _config_error(path, "training.instance_count", count, "give a whole number of instances, at least 1")
    runtime = get("max_runtime_seconds", int, f"give whole seconds between 1 and {MAX_RUNTIME_LIMIT}")
    if not 1 <= runtime <= MAX_RUNTIME_LIMIT:
        raise _config_error(
            path, "training.max_runtime_seconds", runtime, f"give whole seconds between 1 and {MAX_RUNTIME_LIMIT}"
        )
    endpoint = config.get("endpoint") if isinstance(config.get("endpoint"), dict) else {}
    inference_type = endpoint.get("instance_type", "ml.m5.large")
    if not isinstance(inference_type, str):
        raise _config_error(path, "endpoint.instance_type", inference_type, "give a SageMaker instance type")
    training = Training(
        instance_type=instance_type(get("instance_type", str, "give an instance type"), "training.instance_type"),
        instance_count=count,
        processing_instance_type=instance_type(
            get("processing_instance_type", str, "give an instance type"), "training.processing_instance_type"
        ),
        max_runtime_seconds=runtime,
        use_spot_instances=get("use_spot_instances", bool, "give true or false"),
        inference_instance_type=instance_type(inference_type, "endpoint.instance_type"),
    )
    region = config.get("region")
    return training, region if isinstance(region, str) and region else None


def load_network(env: str, config_dir: Path | None = None) -> Network:
    """The "network" block of infra/config/<env>.json, validated; absent keys mean no VPC and no isolation.

    Subnets without security groups (or the reverse) are refused: SageMaker's VpcConfig needs both.
    """
    path, config = read_config(env, config_dir)
    block = config.get("network", {}) if isinstance(config, dict) else None
    if not isinstance(block, dict):
        raise _config_error(
            path, "network", block, "give an object with subnet_ids, security_group_ids and enable_network_isolation"
        )

    def ids(key: str, pattern: re.Pattern, example: str, limit: int) -> tuple[str, ...]:
        values = block.get(key, [])
        if not isinstance(values, list):
            raise _config_error(path, f"network.{key}", values, f'give a list of ids such as ["{example}"], or []')
        if len(values) > limit:
            raise _config_error(path, f"network.{key}", values, f"give at most {limit} ids (SageMaker's limit)")
        for index, value in enumerate(values):
            if not isinstance(value, str) or not pattern.match(value):
                raise _config_error(
                    path, f"network.{key}[{index}]", value, f"give an id such as {example} ({pattern.pattern})"
                )
        return tuple(values)

    subnets = ids("subnet_ids", SUBNET_ID, "subnet-0123456789abcdef0", MAX_SUBNETS)
    groups = ids("security_group_ids", SECURITY_GROUP_ID, "sg-0123456789abcdef0", MAX_SECURITY_GROUPS)
    if subnets and not groups:
        raise _config_error(
            path,
            "network.security_group_ids",
            [],
            "jobs in a VPC need at least one security group: add the sg- ids the jobs may use (they must allow"
            " traffic between the job's instances and reach S3/ECR), or empty network.subnet_ids to run outside a VPC",
        )
    if groups and not subnets:
        raise _config_error(
            path,
            "network.subnet_ids",
            [],
            "security groups apply only in a VPC: add the subnet- ids the jobs run in,"
            " or empty network.security_group_ids",
        )
    isolation = block.get("enable_network_isolation", False)
    if not isinstance(isolation, bool):
        raise _config_error(path, "network.enable_network_isolation", isolation, "give true or false")
    return Network(subnet_ids=subnets, security_group_ids=groups, enable_network_isolation=isolation)


def load_hyperparameters(path: Path = paths.HYPERPARAMETERS_FILE) -> dict[str, str]:
    """The training job's hyperparameters: SageMaker passes every value as a string, train.py parses them."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{display_path(path)} is not valid JSON: {exc}") from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise UsageError(
            f"{display_path(path)}: give a JSON object of string values (SageMaker's hyperparameter format)"
        )
    return values


def load_tuning(env: str, baseline: Mapping, path: Path | None = None, config_dir: Path | None = None):
    """tuning.json's search when it is enabled for `env`, else None (also when the file does not exist).

    The file is checked in full either way (structure, ranges, counts, objective against the gates), and an
    environment it enables must have an infra/config/<env>.json, so a misspelt name cannot silently leave tuning
    off. Whether each range's values are hyperparameters train.py accepts is `make lint`'s check
    (model.train.check_tuning), which the build stage runs before any pipeline is upserted.
    """
    path = path or TUNING_FILE
    if not path.is_file():
        return None
    try:
        config = tuning_config.load(path, baseline)
    except tuning_config.TuningConfigError as exc:
        raise UsageError(str(exc)) from None
    known = contract.environments(config_dir or CONFIG_DIR)
    for name, enabled in config.environments.items():
        if enabled and name not in known:
            raise UsageError(
                f"{display_path(path)}: environments.{name}: no infra/config/{name}.json; name one of "
                f"{', '.join(known)}"
            )
    return config if config.enabled_for(env) else None


def inference_image_format(hyperparameters: Mapping[str, str]) -> str:
    """The inference image the build stage builds for model_format: skops -> skops, auto/onnx -> onnx."""
    return image_formats.image_format(hyperparameters.get("model_format", "auto"))


def data_version(s3, input_data_url: str) -> str:
    """A digest of the objects under the input data URI (key, size, ETag): changes whenever the data does."""
    import hashlib

    from botocore.exceptions import ClientError

    match = re.match(r"^s3://([^/]+)/?(.*)$", input_data_url)
    if not match:
        raise UsageError(f"--input-data-url = {input_data_url!r}: give s3://bucket/prefix/")
    bucket, prefix = match.groups()
    digest, count = hashlib.sha256(), 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                digest.update(f"{item['Key']}\0{item['Size']}\0{item.get('ETag', '')}\n".encode())
                count += 1
    except ClientError as exc:
        raise UsageError(
            f"cannot list the input data {input_data_url}: {exc.response['Error'].get('Code')}: the credentials need "
            "s3:ListBucket on that bucket (the CI build role has it on the artifact bucket)"
        ) from None
    if not count:
        raise UsageError(
            f"no objects under the input data {input_data_url}: upload the data there "
            f"(aws s3 cp data.csv {input_data_url.rstrip('/')}/) or pass --input-data-url"
        )
    return f"{count}-{digest.hexdigest()[:16]}"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def placeholder_values(project: str, region: str) -> dict[str, str]:
    """Marked stand-ins for `definition` without flags or SSM: valid in shape, obviously not real."""
    registry = f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.{region}.amazonaws.com"
    return {
        "artifact_bucket": f"placeholder-{project}-artifacts",
        "execution_role_arn": f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/PLACEHOLDER-{project}-sagemaker-execution",
        "train_image_uri": f"{registry}/placeholder-{project}-train",
        "inference_image_uri": f"{registry}/placeholder-{project}-inference",
        "model_package_group": project,
        "pipeline_name": project,
    }


def read_ssm(names: Mapping[str, str], project: str, client) -> dict[str, str]:
    """SSM values for the settings in `names` (setting -> parameter suffix); a missing one is a UsageError."""
    from botocore.exceptions import ClientError

    values, missing = {}, []
    for setting, suffix in names.items():
        name = f"/{project}/{suffix}"
        try:
            values[setting] = client.get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ParameterNotFound":
                raise
            missing.append(f"{name} (or pass {contract.SSM_PARAMETERS[setting][1]})")
    if missing:
        raise UsageError(
            f"SSM parameter(s) not found in {client.meta.region_name}: {'; '.join(missing)}. Deploy the toolchain "
            "stack (infra/lib/toolchain.yaml) to this account and region, or give the values as flags"
        )
    return values


def resolve_settings(args: argparse.Namespace, ssm_client_factory: Callable[[str], object] | None = None) -> Settings:
    """Config files + flags + (when asked) SSM -> Settings. No AWS call unless SSM is read."""
    project, default_region = project_settings()
    training, config_region = load_training(args.env)
    region = args.region or config_region or default_region
    given = {key: getattr(args, key) for key in SSM_PARAMETERS if getattr(args, key, None)}
    values: dict[str, str | None] = dict(given)
    placeholders: list[str] = []
    if args.use_ssm and set(SSM_PARAMETERS) - set(given):
        wanted = {k: v for k, v in SSM_PARAMETERS.items() if k not in given and k != "kms_key_arn"}
        client = (ssm_client_factory or client_factory("ssm"))(region)
        values.update(read_ssm(wanted, project, client))
        if "kms_key_arn" not in given:  # optional: without it the jobs use SageMaker's default encryption
            values["kms_key_arn"] = _optional_ssm(client, f"/{project}/{SSM_PARAMETERS['kms_key_arn']}")
    else:
        for key, value in placeholder_values(project, region).items():
            if key not in values:
                values[key] = value
                placeholders.append(key)
    bucket = values["artifact_bucket"]
    for key in ("train_image_uri", "inference_image_uri"):
        if ":" in values[key].rsplit("/", 1)[-1]:
            raise UsageError(
                f"{SSM_FLAGS[key]} = {values[key]!r}: give the repository URI without a tag; the tag is --image-tag"
            )
    tag = args.image_tag or git_commit() or "latest"
    baseline = json.loads(paths.GATES_FILE.read_text(encoding="utf-8"))
    return Settings(
        project=project,
        env=args.env,
        region=region,
        training=training,
        hyperparameters=load_hyperparameters(),
        baseline=baseline,
        artifact_bucket=bucket,
        execution_role_arn=values["execution_role_arn"],
        train_image_uri=values["train_image_uri"],
        inference_image_uri=values["inference_image_uri"],
        model_package_group=values["model_package_group"],
        pipeline_name=values["pipeline_name"],
        image_tag=tag,
        input_data_url=args.input_data_url or f"s3://{bucket}/{project}/data/",
        kms_key_arn=values.get("kms_key_arn") or None,
        placeholders=tuple(placeholders),
        network=load_network(args.env),
        tuning=load_tuning(args.env, baseline),
    )


def _optional_ssm(client, name: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        return client.get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise


def client_factory(service: str) -> Callable[[str], object]:
    def make(region: str):
        import boto3

        return boto3.Session(region_name=region).client(service)

    return make
