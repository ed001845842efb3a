"""`register --mode service-catalog` / `unregister`: moto serves portfolios, products, IAM and S3; botocore's Stubber
answers (and validates) the Service Catalog calls moto lacks: associations, constraints, provisioning artifacts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from catalog.store import VISIBILITY_TAG

PREFIX = "sagemaker-projects/sagemaker-mlops-template"
PRODUCT = "sagemaker-mlops-template"
PORTFOLIO = "SageMaker MLOps templates"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def service_catalog_options(bucket: str, iam_roles: dict[str, str]) -> list[str]:
    """The options every Service Catalog registration here shares (roles come per test)."""
    return ["--mode", "service-catalog", "--bucket", bucket, "--use-role", iam_roles["use"]]


@pytest.fixture
def args(bucket: str, iam_roles: dict[str, str]) -> list[str]:
    roles = ["--launch-role", iam_roles["launch"], "--principal", iam_roles["studio"]]
    return [*service_catalog_options(bucket, iam_roles), *roles]


@pytest.fixture
def unregister_args(bucket: str) -> list[str]:
    return ["--mode", "service-catalog", "--bucket", bucket]


def portfolios(clients: dict[str, Any]) -> list[dict[str, Any]]:
    return clients["servicecatalog"].list_portfolios()["PortfolioDetails"]


def product_id(clients: dict[str, Any]) -> str:
    return clients["servicecatalog"].describe_product(Name=PRODUCT)["ProductViewSummary"]["ProductId"]


def keys(clients: dict[str, Any], bucket: str) -> list[str]:
    return sorted(item["Key"] for item in clients["s3"].list_objects_v2(Bucket=bucket).get("Contents", []))


def product_view(pid: str, versions: dict[str, str], tagged: bool = True) -> dict[str, Any]:
    return {
        "ProductViewDetail": {
            "ProductViewSummary": {
                "Id": f"prodview-{pid}",
                "ProductId": pid,
                "Name": PRODUCT,
                "Type": "CLOUD_FORMATION_TEMPLATE",
            },
            "Status": "AVAILABLE",
            "ProductARN": f"arn:aws:catalog:us-east-1:123456789012:product/{pid}",
        },
        "ProvisioningArtifactSummaries": [
            {"Id": pa, "Name": name, "CreatedTime": NOW} for name, pa in versions.items()
        ],
        "Tags": [{"Key": VISIBILITY_TAG, "Value": "true"}] if tagged else [],
    }


def expect_not_found(stub: Stubber) -> None:
    stub.add_client_error(
        "describe_product_as_admin",
        "ResourceNotFoundException",
        "Product not found",
        expected_params={"Name": PRODUCT},
    )


def expect_product(stub: Stubber, pid: str, versions: dict[str, str], tagged: bool = True) -> None:
    stub.add_response("describe_product_as_admin", product_view(pid, versions, tagged), {"Name": PRODUCT})


def expect_settled(stub: Stubber, pid: str, port: str, launch: str, studio: str) -> None:
    """The lookups of a registration whose portfolio, association, constraint and principal are all in place."""
    stub.add_response(
        "list_portfolios_for_product",
        {"PortfolioDetails": [{"Id": port, "DisplayName": PORTFOLIO}]},
        {"ProductId": pid},
    )
    stub.add_response(
        "list_constraints_for_portfolio",
        {
            "ConstraintDetails": [
                {"ConstraintId": "cons-launch1", "Type": "LAUNCH", "ProductId": pid, "PortfolioId": port}
            ]
        },
        {"PortfolioId": port, "ProductId": pid},
    )
    stub.add_response(
        "describe_constraint",
        {
            "ConstraintDetail": {"ConstraintId": "cons-launch1", "Type": "LAUNCH"},
            "ConstraintParameters": json.dumps({"RoleArn": launch}),
            "Status": "AVAILABLE",
        },
        {"Id": "cons-launch1"},
    )
    stub.add_response(
        "list_principals_for_portfolio",
        {"Principals": [{"PrincipalARN": studio, "PrincipalType": "IAM"}]},
        {"PortfolioId": port},
    )


def expect_fresh_registration(stub: Stubber, launch: str, studio: str) -> None:
    expect_not_found(stub)
    stub.add_response("associate_product_with_portfolio", {}, {"ProductId": ANY, "PortfolioId": ANY})
    stub.add_response(
        "create_constraint",
        {"ConstraintDetail": {"ConstraintId": "cons-launch1", "Type": "LAUNCH"}, "Status": "CREATING"},
        {
            "PortfolioId": ANY,
            "ProductId": ANY,
            "Type": "LAUNCH",
            "Parameters": json.dumps({"RoleArn": launch}),
            "Description": ANY,
            "IdempotencyToken": ANY,
        },
    )
    stub.add_response(
        "associate_principal_with_portfolio",
        {},
        {"PortfolioId": ANY, "PrincipalARN": studio, "PrincipalType": "IAM"},
    )


def register_fresh(run, args, sc_stub, iam_roles) -> tuple[int, str]:
    expect_fresh_registration(sc_stub, iam_roles["launch"], iam_roles["studio"])
    result = run("register", *args, "--template-ref", "v0.0.0")
    sc_stub.assert_no_pending_responses()
    return result


def test_register_creates_portfolio_product_constraint_and_principal(
    run, args, sc_stub, iam_roles, clients, calls, bucket
):
    code, out = register_fresh(run, args, sc_stub, iam_roles)

    assert code == 0, out
    [portfolio] = portfolios(clients)
    pid = product_id(clients)
    [create] = calls.of("CreateProduct")
    assert create["Tags"] == [{"Key": VISIBILITY_TAG, "Value": "true"}]
    artifact = create["ProvisioningArtifactParameters"]
    assert artifact["Name"] == "v0.0.0" and artifact["Type"] == "CLOUD_FORMATION_TEMPLATE"
    assert (
        artifact["Info"]["LoadTemplateFromURL"]
        == f"https://{bucket}.s3.us-east-1.amazonaws.com/{PREFIX}/v0.0.0/product.yaml"
    )
    for operation in ("AssociateProductWithPortfolio", "CreateConstraint", "AssociatePrincipalWithPortfolio"):
        [params] = calls.of(operation)
        assert params["PortfolioId"] == portfolio["Id"]
    assert calls.of("AssociateProductWithPortfolio")[0]["ProductId"] == pid
    assert calls.of("CreateConstraint")[0]["ProductId"] == pid
    assert keys(clients, bucket) == [
        f"{PREFIX}/v0.0.0/{name}" for name in ("product.yaml", "seed-source.zip", "toolchain.json")
    ]
    assert clients["s3"].get_object_tagging(Bucket=bucket, Key=f"{PREFIX}/v0.0.0/product.yaml")["TagSet"] == []
    assert "Done: 8 change(s)." in out


def test_registering_again_changes_nothing(run, args, sc_stub, iam_roles, clients, calls):
    assert register_fresh(run, args, sc_stub, iam_roles)[0] == 0
    pid, port = product_id(clients), portfolios(clients)[0]["Id"]
    expect_product(sc_stub, pid, {"v0.0.0": "pa-first"})
    expect_settled(sc_stub, pid, port, iam_roles["launch"], iam_roles["studio"])
    calls.clear()

    code, out = run("register", *args, "--template-ref", "v0.0.0")

    assert code == 0, out
    assert "Already up to date: nothing changed." in out
    assert calls.mutating() == []
    sc_stub.assert_no_pending_responses()


def test_a_new_version_becomes_a_new_provisioning_artifact(run, args, sc_stub, iam_roles, clients, bucket):
    assert register_fresh(run, args, sc_stub, iam_roles)[0] == 0
    pid, port = product_id(clients), portfolios(clients)[0]["Id"]
    expect_product(sc_stub, pid, {"v0.0.0": "pa-first"})
    sc_stub.add_response(
        "create_provisioning_artifact",
        {"ProvisioningArtifactDetail": {"Id": "pa-second", "Name": "v0.1.0"}, "Status": "CREATING"},
        {
            "ProductId": pid,
            "Parameters": {
                "Name": "v0.1.0",
                "Description": "sagemaker-mlops-template v0.1.0",
                "Info": {
                    "LoadTemplateFromURL": f"https://{bucket}.s3.us-east-1.amazonaws.com/{PREFIX}/v0.1.0/product.yaml"
                },
                "Type": "CLOUD_FORMATION_TEMPLATE",
                "DisableTemplateValidation": False,
            },
            "IdempotencyToken": ANY,
        },
    )
    expect_settled(sc_stub, pid, port, iam_roles["launch"], iam_roles["studio"])

    code, out = run("register", *args, "--template-ref", "v0.1.0")

    assert code == 0, out
    assert "+ add version v0.1.0 to product 'sagemaker-mlops-template'" in out
    sc_stub.assert_no_pending_responses()


def test_an_artifact_registered_without_its_objects_is_refused_unless_replaced(
    run, args, sc_stub, iam_roles, clients, bucket
):
    assert register_fresh(run, args, sc_stub, iam_roles)[0] == 0
    pid, port = product_id(clients), portfolios(clients)[0]["Id"]
    uploaded = keys(clients, bucket)
    clients["s3"].delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in uploaded]})
    expect_product(sc_stub, pid, {"v0.0.0": "pa-first"})

    code, out = run("register", *args, "--template-ref", "v0.0.0")

    assert code == 1
    assert (
        "template version v0.0.0 is already registered in product 'sagemaker-mlops-template' "
        "(provisioning artifact pa-first)" in out
    )
    assert "Nothing is left half-registered." in out and keys(clients, bucket) == []

    expect_product(sc_stub, pid, {"v0.0.0": "pa-first"})
    sc_stub.add_response(
        "create_provisioning_artifact",
        {"ProvisioningArtifactDetail": {"Id": "pa-replaced", "Name": "v0.0.0"}},
        {"ProductId": pid, "Parameters": ANY, "IdempotencyToken": ANY},
    )
    sc_stub.add_response("delete_provisioning_artifact", {}, {"ProductId": pid, "ProvisioningArtifactId": "pa-first"})
    expect_settled(sc_stub, pid, port, iam_roles["launch"], iam_roles["studio"])
    code, out = run("register", *args, "--template-ref", "v0.0.0", "--replace")
    assert code == 0, out
    assert keys(clients, bucket) == uploaded
    sc_stub.assert_no_pending_responses()


def test_an_untagged_product_gets_the_studio_visibility_tag(run, args, sc_stub, iam_roles, clients):
    assert register_fresh(run, args, sc_stub, iam_roles)[0] == 0
    pid, port = product_id(clients), portfolios(clients)[0]["Id"]
    expect_product(sc_stub, pid, {"v0.0.0": "pa-first"}, tagged=False)
    sc_stub.add_response("update_product", {}, {"Id": pid, "AddTags": [{"Key": VISIBILITY_TAG, "Value": "true"}]})
    expect_settled(sc_stub, pid, port, iam_roles["launch"], iam_roles["studio"])

    code, out = run("register", *args, "--template-ref", "v0.0.0")

    assert code == 0, out
    assert f"+ tag product 'sagemaker-mlops-template' {VISIBILITY_TAG}=true" in out
    sc_stub.assert_no_pending_responses()


def test_another_launch_role_is_refused_and_the_new_version_rolled_back(run, args, sc_stub, iam_roles, clients, bucket):
    assert register_fresh(run, args, sc_stub, iam_roles)[0] == 0
    pid, port = product_id(clients), portfolios(clients)[0]["Id"]
    other = "arn:aws:iam::123456789012:role/OtherLaunchRole"
    expect_product(sc_stub, pid, {"v0.0.0": "pa-first"})
    sc_stub.add_response(
        "create_provisioning_artifact",
        {"ProvisioningArtifactDetail": {"Id": "pa-second", "Name": "v0.1.0"}},
        {"ProductId": pid, "Parameters": ANY, "IdempotencyToken": ANY},
    )
    sc_stub.add_response("list_portfolios_for_product", {"PortfolioDetails": [{"Id": port}]}, {"ProductId": pid})
    sc_stub.add_response(
        "list_constraints_for_portfolio",
        {"ConstraintDetails": [{"ConstraintId": "cons-other", "Type": "LAUNCH"}]},
        {"PortfolioId": port, "ProductId": pid},
    )
    sc_stub.add_response(
        "describe_constraint",
        {
            "ConstraintDetail": {"ConstraintId": "cons-other"},
            "ConstraintParameters": json.dumps({"RoleArn": other}),
        },
        {"Id": "cons-other"},
    )
    sc_stub.add_response("delete_provisioning_artifact", {}, {"ProductId": pid, "ProvisioningArtifactId": "pa-second"})

    code, out = run("register", *args, "--template-ref", "v0.1.0")

    assert code == 1
    assert f"already launches with role {other}" in out and f"--launch-role {other}" in out
    assert "- undone: add version v0.1.0" in out and "Nothing is left half-registered." in out
    assert [key.split("/")[2] for key in keys(clients, bucket)] == ["v0.0.0"] * 3
    sc_stub.assert_no_pending_responses()


def test_access_denied_midway_is_explained_and_everything_rolled_back(run, args, sc_stub, iam_roles, clients, bucket):
    denied = (
        "User: arn:aws:sts::123456789012:assumed-role/Platform/alice is not authorized to perform: "
        "servicecatalog:CreateConstraint on resource: arn:aws:catalog:us-east-1:123456789012:portfolio/port-1"
    )
    expect_not_found(sc_stub)
    sc_stub.add_response("associate_product_with_portfolio", {}, {"ProductId": ANY, "PortfolioId": ANY})
    sc_stub.add_client_error(
        "create_constraint",
        "AccessDeniedException",
        denied,
        expected_params={
            "PortfolioId": ANY,
            "ProductId": ANY,
            "Type": "LAUNCH",
            "Parameters": ANY,
            "Description": ANY,
            "IdempotencyToken": ANY,
        },
    )
    sc_stub.add_response("disassociate_product_from_portfolio", {}, {"ProductId": ANY, "PortfolioId": ANY})

    code, out = run("register", *args, "--template-ref", "v0.0.0")

    assert code == 1
    assert (
        "the caller lacks servicecatalog:CreateConstraint on "
        "arn:aws:catalog:us-east-1:123456789012:portfolio/port-1: add it to the IAM policy" in out
    )
    assert "Nothing is left half-registered." in out
    assert portfolios(clients) == [] and keys(clients, bucket) == []
    with pytest.raises(Exception, match="not found"):
        product_id(clients)
    sc_stub.assert_no_pending_responses()


def test_dry_run_prints_the_plan_and_changes_nothing(dry_run, args, sc_stub, clients, bucket):
    expect_not_found(sc_stub)
    out = dry_run(*args)
    assert "+ would create portfolio 'SageMaker MLOps templates'" in out
    assert "+ would add a launch constraint with role" in out
    assert "Dry run: 8 change(s) planned, nothing changed." in out
    assert portfolios(clients) == [] and keys(clients, bucket) == []


def test_missing_roles_and_principals_are_reported(run, bucket, iam_roles):
    base = [*service_catalog_options(bucket, iam_roles), "--template-ref", "v0.0.0"]
    missing = "arn:aws:iam::123456789012:role/NoSuchLaunchRole"

    code, out = run("register", *base, "--launch-role", missing, "--principal", iam_roles["studio"])
    assert code == 1 and f"launch role {missing} does not exist: deploy catalog/iam-roles.yaml" in out

    code, out = run("register", *base, "--principal", iam_roles["studio"])
    assert code == 1 and "--launch-role is required for --mode service-catalog" in out

    code, out = run("register", *base, "--launch-role", iam_roles["launch"])
    assert code == 1 and "--principal is required for --mode service-catalog" in out


def test_unregister_one_version_keeps_the_product(run, args, unregister_args, sc_stub, iam_roles, clients, bucket):
    assert register_fresh(run, args, sc_stub, iam_roles)[0] == 0
    pid = product_id(clients)
    expect_product(sc_stub, pid, {"v0.0.0": "pa-first", "v0.1.0": "pa-second"})
    sc_stub.add_response("delete_provisioning_artifact", {}, {"ProductId": pid, "ProvisioningArtifactId": "pa-first"})

    code, out = run("unregister", *unregister_args, "--template-version", "v0.0.0")

    assert code == 0, out
    assert keys(clients, bucket) == [] and len(portfolios(clients)) == 1
    sc_stub.assert_no_pending_responses()


def test_unregister_removes_everything_in_reverse_order(
    run, args, unregister_args, sc_stub, iam_roles, clients, bucket, calls
):
    assert register_fresh(run, args, sc_stub, iam_roles)[0] == 0
    pid, port = product_id(clients), portfolios(clients)[0]["Id"]
    expect_product(sc_stub, pid, {"v0.0.0": "pa-first"})
    sc_stub.add_response("list_portfolios_for_product", {"PortfolioDetails": [{"Id": port}]}, {"ProductId": pid})
    sc_stub.add_response(
        "list_constraints_for_portfolio",
        {"ConstraintDetails": [{"ConstraintId": "cons-launch1", "Type": "LAUNCH"}]},
        {"PortfolioId": port, "ProductId": pid},
    )
    sc_stub.add_response("delete_constraint", {}, {"Id": "cons-launch1"})
    sc_stub.add_response("disassociate_product_from_portfolio", {}, {"ProductId": pid, "PortfolioId": port})
    sc_stub.add_response("search_products_as_admin", {"ProductViewDetails": []}, {"PortfolioId": port})
    sc_stub.add_response(
        "list_principals_for_portfolio",
        {"Principals": [{"PrincipalARN": iam_roles["studio"], "PrincipalType": "IAM"}]},
        {"PortfolioId": port},
    )
    sc_stub.add_response(
        "disassociate_principal_from_portfolio",
        {},
        {"PortfolioId": port, "PrincipalARN": iam_roles["studio"], "PrincipalType": "IAM"},
    )
    calls.clear()

    code, out = run("unregister", *unregister_args)

    assert code == 0, out
    assert [name for name in (call[1] for call in calls.mutating())] == [
        "DeleteConstraint",
        "DisassociateProductFromPortfolio",
        "DeleteProduct",
        "DeleteObjects",
        "DisassociatePrincipalFromPortfolio",
        "DeletePortfolio",
    ]
    assert portfolios(clients) == [] and keys(clients, bucket) == []
    sc_stub.assert_no_pending_responses()

    expect_not_found(sc_stub)
    code, out = run("unregister", *unregister_args)
    assert code == 0 and "Already up to date" in out


def test_a_product_still_in_use_is_explained(run, args, unregister_args, sc_stub, iam_roles, clients):
    from botocore.exceptions import ClientError

    assert register_fresh(run, args, sc_stub, iam_roles)[0] == 0
    pid = product_id(clients)

    def in_use(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "ResourceInUseException", "Message": "in use"}}, "DeleteProduct")

    clients["servicecatalog"].moto.meta.events.register("before-call.servicecatalog.DeleteProduct", in_use)
    expect_product(sc_stub, pid, {"v0.0.0": "pa-first"})
    sc_stub.add_response("list_portfolios_for_product", {"PortfolioDetails": []}, {"ProductId": pid})

    code, out = run("unregister", *unregister_args)

    assert code == 1
    assert "still has provisioned products (SageMaker projects created from it): delete those projects first" in out
