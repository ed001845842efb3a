"""`register --mode s3` / `unregister --mode s3` against moto's S3 and SageMaker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from catalog.s3_mode import LOCATION_TAG
from catalog.store import VISIBILITY_TAG
from catalog.tests.conftest import s3_registration

PREFIX = "sagemaker-projects/sagemaker-mlops-template"
OTHER_RULE = {
    "AllowedMethods": ["PUT"],
    "AllowedOrigins": ["https://uploads.example.com"],
    "AllowedHeaders": ["*"],
}


@pytest.fixture
def args(bucket: str, domain_id: str, iam_roles: dict[str, str]) -> list[str]:
    return ["--mode", "s3", "--bucket", bucket, "--domain-id", domain_id, "--use-role", iam_roles["use"]]


def keys(clients: dict[str, Any], bucket: str) -> list[str]:
    return sorted(item["Key"] for item in clients["s3"].list_objects_v2(Bucket=bucket).get("Contents", []))


def cors(clients: dict[str, Any], bucket: str) -> list[dict[str, Any]]:
    try:
        return clients["s3"].get_bucket_cors(Bucket=bucket)["CORSRules"]
    except ClientError:
        return []


def domain_tags(clients: dict[str, Any], domain_id: str) -> dict[str, str]:
    arn = clients["sagemaker"].describe_domain(DomainId=domain_id)["DomainArn"]
    return {tag["Key"]: tag["Value"] for tag in clients["sagemaker"].list_tags(ResourceArn=arn)["Tags"]}


def deny(client: Any, operation: str) -> None:
    """Make one operation fail the way AWS refuses a caller without the permission."""

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, operation)

    client.meta.events.register(f"before-call.{client.meta.service_model.endpoint_prefix}.{operation}", refuse)


def test_register_uploads_tags_and_points_the_domain_at_the_templates(run, args, clients, bucket, domain_id, calls):
    clients["s3"].put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [OTHER_RULE]})

    code, out = run("register", *args, "--template-ref", "v0.0.0")

    assert code == 0, out
    base = f"{PREFIX}/v0.0.0/"
    assert keys(clients, bucket) == [base + "product.yaml", base + "seed-source.zip", base + "toolchain.json"]
    tagging = clients["s3"].get_object_tagging(Bucket=bucket, Key=base + "product.yaml")["TagSet"]
    assert tagging == [{"Key": VISIBILITY_TAG, "Value": "true"}]
    assert clients["s3"].get_object_tagging(Bucket=bucket, Key=base + "toolchain.json")["TagSet"] == []
    product = clients["s3"].get_object(Bucket=bucket, Key=base + "product.yaml")["Body"].read().decode()
    assert "@@" not in product
    assert f"https://{bucket}.s3.us-east-1.amazonaws.com/{base}toolchain.json" in product
    assert f"{bucket}/{base}seed-source.zip" in product
    rules = cors(clients, bucket)
    assert len(rules) == 2 and rules[0]["AllowedOrigins"] == OTHER_RULE["AllowedOrigins"]
    assert rules[1]["AllowedOrigins"] == ["https://*.sagemaker.aws"] and rules[1]["AllowedMethods"] == [
        "GET",
        "HEAD",
    ]
    assert domain_tags(clients, domain_id)[LOCATION_TAG] == f"s3://{bucket}/{PREFIX}/"
    assert "Done: 5 change(s)." in out


def test_registering_again_changes_nothing(run, args, calls):
    assert run("register", *args, "--template-ref", "v0.0.0")[0] == 0
    calls.clear()

    code, out = run("register", *args, "--template-ref", "v0.0.0")

    assert code == 0, out
    assert "Already up to date: nothing changed." in out
    assert calls.mutating() == []


def test_a_new_version_is_added_beside_the_previous_one(run, args, clients, bucket, domain_id):
    assert run("register", *args, "--template-ref", "v0.0.0")[0] == 0

    code, out = run("register", *args, "--template-ref", "v0.1.0")

    assert code == 0, out
    assert [key.split("/")[2] for key in keys(clients, bucket)] == ["v0.0.0"] * 3 + ["v0.1.0"] * 3
    assert "= bucket ml-platform-templates already has the Studio CORS rule" in out
    assert len(cors(clients, bucket)) == 1


def test_a_registered_version_with_other_content_is_refused_unless_replaced(run, args, clients, bucket):
    assert run("register", *args, "--template-ref", "v0.0.0")[0] == 0
    key = f"{PREFIX}/v0.0.0/seed-source.zip"
    before = clients["s3"].get_object(Bucket=bucket, Key=key)["Body"].read()

    code, out = run("register", *args, "--template-ref", "v0.0.0", "--answer", "ci_provider=github-actions")

    assert code == 1
    assert "template version v0.0.0 is already registered at" in out and "--replace" in out
    assert clients["s3"].get_object(Bucket=bucket, Key=key)["Body"].read() == before

    code, out = run(
        "register", *args, "--template-ref", "v0.0.0", "--answer", "ci_provider=github-actions", "--replace"
    )
    assert code == 0, out
    answers = clients["s3"].get_object(Bucket=bucket, Key=key)["Body"].read()
    assert answers != before


def test_dry_run_prints_the_plan_and_changes_nothing(dry_run, args, clients, bucket, domain_id):
    out = dry_run(*args)
    assert "+ would upload s3://ml-platform-templates/" in out
    assert "+ would tag domain" in out
    assert "Dry run: 5 change(s) planned, nothing changed." in out
    assert keys(clients, bucket) == [] and cors(clients, bucket) == []
    assert LOCATION_TAG not in domain_tags(clients, domain_id)


def test_unregister_one_version_keeps_the_others_then_everything_goes(run, args, clients, bucket, domain_id):
    clients["s3"].put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [OTHER_RULE]})
    for ref in ("v0.0.0", "v0.1.0"):
        assert run("register", *args, "--template-ref", ref)[0] == 0
    common = [arg for arg in args if arg not in ("--use-role",) and not arg.startswith("arn:")]

    code, out = run("unregister", *common, "--template-version", "v0.0.0")
    assert code == 0, out
    assert {key.split("/")[2] for key in keys(clients, bucket)} == {"v0.1.0"}
    assert len(cors(clients, bucket)) == 2 and LOCATION_TAG in domain_tags(clients, domain_id)

    code, out = run("unregister", *common)
    assert code == 0, out
    assert keys(clients, bucket) == []
    assert cors(clients, bucket) == [{**OTHER_RULE}]
    assert LOCATION_TAG not in domain_tags(clients, domain_id)

    code, out = run("unregister", *common)
    assert code == 0 and "Already up to date" in out


def test_a_missing_bucket_is_reported_before_anything_is_uploaded(run, domain_id, iam_roles, calls):
    calls.clear()
    code, out = run(*s3_registration("no-such-bucket", domain_id, iam_roles["use"]))

    assert code == 1
    assert "error: bucket 'no-such-bucket' does not exist" in out
    assert calls.mutating() == []


def test_a_missing_domain_is_reported(run, bucket, iam_roles, clients):
    code, out = run(*s3_registration(bucket, "d-000000000000", iam_roles["use"]))

    assert code == 1
    assert "SageMaker domain 'd-000000000000' not found in us-east-1" in out
    assert keys(clients, bucket) == []


def test_a_missing_domain_id_is_reported(run, bucket, iam_roles):
    code, out = run(
        "register",
        "--mode",
        "s3",
        "--bucket",
        bucket,
        "--use-role",
        iam_roles["use"],
        "--template-ref",
        "v0.0.0",
    )
    assert code == 1 and "--domain-id is required for --mode s3" in out


def test_an_untagged_ref_is_refused(run, args):
    code, out = run("register", *args, "--template-ref", "v0.1.0~1^{tree}")
    assert code == 1 and "is not a tagged release" in out


def register_denied(run, args, clients, *denied: tuple[str, str]) -> str:
    """`register` with these (client, operation) calls refused as AWS refuses them: it fails; returns its output."""
    for name, operation in denied:
        deny(clients[name], operation)
    code, out = run("register", *args, "--template-ref", "v0.0.0")
    assert code == 1, out
    return out


def test_access_denied_midway_is_explained_and_rolled_back(run, args, clients, bucket, domain_id):
    out = register_denied(run, args, clients, ("s3", "PutBucketCors"))
    assert "the caller lacks s3:PutBucketCORS on s3://ml-platform-templates/sagemaker-projects/" in out
    assert "- undone: upload s3://ml-platform-templates/" in out
    assert "Nothing is left half-registered." in out
    assert keys(clients, bucket) == []
    assert LOCATION_TAG not in domain_tags(clients, domain_id)


def test_what_cannot_be_undone_is_listed_with_the_command_that_removes_it(run, args, clients, bucket, domain_id):
    out = register_denied(run, args, clients, ("sagemaker", "AddTags"), ("s3", "DeleteObjects"))
    assert "the caller lacks sagemaker:AddTags on arn:aws:sagemaker:us-east-1:" in out
    assert "- undone: add the Studio CORS rule" in out
    assert "These changes could not be undone and are still in place:" in out
    assert out.count("  * upload s3://") == 3
    assert (
        f"python -m catalog unregister --mode s3 --region us-east-1 --bucket {bucket} "
        f"--prefix {PREFIX} --domain-id {domain_id} --template-version v0.0.0"
    ) in out
    assert cors(clients, bucket) == []


def test_the_seed_source_holds_the_bundle_the_answers_and_the_job(run, args, clients, bucket):
    import io
    import zipfile

    assert run("register", *args, "--template-ref", "v0.0.0", "--answer", "ci_provider=github-actions")[0] == 0
    data = clients["s3"].get_object(Bucket=bucket, Key=f"{PREFIX}/v0.0.0/seed-source.zip")["Body"].read()
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(archive.namelist()) == [
        "answers.json",
        "buildspec.yml",
        "requirements.txt",
        "seed_repository.py",
        "template.bundle",
    ]
    assert json.loads(archive.read("answers.json")) == {"ci_provider": "github-actions"}
    product = clients["s3"].get_object(Bucket=bucket, Key=f"{PREFIX}/v0.0.0/product.yaml")["Body"].read().decode()
    assert 'CiProvider: "github-actions"' in product and 'TemplateVersion: "v0.0.0"' in product
