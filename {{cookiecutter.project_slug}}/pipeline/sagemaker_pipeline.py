"""The SageMaker Pipeline: prepare -> train -> evaluate -> gates -> register (PendingManualApproval) or fail.

Defined with the SageMaker Python SDK (v3). Every job runs the repository's own training image, tagged with the git
commit, and the same scripts as `make pipeline`: prepare.py (validate and split), train.py (the training contract),
evaluation_job.py (metrics, bias, explanations and the gates of model/config/baseline.json). A condition step reads
`passed` from evaluation.json; the model is registered with its reports attached, or a fail step ends the run with
the gates that failed. Step caching is on, so an unchanged step reuses its last result.

    python -m pipeline.sagemaker_pipeline definition --env dev --output build/pipeline/definition.json
    python -m pipeline.sagemaker_pipeline upsert --env dev [--start] [--wait] [--dry-run]

`definition` is offline: no AWS call, the values it would read from SSM come from flags or are marked placeholders
(add --ssm to read them). `upsert` reads the toolchain stack's SSM parameters (/<project>/...) unless flags override
them, then creates or updates the pipeline and optionally starts and follows an execution. The SDK lives only in the
AWS environment (requirements-aws.txt) and is imported lazily, so this module's constants load anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra import contract
from model.common import image_formats, paths

ROOT = paths.REPO_ROOT
CONFIG_DIR = ROOT / "infra" / "config"

# Step names, as they appear in SageMaker Studio and in `list_pipeline_execution_steps`.
PREPARE_STEP = "PrepareData"
TRAIN_STEP = "TrainModel"
EVALUATE_STEP = "EvaluateModel"
GATES_STEP = "CheckGates"
REGISTER_STEP = "RegisterModel"
FAIL_STEP = "GatesFailed"

# Where Processing mounts data. The job code is the project's own package, installed in the training image
# (model/train/Dockerfile); each job runs one module with `python -m`, and finds schema.json and the gates file as
# package data (model.common.paths).
PROCESSING = "/opt/ml/processing"
EVALUATION_OUTPUT = "evaluation"
EVALUATION_FILE = "evaluation.json"
EVALUATION_PROPERTY_FILE = "EvaluationReport"
# The JSON paths the condition and fail steps read from evaluation.json (written by model/train/evaluate.py).
GATES_PASSED_PATH = "passed"
FAILED_GATES_PATH = "failed_gates"
# The reports the model package carries (ModelMetrics), all written by evaluation_job.py next to evaluation.json.
MODEL_METRICS_FILES = {
    "model_statistics": EVALUATION_FILE,
    "bias": "bias.json",
    "explainability": "explainability.json",
}

# The Processing jobs' contract: container paths of their inputs and outputs, and the scripts' arguments.
# model/tests/test_processing_entrypoints.py runs the scripts with exactly these, /opt/ml remapped to a folder.
SPLITS = ("train", "validation", "test", "report")
PREPARE_MODULE = "model.train.prepare"
PREPARE_INPUTS = {"data": f"{PROCESSING}/input/data"}
PREPARE_OUTPUTS = {name: f"{PROCESSING}/output/{name}" for name in SPLITS}
PREPARE_ARGUMENTS = [
    *("--data", PREPARE_INPUTS["data"], "--output-dir", f"{PROCESSING}/output"),
]
EVALUATE_MODULE = "model.train.evaluation_job"
EVALUATE_INPUTS = {
    "model": f"{PROCESSING}/model",
    "test": f"{PROCESSING}/test",
    "validation": f"{PROCESSING}/validation",
}
EVALUATE_OUTPUTS = {EVALUATION_OUTPUT: f"{PROCESSING}/{EVALUATION_OUTPUT}"}
EVALUATE_ARGUMENTS = [
    *("--model", EVALUATE_INPUTS["model"], "--test", EVALUATE_INPUTS["test"]),
    *("--validation", EVALUATE_INPUTS["validation"]),
    *("--output-dir", EVALUATE_OUTPUTS[EVALUATION_OUTPUT]),
]

CACHE_EXPIRE_AFTER = "P30D"
APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
CONTENT_TYPES = ["text/csv", "application/json", "application/jsonlines"]
RESPONSE_TYPES = ["application/json", "text/csv", "application/jsonlines"]
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
UNVERSIONED = "unversioned"  # InputDataVersion of a definition nobody started: start() always passes a digest


class UsageError(RuntimeError):
    """Bad input (flags, configuration, missing SSM parameters): the message names the field, value and fix."""


# ------------------------------------------------------------------------------------------------ settings
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


def project_settings(root: Path = ROOT) -> tuple[str, str]:
    """(AWS resource name, region) from pyproject.toml: [project].name with `_` -> `-`, [tool.sagemaker-mlops]."""
    return contract.project_settings(root / "pyproject.toml")


def _config_error(path: Path, key: str, value, fix: str) -> UsageError:
    return UsageError(f"{_display(path)}: {key} = {value!r}: {fix}")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def read_config(env: str, config_dir: Path | None = None) -> tuple[Path, object]:
    """infra/config/<env>.json, parsed: (its path, its content)."""
    config_dir = config_dir or CONFIG_DIR
    available = sorted(p.stem for p in config_dir.glob("*.json"))
    path = config_dir / f"{env}.json"
    if not path.is_file():
        raise UsageError(
            f"--env = {env!r}: no {_display(path)}; give one of {', '.join(available) or '(none found)'}"
            f" or add {_display(path)}"
        )
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{_display(path)} is not valid JSON: {exc}") from None


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


def load_hyperparameters(path: Path = ROOT / "model" / "config" / "hyperparameters.json") -> dict[str, str]:
    """The training job's hyperparameters: SageMaker passes every value as a string, train.py parses them."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{_display(path)} is not valid JSON: {exc}") from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise UsageError(f"{_display(path)}: give a JSON object of string values (SageMaker's hyperparameter format)")
    return values


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
            missing.append(f"{name} (or pass {SSM_FLAGS[setting]})")
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
        client = (ssm_client_factory or _client_factory("ssm"))(region)
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
    return Settings(
        project=project,
        env=args.env,
        region=region,
        training=training,
        hyperparameters=load_hyperparameters(),
        baseline=json.loads((ROOT / "model" / "config" / "baseline.json").read_text(encoding="utf-8")),
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
    )


def _optional_ssm(client, name: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        return client.get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise


def _client_factory(service: str) -> Callable[[str], object]:
    def make(region: str):
        import boto3

        return boto3.Session(region_name=region).client(service)

    return make


# ---------------------------------------------------------------------------------------------- definition
def _prepare_sdk_environment(region: str) -> None:
    """The SDK reads the region at import and would validate role ARNs against IAM: settle both first."""
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"


def _quiet_sdk() -> None:
    """The SDK logs every default it fills in and warns that a PipelineSession starts no job: both are expected."""
    logging.getLogger().setLevel(logging.WARNING)  # importing the SDK lowers the root level to INFO
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] == "sagemaker":  # some of its loggers set their own DEBUG/INFO level
            logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession", category=UserWarning)


SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def _validate_sdk_config_once() -> None:
    """The SDK re-validates its config against a large JSON schema on every lookup (~0.4 s, dozens per build).

    Validating each distinct config once keeps the check and takes a definition build from ~20 s to a few.
    """
    from sagemaker.core.config.config_manager import SageMakerConfig

    original = SageMakerConfig.validate_sagemaker_config
    if getattr(original, "validated", None) is not None:
        return
    validated: list[dict] = []

    def validate(sagemaker_config=None):
        if sagemaker_config is not None and sagemaker_config in validated:
            return
        original(sagemaker_config)
        if sagemaker_config is not None:
            validated.append(copy.deepcopy(sagemaker_config))

    validate.validated = validated
    SageMakerConfig.validate_sagemaker_config = staticmethod(validate)


def build_pipeline(settings: Settings, boto_session=None):
    """The SDK Pipeline object. Offline: the session is given its bucket, so the SDK never looks one up."""
    _prepare_sdk_environment(settings.region)
    import boto3
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.network import NetworkConfig
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        OutputDataConfig,
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
        StoppingCondition,
    )
    from sagemaker.core.workflow.conditions import ConditionEquals
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterInteger, ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, TrainingStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, Networking

    _quiet_sdk()
    _validate_sdk_config_once()
    session = PipelineSession(
        boto_session=boto_session or boto3.Session(region_name=settings.region),
        default_bucket=settings.artifact_bucket,
        # Explicit SDK settings: no telemetry calls, no defaults picked up from a user's config files.
        sagemaker_config=SDK_CONFIG,
    )
    # The SDK checks (and would create) its default bucket with S3 calls; the toolchain stack owns the bucket.
    session._default_bucket = settings.artifact_bucket

    t = settings.training
    image_tag = ParameterString("ImageTag", default_value=settings.image_tag)
    input_data = ParameterString("InputDataUrl", default_value=settings.input_data_url)
    approval = ParameterString(
        "ModelApprovalStatus", default_value="PendingManualApproval", enum_values=list(APPROVAL_STATUSES)
    )
    processing_type = ParameterString("ProcessingInstanceType", default_value=t.processing_instance_type)
    training_type = ParameterString("TrainingInstanceType", default_value=t.instance_type)
    training_count = ParameterInteger("TrainingInstanceCount", default_value=t.instance_count)
    # Step caching keys on the step's arguments, not on the bytes behind an S3 URI: without this, a retrain on data
    # refreshed under the same InputDataUrl would reuse the last PrepareData (and everything after it). `start`
    # passes a digest of the objects under InputDataUrl; it is in every job's environment, part of the cache key.
    data_version = ParameterString("InputDataVersion", default_value=UNVERSIONED)
    # The format the build stage built the inference image for (model/config/hyperparameters.json's model_format):
    # recorded on the model package so the release scripts can refuse an artifact the image cannot load.
    image_format = ParameterString(
        "InferenceImageFormat",
        default_value=inference_image_format(settings.hyperparameters),
        enum_values=["onnx", "skops"],
    )
    parameters = [
        input_data,
        image_tag,
        approval,
        processing_type,
        training_type,
        training_count,
        data_version,
        image_format,
    ]

    train_image = Join(on=":", values=[settings.train_image_uri, image_tag])
    inference_image = Join(on=":", values=[settings.inference_image_uri, image_tag])
    cache = CacheConfig(enable_caching=True, expire_after=CACHE_EXPIRE_AFTER)
    prefix = f"s3://{settings.artifact_bucket}/{settings.project}/pipeline"
    # infra/config/<env>.json "network": every job in the VPC when subnets are set, isolated when asked; else neither.
    net = settings.network
    vpc = {"subnets": list(net.subnet_ids), "security_group_ids": list(net.security_group_ids)} if net.in_vpc else {}
    networked = net.in_vpc or net.enable_network_isolation
    network_config = NetworkConfig(enable_network_isolation=net.enable_network_isolation, **vpc) if networked else None
    networking = Networking(enable_network_isolation=net.enable_network_isolation, **vpc) if networked else None

    def output_uri(step: str, name: str):
        # Per execution, so a run never overwrites another's data; outputs are not part of the cache key.
        return Join(on="/", values=[prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, step, name])

    def s3_input(name: str, uri, local: str) -> ProcessingInput:
        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(s3_uri=uri, local_path=local, s3_data_type="S3Prefix", s3_input_mode="File"),
        )

    def s3_output(step: str, name: str, local: str) -> ProcessingOutput:
        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(s3_uri=output_uri(step, name), local_path=local, s3_upload_mode="EndOfJob"),
        )

    # Every job records the commit of its image and the digest of its input data (the model's lineage).
    lineage = {"GIT_COMMIT": image_tag, "INPUT_DATA_VERSION": data_version}

    # Processor (below) and ModelTrainer take the same settings under the SDK's own keyword names for each job type.
    def processor(module: str, job: str) -> Processor:
        return Processor(
            role=settings.execution_role_arn,
            image_uri=train_image,
            instance_count=1,
            instance_type=processing_type,
            entrypoint=["python", "-m", module],
            max_runtime_in_seconds=t.max_runtime_seconds,
            base_job_name=f"{settings.project}-{job}",
            volume_kms_key=settings.kms_key_arn,
            output_kms_key=settings.kms_key_arn,
            env=lineage,
            network_config=network_config,
            sagemaker_session=session,
        )

    prepare = ProcessingStep(
        name=PREPARE_STEP,
        description="Validate the raw data against model/config/schema.json and the data gates, then split it",
        step_args=processor(PREPARE_MODULE, "prepare").run(
            inputs=[s3_input("data", input_data, PREPARE_INPUTS["data"])],
            outputs=[s3_output(PREPARE_STEP, name, local) for name, local in PREPARE_OUTPUTS.items()],
            arguments=PREPARE_ARGUMENTS,
        ),
        cache_config=cache,
    )
    split_uri = {name: prepare.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri for name in SPLITS}

    stopping = StoppingCondition(max_runtime_in_seconds=t.max_runtime_seconds)
    if t.use_spot_instances:  # MaxWaitTimeInSeconds (waiting for capacity + running) is required with spot
        stopping = StoppingCondition(
            max_runtime_in_seconds=t.max_runtime_seconds,
            max_wait_time_in_seconds=min(2 * t.max_runtime_seconds, MAX_RUNTIME_LIMIT),
        )
    trainer = ModelTrainer(
        training_image=train_image,
        role=settings.execution_role_arn,
        base_job_name=f"{settings.project}-train",
        compute=Compute(
            instance_type=training_type,
            instance_count=training_count,
            enable_managed_spot_training=t.use_spot_instances,
            volume_kms_key_id=settings.kms_key_arn,
        ),
        stopping_condition=stopping,
        output_data_config=OutputDataConfig(s3_output_path=f"{prefix}/training", kms_key_id=settings.kms_key_arn),
        hyperparameters=settings.hyperparameters,
        environment=lineage,
        networking=networking,
        sagemaker_session=session,
    )
    train = TrainingStep(
        name=TRAIN_STEP,
        description="Run train.py in the training image under SageMaker's training contract",
        step_args=trainer.train(
            input_data_config=[
                InputData(channel_name="train", data_source=split_uri["train"]),
                InputData(channel_name="validation", data_source=split_uri["validation"]),
            ]
        ),
        cache_config=cache,
    )
    model_uri = train.properties.ModelArtifacts.S3ModelArtifacts

    evaluation_report = PropertyFile(name=EVALUATION_PROPERTY_FILE, output_name=EVALUATION_OUTPUT, path=EVALUATION_FILE)
    evaluate = ProcessingStep(
        name=EVALUATE_STEP,
        description="Score the held-out test split, compute bias and importance, check the gates of baseline.json",
        step_args=processor(EVALUATE_MODULE, "evaluate").run(
            inputs=[
                s3_input(name, uri, EVALUATE_INPUTS[name])
                for name, uri in (
                    ("model", model_uri),
                    ("test", split_uri["test"]),
                    ("validation", split_uri["validation"]),
                )
            ],
            outputs=[s3_output(EVALUATE_STEP, name, local) for name, local in EVALUATE_OUTPUTS.items()],
            arguments=EVALUATE_ARGUMENTS,
        ),
        property_files=[evaluation_report],
        cache_config=cache,
    )
    reports = evaluate.properties.ProcessingOutputConfig.Outputs[EVALUATION_OUTPUT].S3Output.S3Uri

    def report(name: str) -> MetricsSource:
        return MetricsSource(content_type="application/json", s3_uri=Join(on="/", values=[reports, name]))

    builder = ModelBuilder(
        image_uri=inference_image,
        s3_model_data_url=model_uri,
        role_arn=settings.execution_role_arn,
        sagemaker_session=session,
        log_level=logging.ERROR,
    )
    register = ModelStep(
        name=REGISTER_STEP,
        step_args=builder.register(
            model_package_group_name=settings.model_package_group,
            content_types=CONTENT_TYPES,
            response_types=RESPONSE_TYPES,
            inference_instances=[t.inference_instance_type],
            transform_instances=[t.inference_instance_type],
            model_metrics=ModelMetrics(**{kind: report(file) for kind, file in MODEL_METRICS_FILES.items()}),
            approval_status=approval,
            description=f"{settings.project}: trained and evaluated by the SageMaker pipeline; every gate passed",
            customer_metadata_properties={
                "ImageTag": image_tag,
                "InputDataUrl": input_data,
                "InputDataVersion": data_version,
                # release/formats.py reads this; the artifact's own format it reads from metadata.json in model.tar.gz
                "image_model_format": image_format,
            },
        ),
    )
    fail = FailStep(
        name=FAIL_STEP,
        error_message=Join(
            on="",
            values=[
                "Gates of model/config/baseline.json failed, the model was not registered: ",
                JsonGet(step_name=EVALUATE_STEP, property_file=evaluation_report, json_path=FAILED_GATES_PATH),
                ". Improve the model or review the gates.",
            ],
        ),
    )
    gates = ConditionStep(
        name=GATES_STEP,
        description="Register only when every gate passed: " + gate_summary(settings.baseline),
        conditions=[
            ConditionEquals(
                left=JsonGet(step_name=EVALUATE_STEP, property_file=evaluation_report, json_path=GATES_PASSED_PATH),
                right=True,
            )
        ],
        if_steps=[register],
        else_steps=[fail],
    )
    return Pipeline(
        name=settings.pipeline_name,
        parameters=parameters,
        steps=[prepare, train, evaluate, gates],
        sagemaker_session=session,
        # No SageMaker Experiments: the SDK's default would create an experiment and a trial per execution, which
        # needs sagemaker:CreateExperiment/CreateTrial/AssociateTrialComponent the execution role does not have.
        # Lineage (jobs, artifact, package) is tracked by SageMaker ML Lineage without it.
        pipeline_experiment_config=None,
    )


def gate_summary(baseline: Mapping) -> str:
    """'quality: accuracy min 0.75, ...; bias: DI min 0.6 max 1.67, ...' from baseline.json."""
    parts = []
    for group in ("quality", "bias"):
        gates = [
            f"{metric} " + " ".join(f"{kind} {limit}" for kind, limit in bounds.items())
            for metric, bounds in baseline.get(group, {}).items()
        ]
        if gates:
            parts.append(f"{group}: " + ", ".join(gates))
    return "; ".join(parts)


def definition_json(settings: Settings) -> dict:
    return json.loads(build_pipeline(settings).definition())


# ------------------------------------------------------------------------------------------------- upsert
def upsert(client, settings: Settings, definition: dict, out: Callable[[str], None] = print) -> str:
    """Create the pipeline, or update it when it exists (never a duplicate); returns its ARN."""
    from botocore.exceptions import ClientError

    body = json.dumps(definition)
    description = f"{settings.project}: prepare -> train -> evaluate -> gates -> register (config {settings.env})"
    try:
        client.describe_pipeline(PipelineName=settings.pipeline_name)
        exists = True
    except ClientError as exc:
        if not _not_found(exc):
            raise
        exists = False
    if exists:
        arn = client.update_pipeline(
            PipelineName=settings.pipeline_name,
            PipelineDefinition=body,
            PipelineDescription=description,
            RoleArn=settings.execution_role_arn,
        )["PipelineArn"]
        out(f"updated pipeline {settings.pipeline_name} ({arn})")
    else:
        arn = client.create_pipeline(
            PipelineName=settings.pipeline_name,
            PipelineDefinition=body,
            PipelineDescription=description,
            RoleArn=settings.execution_role_arn,
            ClientRequestToken=str(uuid.uuid4()),
            Tags=[{"Key": "project", "Value": settings.project}],
        )["PipelineArn"]
        out(f"created pipeline {settings.pipeline_name} ({arn})")
    return arn


def _not_found(exc) -> bool:
    """SageMaker answers ResourceNotFound; some emulators a ValidationException saying the pipeline is unknown."""
    error = exc.response["Error"]
    message = error.get("Message", "").lower()
    return error["Code"] == "ResourceNotFound" or (
        error["Code"] == "ValidationException" and ("could not find" in message or "does not exist" in message)
    )


def start(client, settings: Settings, out: Callable[[str], None] = print, version: str = UNVERSIONED) -> str:
    arn = client.start_pipeline_execution(
        PipelineName=settings.pipeline_name,
        PipelineExecutionDisplayName=f"{settings.env}-{settings.image_tag[:12]}-{int(time.time())}",
        PipelineParameters=[
            {"Name": "ImageTag", "Value": settings.image_tag},
            {"Name": "InputDataUrl", "Value": settings.input_data_url},
            {"Name": "InputDataVersion", "Value": version},
        ],
        ClientRequestToken=str(uuid.uuid4()),
    )["PipelineExecutionArn"]
    out(f"started execution {arn} (input data version {version})")
    return arn


TERMINAL = ("Succeeded", "Failed", "Stopped")


def wait(
    client,
    execution_arn: str,
    poll_seconds: float = 30,
    timeout_seconds: float = 6 * 3600,
    out: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll until the execution ends, printing each step's status change; returns the final status.

    On failure it prints the failed steps with their FailureReason (the fail step's message names the gates).
    """
    seen: dict[str, str] = {}
    deadline = clock() + timeout_seconds
    while True:
        status = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)["PipelineExecutionStatus"]
        steps = _steps(client, execution_arn)
        for step in steps:
            name, step_status = step["StepName"], step["StepStatus"]
            if seen.get(name) != step_status:
                seen[name] = step_status
                cached = " (cached)" if "CacheHitResult" in step else ""
                out(f"  {name}: {step_status}{cached}")
        if status in TERMINAL:
            break
        if clock() > deadline:
            out(f"execution still {status} after {timeout_seconds:.0f}s; follow it in SageMaker Studio")
            return status
        sleep(poll_seconds)
    out(f"execution {status}: {execution_arn}")
    if status != "Succeeded":
        for step in steps:
            if step["StepStatus"] == "Failed":
                out(f"failed step {step['StepName']}: {step.get('FailureReason', '(no reason given)')}")
    return status


def _steps(client, execution_arn: str) -> list[dict]:
    pages = client.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=execution_arn, SortOrder="Ascending"
    )
    return [step for page in pages for step in page.get("PipelineExecutionSteps", [])]


# ---------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--env", required=True, help="the infra/config/<env>.json to use (training, network)")
        sub.add_argument("--region", help="AWS region (default: the config's region, else pyproject.toml's)")
        sub.add_argument("--image-tag", help="image tag to run (default: the git commit of HEAD)")
        sub.add_argument("--input-data-url", help="S3 URI of the raw data (default: s3://<bucket>/<project>/data/)")
        for key, flag in SSM_FLAGS.items():
            sub.add_argument(flag, dest=key, help=f"overrides SSM /<project>/{SSM_PARAMETERS[key]}")

    definition = commands.add_parser("definition", help="write the pipeline definition JSON (offline)")
    common(definition)
    definition.add_argument("--output", type=Path, default=ROOT / "build" / "pipeline" / "definition.json")
    definition.add_argument("--ssm", dest="use_ssm", action="store_true", help="read unset values from SSM")

    up = commands.add_parser("upsert", help="create or update the pipeline in SageMaker, optionally start it")
    common(up)
    up.add_argument("--start", action="store_true", help="start an execution after the upsert")
    up.add_argument("--wait", action="store_true", help="follow the execution until it ends (implies --start)")
    up.add_argument(
        "--dry-run", action="store_true", help="build and show, call nothing (values from flags/placeholders)"
    )
    up.add_argument("--poll-seconds", type=float, default=30.0)
    up.add_argument("--timeout-seconds", type=float, default=6 * 3600.0)
    return parser


def main(argv: list[str] | None = None, sagemaker_client=None, ssm_client_factory=None, s3_client=None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return run(build_parser().parse_args(argv), sagemaker_client, ssm_client_factory, s3_client)
    except NoCredentialsError:
        print(
            "error: no AWS credentials found: configure them (aws configure, AWS_PROFILE, aws sso login), "
            "or build the definition offline with `definition`",
            file=sys.stderr,
        )
        return 2
    except (BotoCoreError, ClientError) as exc:
        print(f"error: AWS call failed: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, sagemaker_client=None, ssm_client_factory=None, s3_client=None) -> int:
    if args.command == "upsert":
        args.use_ssm = not args.dry_run
    try:
        settings = resolve_settings(args, ssm_client_factory)
        if settings.placeholders:
            print(
                "note: placeholders for " + ", ".join(settings.placeholders) + " (give the flags, or --ssm online)",
                file=sys.stderr,
            )
        definition = definition_json(settings)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    steps = " -> ".join(s["Name"] for s in definition["Steps"])
    if args.command == "definition":
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(definition, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {_display(args.output)}: pipeline {settings.pipeline_name}, steps {steps}")
        return 0
    if args.dry_run:
        action = "upsert" + (" and start" if args.start or args.wait else "")
        print(f"dry run: would {action} pipeline {settings.pipeline_name} in {settings.region} ({steps})")
        print(f"  role {settings.execution_role_arn}; image tag {settings.image_tag}; input {settings.input_data_url}")
        return 0
    client = sagemaker_client or _client_factory("sagemaker")(settings.region)
    version = ""
    if args.start or args.wait:  # before the upsert: a missing data folder stops the run before any change
        try:
            version = data_version(s3_client or _client_factory("s3")(settings.region), settings.input_data_url)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    upsert(client, settings, definition)
    if not (args.start or args.wait):
        return 0
    execution = start(client, settings, version=version)
    if not args.wait:
        return 0
    status = wait(client, execution, poll_seconds=args.poll_seconds, timeout_seconds=args.timeout_seconds)
    return 0 if status == "Succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
