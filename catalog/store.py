"""The release objects in S3 (s3://BUCKET/PREFIX/<version>/...), shared by both registration modes."""

from __future__ import annotations

import hashlib
from typing import Any

from catalog.artifacts import PRODUCT_KEY
from catalog.aws import Api, not_found
from catalog.errors import CatalogError
from catalog.journal import Journal

VISIBILITY_TAG = "sagemaker:studio-visibility"
DIGEST_KEY = "sha256"


def normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


class ArtifactStore:
    def __init__(self, s3: Any, bucket: str, prefix: str, journal: Journal) -> None:
        self.s3 = Api(s3, "s3")
        self.bucket = bucket
        self.prefix = normalise_prefix(prefix)
        self.journal = journal

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def check_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.call("head_bucket", f"arn:aws:s3:::{self.bucket}", Bucket=self.bucket)
        except ClientError as error:
            if not_found(error, "404", "NoSuchBucket", "NotFound"):
                raise CatalogError(
                    f"bucket '{self.bucket}' does not exist: create it (versioning and encryption on; "
                    "catalog/registration-s3.yaml does) or pass another --bucket."
                ) from error
            if not_found(error, "403"):
                raise CatalogError(
                    f"the caller lacks s3:ListBucket on arn:aws:s3:::{self.bucket} (or the bucket belongs to another "
                    "account): add it to the IAM policy of the identity running the registration."
                ) from error
            raise

    def digest(self, key: str) -> str | None:
        """The sha256 recorded on an uploaded object, or None when there is no object."""
        from botocore.exceptions import ClientError

        try:
            head = self.s3.call("head_object", f"s3://{self.bucket}/{key}", Bucket=self.bucket, Key=key)
        except ClientError as error:
            if not_found(error, "404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head.get("Metadata", {}).get(DIGEST_KEY, "unknown")

    def compare(self, files: dict[str, bytes]) -> str:
        """'absent', 'same' (every object already uploaded with this content) or 'different'."""
        digests = {key: self.digest(key) for key in files}
        if all(value is None for value in digests.values()):
            return "absent"
        if all(digests[key] == hashlib.sha256(data).hexdigest() for key, data in files.items()):
            return "same"
        return "different"

    def upload(self, files: dict[str, bytes], *, visible: bool) -> None:
        for key, data in files.items():
            previous = self.read(key)
            tags = f"{VISIBILITY_TAG}=true" if visible and key.endswith("/" + PRODUCT_KEY) else ""
            self.journal.change(
                f"upload s3://{self.bucket}/{key}" + (f" tagged {tags}" if tags else ""),
                lambda key=key, data=data, tags=tags: self.put(key, data, tags),
                (lambda key=key: self.delete([key]))
                if previous is None
                else (lambda key=key, previous=previous, tags=tags: self.put(key, previous, tags)),
            )

    def read(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.s3.call("get_object", f"s3://{self.bucket}/{key}", Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if not_found(error, "404", "NoSuchKey", "NotFound"):
                return None
            raise

    def put(self, key: str, data: bytes, tags: str) -> None:
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "Metadata": {DIGEST_KEY: hashlib.sha256(data).hexdigest()},
            "ServerSideEncryption": "AES256",
        }
        if tags:
            params["Tagging"] = tags
        self.s3.call("put_object", f"s3://{self.bucket}/{key}", **params)

    def tags(self, key: str) -> dict[str, str]:
        response = self.s3.call("get_object_tagging", f"s3://{self.bucket}/{key}", Bucket=self.bucket, Key=key)
        return {tag["Key"]: tag["Value"] for tag in response.get("TagSet", [])}

    def keys(self, version: str | None = None) -> list[str]:
        prefix = self.prefix + (f"{version}/" if version else "")
        return [
            item["Key"]
            for item in self.s3.pages(
                "list_objects_v2",
                f"s3://{self.bucket}/{prefix}",
                "Contents",
                Bucket=self.bucket,
                Prefix=prefix,
            )
        ]

    def versions(self) -> list[str]:
        """Registered versions: the folders under the prefix that hold a product template."""
        return sorted(
            key[len(self.prefix) :].split("/", 1)[0] for key in self.keys() if key.endswith("/" + PRODUCT_KEY)
        )

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            response = self.s3.call(
                "delete_objects",
                f"s3://{self.bucket}/{self.prefix}",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise CatalogError(
                    f"deleting s3://{self.bucket}/{first['Key']} failed: {first.get('Code')} {first.get('Message')}"
                )

    def remove_version(self, version: str) -> None:
        keys = self.keys(version)
        if not keys:
            self.journal.keep(f"no objects under {self.location}{version}/")
            return
        self.journal.change(f"delete {len(keys)} objects under {self.location}{version}/", lambda: self.delete(keys))
