"""Service Catalog registration: portfolio, product (one provisioning artifact per template version), launch role
constraint and the Studio execution roles' principal association."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from catalog.artifacts import PRODUCT_KEY, s3_https_url
from catalog.aws import Api, not_found
from catalog.errors import CatalogError
from catalog.journal import Journal
from catalog.store import VISIBILITY_TAG, ArtifactStore

PRODUCT_TYPE = "CLOUD_FORMATION_TEMPLATE"


def role_name(arn: str) -> str:
    if ":role/" not in arn:
        raise CatalogError(f"'{arn}' is not an IAM role ARN (arn:aws:iam::123456789012:role/Name).")
    return arn.rsplit("/", 1)[-1]


# Service Catalog listings page with PageToken -> NextPageToken.


class ServiceCatalogRegistration:
    def __init__(self, args: Any, clients: dict[str, Any], store: ArtifactStore, journal: Journal) -> None:
        """From the command line's arguments (portfolio, product, provider, launch role, principals, region)."""
        self.sc, self.iam = Api(clients["servicecatalog"], "servicecatalog"), Api(clients["iam"], "iam")
        self.store, self.journal, self.region = store, journal, args.region
        self.portfolio_name, self.product_name = args.portfolio_name, args.product_name
        self.provider_name = getattr(args, "provider_name", "ML Platform")
        self.launch_role_arn = getattr(args, "launch_role", "")
        self.principal_arns = getattr(args, "principal", [])

    # --- checks ------------------------------------------------------------------------------------------------

    def check_role(self, arn: str, what: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.iam.call("get_role", arn, RoleName=role_name(arn))
        except ClientError as error:
            if not_found(error, "NoSuchEntity"):
                raise CatalogError(
                    f"{what} {arn} does not exist: deploy catalog/iam-roles.yaml (or create the role) first, "
                    "or pass the right ARN."
                ) from error
            raise

    def check_inputs(self) -> None:
        if not self.launch_role_arn:
            raise CatalogError(
                "--launch-role is required for --mode service-catalog (output LaunchRoleArn of catalog/iam-roles.yaml)."
            )
        if not self.principal_arns:
            raise CatalogError(
                "--principal is required for --mode service-catalog: the Studio execution role(s) that may create "
                "projects (the domain's or user profiles' ExecutionRole)."
            )
        self.check_role(self.launch_role_arn, "launch role")
        for arn in self.principal_arns:
            self.check_role(arn, "principal")

    # --- lookups -----------------------------------------------------------------------------------------------

    def find_portfolio(self) -> str | None:
        for portfolio in self.sc.pages("list_portfolios", "portfolios", "PortfolioDetails"):
            if portfolio["DisplayName"] == self.portfolio_name:
                return portfolio["Id"]
        return None

    def find_product(self) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.sc.call("describe_product_as_admin", f"product {self.product_name}", Name=self.product_name)
        except ClientError as error:
            if not_found(error, "ResourceNotFoundException"):
                return None
            raise

    def launch_constraints(self, portfolio_id: str, product_id: str) -> list[dict[str, Any]]:
        where, ids = f"portfolio {portfolio_id}", {"PortfolioId": portfolio_id, "ProductId": product_id}
        listing = self.sc.pages("list_constraints_for_portfolio", where, "ConstraintDetails", **ids)
        return [constraint for constraint in listing if constraint["Type"] == "LAUNCH"]

    def principals(self, portfolio_id: str) -> list[str]:
        where = f"portfolio {portfolio_id}"
        listing = self.sc.pages("list_principals_for_portfolio", where, "Principals", PortfolioId=portfolio_id)
        return [principal["PrincipalARN"] for principal in listing]

    def product_portfolios(self, product_id: str) -> list[str]:
        where = f"product {product_id}"
        listing = self.sc.pages("list_portfolios_for_product", where, "PortfolioDetails", ProductId=product_id)
        return [portfolio["Id"] for portfolio in listing]

    def portfolio_products(self, portfolio_id: str) -> list[str]:
        where = f"portfolio {portfolio_id}"
        listing = self.sc.pages("search_products_as_admin", where, "ProductViewDetails", PortfolioId=portfolio_id)
        return [item["ProductViewSummary"]["ProductId"] for item in listing]

    # --- changes -----------------------------------------------------------------------------------------------

    def product_parameters(self, version: str) -> dict[str, Any]:
        """CreateProduct's request: the product, tagged visible in Studio, with its first version."""
        return {
            "Name": self.product_name,
            "Owner": self.provider_name,
            "Distributor": self.provider_name,
            "Description": "Production ML model repository for SageMaker: toolchain, pipelines, seeded code",
            "ProductType": PRODUCT_TYPE,
            "Tags": [{"Key": VISIBILITY_TAG, "Value": "true"}],
            "ProvisioningArtifactParameters": self.artifact_parameters(version),
            "IdempotencyToken": str(uuid.uuid4()),
        }

    def artifact_parameters(self, version: str) -> dict[str, Any]:
        key = f"{self.store.prefix}{version}/{PRODUCT_KEY}"
        return {
            "Name": version,
            "Description": f"sagemaker-mlops-template {version}",
            "Info": {"LoadTemplateFromURL": s3_https_url(self.store.bucket, key, self.region)},
            "Type": PRODUCT_TYPE,
            "DisableTemplateValidation": False,
        }

    def op(self, operation: str, resource: str, **params: Any) -> Callable[[], dict[str, Any]]:
        """A Service Catalog call to run later (a journal step or its undo)."""
        return lambda: self.sc.call(operation, resource, **params)

    def delete_constraint(self, constraint_id: str) -> Callable[[], dict[str, Any]]:
        return self.op("delete_constraint", f"constraint {constraint_id}", Id=constraint_id)

    def delete_artifact(self, product_id: str, artifact_id: str) -> Callable[[], dict[str, Any]]:
        return self.op(
            "delete_provisioning_artifact",
            f"product {product_id}",
            ProductId=product_id,
            ProvisioningArtifactId=artifact_id,
        )

    def portfolio_op(self, operation: str, portfolio_id: str, **ids: str) -> Callable[[], dict[str, Any]]:
        """A call about the portfolio's members (products, principals) to run later."""
        return self.op(operation, f"portfolio {portfolio_id}", PortfolioId=portfolio_id, **ids)

    def _created(self, description: str, create: Callable[[], str], delete: Callable[[str], Any]) -> str | None:
        """A journaled creation: `create` returns the new resource's id, and the undo passes that id to `delete`."""
        created: dict[str, str] = {}

        def run() -> str:
            created["id"] = create()
            return created["id"]

        return self.journal.change(description, run, lambda: delete(created["id"]))

    def ensure_portfolio(self) -> str:
        portfolio_id = self.find_portfolio()
        if portfolio_id:
            self.journal.keep(f"portfolio '{self.portfolio_name}' ({portfolio_id})")
            return portfolio_id
        created = self._created(
            f"create portfolio '{self.portfolio_name}'",
            lambda: self.sc.call(
                "create_portfolio",
                f"portfolio {self.portfolio_name}",
                DisplayName=self.portfolio_name,
                ProviderName=self.provider_name,
                Description="SageMaker project templates (sagemaker-mlops-template)",
                IdempotencyToken=str(uuid.uuid4()),
            )["PortfolioDetail"]["Id"],
            lambda portfolio_id: self.sc.call("delete_portfolio", f"portfolio {portfolio_id}", Id=portfolio_id),
        )
        return created or "<new portfolio>"

    def ensure_product(self, product: dict[str, Any] | None, version: str, replace: bool, uploaded_same: bool) -> str:
        if product is None:
            created = self._created(
                f"create product '{self.product_name}' tagged {VISIBILITY_TAG}=true with version {version}",
                lambda: self.sc.call(
                    "create_product", f"product {self.product_name}", **self.product_parameters(version)
                )["ProductViewDetail"]["ProductViewSummary"]["ProductId"],
                lambda new_id: self.sc.call("delete_product", f"product {new_id}", Id=new_id),
            )
            return created or "<new product>"
        product_id = product["ProductViewDetail"]["ProductViewSummary"]["ProductId"]
        tags = {tag["Key"]: tag["Value"] for tag in product.get("Tags", [])}
        if tags.get(VISIBILITY_TAG) == "true":
            self.journal.keep(f"product '{self.product_name}' ({product_id}) tagged {VISIBILITY_TAG}=true")
        else:
            self.journal.change(
                f"tag product '{self.product_name}' {VISIBILITY_TAG}=true",
                lambda: self.sc.call(
                    "update_product",
                    f"product {product_id}",
                    Id=product_id,
                    AddTags=[{"Key": VISIBILITY_TAG, "Value": "true"}],
                ),
                lambda: self.sc.call(
                    "update_product", f"product {product_id}", Id=product_id, RemoveTags=[VISIBILITY_TAG]
                ),
            )
        existing = [item for item in product.get("ProvisioningArtifactSummaries", []) if item["Name"] == version]
        if existing and not replace:
            if uploaded_same:
                self.journal.keep(f"product '{self.product_name}' has version {version} ({existing[0]['Id']})")
                return product_id
            raise CatalogError(
                f"template version {version} is already registered in product '{self.product_name}' "
                f"(provisioning artifact {existing[0]['Id']}): register a new version (tag the template), "
                "or pass --replace to replace it."
            )

        self._created(
            f"add version {version} to product '{self.product_name}'",
            lambda: self.sc.call(
                "create_provisioning_artifact",
                f"product {product_id}",
                ProductId=product_id,
                Parameters=self.artifact_parameters(version),
                IdempotencyToken=str(uuid.uuid4()),
            )["ProvisioningArtifactDetail"]["Id"],
            lambda artifact_id: self.delete_artifact(product_id, artifact_id)(),
        )
        for old in existing:
            self.journal.change(
                f"remove the replaced provisioning artifact {old['Id']} of version {version}",
                self.delete_artifact(product_id, old["Id"]),
            )
        return product_id

    def ensure_association(self, portfolio_id: str, product_id: str, product_is_new: bool) -> None:
        if not product_is_new and portfolio_id in self.product_portfolios(product_id):
            self.journal.keep(f"product in portfolio '{self.portfolio_name}'")
            return
        self.journal.change(
            f"add product '{self.product_name}' to portfolio '{self.portfolio_name}'",
            self.portfolio_op("associate_product_with_portfolio", portfolio_id, ProductId=product_id),
            self.portfolio_op("disassociate_product_from_portfolio", portfolio_id, ProductId=product_id),
        )

    def ensure_launch_constraint(self, portfolio_id: str, product_id: str, replace: bool, fresh: bool) -> None:
        constraints = [] if fresh else self.launch_constraints(portfolio_id, product_id)
        for constraint in constraints:
            detail = self.sc.call(
                "describe_constraint",
                f"constraint {constraint['ConstraintId']}",
                Id=constraint["ConstraintId"],
            )
            role = json.loads(detail.get("ConstraintParameters") or "{}").get("RoleArn")
            if role == self.launch_role_arn:
                self.journal.keep(f"launch constraint with role {role}")
                return
            if not replace:
                raise CatalogError(
                    f"product '{self.product_name}' already launches with role {role} in portfolio "
                    f"'{self.portfolio_name}': pass --launch-role {role}, "
                    f"or --replace to switch to {self.launch_role_arn}."
                )
            self.journal.change(
                f"remove the launch constraint with role {role}", self.delete_constraint(constraint["ConstraintId"])
            )
        box: dict[str, str] = {}

        def create() -> None:
            box["id"] = self.sc.call(
                "create_constraint",
                f"portfolio {portfolio_id}",
                PortfolioId=portfolio_id,
                ProductId=product_id,
                Type="LAUNCH",
                Parameters=json.dumps({"RoleArn": self.launch_role_arn}),
                Description="SageMaker projects launch with this role",
                IdempotencyToken=str(uuid.uuid4()),
            )["ConstraintDetail"]["ConstraintId"]

        self.journal.change(
            f"add a launch constraint with role {self.launch_role_arn}",
            create,
            lambda: self.delete_constraint(box["id"])(),
        )

    def ensure_principals(self, portfolio_id: str, fresh: bool) -> None:
        present = set() if fresh else set(self.principals(portfolio_id))
        for arn in self.principal_arns:
            if arn in present:
                self.journal.keep(f"principal {arn} may use the portfolio")
                continue
            self.journal.change(
                f"let {arn} use portfolio '{self.portfolio_name}'",
                self.portfolio_op(
                    "associate_principal_with_portfolio", portfolio_id, PrincipalARN=arn, PrincipalType="IAM"
                ),
                self.portfolio_op(
                    "disassociate_principal_from_portfolio", portfolio_id, PrincipalARN=arn, PrincipalType="IAM"
                ),
            )

    # --- flows -------------------------------------------------------------------------------------------------

    def register(self, version: str, files: dict[str, bytes], replace: bool) -> None:
        self.check_inputs()
        self.store.check_bucket()
        state = self.store.compare(files)
        if state == "different" and not replace:
            raise CatalogError(
                f"template version {version} is already uploaded to {self.store.location}{version}/ with other "
                "content: register a new version (tag the template), or pass --replace to overwrite it."
            )
        if state == "same" and not replace:
            self.journal.keep(f"version {version} already uploaded to {self.store.location}{version}/")
        else:
            self.store.upload(files, visible=False)
        portfolio_new = self.find_portfolio() is None
        portfolio_id = self.ensure_portfolio()
        product = self.find_product()
        product_id = self.ensure_product(product, version, replace, uploaded_same=state == "same")
        fresh = product is None or portfolio_new
        self.ensure_association(portfolio_id, product_id, fresh)
        self.ensure_launch_constraint(portfolio_id, product_id, replace, fresh=fresh)
        self.ensure_principals(portfolio_id, fresh=portfolio_new)

    def unregister(self, version: str | None) -> None:
        self.store.check_bucket()
        product = self.find_product()
        portfolio_id = self.find_portfolio()
        versions = self.store.versions()
        if product is None:
            self.journal.keep(f"no product '{self.product_name}'")
        else:
            product_id = product["ProductViewDetail"]["ProductViewSummary"]["ProductId"]
            artifacts = product.get("ProvisioningArtifactSummaries", [])
            others = [item for item in artifacts if version and item["Name"] != version]
            if others:
                for item in artifacts:
                    if item["Name"] == version:
                        self.journal.change(
                            f"remove version {version} (provisioning artifact {item['Id']}) from '{self.product_name}'",
                            self.delete_artifact(product_id, item["Id"]),
                        )
                if version in versions:
                    self.store.remove_version(version)
                return
            self.remove_product(product_id, portfolio_id)
        for target in [version] if version else versions:
            self.store.remove_version(target)
        if portfolio_id:
            self.remove_portfolio_if_empty(
                portfolio_id,
                product["ProductViewDetail"]["ProductViewSummary"]["ProductId"] if product else None,
            )

    def remove_product(self, product_id: str, portfolio_id: str | None) -> None:
        if portfolio_id and portfolio_id in self.product_portfolios(product_id):
            for constraint in self.launch_constraints(portfolio_id, product_id):
                self.journal.change(
                    f"remove launch constraint {constraint['ConstraintId']}",
                    self.delete_constraint(constraint["ConstraintId"]),
                )
            self.journal.change(
                f"remove product '{self.product_name}' from portfolio '{self.portfolio_name}'",
                self.portfolio_op("disassociate_product_from_portfolio", portfolio_id, ProductId=product_id),
            )
        self.journal.change(
            f"delete product '{self.product_name}' ({product_id})", lambda: self.delete_product(product_id)
        )

    def delete_product(self, product_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sc.call("delete_product", f"product {product_id}", Id=product_id)
        except ClientError as error:
            if not_found(error, "ResourceInUseException"):
                raise CatalogError(
                    f"product '{self.product_name}' still has provisioned products (SageMaker projects created from "
                    "it): delete those projects first (aws sagemaker list-projects), then run unregister again."
                ) from error
            raise

    def remove_portfolio_if_empty(self, portfolio_id: str, removed_product: str | None) -> None:
        remaining = [item for item in self.portfolio_products(portfolio_id) if item != removed_product]
        if remaining:
            self.journal.keep(f"portfolio '{self.portfolio_name}' kept: {len(remaining)} other products in it")
            return
        for arn in self.principals(portfolio_id):
            self.journal.change(
                f"remove principal {arn} from portfolio '{self.portfolio_name}'",
                self.portfolio_op(
                    "disassociate_principal_from_portfolio", portfolio_id, PrincipalARN=arn, PrincipalType="IAM"
                ),
            )
        self.journal.change(
            f"delete portfolio '{self.portfolio_name}' ({portfolio_id})",
            self.op("delete_portfolio", f"portfolio {portfolio_id}", Id=portfolio_id),
        )
