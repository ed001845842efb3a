"""moto's server on 127.0.0.1, the toolchain it stands in for, and a record of every AWS call the release code makes.

The record counts only calls made from release/*.py (not from the tests' own setup), so test_call_coverage can
prove that every client method the release code calls is exercised here, against moto or a botocore Stubber.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config

from infra import contract
from release import config, preflight, stack
from release.config import ENDPOINT_TEMPLATE, MONITORING_TEMPLATE, ROOT, load_project
from release.template import load_template

RELEASE_DIR = ROOT / "release"
TESTS_DIR = RELEASE_DIR / "tests"
REGION = load_project().region or "us-east-1"
ACCOUNT = "123456789012"  # moto's account
CALLS: set[tuple[str, str]] = set()  # (service name, operation name) called from release code
LOG: list[tuple[str, str]] = []  # the same calls in order, for tests that check what a command did (or not)
READ_ONLY = ("Get", "List", "Describe")  # operation name prefixes that change nothing
CONTRACT_PARAMETERS = list(contract.STACK_PARAMETERS["endpoint"])
MONITORING_CONTRACT_PARAMETERS = list(contract.STACK_PARAMETERS["monitoring"])


def _called_from_release_code() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.parent == RELEASE_DIR:
            return True
        frame = frame.f_back
    return False


_original_make_api_call = BaseClient._make_api_call


def _recording_make_api_call(self, operation_name, api_params):
    if _called_from_release_code():
        CALLS.add((self.meta.service_model.service_name, operation_name))
        LOG.append((self.meta.service_model.service_name, operation_name))
    return _original_make_api_call(self, operation_name, api_params)


BaseClient._make_api_call = _recording_make_api_call


@pytest.fixture
def aws_region() -> str:
    return REGION


@pytest.fixture
def aws(aws_env, moto_url, monkeypatch):
    """A fresh moto state for each test (the root conftest's aws_env); polling without sleeps."""
    monkeypatch.setattr(stack, "POLL_SECONDS", 0.0)
    LOG.clear()
    return moto_url


def writes(since: int = 0) -> list[str]:
    """The calls of the release code (from LOG[since:]) that are not read-only."""
    return [f"{service}:{op}" for service, op in LOG[since:] if not op.startswith(READ_ONLY)]


def client(service: str):
    return boto3.client(service, region_name=REGION, config=Config(retries={"max_attempts": 1}))


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    """A copy of infra/config that a test may break."""
    target = tmp_path / "config"
    shutil.copytree(config.CONFIG_DIR, target)
    monkeypatch.setattr(config, "CONFIG_DIR", target)
    return target


def edit(config_dir, environment, change):
    """Change infra/config/<environment>.json in the test's copy (the config_dir fixture)."""
    path = config_dir / f"{environment}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def project():
    return load_project()


# The SageMaker quotas of an account, for moto's Service Quotas (which knows only the vpc service):
# name -> (quota code, default value). Codes are made up (L-TEST0001, ...); names follow AWS's "<type> for
# <usage>" pattern.
SAGEMAKER_QUOTAS = {
    name: (f"L-TEST{number:04d}", value)
    for number, (name, value) in enumerate(
        {
            "ml.m5.large for endpoint usage": 12.0,
            "ml.m5.xlarge for endpoint usage": 12.0,
            "ml.c5.large for endpoint usage": 0.0,
            "ml.m5.large for processing job usage": 4.0,
            "ml.m5.xlarge for training job usage": 2.0,
            "ml.m5.xlarge for spot training job usage": 2.0,
        }.items(),
        start=1,
    )
}
APPLIED_QUOTAS: dict[str, float] = {}  # quota code -> applied value (an increase), per test


@pytest.fixture
def quotas(aws, monkeypatch):
    """moto's Service Quotas answering for SageMaker: defaults from SAGEMAKER_QUOTAS, increases in the dict returned."""
    from moto.servicequotas.exceptions import NoSuchResource
    from moto.servicequotas.models import ServiceQuotasBackend

    applied: dict[str, float] = {}

    def quota(name: str, code: str, value: float) -> dict:
        return {
            "ServiceCode": "sagemaker",
            "ServiceName": "Amazon SageMaker",
            "QuotaArn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:sagemaker/{code}",
            "QuotaCode": code,
            "QuotaName": name,
            "Value": value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
        }

    original_list = ServiceQuotasBackend.list_aws_default_service_quotas
    original_get = ServiceQuotasBackend.get_service_quota

    def list_defaults(self, service_code):
        if service_code != "sagemaker":
            return original_list(self, service_code)
        return [quota(name, code, value) for name, (code, value) in SAGEMAKER_QUOTAS.items()]

    def get_applied(self, service_code, quota_code):
        if service_code != "sagemaker":
            return original_get(self, service_code, quota_code)
        for name, (code, _) in SAGEMAKER_QUOTAS.items():
            if code == quota_code and code in applied:
                return quota(name, code, applied[code])
        raise NoSuchResource

    monkeypatch.setattr(ServiceQuotasBackend, "list_aws_default_service_quotas", list_defaults)
    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", get_applied)
    return applied


def push_image(repository_uri: str, tag: str, image_format: str | None = "onnx") -> str:
    """An image in moto's ECR under `tag` (and `tag-<format>`, as the build stage pushes it); returns URI:tag."""
    name = repository_uri.split("/", 1)[1]
    ecr = client("ecr")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=name)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": f"sha256:{tag:0<64}"},
            "layers": [],
        }
    )
    ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag=tag)
    if image_format:
        ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag=f"{tag}-{image_format}")
    return f"{repository_uri}:{tag}"


def model_tar(model_format: str | None) -> bytes:
    """A model.tar.gz as training writes it (metadata.json names the format; None: no metadata.json)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        files = {"model.onnx" if model_format != "skops" else "model.skops": b"model"}
        if model_format is not None:
            files["metadata.json"] = json.dumps({"model_format": model_format, "model_version": "m1"}).encode()
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def toolchain(aws, project, quotas):
    """What the toolchain stack provides: the SSM parameters, the artifact bucket and the model package group.

    Also what the account needs besides (make preflight): the execution role, the auto scaling service-linked
    role and SageMaker quotas.
    """
    bucket = f"{project.name}-artifacts"
    group = f"{project.name}-models"
    values = {
        "artifact-bucket": bucket,
        "kms-key-arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "model-package-group": group,
        "sagemaker-execution-role-arn": f"arn:aws:iam::{ACCOUNT}:role/{project.name}-sagemaker",
        "pipeline-starter-role-arn": f"arn:aws:iam::{ACCOUNT}:role/{project.name}-pipeline-starter",
        "inference-image-uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{project.name}-inference",
        "monitoring-image-uri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{project.name}/monitoring",
    }
    ssm = client("ssm")
    for name, value in values.items():
        ssm.put_parameter(Name=f"/{project.name}/{name}", Value=value, Type="String")
    location = {} if REGION == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": REGION}}
    client("s3").create_bucket(Bucket=bucket, **location)
    client("sagemaker").create_model_package_group(ModelPackageGroupName=group)
    iam = client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName=f"{project.name}-sagemaker", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_role(
        RoleName=preflight.SCALING_ROLE,
        Path=f"/aws-service-role/{preflight.SCALING_SERVICE}/",
        AssumeRolePolicyDocument=json.dumps(trust),
    )
    return values


def add_package(
    toolchain, n: int, status: str = "Approved", formats: tuple[str, str] | None = ("onnx", "onnx"), metadata=True
) -> str:
    """A model package as registration creates it; returns its ARN.

    formats: (artifact format in model.tar.gz, format of the inference image), both also pushed to moto's ECR/S3;
    metadata=False registers without the CustomerMetadataProperties (as packages registered before the formats).
    """
    bucket = toolchain["artifact-bucket"]
    key = f"models/run-{n}/model.tar.gz"
    artifact, served = formats or (None, None)
    client("s3").put_object(Bucket=bucket, Key=key, Body=model_tar(artifact))
    image = push_image(toolchain["inference-image-uri"], f"c{n}", served)
    params = {}
    if metadata and formats:
        params["CustomerMetadataProperties"] = {"model_format": artifact, "image_model_format": served}
    arn = client("sagemaker").create_model_package(
        ModelPackageGroupName=toolchain["model-package-group"],
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": image, "ModelDataUrl": f"s3://{bucket}/{key}"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        **params,
    )["ModelPackageArn"]
    return arn


@pytest.fixture(scope="session")
def moto_template(tmp_path_factory) -> Path:
    """The endpoint stack's parameters (from infra/lib/endpoint.yaml) over resources moto's CloudFormation can run.

    moto cannot run the real template (it needs PrimaryContainer on AWS::SageMaker::Model and has no Rules), so
    deployments on moto use the real parameter declarations with a minimal SageMaker model, configuration and
    endpoint. The real template itself is checked by cfn-lint and by test_config's parameter contract.
    """
    document = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": _moto_parameters(ENDPOINT_TEMPLATE, CONTRACT_PARAMETERS),
        "Resources": {
            "Model": {
                "Type": "AWS::SageMaker::Model",
                "Properties": {
                    "ExecutionRoleArn": {"Ref": "ExecutionRoleArn"},
                    "PrimaryContainer": {"ModelPackageName": {"Ref": "ModelPackageArn"}},
                },
            },
            "EndpointConfig": {
                "Type": "AWS::SageMaker::EndpointConfig",
                "Properties": {
                    "ProductionVariants": [
                        {
                            "VariantName": "AllTraffic",
                            "ModelName": {"Fn::GetAtt": ["Model", "ModelName"]},
                            "InstanceType": {"Ref": "InstanceType"},
                            "InitialInstanceCount": 1,
                            "InitialVariantWeight": 1,
                        }
                    ]
                },
            },
            "Endpoint": {
                "Type": "AWS::SageMaker::Endpoint",
                "Properties": {"EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]}},
            },
        },
        "Outputs": {"ModelPackageArn": {"Value": {"Ref": "ModelPackageArn"}}},
    }
    path = tmp_path_factory.mktemp("template") / "endpoint.json"
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def _moto_parameters(path: Path, contract: list[str]) -> dict:
    if path.is_file():
        parameters = copy.deepcopy(load_template(path)[1]["Parameters"])
    else:
        parameters = {name: {"Type": "String", "Default": ""} for name in contract}
    for spec in parameters.values():
        spec.pop("AllowedPattern", None)
        if spec["Type"] == "CommaDelimitedList":  # moto reports these back as "['a', 'b']" instead of "a,b"
            spec["Type"] = "String"
    return parameters


@pytest.fixture(scope="session")
def moto_monitoring_template(tmp_path_factory) -> Path:
    """The monitoring stack's parameters (from infra/lib/monitoring.yaml) over resources moto's CloudFormation runs.

    moto cannot create AWS::SageMaker::Pipeline or AWS::Scheduler::Schedule, so deployments on moto keep the real
    parameter declarations, the SNS topic and the failed-run rule (moto has no AWS::CloudWatch::Alarm either).
    The real template is checked by cfn-lint, infra/tests and test_monitor's parameter contract.
    """
    topic_name = {"Fn::Sub": "${ProjectName}-monitoring-${Environment}"}
    document = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": _moto_parameters(MONITORING_TEMPLATE, MONITORING_CONTRACT_PARAMETERS),
        "Resources": {
            "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": topic_name}},
            "DriftRunFailedRule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Name": {"Fn::Sub": "${ProjectName}-drift-failed-${Environment}"},
                    "Description": {"Fn::Sub": "drift runs of ${EndpointName} on ${ScheduleExpression}"},
                    "EventPattern": {"source": ["aws.sagemaker"]},
                    "Targets": [{"Id": "alarm-topic", "Arn": {"Ref": "AlarmTopic"}}],
                },
            },
        },
        "Outputs": {
            "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
            "CaptureS3Uri": {"Value": {"Ref": "CaptureS3Uri"}},
        },
    }
    path = tmp_path_factory.mktemp("template") / "monitoring.json"
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def pytest_collection_modifyitems(session, config, items):
    """Run the call-coverage check last, after every other release test."""
    items.sort(key=lambda item: item.fspath.basename == "test_call_coverage.py")
    here = Path(__file__).resolve().parent
    config.release_test_files = {
        Path(str(item.fspath)).name for item in items if Path(str(item.fspath)).resolve().parent == here
    }
