"""One artifact path to production: which model formats an inference image serves, and the guard that refuses a
model package whose artifact its image cannot load.

The build stage builds the inference image for model/config/hyperparameters.json's `model_format` ("skops" -> the
skops image, with scikit-learn; "auto" / "onnx" -> the onnx image) and pushes it under two tags: `<commit>` and
`<commit>-<format>`. The second tag is how the scripts learn an image's format with one read-only ECR call
(the image also carries the label below, and build/images.json records it). Registration records both formats in
the model package's CustomerMetadataProperties; deploy, promote and rollback read them back (or, for a package
registered before, the artifact's metadata.json and the image's tags) and refuse before any stack is touched.
"""

from __future__ import annotations

import json
import re
import tarfile

from botocore.exceptions import ClientError

from model.common import image_formats, paths
from model.common.image_formats import SERVES
from model.common.streams import StreamingBodyReader
from release.errors import ReleaseError

ARTIFACT_KEY = "model_format"  # CustomerMetadataProperties: the format of the artifact in model.tar.gz
IMAGE_KEY = "image_model_format"  # CustomerMetadataProperties: the format the inference image was built for
IMAGE_LABEL = "com.sagemaker-mlops.model-format"  # the image label the build stage sets
HYPERPARAMETERS = paths.HYPERPARAMETERS_FILE
IMAGE_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repository>[^:@]+)"
    r"(?::(?P<tag>[A-Za-z0-9_.-]+)|@(?P<digest>sha256:[0-9a-f]{64}))$"
)
FIX = (
    "set model_format=skops in model/config/hyperparameters.json so the build stage builds the inference image "
    "with scikit-learn, or choose an estimator that exports to ONNX; then build, train and register again"
)


def configured_image_format() -> str:
    """The image format the build stage builds for this repository's model/config/hyperparameters.json."""
    try:
        value = json.loads(HYPERPARAMETERS.read_text(encoding="utf-8")).get("model_format", "auto")
    except (OSError, ValueError) as exc:
        raise ReleaseError(
            f"model/config/hyperparameters.json cannot be read ({exc})", "restore the file from the repository"
        ) from None
    if value not in ("auto", "onnx", "skops"):
        raise ReleaseError(
            f"model/config/hyperparameters.json: model_format = {value!r} is not allowed",
            "use auto, onnx or skops",
        )
    return image_formats.image_format(value)


def format_tag(tag: str, image_format: str) -> str:
    return f"{tag}-{image_format}"


def check_servable(package: str, artifact_format: str, image: str, image_format: str) -> None:
    """Raise unless an image built for image_format can load an artifact in artifact_format."""
    if image_format not in SERVES:
        raise ReleaseError(
            f"{package}: the inference image {image} records model format {image_format!r}, not onnx or skops",
            "rebuild the image with the build stage (pipeline/buildspec/build.yml)",
        )
    if artifact_format not in SERVES[image_format]:
        raise ReleaseError(
            f"{package} holds a {artifact_format} model artifact, but its inference image {image} is the "
            f"{image_format} image, which serves only {' and '.join(SERVES[image_format])} artifacts: "
            "the endpoint would fail its health check",
            FIX,
        )


# ------------------------------------------------------------------------------------------ the artifact
def artifact_format(s3, model_data_url: str) -> str:
    """model_format from metadata.json inside model.tar.gz (read as a stream; stops at metadata.json)."""
    from release.registry import parse_s3_uri

    bucket, key = parse_s3_uri(model_data_url, "model artifact")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        raise ReleaseError(
            f"the model artifact {model_data_url} cannot be read ({exc.response['Error'].get('Code')})",
            "check that it exists and that the credentials may read it (s3:GetObject, kms:Decrypt)",
        ) from None
    try:
        with tarfile.open(fileobj=StreamingBodyReader(body), mode="r|gz") as archive:
            for member in archive:
                if member.name.lstrip("./") == "metadata.json" and member.isfile():
                    handle = archive.extractfile(member)
                    metadata = json.loads(handle.read()) if handle else {}
                    break
            else:
                metadata = None
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise ReleaseError(
            f"the model artifact {model_data_url} is not a readable model.tar.gz ({exc})",
            "give the model.tar.gz the training job wrote",
        ) from None
    finally:
        body.close()
    if metadata is None or metadata.get("model_format") not in SERVES["skops"]:
        found = "no metadata.json" if metadata is None else f"model_format = {metadata.get('model_format')!r}"
        raise ReleaseError(
            f"the model artifact {model_data_url} records no model format ({found})",
            "register an artifact written by model/train/train.py (its metadata.json names the format)",
        )
    return metadata["model_format"]


# --------------------------------------------------------------------------------------------- the image
def parse_image(image: str) -> dict[str, str]:
    match = IMAGE_URI.match(image)
    if not match:
        raise ReleaseError(
            f"inference image {image!r} is not an ECR image URI with a tag or digest",
            "give <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>",
        )
    return match.groupdict()


def describe_image(ecr, image: str, what: str = "inference image") -> dict:
    """The ECR image details of an image URI; ReleaseError naming the fix when it was never pushed."""
    parts = parse_image(image)
    image_id = {"imageTag": parts["tag"]} if parts["tag"] else {"imageDigest": parts["digest"]}
    try:
        found = ecr.describe_images(
            registryId=parts["account"], repositoryName=parts["repository"], imageIds=[image_id]
        )["imageDetails"]
    except ClientError as exc:
        code = exc.response["Error"].get("Code", "")
        if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            found = []
        else:
            raise ReleaseError(
                f"cannot check that the {what} {image} exists: {code}: {exc.response['Error'].get('Message')}",
                "the credentials need ecr:DescribeImages on the repository (see release/README.md, permissions)",
            ) from None
    if not found:
        raise ReleaseError(
            f"the {what} {image} does not exist in ECR (repository {parts['repository']}, account "
            f"{parts['account']}): no build pushed it",
            "build and push it (the build stage, pipeline/buildspec/build.yml, tags every image with the commit), or "
            "pass the tag of a built image; list them: aws ecr describe-images --repository-name "
            f"{parts['repository']} --query 'imageDetails[].imageTags'",
        )
    return found[0]


def image_format(ecr, image: str) -> str:
    """The format an inference image was built for, from its `<tag>-<format>` sibling tag in ECR."""
    parts = parse_image(image)
    tags = describe_image(ecr, image).get("imageTags", [])
    if parts["tag"]:
        base = parts["tag"]
        found = {f for f in SERVES if format_tag(base, f) in tags or base.endswith(f"-{f}")}
    else:  # by digest: any format tag of that image
        base = next((t for t in tags if not t.endswith(("-onnx", "-skops"))), "<tag>")
        found = {f for f in SERVES if any(t.endswith(f"-{f}") for t in tags)}
    if len(found) != 1:
        raise ReleaseError(
            f"the inference image {image} has {'two' if found else 'no'} model-format tags "
            f"({format_tag(base, 'onnx')} / {format_tag(base, 'skops')}; its tags: {', '.join(tags) or 'none'}): "
            "it was built outside the build stage, or before the build stage recorded the format",
            "rebuild it with the build stage (pipeline/buildspec/build.yml), or tag it with the format it was built "
            f"for (--build-arg MODEL_FORMAT): aws ecr put-image --repository-name {parts['repository']} --image-tag "
            f'{format_tag(base, "onnx")} --image-manifest "$(aws ecr batch-get-image --repository-name '
            f"{parts['repository']} --image-ids imageTag={base} --query 'images[0].imageManifest' --output text)\"",
        )
    return found.pop()


# ------------------------------------------------------------------------------------------- a package
def package_formats(clients, details: dict) -> tuple[str, str, str]:
    """(artifact format, image format, the package's image) of a described model package.

    From its CustomerMetadataProperties when registration recorded them; else read from the artifact and ECR.
    """
    containers = details.get("InferenceSpecification", {}).get("Containers", [])
    if not containers:
        raise ReleaseError(
            f"model package {details['ModelPackageArn']} has no inference container",
            "register the model again (release.py register or the SageMaker pipeline)",
        )
    image = containers[0].get("Image", "")
    metadata = details.get("CustomerMetadataProperties", {})
    artifact = metadata.get(ARTIFACT_KEY) or artifact_format(clients.s3, containers[0].get("ModelDataUrl", ""))
    served = metadata.get(IMAGE_KEY) or image_format(clients.ecr, image)
    return artifact, served, image


def require_servable(clients, details: dict) -> tuple[str, str]:
    """Refuse a model package whose inference image cannot load its artifact; returns both formats."""
    artifact, served, image = package_formats(clients, details)
    check_servable(f"model package {details['ModelPackageArn']}", artifact, image, served)
    return artifact, served
