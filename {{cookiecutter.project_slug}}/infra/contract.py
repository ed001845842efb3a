"""The names the stacks and the code agree on, written once for Python (the templates use the same rule in Jinja,
`cookiecutter.__resource_name`): the resource name, the SSM parameters the toolchain stack publishes, and how a
CloudFormation template is read. infra/tests/test_contract.py checks them against infra/lib.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from model.common import paths

LIB = paths.REPO_ROOT / "infra" / "lib"
CONFIG_DIR = paths.REPO_ROOT / "infra" / "config"  # one <env>.json per environment
PYPROJECT = paths.REPO_ROOT / "pyproject.toml"

# The settings the toolchain stack (infra/lib/toolchain.yaml) writes to SSM Parameter Store under /<resource
# name>/, by the name the code uses for each: (parameter name, the command-line flag that overrides it).
SSM_PARAMETERS = {
    "artifact_bucket": ("artifact-bucket", "--artifact-bucket"),
    "kms_key_arn": ("kms-key-arn", "--kms-key-arn"),
    "model_package_group": ("model-package-group", "--model-package-group"),
    "execution_role_arn": ("sagemaker-execution-role-arn", "--execution-role-arn"),
    "pipeline_starter_role_arn": ("pipeline-starter-role-arn", "--pipeline-starter-role-arn"),
    "train_image_uri": ("train-image-uri", "--train-image-uri"),
    "inference_image_uri": ("inference-image-uri", "--inference-image-uri"),
    "monitoring_image_uri": ("monitoring-image-uri", "--monitoring-image-uri"),  # only with monitoring
    "pipeline_name": ("sagemaker-pipeline-name", "--pipeline-name"),
}


# The parameters the code passes to each stack (release.config, the SageMaker Projects catalog for the toolchain);
# every other parameter of a template needs a default. infra/tests/test_stacks.py and release/tests check both
# sides against infra/lib.
STACK_PARAMETERS: dict[str, tuple[str, ...]] = {
    # infra/lib/toolchain.yaml: what SageMaker Projects and the catalog give
    "toolchain": (
        "SageMakerProjectName",
        "SageMakerProjectId",
        "CiProvider",
        "SourceProvider",
        "ConnectionArn",
        "FullRepositoryId",
        "BranchName",
        "CodeCommitRepositoryName",
        "GitHubOidcProviderArn",
        "StagingAccountId",
        "ProdAccountId",
    ),
    # infra/lib/endpoint.yaml: release/config.py's endpoint_stack_parameters
    "endpoint": (
        "ProjectName",
        "Environment",
        "ModelPackageArn",
        "ShadowModelPackageArn",
        "EndpointName",
        "ExecutionRoleArn",
        "InstanceType",
        "InstanceCount",
        "ShadowInstanceType",
        "ShadowInstanceCount",
        "DeploymentStrategy",
        "CanarySizePercent",
        "LinearStepPercent",
        "WaitIntervalSeconds",
        "TerminationWaitSeconds",
        "MaximumExecutionTimeoutSeconds",
        "DataCaptureEnabled",
        "DataCaptureSamplingPercentage",
        "DataCaptureS3Uri",
        "KmsKeyArn",
        "AutoScalingMinCapacity",
        "AutoScalingMaxCapacity",
        "TargetInvocationsPerInstance",
        "Invocation5xxThreshold",
        "ModelLatencyP99Microseconds",
        "AlarmEvaluationPeriods",
        "SubnetIds",
        "SecurityGroupIds",
        "EnableNetworkIsolation",
        "EndpointType",
        "ServerlessMemorySizeMB",
        "ServerlessMaxConcurrency",
        "ServerlessProvisionedConcurrency",
        "AsyncOutputS3Uri",
        "AsyncFailureS3Uri",
        "AsyncNotifications",
        "AsyncMaxConcurrentInvocations",
        "AsyncTargetBacklogPerInstance",
        "AsyncOldestRequestAgeSeconds",
    ),
    # infra/lib/monitoring.yaml: release/config.py's monitoring parameters
    "monitoring": (
        "ProjectName",
        "Environment",
        "EndpointName",
        "ExecutionRoleArn",
        "PipelineStarterRoleArn",
        "MonitoringImageUri",
        "CaptureS3Uri",
        "ReportsS3Uri",
        "BaselineS3Uri",
        "ScheduleExpression",
        "CaptureWindowHours",
        "InstanceType",
        "InstanceCount",
        "AlarmEmail",
        "KmsKeyArn",
        "SubnetIds",
        "SecurityGroupIds",
        "RetrainOnAlarms",
        "TrainingPipelineName",
        "RetrainScheduleExpression",
        "RetrainMinIntervalHours",
    ),
    # infra/lib/batch.yaml: release/config.py's batch_stack_parameters
    "batch": (
        "ProjectName",
        "Environment",
        "PipelineStarterRoleArn",
        "KmsKeyArn",
        "ModelPackageArn",
        "ImageTag",
        "ArtifactBucket",
        "ScheduleExpression",
        "ScheduledInputKey",
        "UploadPrefix",
        "ModelDataUrl",
    ),
}


# The outputs each stack publishes (`make status` prints them; docs/runbook.md reads the toolchain's CI roles by
# name). The code reads none by name: the names a person or a pipeline outside this repository may rely on.
# infra/tests/test_contract.py checks that infra/lib publishes exactly these, condition by condition.
STACK_OUTPUTS: dict[str, dict[str, str | None]] = {  # output -> the template Condition it needs (None: always)
    "toolchain": {
        **dict.fromkeys(("ArtifactBucketName", "KmsKeyArn", "ModelPackageGroupName", "SageMakerExecutionRoleArn")),
        **dict.fromkeys(("PipelineStarterRoleArn", "TrainImageRepositoryUri", "InferenceImageRepositoryUri")),
        "MonitoringImageRepositoryUri": None,  # only in a repository with monitoring/
        **dict.fromkeys(("ModelBuildPipelineName", "ModelDeployPipelineName"), "UseCodePipeline"),
        **dict.fromkeys(("GitHubCiRoleArn", "GitHubDeployRoleArn"), "UseGitHubActions"),
    },
    "endpoint": dict.fromkeys(("EndpointName", "EndpointConfigName", "ModelPackageArn")),
    "monitoring": {
        **dict.fromkeys(("DriftPipelineName", "DriftScheduleName", "AlarmTopicArn")),
        "RetrainGuardPipelineName": "HasRetrainGuard",
    },
    "batch": {"BatchPipelineName": None},
}
MONITORING_OUTPUTS = {"MonitoringImageRepositoryUri"}


class EnvironmentFileError(ValueError):
    """infra/config/<env>.json is missing or is not JSON: `problem` says which, `fix` what to do."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem}: {fix}")
        self.problem, self.fix = problem, fix


def environments(config_dir: Path | None = None) -> list[str]:
    """The environments that have a file: the stems of infra/config/*.json, sorted."""
    return sorted(path.stem for path in (config_dir or CONFIG_DIR).glob("*.json"))


def read_environment(env: str, config_dir: Path | None = None) -> tuple[Path, Any]:
    """infra/config/<env>.json, parsed: (its path, its content). The one reader of the per-environment settings;
    what the content must hold is checked by infra/environment_checks.py."""
    path = (config_dir or CONFIG_DIR) / f"{env}.json"
    source = f"infra/config/{path.name}"
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(environments(config_dir)) or "(none found)"
        raise EnvironmentFileError(
            f"{source} is missing", f"give one of {known}, or create it from infra/config/staging.json"
        ) from None
    except json.JSONDecodeError as exc:
        raise EnvironmentFileError(
            f"{source} is not valid JSON: {exc}", "fix the syntax at that line and column"
        ) from None


def resource_name(project_name: str) -> str:
    """What AWS resources are named after: the project name with `_` -> `-` (S3, ECR, stacks allow no `_`)."""
    return project_name.replace("_", "-")


def read_pyproject(path: Path = PYPROJECT) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def project_settings(path: Path = PYPROJECT) -> tuple[str, str]:
    """(resource name, AWS region) from pyproject.toml: [project] name and [tool.sagemaker-mlops] aws_region."""
    data = read_pyproject(path)
    name = str(data.get("project", {}).get("name", ""))
    region = str(data.get("tool", {}).get("sagemaker-mlops", {}).get("aws_region", ""))
    return resource_name(name), region


def ssm_name(project: str, setting: str) -> str:
    return f"/{project}/{SSM_PARAMETERS[setting][0]}"


def read_template(text: str) -> dict:
    """A CloudFormation template, read as cfn-lint reads it (`make lint-infra`): short forms become long forms
    (`!Ref X` -> {"Ref": "X"}, `!GetAtt A.B` -> {"Fn::GetAtt": ["A", "B"]}, `!Sub s` -> {"Fn::Sub": "s"})."""
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.loads(text)
