"""The SageMaker Model Registry side: find, register and approve model packages of the project's group."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from botocore.exceptions import ClientError

from release.errors import ReleaseError
from release.output import Output

S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)$")
PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[^/]+/(\d+)$")
CONTENT_TYPES = ["text/csv", "application/json", "application/jsonlines"]
IDEMPOTENCY_SCAN = 100  # newest packages compared by register before it creates a new one


@dataclass(frozen=True)
class Package:
    arn: str
    version: int
    status: str
    created: datetime | None

    @property
    def label(self) -> str:
        return f"version {self.version} ({self.status})"


def package_version(arn: str) -> int:
    match = PACKAGE_ARN.match(arn)
    return int(match.group(1)) if match else 0


def _summary(item: dict) -> Package:
    return Package(
        item["ModelPackageArn"],
        item.get("ModelPackageVersion") or package_version(item["ModelPackageArn"]),
        item["ModelApprovalStatus"],
        item.get("CreationTime"),
    )


def list_packages(sagemaker, group: str, status: str | None = None) -> list[Package]:
    """The group's packages, newest first."""
    params = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
    if status:
        params["ModelApprovalStatus"] = status
    packages = []
    try:
        for page in sagemaker.get_paginator("list_model_packages").paginate(**params):
            packages.extend(_summary(item) for item in page["ModelPackageSummaryList"])
    except ClientError as exc:
        raise _group_error(group, exc) from None
    return packages


def _group_error(group: str, exc: ClientError) -> ReleaseError:
    return ReleaseError(
        f"cannot read model package group {group!r}: {exc.response['Error'].get('Message', exc)}",
        "check the group name (SSM /PROJECT/model-package-group or --model-package-group) and your credentials",
    )


def describe(sagemaker, arn: str) -> dict:
    try:
        return sagemaker.describe_model_package(ModelPackageName=arn)
    except ClientError as exc:
        raise ReleaseError(
            f"model package {arn} cannot be read: {exc.response['Error'].get('Message', exc)}",
            "check the ARN (release.py status lists the group's packages)",
        ) from None


def model_data_url(sagemaker, arn: str) -> str:
    """The package's model.tar.gz: InferenceSpecification.Containers[0].ModelDataUrl."""
    containers = describe(sagemaker, arn).get("InferenceSpecification", {}).get("Containers") or [{}]
    url = containers[0].get("ModelDataUrl", "")
    if not url.endswith("/model.tar.gz"):
        raise ReleaseError(
            f"model package {arn} has no model.tar.gz (ModelDataUrl {url or 'missing'!r})",
            "batch.attributions needs the package's artifact: register it from the training job's model.tar.gz, "
            "or set batch.attributions to false",
        )
    return url


def resolve(sagemaker, group: str, ref: str) -> Package:
    """A package from its ARN or its version number in the group."""
    if ref.startswith("arn:"):
        if not PACKAGE_ARN.match(ref):
            raise ReleaseError(
                f"{ref!r} is not a model package version ARN",
                "give arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version> or the version number",
            )
        return _summary(describe(sagemaker, ref))
    if not ref.isdigit():
        raise ReleaseError(f"--package {ref!r} is neither an ARN nor a version number", "give e.g. --package 3")
    for package in list_packages(sagemaker, group):
        if package.version == int(ref):
            return package
    raise ReleaseError(
        f"model package group {group!r} has no version {ref}", "list the versions with release.py status"
    )


def latest_approved(sagemaker, group: str) -> Package:
    approved = list_packages(sagemaker, group, "Approved")
    if not approved:
        raise ReleaseError(
            f"model package group {group!r} has no Approved model package",
            "approve one: make approve-remote PACKAGE=<arn|version> (release.py approve --package ...)",
        )
    return approved[0]


def previous_approved(sagemaker, group: str, current: Package) -> Package:
    """The newest Approved package created before `current`: what a rollback goes back to."""
    for package in list_packages(sagemaker, group, "Approved"):
        if package.arn != current.arn and package.version < current.version:
            return package
    raise ReleaseError(
        f"no Approved model package is older than the deployed {current.label} in group {group!r}",
        "approve an earlier version (release.py approve --package N) or deploy one explicitly "
        "(release.py deploy --env ENV --package N)",
    )


def require_approved(package: Package) -> None:
    if package.status != "Approved":
        raise ReleaseError(
            f"model package {package.arn} is {package.status}, not Approved",
            f"approve it first: release.py approve --package {package.version}",
        )


# ---------------------------------------------------------------------------------------------- register
def parse_s3_uri(uri: str, what: str) -> tuple[str, str]:
    match = S3_URI.match(uri)
    if not match:
        raise ReleaseError(f"{what} {uri!r} is not an S3 URI", f"give s3://bucket/key for the {what}")
    return match.group(1), match.group(2)


def _require_object(s3, uri: str, what: str) -> dict:
    bucket, key = parse_s3_uri(uri, what)
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise ReleaseError(
            f"the {what} {uri} cannot be read ({exc.response['Error'].get('Code')})",
            "check that the object exists and that your credentials may read it",
        ) from None


def _find_registered(sagemaker, group: str, model_data_url: str, image: str) -> dict | None:
    for package in list_packages(sagemaker, group)[:IDEMPOTENCY_SCAN]:
        details = describe(sagemaker, package.arn)
        containers = details.get("InferenceSpecification", {}).get("Containers", [])
        if any(c.get("ModelDataUrl") == model_data_url and c.get("Image") == image for c in containers):
            return details
    return None


def register(
    clients,
    out: Output,
    *,
    group: str,
    bucket: str,
    project: str,
    model_data_url: str,
    image: str,
    metrics: str,
    description: str,
    dry_run: bool,
) -> str | None:
    """Create a PendingManualApproval package; the same model and image registered again return the first one."""
    if not model_data_url.endswith(".tar.gz"):
        raise ReleaseError(f"--model-data {model_data_url!r} is not a .tar.gz", "give the training job's model.tar.gz")
    head = _require_object(clients.s3, model_data_url, "model artifact")
    from release import formats  # late: formats reads S3 URIs with this module's parser

    artifact_format = formats.artifact_format(clients.s3, model_data_url)
    image_format = formats.image_format(clients.ecr, image)
    formats.check_servable(f"the model {model_data_url}", artifact_format, image, image_format)
    existing = _find_registered(clients.sagemaker, group, model_data_url, image)
    if existing:
        out.say(
            f"already registered: {existing['ModelPackageArn']} ({existing['ModelApprovalStatus']}) holds "
            f"{model_data_url} with {image}; nothing to do"
        )
        return existing["ModelPackageArn"]
    metrics_uri, upload = _metrics_location(metrics, bucket, project)
    if upload is None:
        _require_object(clients.s3, metrics_uri, "metrics file")
    token_source = json.dumps([model_data_url, head.get("ETag", ""), image, metrics_uri]).encode()
    params = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": description,
        "ModelApprovalStatus": "PendingManualApproval",
        "ClientToken": hashlib.sha256(token_source).hexdigest()[:36],
        "InferenceSpecification": {
            "Containers": [{"Image": image, "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": CONTENT_TYPES,
        },
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_uri}}},
        "CustomerMetadataProperties": {
            "model_data_etag": head.get("ETag", "").strip('"'),
            "image": image[-256:],
            formats.ARTIFACT_KEY: artifact_format,
            formats.IMAGE_KEY: image_format,
        },
    }
    if dry_run:
        if upload is not None:
            bucket_name, key = parse_s3_uri(metrics_uri, "metrics location")
            out.call("s3.put_object", {"Bucket": bucket_name, "Key": key, "Body": f"<{len(upload)} bytes>"})
        out.call("sagemaker.create_model_package", params)
        return None
    if upload is not None:
        bucket_name, key = parse_s3_uri(metrics_uri, "metrics location")
        clients.s3.put_object(Bucket=bucket_name, Key=key, Body=upload, ContentType="application/json")
        out.say(f"uploaded the metrics to {metrics_uri}")
    arn = clients.sagemaker.create_model_package(**params)["ModelPackageArn"]
    out.say(f"registered {arn} (PendingManualApproval): a {artifact_format} artifact, the {image_format} image")
    return arn


def _metrics_location(metrics: str, bucket: str, project: str) -> tuple[str, bytes | None]:
    """(S3 URI of the metrics, bytes to upload there or None when they are already in S3)."""
    if metrics.startswith("s3://"):
        parse_s3_uri(metrics, "metrics file")
        return metrics, None
    path = Path(metrics)
    try:
        data = path.read_bytes()
        json.loads(data)
    except FileNotFoundError:
        raise ReleaseError(
            f"metrics file {path} does not exist", "give evaluation.json from the pipeline run"
        ) from None
    except ValueError as exc:
        raise ReleaseError(f"metrics file {path} is not valid JSON: {exc}", "give the evaluation.json") from None
    digest = hashlib.sha256(data).hexdigest()
    return f"s3://{bucket}/{project}/evaluations/{digest[:16]}/evaluation.json", data


# ----------------------------------------------------------------------------------------------- approve
def set_approval(clients, out: Output, package: Package, status: str, reason: str, dry_run: bool) -> bool:
    """Approve or reject; returns False when the package already has that status."""
    if package.status == status:
        out.say(f"{package.arn} is already {status}; nothing to do")
        return False
    params = {"ModelPackageArn": package.arn, "ModelApprovalStatus": status}
    if reason:
        params["ApprovalDescription"] = reason
    if dry_run:
        out.call("sagemaker.update_model_package", params)
        return False
    clients.sagemaker.update_model_package(**params)
    out.say(f"{package.arn}: {package.status} -> {status}")
    return True
