"""The batch scoring SageMaker Pipeline: approved model package -> model -> Batch Transform [-> attributions]
[-> data-quality check of the batch against the drift baselines, published as CloudWatch metrics].

    python -m pipeline.batch_pipeline definition --env dev --output build/pipeline/batch-definition.json
    python -m pipeline.batch_pipeline upsert --env dev --input s3://bucket/prefix/ [--start] [--wait] [--dry-run]

The Transform settings come from the "batch" block of infra/config/<env>.json, named as CreateTransformJob names
them (infra.environment_checks validates it). The model package is a pipeline parameter, ModelPackageArn: `upsert`
sets its default to the newest Approved package of the group (or --model-package-arn), so every start without it -
by hand, by the schedule or by an upload (infra/lib/batch.yaml) - scores with that package; `make batch-deploy`
runs the upsert again after an approval. The model is created from the package itself (CreateModel with
ModelPackageName), so SageMaker refuses a package that is not Approved.

The input is InputBucket + InputKey (an object or a key prefix), so an S3 "Object Created" event can pass the
object's bucket and key straight through. Outputs go under s3://<bucket>/<project>/batch/<env>/<execution id>/.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from infra import contract, environment_checks
from model.common import paths
from pipeline import sagemaker_api
from pipeline.sagemaker_api import TERMINAL, upsert_pipeline
from pipeline.sagemaker_pipeline import (
    _prepare_sdk_environment,
    pipeline_session,
)
from pipeline.sagemaker_settings import (
    PLACEHOLDER_ACCOUNT,
    Settings,
    UsageError,
    client_factory,
    display_path,
    read_config,
    read_ssm,
    resolve_settings,
)

ROOT = paths.REPO_ROOT
MONITORING_INCLUDED = (ROOT / "monitoring").is_dir()

# Step names, as SageMaker Studio and `list_pipeline_execution_steps` show them, in their order.
STEPS = CREATE_MODEL_STEP, TRANSFORM_STEP, ATTRIBUTIONS_STEP, DATA_QUALITY_STEP = (
    "CreateBatchModel",
    "ScoreBatch",
    "ExplainBatch",
    "CheckBatchDataQuality",
)
# The Processing jobs' modules (installed in the training and drift job images) and where Processing mounts data.
EXPLAIN_MODULE, DRIFT_MODULE, PROCESSING = "model.train.explain", "monitoring.drift_job", "/opt/ml/processing"
# The MonitoringJob dimension of the batch check's CloudWatch metrics (the scheduled drift job's is "drift").
DATA_QUALITY_JOB = "batch"
S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.*)$")
PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[A-Za-z0-9-]+/\d+$")


@dataclass(frozen=True)
class DriftFeed:
    """Where the data-quality step sends its figures: the drift job's image and the drift alarms' dimensions."""

    image_uri: str
    namespace: str  # monitoring/alarms/alarms.json's monitoring_namespace
    endpoint_name: str  # the EndpointName dimension of the environment's alarms


@dataclass(frozen=True)
class BatchSettings:
    base: Settings
    batch: dict
    model_package_arn: str
    input_uri: str  # s3://bucket/key (one object) or s3://bucket/prefix/ (every object below it)
    model_data_url: str = ""  # the package's model.tar.gz (ModelDataUrl), with attributions only
    drift: DriftFeed | None = None  # None when the repository has no monitoring/

    @property
    def input_bucket(self) -> str:
        return split_s3_uri(self.input_uri)[0]

    @property
    def input_key(self) -> str:
        return split_s3_uri(self.input_uri)[1]

    @property
    def attributions(self) -> bool:
        return bool(self.batch["attributions"])

    @property
    def region(self) -> str:
        return self.base.region

    @property
    def pipeline_name(self) -> str:
        return batch_pipeline_name(self.base.project, self.base.env)

    @property
    def output_prefix(self) -> str:
        return f"s3://{self.base.artifact_bucket}/{self.base.project}/batch/{self.base.env}"

    @property
    def baseline_uri(self) -> str:
        return f"s3://{self.base.artifact_bucket}/{self.base.project}/monitoring/{self.base.env}/baselines"

    @property
    def data_quality(self) -> bool:
        return bool(self.batch["data_quality_check"]) and self.drift is not None


def batch_pipeline_name(project: str, env: str) -> str:
    """The name infra/lib/batch.yaml's schedule and upload rule start: <project>-batch-<env>."""
    return f"{project}-batch-{env}"


def load_batch(env: str) -> tuple[dict, dict]:
    """(the batch block, the whole file) of infra/config/<env>.json, validated; a missing block is a usage error."""
    path, config = read_config(env)
    source = display_path(path)
    if not isinstance(config, dict) or "batch" not in config:
        raise UsageError(
            f"{source}: no batch block: copy the one of infra/config/dev.json (Batch Transform settings, schedule,"
            " upload prefix)"
        )
    problems = environment_checks.batch_problems(config, source) + environment_checks.schedule_problems(config, source)
    if problems:
        raise UsageError("; ".join(problems))
    return config["batch"], config


def split_s3_uri(uri: str, flag: str = "--input") -> tuple[str, str]:
    match = S3_URI.match(uri or "")
    if not match:
        raise UsageError(f"{flag} = {uri!r}: give s3://bucket/key (an object) or s3://bucket/prefix/ (every object)")
    return match.group(1), match.group(2)


def latest_approved_package(client, group: str) -> str:
    """The newest Approved model package of the group, or a UsageError saying how to get one."""
    packages = client.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        ModelPackageType="Versioned",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    if not packages:
        raise UsageError(
            f"model package group {group} has no Approved package: approve one (make approve-remote PACKAGE=<n>)"
            " or pass --model-package-arn"
        )
    return packages[0]["ModelPackageArn"]


def package_model_data_url(client, arn: str) -> str:
    """The package's model artifact: InferenceSpecification.Containers[0].ModelDataUrl (DescribeModelPackage)."""
    containers = client.describe_model_package(ModelPackageName=arn).get("InferenceSpecification", {})
    url = (containers.get("Containers") or [{}])[0].get("ModelDataUrl", "")
    if not url.endswith("/model.tar.gz"):
        raise UsageError(
            f"model package {arn} has ModelDataUrl {url or 'none'!r}, not a model.tar.gz: batch.attributions needs "
            "the package's artifact; register the package from the training job's model.tar.gz or set "
            "batch.attributions to false"
        )
    return url


def resolve_batch_settings(args: argparse.Namespace, sagemaker_client=None, ssm_client_factory=None) -> BatchSettings:
    base = resolve_settings(args, ssm_client_factory)
    batch, config = load_batch(args.env)
    drift = None
    if MONITORING_INCLUDED:
        monitoring_image = args.monitoring_image_uri
        if not monitoring_image and args.use_ssm:
            client = (ssm_client_factory or client_factory("ssm"))(base.region)
            monitoring_image = read_ssm(MONITORING_IMAGE_SSM, base.project, client)["monitoring_image_uri"]
        drift = DriftFeed(
            image_uri=monitoring_image
            or f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.{base.region}.amazonaws.com/placeholder-{base.project}-monitoring",
            namespace=monitoring_namespace(base.project),
            endpoint_name=config.get("endpoint", {}).get("name", f"{base.project}-{base.env}"),
        )
    package = args.model_package_arn
    if package and not PACKAGE_ARN.match(package):
        raise UsageError(
            f"--model-package-arn = {package!r}: give a model package ARN such as "
            f"arn:aws:sagemaker:{base.region}:123456789012:model-package/{base.model_package_group}/3"
        )
    online = sagemaker_client is not None or args.use_ssm
    if not package:
        if online:
            client = sagemaker_client or client_factory("sagemaker")(base.region)
            package = latest_approved_package(client, base.model_package_group)
        else:
            account = base.execution_role_arn.split(":")[4] or PLACEHOLDER_ACCOUNT
            package = f"arn:aws:sagemaker:{base.region}:{account}:model-package/{base.model_package_group}/0"
    model_data_url = ""
    if batch["attributions"]:
        if batch["TransformInput"]["ContentType"] != "text/csv":
            raise UsageError(
                f"batch.attributions = true with batch.TransformInput.ContentType = "
                f"{batch['TransformInput']['ContentType']!r}: the attributions step reads headerless text/csv; "
                "use text/csv or set batch.attributions to false"
            )
        if online:
            model_data_url = package_model_data_url(
                sagemaker_client or client_factory("sagemaker")(base.region), package
            )
        else:  # an offline definition is never upserted: upsert resolves the package's artifact
            model_data_url = f"s3://{base.artifact_bucket}/{base.project}/placeholder-model-data/model.tar.gz"
    if args.input:
        split_s3_uri(args.input)  # refuses anything but s3://bucket/key before any AWS call
    return BatchSettings(
        base=base,
        batch=batch,
        model_package_arn=package,
        input_uri=args.input or f"s3://{base.artifact_bucket}/{default_input_key(base)}",
        model_data_url=model_data_url,
        drift=drift,
    )


def monitoring_namespace(project: str) -> str:
    """The drift metrics' namespace (monitoring/alarms/alarms.json), so the batch check feeds the same alarms."""
    alarms = ROOT / "monitoring" / "alarms" / "alarms.json"
    if alarms.is_file():
        return json.loads(alarms.read_text(encoding="utf-8"))["monitoring_namespace"]
    return f"{project}/monitoring"


# The drift job image's SSM parameter (infra.contract), read only when the data-quality step is built.
MONITORING_IMAGE_SSM = {"monitoring_image_uri": contract.SSM_PARAMETERS["monitoring_image_uri"][0]}


def default_input_key(base: Settings) -> str:
    """Where scheduled runs read: <project>/batch/<env>/input/ in the artifact bucket."""
    return f"{base.project}/batch/{base.env}/input/"


# ---------------------------------------------------------------------------------------------- definition
def build_pipeline(settings: BatchSettings, boto_session=None):
    """The SDK Pipeline object, built offline (the session is given its bucket)."""
    base, batch = settings.base, settings.batch
    _prepare_sdk_environment(base.region)
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.core.transformer import Transformer
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join
    from sagemaker.core.workflow.parameters import ParameterString
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep, TransformStep
    from sagemaker.serve.model_builder import ModelBuilder

    session = pipeline_session(base.region, base.artifact_bucket, boto_session)

    package = ParameterString("ModelPackageArn", default_value=settings.model_package_arn)
    input_bucket = ParameterString("InputBucket", default_value=settings.input_bucket)
    input_key = ParameterString("InputKey", default_value=settings.input_key)
    image_tag = ParameterString("ImageTag", default_value=base.image_tag)
    started_by = ParameterString("StartedBy", default_value="manual")
    parameters = [package, input_bucket, input_key, image_tag, started_by]
    # With attributions: the package's model.tar.gz, resolved by upsert from DescribeModelPackage (set together with
    # the ModelPackageArn default; a start that passes another package passes its ModelDataUrl too).
    model_data = ParameterString("ModelDataUrl", default_value=settings.model_data_url)
    if settings.attributions:
        parameters.append(model_data)
    input_uri = Join(on="", values=["s3://", input_bucket, "/", input_key])

    def output_uri(name: str):
        return Join(on="/", values=[settings.output_prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, name])

    # The model comes from the package itself: its image and artifact, and SageMaker checks it is Approved. The SDK
    # builds CreateModel from an image and a model URL; the container is then replaced by the package reference.
    builder = ModelBuilder(
        image_uri=f"{base.inference_image_uri}:unused",
        s3_model_data_url=f"s3://{base.artifact_bucket}/unused/model.tar.gz",
        role_arn=base.execution_role_arn,
        sagemaker_session=session,
        log_level=logging.ERROR,
    )
    model_args = builder.build()
    model_args.create_model_request.pop("PrimaryContainer", None)
    model_args.create_model_request["Containers"] = [{"ModelPackageName": package}]
    if base.network.in_vpc:
        model_args.create_model_request["VpcConfig"] = {
            "Subnets": list(base.network.subnet_ids),
            "SecurityGroupIds": list(base.network.security_group_ids),
        }
    if base.network.enable_network_isolation:
        model_args.create_model_request["EnableNetworkIsolation"] = True
    create_model = ModelStep(
        name=CREATE_MODEL_STEP,
        step_args=model_args,
        description="A SageMaker model from the environment's Approved model package (ModelPackageArn)",
    )

    resources, transform_input = batch["TransformResources"], batch["TransformInput"]
    transformer = Transformer(
        model_name=create_model.properties.ModelName,
        instance_count=resources["InstanceCount"],
        instance_type=resources["InstanceType"],
        strategy=batch["BatchStrategy"],
        assemble_with=batch["TransformOutput"]["AssembleWith"],
        accept=batch["TransformOutput"]["Accept"],
        output_path=output_uri("predictions"),
        max_concurrent_transforms=batch["MaxConcurrentTransforms"],
        max_payload=batch["MaxPayloadInMB"],
        base_transform_job_name=f"{base.project}-batch",
        volume_kms_key=base.kms_key_arn,
        output_kms_key=base.kms_key_arn,
        env={"MODEL_PACKAGE_ARN": package},
        sagemaker_session=session,
    )
    processing = batch["DataProcessing"]
    score = TransformStep(
        name=TRANSFORM_STEP,
        description="Batch Transform of the input with the settings of infra/config/<env>.json batch",
        step_args=transformer.transform(
            data=input_uri,
            data_type="S3Prefix",
            content_type=transform_input["ContentType"],
            split_type=transform_input["SplitType"],
            input_filter=processing["InputFilter"],
            output_filter=processing["OutputFilter"],
            join_source=processing["JoinSource"],
        ),
    )
    steps = [create_model, score]

    def processor(image, module: str, job: str, env: dict | None = None) -> Processor:
        from sagemaker.core.network import NetworkConfig

        net = base.network
        vpc = {"subnets": list(net.subnet_ids), "security_group_ids": list(net.security_group_ids)}
        vpc = vpc if net.in_vpc else {}
        return Processor(
            image_uri=image,
            instance_count=1,
            instance_type=base.training.processing_instance_type,
            entrypoint=["python", "-m", module],
            max_runtime_in_seconds=base.training.max_runtime_seconds,
            base_job_name=f"{base.project}-{job}",
            volume_kms_key=base.kms_key_arn,
            output_kms_key=base.kms_key_arn,
            env=env,
            network_config=NetworkConfig(enable_network_isolation=net.enable_network_isolation, **vpc)
            if (net.in_vpc or net.enable_network_isolation)
            else None,
            role=base.execution_role_arn,
            sagemaker_session=session,
        )

    def s3_input(name: str, uri, local: str) -> ProcessingInput:
        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(s3_uri=uri, local_path=local, s3_data_type="S3Prefix", s3_input_mode="File"),
        )

    def s3_output(name: str, local: str) -> ProcessingOutput:
        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(s3_uri=output_uri(name), local_path=local, s3_upload_mode="EndOfJob"),
        )

    if settings.attributions:
        # The Transform input is headerless CSV in schema order: explain --no-header names the columns from the
        # artifact's schema.json. The model is the package's own model.tar.gz (pipeline parameter ModelDataUrl).
        explain = ProcessingStep(
            name=ATTRIBUTIONS_STEP,
            description="Per-record SHAP attributions of the batch (model/train/explain.py)",
            step_args=processor(Join(on=":", values=[base.train_image_uri, image_tag]), EXPLAIN_MODULE, "explain").run(
                inputs=[
                    s3_input("model", model_data, f"{PROCESSING}/model"),
                    s3_input("batch", input_uri, f"{PROCESSING}/batch"),
                ],
                outputs=[s3_output("attributions", f"{PROCESSING}/attributions")],
                arguments=[
                    *("--model", f"{PROCESSING}/model", "--data", f"{PROCESSING}/batch", "--no-header"),
                    *("--output", f"{PROCESSING}/attributions/attributions.csv"),
                    *("--report", f"{PROCESSING}/attributions/report.md"),
                ],
            ),
            depends_on=[score],
        )
        steps.append(explain)
    if settings.data_quality:
        check = ProcessingStep(
            name=DATA_QUALITY_STEP,
            description="Data quality and drift of the batch input against the drift baselines (monitoring/)",
            step_args=processor(
                Join(on=":", values=[settings.drift.image_uri, image_tag]),
                DRIFT_MODULE,
                "batch-quality",
                env={"AWS_DEFAULT_REGION": base.region},
            ).run(
                inputs=[s3_input("baseline", settings.baseline_uri, f"{PROCESSING}/baseline")],
                outputs=[s3_output("data-quality", f"{PROCESSING}/output")],
                arguments=[
                    *("--baseline-dir", f"{PROCESSING}/baseline", "--input", input_uri),
                    *("--output-dir", f"{PROCESSING}/output"),
                    *("--cloudwatch-namespace", settings.drift.namespace),
                    *("--endpoint-name", settings.drift.endpoint_name, "--job-name", DATA_QUALITY_JOB),
                    "--no-fail-on-violations",
                ],
            ),
        )
        steps.append(check)
    return Pipeline(
        name=settings.pipeline_name,
        parameters=parameters,
        steps=steps,
        sagemaker_session=session,
        pipeline_experiment_config=None,
    )


def definition_json(settings: BatchSettings) -> dict:
    return json.loads(build_pipeline(settings).definition())


# ------------------------------------------------------------------------------------------------- upsert
def upsert(client, settings: BatchSettings, definition: dict, out: Callable[[str], None] = print) -> str:
    description = f"{settings.base.project}: batch scoring with {settings.model_package_arn} ({settings.base.env})"
    tags = {"project": settings.base.project, "environment": settings.base.env}
    return upsert_pipeline(
        client, settings.pipeline_name, settings.base.execution_role_arn, definition, description, tags, out
    )


def start_parameters(settings: BatchSettings, started_by: str = "manual") -> list[dict[str, str]]:
    """The explicit parameters of a start: the package, the input, the images' tag and who started it."""
    parameters = [
        {"Name": "ModelPackageArn", "Value": settings.model_package_arn},
        {"Name": "InputBucket", "Value": settings.input_bucket},
        {"Name": "InputKey", "Value": settings.input_key},
        {"Name": "ImageTag", "Value": settings.base.image_tag},
        {"Name": "StartedBy", "Value": started_by},
    ]
    if settings.attributions:
        parameters.append({"Name": "ModelDataUrl", "Value": settings.model_data_url})
    return parameters


def check_input_exists(s3, settings: BatchSettings) -> int:
    """Objects under the input (at most 1000 counted); none is a usage error before anything changes."""
    from botocore.exceptions import ClientError

    try:
        found = s3.list_objects_v2(Bucket=settings.input_bucket, Prefix=settings.input_key, MaxKeys=1000)
    except ClientError as exc:
        raise UsageError(
            f"cannot list s3://{settings.input_bucket}/{settings.input_key}: {exc.response['Error'].get('Code')}"
        ) from None
    count = found.get("KeyCount", 0)
    if not count:
        raise UsageError(
            f"--input = s3://{settings.input_bucket}/{settings.input_key}: no object there; upload the batch "
            "(headerless CSV in schema order, as text/csv requests) or give another --input"
        )
    return count


# ---------------------------------------------------------------------------------------------------- CLI
def add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--input", help="s3://bucket/key or prefix to score (default: <project>/batch/<env>/input/)")
    sub.add_argument("--model-package-arn", help="default: the newest Approved package of the group")
    sub.add_argument("--monitoring-image-uri", help="overrides SSM /<project>/monitoring-image-uri")
    sub.set_defaults(input_data_url=None)


def build_parser() -> argparse.ArgumentParser:
    output = ROOT / "build" / "pipeline" / "batch-definition.json"
    return sagemaker_api.build_parser(__doc__, output, "batch, network", add_options)


def resolve(args: argparse.Namespace, sagemaker_client=None, ssm_client_factory=None) -> BatchSettings:
    settings = resolve_batch_settings(args, sagemaker_client if args.use_ssm else None, ssm_client_factory)
    if settings.base.placeholders:
        print("note: placeholders for " + ", ".join(settings.base.placeholders), file=sys.stderr)
    return settings


def dry_run_lines(settings: BatchSettings, definition: dict) -> list[str]:
    """The start's parameters as a table, and where the outputs go."""
    rows = [("parameter", "value")] + [(p["Name"], p["Value"]) for p in start_parameters(settings)]
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value}" for name, value in rows] + [
        f"outputs under {settings.output_prefix}/<execution id>/"
    ]


def check_input(settings: BatchSettings, s3) -> int:
    count = check_input_exists(s3, settings)
    print(f"input s3://{settings.input_bucket}/{settings.input_key}: {count} object(s)")
    return count


def start(client, settings: BatchSettings, _checked: object = None) -> str:
    execution = client.start_pipeline_execution(
        PipelineName=settings.pipeline_name,
        PipelineExecutionDisplayName=f"{settings.base.env}-batch-{int(time.time())}",
        PipelineParameters=start_parameters(settings),
        ClientRequestToken=str(uuid.uuid4()),
    )["PipelineExecutionArn"]
    print(f"started execution {execution} with {settings.model_package_arn}")
    return execution


COMMAND = sagemaker_api.PipelineCommand(
    build_parser, resolve, definition_json, dry_run_lines, check_input, upsert, start
)
main, run = COMMAND.main, COMMAND.run


__all__ = ["TERMINAL", "batch_pipeline_name", "build_pipeline", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
