"""The catalog's CloudFormation: cfn-lint clean as written and as rendered by a registration, the nested toolchain
equivalent to the generated repository's own, and the launch role allowed to create every resource type."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from catalog import artifacts
from catalog.tests.conftest import TEMPLATE_URL, cached_release, cookiecutter_bin
from catalog.toolchain import load_template

CATALOG = Path(artifacts.__file__).resolve().parent
TEMPLATES = sorted(CATALOG.glob("*.yaml"))
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")
USE_ROLE = "arn:aws:iam::123456789012:role/service-role/SageMakerMlopsTemplateUseRole"
CI_PROVIDERS = ["codepipeline", "github-actions"]


def cfn_lint(*paths: Path) -> None:
    result = subprocess.run([CFN_LINT, "--", *map(str, paths)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module", params=CI_PROVIDERS)
def release(request: pytest.FixtureRequest, template_repo: Path) -> artifacts.Release:
    """The releases the registration tests upload (the default answers, and GitHub Actions)."""
    return cached_release(
        template_dir=template_repo,
        ref="v0.0.0",
        version=None,
        template_url=TEMPLATE_URL,
        answers={} if request.param == "codepipeline" else {"ci_provider": request.param},
        cookiecutter_bin=cookiecutter_bin(),
    )


def test_the_catalog_templates_lint_clean() -> None:
    assert [path.name for path in TEMPLATES] == [
        "iam-roles.yaml",
        "product.yaml",
        "registration-s3.yaml",
        "registration-service-catalog.yaml",
    ]
    cfn_lint(*TEMPLATES)


def test_a_registered_release_lints_clean(release: artifacts.Release, tmp_path: Path) -> None:
    fixed = {"StagingAccountId": "210987654321", "CodeBuildComputeType": "BUILD_GENERAL1_LARGE"}
    files = artifacts.release_files(
        release, bucket="templates", prefix="p/", region="eu-west-1", use_role_arn=USE_ROLE, toolchain_parameters=fixed
    )
    for key, data in files.items():
        if not key.endswith(".zip"):
            (tmp_path / Path(key).name).write_bytes(data)
    product = (tmp_path / "product.yaml").read_text()
    assert "@@" not in product
    assert f'CiProvider: "{release.ci_provider}"' in product
    assert 'ToolchainTemplateUrl: "https://templates.s3.eu-west-1.amazonaws.com/p/v0.0.0/toolchain.json"' in product
    assert '        StagingAccountId: "210987654321"\n        CodeBuildComputeType: "BUILD_GENERAL1_LARGE"\n' in product
    cfn_lint(tmp_path / "product.yaml", tmp_path / "toolchain.json")


VARIABLE = re.compile(r"\$\{([^}!]+)\}")


def instantiate(node: Any, name: str) -> Any:
    """A template with SageMakerProjectName given, simplified the way CloudFormation evaluates it: an Fn::Sub left
    with no variable is the plain string it stands for."""
    if isinstance(node, dict) and set(node) == {"Fn::Join"}:
        separator, parts = node["Fn::Join"]
        if parts == {"Fn::Split": ["-", {"Ref": "SageMakerProjectName"}]}:
            return name.replace("-", separator)
    if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
        argument = node["Fn::Sub"]
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], dict(argument[1]))
        variables = {key: instantiate(value, name) for key, value in variables.items()}
        for key, value in list(variables.items()):
            if isinstance(value, str):
                text = text.replace(f"${{{key}}}", value)
                del variables[key]
        text = text.replace("${SageMakerProjectName}", name)
        if not VARIABLE.search(text) and not variables:
            return text.replace("${!", "${")
        return {"Fn::Sub": [text, variables] if variables else text}
    if isinstance(node, dict):
        return {key: instantiate(value, name) for key, value in node.items()}
    if isinstance(node, list):
        return [instantiate(item, name) for item in node]
    return node


def test_the_nested_toolchain_is_the_generated_repositorys_own(
    release: artifacts.Release, template_repo: Path, tmp_path: Path
) -> None:
    name = "churn-model"
    subprocess.run(
        [
            cookiecutter_bin(),
            "--no-input",
            "--output-dir",
            str(tmp_path),
            str(template_repo),
            f"project_name={name}",
            f"ci_provider={release.ci_provider}",
        ],
        check=True,
        capture_output=True,
    )
    baked = load_template((tmp_path / "churn_model/infra/lib/toolchain.yaml").read_text())
    nested = json.loads(release.toolchain)

    assert name not in json.dumps(nested) and "churn_model" not in json.dumps(nested)
    for section in ("Resources", "Outputs", "Conditions", "Rules"):
        assert instantiate(nested.get(section), name) == instantiate(baked.get(section), name), section
    assert nested["Parameters"].keys() == baked["Parameters"].keys()


def test_the_product_passes_every_toolchain_parameter_without_a_default(release: artifacts.Release) -> None:
    nested = json.loads(release.toolchain)
    product = load_template((CATALOG / "product.yaml").read_text())
    passed = product["Resources"]["Toolchain"]["Properties"]["Parameters"]
    required = {name for name, spec in nested["Parameters"].items() if "Default" not in spec}
    assert required <= passed.keys()
    assert passed.keys() <= nested["Parameters"].keys()


# What creating each resource type needs, at least: the launch role's policy must allow these.
CREATE_ACTIONS = {
    "AWS::CloudFormation::Stack": ["cloudformation:CreateStack"],
    "AWS::CodeBuild::Project": ["codebuild:CreateProject"],
    "AWS::CodeCommit::Repository": ["codecommit:CreateRepository"],
    "AWS::CodePipeline::Pipeline": ["codepipeline:CreatePipeline"],
    "AWS::ECR::Repository": ["ecr:CreateRepository"],
    "AWS::Events::Rule": ["events:PutRule", "events:PutTargets"],
    "AWS::IAM::ManagedPolicy": ["iam:CreatePolicy"],
    "AWS::IAM::OIDCProvider": ["iam:CreateOpenIDConnectProvider"],
    "AWS::IAM::Policy": ["iam:PutRolePolicy"],
    "AWS::IAM::Role": ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"],
    "AWS::KMS::Alias": ["kms:CreateAlias"],
    "AWS::KMS::Key": ["kms:CreateKey", "kms:PutKeyPolicy"],
    "AWS::Lambda::Function": ["lambda:CreateFunction", "iam:PassRole"],
    "AWS::Logs::LogGroup": ["logs:CreateLogGroup", "logs:PutRetentionPolicy"],
    "AWS::S3::Bucket": ["s3:CreateBucket", "s3:PutEncryptionConfiguration"],
    "AWS::S3::BucketPolicy": ["s3:PutBucketPolicy"],
    "AWS::SSM::Parameter": ["ssm:PutParameter"],
    "AWS::SageMaker::ModelPackageGroup": ["sagemaker:CreateModelPackageGroup"],
}
CUSTOM_RESOURCES = {"Custom::SeedRepository": ["lambda:InvokeFunction"]}


def launch_actions() -> list[str]:
    roles = load_template((CATALOG / "iam-roles.yaml").read_text())
    statements = roles["Resources"]["LaunchPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    actions = []
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions += [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
    return actions


def test_the_launch_role_may_create_every_resource_of_a_project(release: artifacts.Release) -> None:
    allowed = launch_actions()
    product = load_template((CATALOG / "product.yaml").read_text())
    types = {resource["Type"] for resource in product["Resources"].values()}
    types |= {resource["Type"] for resource in json.loads(release.toolchain)["Resources"].values()}
    needed = {**CREATE_ACTIONS, **CUSTOM_RESOURCES}
    assert types <= needed.keys(), (
        f"add the new resource types to CREATE_ACTIONS and LaunchPolicy: {types - needed.keys()}"
    )
    missing = [
        (kind, action)
        for kind in sorted(types)
        for action in needed[kind]
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in allowed)
    ]
    assert missing == []


def test_the_launch_role_reads_tags_and_tags_projects() -> None:
    allowed = launch_actions()
    for action in ("s3:GetObjectTagging", "sagemaker:AddTags"):
        assert action in allowed


def test_pass_role_is_scoped_to_the_roles() -> None:
    roles = load_template((CATALOG / "iam-roles.yaml").read_text())
    statements = roles["Resources"]["LaunchPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    passing = [statement for statement in statements if statement["Action"] == "iam:PassRole"]
    assert passing
    for statement in passing:
        assert statement["Resource"] != "*"
        assert "iam:PassedToService" in statement["Condition"]["StringEquals"]


def test_a_project_name_where_no_parameter_can_go_is_refused() -> None:
    from catalog.errors import CatalogError
    from catalog.toolchain import PLACEHOLDER_NAME, project_independent

    head = "Parameters:\n  SageMakerProjectName: {Type: String}\n  SageMakerProjectId: {Type: String}\n"
    bucket = "Resources:\n  Bucket: {Type: AWS::S3::Bucket}\n"
    with pytest.raises(CatalogError, match="parameter Prefix has the project name in its default"):
        project_independent(head + f"  Prefix: {{Type: String, Default: {PLACEHOLDER_NAME}}}\n" + bucket)
    with pytest.raises(CatalogError, match="uses the project name in Conditions"):
        project_independent(
            head + f"Conditions:\n  X: !Equals [!Ref SageMakerProjectName, {PLACEHOLDER_NAME}]\n" + bucket
        )
    nested = json.loads(
        project_independent(
            head
            + "Resources:\n  Repo:\n    Type: AWS::ECR::Repository\n"
            + f"    Properties: {{RepositoryName: {PLACEHOLDER_NAME}/train}}\n"
        )
    )
    assert nested["Resources"]["Repo"]["Properties"]["RepositoryName"] == {"Fn::Sub": "${SageMakerProjectName}/train"}


def iam_rules() -> Any:
    """The generated repository's infra/tests/iam_rules.py (plain Python in the template folder): the handler
    permissions of cfn-lint's provider schemas and AWS's action list."""
    import importlib.util

    path = CATALOG.parent / TEMPLATE_FOLDER / "infra" / "tests" / "iam_rules.py"
    text = path.read_text(encoding="utf-8")
    assert "{{" not in text and "{%" not in text, f"{path} must stay plain Python (no template markup)"
    spec = importlib.util.spec_from_file_location("iam_rules", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEMPLATE_FOLDER = "{{cookiecutter.project_slug}}"


def test_the_launch_role_may_call_every_handler_action_of_a_project(release: artifacts.Release) -> None:
    """Create, update and delete of the product and its nested toolchain, as CloudFormation's handlers call them."""
    rules = iam_rules()
    roles = load_template((CATALOG / "iam-roles.yaml").read_text())
    statements = rules.role_statements(roles, "LaunchRole")
    templates = [load_template((CATALOG / "product.yaml").read_text()), json.loads(release.toolchain)]

    missing = rules.missing_actions(statements, templates)
    assert not missing, (
        f"LaunchPolicy (catalog/iam-roles.yaml) lacks actions CloudFormation's handlers call for a project "
        f"({release.ci_provider}):\n  " + "\n  ".join(missing) + "\nadd them to LaunchPolicy, scoped to the "
        "project's resources"
    )


def test_every_action_in_the_catalog_policies_is_an_aws_action() -> None:
    rules = iam_rules()
    for path in TEMPLATES:
        statements = rules.statements_in(load_template(path.read_text()))
        actions = [a for s in statements for a in rules.as_list(s.get("Action", s.get("NotAction", [])))]
        assert rules.unknown_actions(actions) == [], f"{path.name} names actions AWS does not have"
    registrar = json.loads((CATALOG / "registrar-policy.json").read_text(encoding="utf-8"))
    actions = [a for s in registrar["Statement"] for a in rules.as_list(s.get("Action", s.get("NotAction", [])))]
    assert actions and rules.unknown_actions(actions) == [], "registrar-policy.json names actions AWS does not have"


def test_what_a_project_keeps_on_deletion_is_stated() -> None:
    for path in TEMPLATES:
        for name, resource in load_template(path.read_text())["Resources"].items():
            if resource.get("DeletionPolicy", "Delete") != "Delete":
                reason = resource.get("Metadata", {}).get("RetainedOnDelete", "")
                assert len(reason) > 40, f"{path.name} {name} is kept on deletion: say why in Metadata RetainedOnDelete"
                assert resource.get("UpdateReplacePolicy") == resource["DeletionPolicy"], f"{path.name} {name}"
    product = load_template((CATALOG / "product.yaml").read_text())
    assert product["Resources"]["CodeCommitRepository"]["DeletionPolicy"] == "Retain"
