"""The SageMaker Pipeline: prepare -> train (or tune) -> evaluate -> gates -> register (PendingManualApproval) or fail.

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
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Mapping

from model.common import paths
from pipeline import sagemaker_api
from pipeline.sagemaker_api import upsert_pipeline
from pipeline.sagemaker_settings import (
    MAX_RUNTIME_LIMIT,
    Settings,
    data_version,
    inference_image_format,
    resolve_settings,
)

ROOT = paths.REPO_ROOT

# Step names, as they appear in SageMaker Studio and in `list_pipeline_execution_steps`.
PREPARE_STEP = "PrepareData"
TRAIN_STEP = "TrainModel"
TUNE_STEP = "TuneModel"  # replaces TrainModel when model/config/tuning.json enables tuning for the environment
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
UNVERSIONED = "unversioned"  # InputDataVersion of a definition nobody started: start() always passes a digest


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


def pipeline_session(region: str, bucket: str, boto_session=None):
    """The SDK's PipelineSession for building a definition: explicit settings (no telemetry calls, no defaults from a
    user's config files), and the toolchain's bucket as its default bucket without the S3 calls that check it."""
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    _quiet_sdk()
    _validate_sdk_config_once()
    session = PipelineSession(
        boto_session=boto_session or boto3.Session(region_name=region),
        default_bucket=bucket,
        sagemaker_config=SDK_CONFIG,
    )
    session._default_bucket = bucket  # the SDK would check (and create) it; the toolchain stack owns the bucket
    return session


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
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, TrainingStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, Networking

    session = pipeline_session(settings.region, settings.artifact_bucket, boto_session)

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

    # Every job runs as the execution role in this session, and records the commit of its image and the digest of
    # its input data (the model's lineage).
    shared = {"role": settings.execution_role_arn, "sagemaker_session": session}
    lineage = {"GIT_COMMIT": image_tag, "INPUT_DATA_VERSION": data_version}

    # Processor (below) and ModelTrainer take the same settings under the SDK's own keyword names for each job type.
    def processor(module: str, job: str) -> Processor:
        return Processor(
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
            **shared,
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
        **shared,
    )
    channels = [
        InputData(channel_name="train", data_source=split_uri["train"]),
        InputData(channel_name="validation", data_source=split_uri["validation"]),
    ]
    if settings.tuning is None:
        train = TrainingStep(
            name=TRAIN_STEP,
            description="Run train.py in the training image under SageMaker's training contract",
            step_args=trainer.train(input_data_config=channels),
            cache_config=cache,
        )
        model_uri = train.properties.ModelArtifacts.S3ModelArtifacts
    else:
        train = tuning_step(settings, trainer, channels, cache)
        # The best training job's model.tar.gz: <S3OutputPath>/<training job name>/output/model.tar.gz.
        model_uri = train.get_top_model_s3_uri(
            top_k=0, s3_bucket=settings.artifact_bucket, prefix=f"{settings.project}/pipeline/training"
        )

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


def tuning_step(settings: Settings, trainer, channels: list, cache):
    """A TuningStep over model/config/tuning.json's ranges: the trainer's training jobs, train.py's metric lines.

    The static hyperparameters are hyperparameters.json without the tuned keys. The SDK (3.27.0) builds the tuning
    job's ResourceConfig from the instance type, count and volume size only, and drops network isolation, so the
    step adds the environment's KMS key and isolation back: every tuning trial runs like the training step's job.
    """
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter
    from sagemaker.mlops.workflow.steps import TuningStep
    from sagemaker.train.tuner import HyperparameterTuner

    tc = settings.tuning
    ranges = {}
    for r in tc.ranges:
        if r.kind == "Categorical":
            ranges[r.name] = CategoricalParameter(list(r.values))
        else:
            kind = ContinuousParameter if r.kind == "Continuous" else IntegerParameter
            ranges[r.name] = kind(r.as_strings(r.min_value), r.as_strings(r.max_value), scaling_type=r.scaling_type)
    tuner = HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=tc.objective_metric,
        objective_type=tc.objective_type,
        hyperparameter_ranges=ranges,
        metric_definitions=tc.metric_definitions(),
        strategy=tc.strategy,
        max_jobs=tc.max_jobs,
        max_parallel_jobs=tc.max_parallel_jobs,
        random_seed=tc.random_seed,
    )
    isolation = settings.network.enable_network_isolation
    kms_key = settings.kms_key_arn

    class _TuningStep(TuningStep):
        @property
        def arguments(self):
            request = super().arguments
            definition = request["TrainingJobDefinition"]
            if kms_key:
                definition.setdefault("ResourceConfig", {})["VolumeKmsKeyId"] = kms_key
            if isolation:
                definition["EnableNetworkIsolation"] = True
            return request

    return _TuningStep(
        name=TUNE_STEP,
        description=(
            f"Tune train.py's hyperparameters ({tc.strategy}, {tc.trials} jobs, {tc.objective_type} "
            f"{tc.objective_metric}; model/config/tuning.json)"
        ),
        step_args=tuner.tune(inputs=channels),
        cache_config=cache,
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
    """Create the training pipeline, or update it when it exists (never a duplicate); returns its ARN."""
    description = f"{settings.project}: prepare -> train -> evaluate -> gates -> register (config {settings.env})"
    return upsert_pipeline(
        client,
        settings.pipeline_name,
        settings.execution_role_arn,
        definition,
        description,
        {"project": settings.project},
        out,
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


# ---------------------------------------------------------------------------------------------------- CLI
def add_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--input-data-url", help="S3 URI of the raw data (default: s3://<bucket>/<project>/data/)")


def build_parser() -> argparse.ArgumentParser:
    output = ROOT / "build" / "pipeline" / "definition.json"
    return sagemaker_api.build_parser(__doc__, output, "training, network", add_options)


def resolve(args: argparse.Namespace, sagemaker_client=None, ssm_client_factory=None) -> Settings:
    settings = resolve_settings(args, ssm_client_factory)
    if settings.placeholders:
        print(
            "note: placeholders for " + ", ".join(settings.placeholders) + " (give the flags, or --ssm online)",
            file=sys.stderr,
        )
    return settings


def dry_run_lines(settings: Settings, definition: dict) -> list[str]:
    return [f"role {settings.execution_role_arn}; image tag {settings.image_tag}; input {settings.input_data_url}"]


def check_input(settings: Settings, s3) -> str:
    return data_version(s3, settings.input_data_url)


COMMAND = sagemaker_api.PipelineCommand(
    build_parser, resolve, definition_json, dry_run_lines, check_input, upsert, lambda c, s, v: start(c, s, version=v)
)
main, run = COMMAND.main, COMMAND.run


if __name__ == "__main__":
    raise SystemExit(main())
