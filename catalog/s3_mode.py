"""S3 templates (the registration AWS recommends since late 2025).

Studio lists the product templates under the location the domain's ``sagemaker:projectS3TemplatesLocation`` tag
names, when the object is tagged ``sagemaker:studio-visibility=true`` and the bucket lets Studio's origin read it.
"""

from __future__ import annotations

from typing import Any

from catalog.aws import Api, not_found
from catalog.errors import CatalogError
from catalog.journal import Journal
from catalog.store import ArtifactStore

LOCATION_TAG = "sagemaker:projectS3TemplatesLocation"
STUDIO_ORIGIN = "https://*.sagemaker.aws"


def studio_cors_rule(origin: str) -> dict[str, Any]:
    """Read-only access for Studio's web origin (it fetches the template to show its parameters)."""
    return {
        "ID": "sagemaker-studio-project-templates",
        "AllowedHeaders": ["*"],
        "AllowedMethods": ["GET", "HEAD"],
        "AllowedOrigins": [origin],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3000,
    }


def same_rule(left: dict[str, Any], right: dict[str, Any]) -> bool:
    keys = ("AllowedHeaders", "AllowedMethods", "AllowedOrigins", "ExposeHeaders")
    return all(sorted(left.get(key, [])) == sorted(right.get(key, [])) for key in keys)


class S3Registration:
    def __init__(self, args: Any, clients: dict[str, Any], store: ArtifactStore, journal: Journal) -> None:
        """From the command line's arguments (`--domain-id`, `--studio-origin`) and the boto3 clients."""
        self.s3, self.sagemaker = Api(clients["s3"], "s3"), Api(clients["sagemaker"], "sagemaker")
        self.store, self.journal = store, journal
        self.domain_id, self.rule, self.domain_arn = args.domain_id, studio_cors_rule(args.studio_origin), ""

    # --- checks ------------------------------------------------------------------------------------------------

    def check_domain(self) -> str:
        from botocore.exceptions import ClientError

        if not self.domain_id:
            raise CatalogError(
                "--domain-id is required for --mode s3: the SageMaker domain whose Studio lists the template (d-...)."
            )
        try:
            domain = self.sagemaker.call("describe_domain", f"domain/{self.domain_id}", DomainId=self.domain_id)
        except ClientError as error:
            if not_found(error, "ResourceNotFound", "ValidationException"):
                raise CatalogError(
                    f"SageMaker domain '{self.domain_id}' not found in {self.sagemaker.client.meta.region_name}: "
                    "give the id shown by `aws sagemaker list-domains` (d-...), in the domain's region (--region)."
                ) from error
            raise
        self.domain_arn = domain["DomainArn"]
        return self.domain_arn

    # --- CORS --------------------------------------------------------------------------------------------------

    def cors_rules(self) -> list[dict[str, Any]]:
        from botocore.exceptions import ClientError

        try:
            return self.s3.call("get_bucket_cors", self.store.location, Bucket=self.store.bucket)["CORSRules"]
        except ClientError as error:
            if not_found(error, "NoSuchCORSConfiguration"):
                return []
            raise

    def set_cors(self, rules: list[dict[str, Any]]) -> None:
        if rules:
            self.s3.call(
                "put_bucket_cors",
                self.store.location,
                Bucket=self.store.bucket,
                CORSConfiguration={"CORSRules": rules},
            )
        else:
            self.s3.call("delete_bucket_cors", self.store.location, Bucket=self.store.bucket)

    def ensure_cors(self) -> None:
        rules = self.cors_rules()
        if any(same_rule(rule, self.rule) for rule in rules):
            self.journal.keep(f"bucket {self.store.bucket} already has the Studio CORS rule")
            return
        self.journal.change(
            f"add the Studio CORS rule ({self.rule['AllowedOrigins'][0]}, GET/HEAD) to bucket {self.store.bucket}"
            + (f", keeping its {len(rules)} other rules" if rules else ""),
            lambda: self.set_cors([*rules, self.rule]),
            lambda: self.set_cors(rules),
        )

    def remove_cors(self) -> None:
        rules = self.cors_rules()
        kept = [rule for rule in rules if not same_rule(rule, self.rule)]
        if len(kept) == len(rules):
            self.journal.keep(f"bucket {self.store.bucket} has no Studio CORS rule")
            return
        self.journal.change(f"remove the Studio CORS rule from bucket {self.store.bucket}", lambda: self.set_cors(kept))

    # --- domain tag --------------------------------------------------------------------------------------------

    def domain_location(self) -> str | None:
        tags = self.sagemaker.pages("list_tags", self.domain_arn, "Tags", ResourceArn=self.domain_arn)
        return next((tag["Value"] for tag in tags if tag["Key"] == LOCATION_TAG), None)

    def set_location(self, value: str | None) -> None:
        if value is None:
            self.sagemaker.call("delete_tags", self.domain_arn, ResourceArn=self.domain_arn, TagKeys=[LOCATION_TAG])
        else:
            self.sagemaker.call(
                "add_tags",
                self.domain_arn,
                ResourceArn=self.domain_arn,
                Tags=[{"Key": LOCATION_TAG, "Value": value}],
            )

    def ensure_location(self, replace: bool) -> None:
        current, wanted = self.domain_location(), self.store.location
        if current == wanted:
            self.journal.keep(f"domain {self.domain_id} already lists templates from {wanted}")
            return
        if current and not replace:
            raise CatalogError(
                f"domain {self.domain_id} already lists templates from {current} ({LOCATION_TAG}); a domain has one "
                f"location: register into that bucket and prefix, or pass --replace to point it at {wanted}."
            )
        self.journal.change(
            f"tag domain {self.domain_id} {LOCATION_TAG}={wanted}" + (f" (was {current})" if current else ""),
            lambda: self.set_location(wanted),
            lambda: self.set_location(current),
        )

    # --- flows -------------------------------------------------------------------------------------------------

    def register(self, version: str, files: dict[str, bytes], replace: bool) -> None:
        self.store.check_bucket()
        self.check_domain()
        state = self.store.compare(files)
        if state == "different" and not replace:
            raise CatalogError(
                f"template version {version} is already registered at {self.store.location}{version}/ with other "
                "content: register a new version (tag the template), or pass --replace to overwrite it."
            )
        if state == "same":
            self.journal.keep(f"version {version} already uploaded to {self.store.location}{version}/")
        else:
            self.store.upload(files, visible=True)
        self.ensure_cors()
        self.ensure_location(replace)

    def unregister(self, version: str | None) -> None:
        self.store.check_bucket()
        self.check_domain()
        versions = self.store.versions()
        targets = [version] if version else versions
        if version and version not in versions:
            self.journal.keep(f"version {version} is not registered at {self.store.location}")
        for target in targets:
            self.store.remove_version(target)
        if set(versions) - set(targets):
            self.journal.keep(
                f"{len(set(versions) - set(targets))} other versions stay registered; CORS and domain tag kept"
            )
            return
        self.remove_cors()
        if self.domain_location() == self.store.location:
            self.journal.change(f"remove {LOCATION_TAG} from domain {self.domain_id}", lambda: self.set_location(None))
        else:
            self.journal.keep(f"domain {self.domain_id} does not point at {self.store.location}")
