"""The CloudFormation stacks of infra/lib: lint-clean, true to the contracts the scripts rely on, and deployable.

Runs in the AWS environment (`make test-aws`). The moto deployment at the end is a smoke test of what moto
emulates (S3, SSM, IAM, CloudWatch, ...), not proof that CloudFormation accepts the templates: cfn-lint's
schemas and the checks above it are the real gate.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra import contract
from infra.tests import conditions, iam_rules

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "infra" / "lib"
BUILDSPECS = ROOT / "pipeline" / "buildspec"
ALARMS_FILE = ROOT / "monitoring" / "alarms" / "alarms.json"
DRIFT_JOB = ROOT / "monitoring" / "drift_job.py"
PROJECT = contract.project_settings()[0]
MONITORING = (ROOT / "monitoring").is_dir()
STACKS = ["toolchain", "endpoint", "batch"] + (["monitoring"] if MONITORING else [])
ACCOUNT = "123456789012"
REGION = "us-east-1"
VARIANT = "AllTraffic"
CONNECTION_ID = "0a1b2c3d-1111-2222-3333-444455556666"

# ------------------------------------------------------------------------------------------- the contracts
CONTRACT_PARAMETERS = {stack: set(names) for stack, names in contract.STACK_PARAMETERS.items()}
SSM_NAMES = {
    "artifact-bucket",
    "kms-key-arn",
    "model-package-group",
    "sagemaker-execution-role-arn",
    "pipeline-starter-role-arn",
    "train-image-uri",
    "inference-image-uri",
    "sagemaker-pipeline-name",
} | ({"monitoring-image-uri"} if MONITORING else set())
BUILDSPEC_NAMES = {"build", "train", "deploy-staging", "test-staging", "deploy-prod", "rollback", "template-update"}
# Actions without resource-level permissions: the only ones allowed on Resource "*".
UNSCOPED_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "sagemaker:ListModelPackages",
    "cloudwatch:PutMetricData",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeDhcpOptions",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:DescribeScalingActivities",
    "application-autoscaling:DescribeScheduledActions",
    "cloudwatch:GetMetricData",
    # Service Quotas has no resource-level permissions for listing the defaults; quotas are read, never changed.
    "servicequotas:ListAWSDefaultServiceQuotas",
    "servicequotas:GetServiceQuota",
}


# ------------------------------------------------------------------------------------------- helpers
def load(stack: str) -> dict[str, Any]:
    return contract.read_template((LIB / f"{stack}.yaml").read_text(encoding="utf-8"))


EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}


def ref(name: str) -> dict:
    return {"Ref": name}


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def sample_parameters(stack: str, **overrides: str) -> dict[str, str]:
    """Values for every parameter without a default (what release/release.py or a user passes)."""
    values = {
        "toolchain": {
            "SageMakerProjectName": PROJECT,
            "SageMakerProjectId": "p-abcdef123456",
            "CiProvider": "codepipeline",
            "SourceProvider": "CodeConnections",
            "ConnectionArn": f"arn:aws:codeconnections:{REGION}:{ACCOUNT}:connection/{CONNECTION_ID}",
            "FullRepositoryId": f"acme/{PROJECT}",
        },
        "endpoint": {
            "Environment": "staging",
            "ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{PROJECT}/3",
            "EndpointName": f"{PROJECT}-staging",
            "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}-sagemaker",
            "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "DataCaptureS3Uri": f"s3://{PROJECT}-artifacts/datacapture",
            "AsyncOutputS3Uri": "",
            "AsyncFailureS3Uri": "",
        },
        "monitoring": {
            "Environment": "staging",
            "EndpointName": f"{PROJECT}-staging",
            "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}-sagemaker",
            "PipelineStarterRoleArn": f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}-pipeline-starter",
            "MonitoringImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{PROJECT}/monitoring:0123abc",
            "CaptureS3Uri": f"s3://{PROJECT}-artifacts/datacapture/{PROJECT}-staging/",
            "BaselineS3Uri": f"s3://{PROJECT}-artifacts/baselines/3/",
            "ReportsS3Uri": f"s3://{PROJECT}-artifacts/monitoring/{PROJECT}-staging",
            "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        },
        "batch": {
            "Environment": "staging",
            "PipelineStarterRoleArn": f"arn:aws:iam::{ACCOUNT}:role/{PROJECT}-pipeline-starter",
            "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{PROJECT}/3",
            "ImageTag": "0123abc",
            "ArtifactBucket": f"{PROJECT}-artifacts",
            "ScheduledInputKey": f"{PROJECT}/batch/staging/input/",
        },
    }[stack]
    return {**values, **overrides}


def resolved_parameters(template: dict, given: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        value = given.get(name, spec.get("Default"))
        if spec["Type"] == "CommaDelimitedList":
            value = [] if value in (None, "") else str(value).split(",")
        values[name] = value
    values.update(
        {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}
    )
    return values


def effective_template(stack: str, **overrides: str) -> tuple[dict, dict]:
    template = load(stack)
    values = resolved_parameters(template, sample_parameters(stack, **overrides))
    return conditions.effective(template, values), values


def substitute(text: str, variables: dict) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            raise AssertionError(f"${name} of a Fn::Sub has no value")
        resolved = variables[name]
        return ",".join(resolved) if isinstance(resolved, list) else str(resolved)

    return re.sub(r"\$\{([A-Za-z0-9:]+)\}", value, text)


def pipeline_definition(template: dict, resource: str, values: dict) -> dict:
    """An AWS::SageMaker::Pipeline's definition JSON (a Fn::Sub body), with the stack's values substituted."""
    body, variables = template["Resources"][resource]["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"][
        "Fn::Sub"
    ]
    local = {}
    for name, value in variables.items():
        if isinstance(value, dict) and "Fn::Sub" in value:
            inner = value["Fn::Sub"]
            if isinstance(inner, list):
                joined = {k: conditions.plain(v, values) for k, v in inner[1].items()}
                value = substitute(inner[0], {**values, **joined})
            else:
                value = substitute(inner, values)
        local[name] = value
    return json.loads(substitute(body, {**values, **local}))


# ------------------------------------------------------------------------------------------- lint
@pytest.mark.parametrize("stack", STACKS)
def test_cfn_lint_reports_nothing(stack):
    from cfnlint.api import lint_file

    matches = lint_file(LIB / f"{stack}.yaml")

    assert not matches, "\n".join(f"{m.rule.id} {m.message} ({m.filename}:{m.linenumber})" for m in matches)


def test_every_stack_file_is_covered():
    assert sorted(p.stem for p in LIB.glob("*.yaml")) == sorted(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_every_arn_names_its_partition(stack):
    text = (LIB / f"{stack}.yaml").read_text(encoding="utf-8")

    assert "arn:aws:" not in text, "write arn:${AWS::Partition}:... (regions include aws-cn and aws-us-gov)"
    for node in iam_rules.walk(load(stack)):
        if isinstance(node, dict) and "Fn::Sub" in node:
            body = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
            for partition in re.findall(r"arn:(\$\{[^}]*\}|[a-z-]*):", body):
                assert partition == "${AWS::Partition}", body


# ------------------------------------------------------------------------------------------- contracts
@pytest.mark.parametrize("stack", STACKS)
def test_parameters_match_the_contract(stack):
    parameters = load(stack)["Parameters"]
    passed = CONTRACT_PARAMETERS[stack]

    assert passed <= set(parameters), f"missing: {sorted(passed - set(parameters))}"
    without_default = {name for name, spec in parameters.items() if "Default" not in spec}
    assert without_default <= passed, f"parameters the scripts do not know about need a default: {without_default}"


def test_the_toolchain_needs_only_the_sagemaker_project_parameters():
    """The catalog reuses the file as a nested stack: every other parameter has a default."""
    parameters = load("toolchain")["Parameters"]

    assert {n for n, spec in parameters.items() if "Default" not in spec} == {
        "SageMakerProjectName",
        "SageMakerProjectId",
    }
    assert parameters["SageMakerProjectName"]["AllowedPattern"] == "^[a-zA-Z](-*[a-zA-Z0-9])*$"
    assert parameters["SageMakerProjectName"]["MaxLength"] == 32
    assert set(parameters["CiProvider"]["AllowedValues"]) == {"codepipeline", "github-actions"}
    assert set(parameters["SourceProvider"]["AllowedValues"]) == {"CodeConnections", "CodeCommit"}


def test_the_artifact_bucket_is_versioned_encrypted_private_and_tls_only():
    template = load("toolchain")
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    statements = template["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]

    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["KmsKey", "Arn"]},
    }
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert statements[0]["Effect"] == "Deny"
    assert statements[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_image_repositories_scan_on_push_and_keep_tags_immutable():
    repositories = resources(load("toolchain"), "AWS::ECR::Repository")

    assert {r["Properties"]["RepositoryName"] for r in repositories.values()} == {
        f"{PROJECT}/{name}" for name in ("train", "inference", *(("monitoring",) if MONITORING else ()))
    }
    for repository in repositories.values():
        assert repository["Properties"]["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert repository["Properties"]["ImageTagMutability"] == "IMMUTABLE"


def test_the_toolchain_writes_the_ssm_parameters_the_scripts_read():
    names = {r["Properties"]["Name"] for r in resources(load("toolchain"), "AWS::SSM::Parameter").values()}

    assert names == {f"/{PROJECT}/{name}" for name in SSM_NAMES}


def test_resources_carry_the_sagemaker_project_tags():
    template = load("toolchain")
    untagged = []
    for name, resource in template["Resources"].items():
        tags = resource.get("Properties", {}).get("Tags")
        if tags is None:
            continue
        keys = set(tags) if isinstance(tags, dict) else {t["Key"] for t in tags}
        if not {"sagemaker:project-name", "sagemaker:project-id"} <= keys:
            untagged.append(name)
    assert not untagged


def test_each_codebuild_project_runs_a_buildspec_of_the_repository():
    projects = resources(load("toolchain"), "AWS::CodeBuild::Project")
    paths = {p["Properties"]["Source"]["BuildSpec"] for p in projects.values()}

    assert paths == {f"pipeline/buildspec/{name}.yml" for name in BUILDSPEC_NAMES}
    if not BUILDSPECS.is_dir():
        pytest.skip("pipeline/buildspec/ is not in this repository yet: the names are checked, not the files")
    assert [p for p in sorted(paths) if not (ROOT / p).is_file()] == []


def test_pipelines_run_the_stages_in_order():
    pipelines = resources(load("toolchain"), "AWS::CodePipeline::Pipeline")
    stages = {name: [stage["Name"] for stage in p["Properties"]["Stages"]] for name, p in pipelines.items()}

    assert stages["ModelBuildPipeline"] == ["Source", "Build", "Train"]
    assert stages["ModelDeployPipeline"] == ["Source", "DeployStaging", "TestStaging", "ApproveProd", "DeployProd"]
    approval = pipelines["ModelDeployPipeline"]["Properties"]["Stages"][3]["Actions"][0]["ActionTypeId"]
    assert (approval["Category"], approval["Provider"]) == ("Approval", "Manual")


def test_an_approved_model_package_of_this_group_starts_the_deployment_pipeline():
    rule = load("toolchain")["Resources"]["ModelApprovedRule"]["Properties"]

    assert rule["EventPattern"]["detail-type"] == ["SageMaker Model Package State Change"]
    assert rule["EventPattern"]["detail"] == {"ModelPackageGroupName": [PROJECT], "ModelApprovalStatus": ["Approved"]}
    assert "ModelDeployPipeline" in rule["Targets"][0]["Arn"]["Fn::Sub"]


def test_iam_policies_are_least_privilege():
    template = load("toolchain")
    statements = []
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            statements += [s for p in properties.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        elif resource["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            statements += properties["PolicyDocument"]["Statement"]
    statements = [
        branch for s in statements for branch in (s["Fn::If"][1:] if "Fn::If" in s else [s]) if "Effect" in branch
    ]
    assert statements
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if "*" in a], statement
        if statement["Effect"] == "Allow" and statement.get("Resource") == "*":
            assert set(actions) <= UNSCOPED_ACTIONS, statement
        if "iam:PassRole" in actions:
            assert actions == ["iam:PassRole"]
            passed = statement["Condition"]["StringEquals"]["iam:PassedToService"]
            passed = passed if isinstance(passed, list) else [passed]
            # the execution role goes only to SageMaker, the pipeline starter role only to Scheduler and EventBridge
            services = {"SageMakerExecutionRole": {"sagemaker"}, "PipelineStarterRole": {"scheduler", "events"}}
            (role,) = [name for name in services if statement["Resource"] == {"Fn::GetAtt": [name, "Arn"]}]
            named = {(s["Fn::Sub"] if isinstance(s, dict) else s).split(".")[0] for s in passed}
            assert named <= services[role], statement


def test_github_roles_trust_only_this_repository_and_production_environment():
    template, _ = effective_template("toolchain", CiProvider="github-actions")
    ci = template["Resources"]["GitHubCiRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    deploy = template["Resources"]["GitHubDeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]

    assert "StringLike" not in ci["Condition"]
    assert ci["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        {"Fn::Sub": "repo:${FullRepositoryId}:ref:refs/heads/${BranchName}"},
        {"Fn::Sub": "repo:${FullRepositoryId}:environment:staging"},
    ]
    assert deploy["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == {
        "Fn::Sub": "repo:${FullRepositoryId}:environment:production"
    }
    for statement in (ci, deploy):
        assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert not resources(template, "AWS::CodePipeline::Pipeline")
    assert not resources(template, "AWS::CodeBuild::Project")


def test_other_accounts_get_the_model_packages_the_key_and_the_artifacts():
    single, _ = effective_template("toolchain")
    multi, _ = effective_template("toolchain", StagingAccountId="111111111111", ProdAccountId="222222222222")
    principals = [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::${StagingAccountId}:root"},
        {"Fn::Sub": "arn:${AWS::Partition}:iam::${ProdAccountId}:root"},
    ]

    assert "ModelPackageGroupPolicy" not in single["Resources"]["ModelPackageGroup"]["Properties"]
    group_policy = multi["Resources"]["ModelPackageGroup"]["Properties"]["ModelPackageGroupPolicy"]
    assert group_policy["Statement"][0]["Principal"]["AWS"] == principals
    assert "sagemaker:CreateModel" in group_policy["Statement"][0]["Action"]
    key_statements = multi["Resources"]["KmsKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert principals in [s["Principal"].get("AWS") for s in key_statements]
    bucket_statements = multi["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in bucket_statements] == ["DenyInsecureTransport", "DeploymentAccountsReadArtifacts"]
    assert len(single["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]) == 1


# ------------------------------------------------------------------------------------------- endpoint
def rollback_guards(template: dict) -> list[str]:
    config = template["Resources"]["Endpoint"]["Properties"]["DeploymentConfig"]
    return [a["AlarmName"]["Ref"] for a in config["AutoRollbackConfiguration"]["Alarms"]]


def test_the_endpoint_rolls_back_on_its_guard_alarms():
    template = load("endpoint")
    config = template["Resources"]["Endpoint"]["Properties"]["DeploymentConfig"]
    alarms = resources(template, "AWS::CloudWatch::Alarm")

    # Every alarm without a condition (those of every endpoint type) guards deployments; the type-specific ones
    # (serverless concurrency, async backlog) do not: a new fleet starts cold, a backlog grows while scaling up.
    assert rollback_guards(template) == [n for n, a in alarms.items() if "Condition" not in a]
    assert {alarms[n].get("Condition") for n in alarms if n not in rollback_guards(template)} == {
        "IsServerless",
        "IsAsync",
    }
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == {"Ref": "DeploymentStrategy"}
    assert load("endpoint")["Parameters"]["DeploymentStrategy"]["AllowedValues"] == ["ALL_AT_ONCE", "CANARY", "LINEAR"]


@pytest.mark.parametrize(
    "strategy,size_key", [("ALL_AT_ONCE", None), ("CANARY", "CanarySize"), ("LINEAR", "LinearStepSize")]
)
def test_the_traffic_routing_follows_the_strategy(strategy, size_key):
    template, _ = effective_template("endpoint", DeploymentStrategy=strategy)
    routing = template["Resources"]["Endpoint"]["Properties"]["DeploymentConfig"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]

    sizes = {k: v for k, v in routing.items() if k in ("CanarySize", "LinearStepSize")}
    assert list(sizes) == ([size_key] if size_key else [])
    if size_key:
        assert sizes[size_key]["Type"] == "CAPACITY_PERCENT"


def test_shadow_vpc_and_isolation_are_options():
    plain, _ = effective_template("endpoint")
    full, _ = effective_template(
        "endpoint",
        ShadowModelPackageArn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{PROJECT}/4",
        SubnetIds="subnet-1,subnet-2",
        SecurityGroupIds="sg-1",
        EnableNetworkIsolation="true",
    )

    assert "ShadowModel" not in plain["Resources"]
    assert "ShadowProductionVariants" not in plain["Resources"]["EndpointConfig"]["Properties"]
    assert "VpcConfig" not in plain["Resources"]["Model"]["Properties"]
    assert full["Resources"]["EndpointConfig"]["Properties"]["ShadowProductionVariants"][0]["ModelName"] == {
        "Fn::GetAtt": ["ShadowModel", "ModelName"]
    }
    model = full["Resources"]["Model"]["Properties"]
    assert model["EnableNetworkIsolation"] is True
    assert model["VpcConfig"] == {"Subnets": ref("SubnetIds"), "SecurityGroupIds": ref("SecurityGroupIds")}
    assert model["Containers"] == [{"ModelPackageName": ref("ModelPackageArn")}]


def test_data_capture_is_encrypted_and_optional():
    on, _ = effective_template("endpoint")
    off, _ = effective_template("endpoint", DataCaptureEnabled="false")

    capture = on["Resources"]["EndpointConfig"]["Properties"]["DataCaptureConfig"]
    assert capture["KmsKeyId"] == {"Ref": "KmsKeyArn"}
    assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}
    assert "DataCaptureConfig" not in off["Resources"]["EndpointConfig"]["Properties"]


def test_auto_scaling_tracks_invocations_per_instance():
    template = load("endpoint")
    policy = template["Resources"]["ScalingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    target = template["Resources"]["ScalableTarget"]["Properties"]

    assert policy["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert target["ResourceId"] == {"Fn::Sub": "endpoint/${EndpointName}/variant/" + VARIANT}


# ------------------------------------------------------------------------------------------- alarms.json
def _alarm_view(properties: dict, placeholders: dict) -> dict:
    """What must agree between alarms.json and a stack: metric, namespace, statistic, dimensions, comparison."""

    def text(value: Any) -> str:
        if isinstance(value, dict) and "Ref" in value:
            return placeholders[value["Ref"]]
        return substitute(value, placeholders) if isinstance(value, str) else str(value)

    return {
        "MetricName": properties["MetricName"],
        "Namespace": text(properties["Namespace"]),
        "Statistic": properties.get("Statistic") or properties.get("ExtendedStatistic"),
        "Dimensions": sorted((d["Name"], text(d["Value"])) for d in properties["Dimensions"]),
        "ComparisonOperator": properties["ComparisonOperator"],
    }


def _stack_alarms(stack: str) -> dict[str, dict]:
    """Alarm id (AlarmName without the endpoint prefix) -> properties."""
    out = {}
    for resource in resources(load(stack), "AWS::CloudWatch::Alarm").values():
        name = resource["Properties"]["AlarmName"]["Fn::Sub"]
        assert name.startswith("${EndpointName}-"), name
        out[name.removeprefix("${EndpointName}-")] = resource["Properties"]
    return out


@pytest.mark.skipif(not ALARMS_FILE.is_file(), reason="no monitoring/alarms/alarms.json (monitoring not included)")
def test_the_stack_alarms_agree_with_alarms_json():
    document = json.loads(ALARMS_FILE.read_text(encoding="utf-8"))
    namespace = document["monitoring_namespace"]
    placeholders = {"EndpointName": "ENDPOINT", "VariantName": VARIANT, "MonitoringNamespace": namespace}
    stack_alarms = {**_stack_alarms("endpoint"), **_stack_alarms("monitoring")}
    monitoring_parameters = load("monitoring")["Parameters"]

    assert monitoring_parameters["MonitoringNamespace"]["Default"] == namespace
    assert set(stack_alarms) == {a["id"] for a in document["alarms"]}
    for alarm in document["alarms"]:
        stack_properties = stack_alarms[alarm["id"]]
        assert _alarm_view(stack_properties, placeholders) == _alarm_view(alarm, placeholders), alarm["id"]
    rollback = {a["id"] for a in document["alarms"] if a["rollback"]}
    endpoint = load("endpoint")
    guards = {endpoint["Resources"][n]["Properties"]["AlarmName"]["Fn::Sub"] for n in rollback_guards(endpoint)}
    assert rollback == {g.removeprefix("${EndpointName}-") for g in guards}


# ------------------------------------------------------------------------------------------- monitoring
@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
@pytest.mark.parametrize("network", ["public", "vpc"])
def test_the_drift_pipeline_definition_is_a_valid_processing_job(network):
    import botocore.session
    from botocore.validate import validate_parameters

    overrides = {"SubnetIds": "subnet-1,subnet-2", "SecurityGroupIds": "sg-1"} if network == "vpc" else {}
    overrides["GroundTruthS3Uri"] = f"s3://{PROJECT}-artifacts/ground-truth/"
    template, values = effective_template("monitoring", **overrides)
    definition = pipeline_definition(template, "DriftPipeline", values)
    (step,) = definition["Steps"]
    assert step["Type"] == "Processing"

    arguments = json.loads(
        json.dumps(step["Arguments"])
        .replace('{"Get": "Parameters.CaptureWindowHours"}', '"1"')
        .replace(
            json.dumps({"Std:Join": {"On": "/", "Values": [values["ReportsS3Uri"], EXECUTION_ID]}}),
            json.dumps(values["ReportsS3Uri"] + "/execution-id"),
        )
    )
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateProcessingJob")
    validate_parameters({"ProcessingJobName": "drift-run", **arguments}, shape.input_shape)
    assert [p["Name"] for p in definition["Parameters"]] == ["CaptureWindowHours"]
    assert ("NetworkConfig" in arguments) == (network == "vpc")
    flags = [a for a in arguments["AppSpecification"]["ContainerArguments"] if a.startswith("--")]
    source = DRIFT_JOB.read_text(encoding="utf-8")
    assert [f for f in flags if f'"{f}"' not in source] == [], "every flag must be an option of drift_job.py"
    assert "--ground-truth" in flags


@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
def test_the_schedule_starts_the_drift_pipeline_with_its_parameters():
    template = load("monitoring")
    target = template["Resources"]["DriftSchedule"]["Properties"]["Target"]

    assert target["Arn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:pipeline/${DriftPipeline}"
    }
    assert [p["Name"] for p in target["SageMakerPipelineParameters"]["PipelineParameterList"]] == ["CaptureWindowHours"]
    topic = template["Resources"]["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "KmsKeyArn"}


# ------------------------------------------------------------------------------------------- moto smoke
def moto_supports(kind: str) -> bool:
    from moto.cloudformation.parsing import get_model_map

    return kind in get_model_map()


def for_moto(template: dict) -> dict:
    """The template as moto's CloudFormation can take it (moto's gaps, not the templates' faults): resource types
    moto does not emulate are left out and what refers to them gets a stand-in ARN; KMS tags as TagKey/TagValue,
    SSM tags as a list, SageMaker models with PrimaryContainer; no Rules."""
    dropped = {name for name, r in template["Resources"].items() if not moto_supports(r["Type"])}

    def stand_in(name: str) -> str:
        return f"arn:aws:moto:{REGION}:{ACCOUNT}:unsupported/{name}"

    def in_sub(text: str) -> str:
        return re.sub(
            r"\$\{([A-Za-z0-9]+)(\.[A-Za-z.]+)?\}",
            lambda m: stand_in(m.group(1)) if m.group(1) in dropped else m.group(0),
            text,
        )

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("Ref") in dropped:
                return stand_in(node["Ref"])
            if "Fn::GetAtt" in node and node["Fn::GetAtt"][0] in dropped:
                return stand_in(node["Fn::GetAtt"][0])
            if "Fn::Sub" in node:
                sub = node["Fn::Sub"]
                return {"Fn::Sub": in_sub(sub) if isinstance(sub, str) else [in_sub(sub[0]), rewrite(sub[1])]}
            out = {key: rewrite(value) for key, value in node.items()}
            if "DependsOn" in out:
                depends = [out["DependsOn"]] if isinstance(out["DependsOn"], str) else out["DependsOn"]
                out["DependsOn"] = [d for d in depends if d not in dropped]
            return out
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    template["Resources"] = {n: rewrite(r) for n, r in template["Resources"].items() if n not in dropped}
    template["Outputs"] = {n: rewrite(o) for n, o in template.get("Outputs", {}).items()}
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::KMS::Key" and "Tags" in properties:
            properties["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in properties["Tags"]]
        elif resource["Type"] == "AWS::SSM::Parameter" and isinstance(properties.get("Tags"), dict):
            properties["Tags"] = [{"Key": k, "Value": v} for k, v in properties["Tags"].items()]
        elif resource["Type"] == "AWS::SageMaker::Model":
            properties["PrimaryContainer"] = properties["Containers"][0]
    template.pop("Rules", None)
    return template


@pytest.fixture
def aws(aws_env, moto_url):
    """A client factory for moto (the root conftest's server and clean environment)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1})
    return lambda service: boto3.client(service, endpoint_url=moto_url, region_name=aws_env, config=config)


def deploy(aws, stack: str, **overrides: str) -> dict[str, str]:
    template, _ = effective_template(stack, **overrides)
    parameters = sample_parameters(stack, **overrides)
    cloudformation = aws("cloudformation")
    cloudformation.create_stack(
        StackName=f"{PROJECT}-{stack}",
        TemplateBody=json.dumps(for_moto(template)),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cloudformation.describe_stacks(StackName=f"{PROJECT}-{stack}")["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("ci", ["codepipeline", "github-actions"])
def test_the_toolchain_deploys_to_moto(aws, ci):
    outputs = deploy(aws, "toolchain", CiProvider=ci)
    s3, ssm = aws("s3"), aws("ssm")

    bucket = outputs["ArtifactBucketName"]
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == outputs["KmsKeyArn"]
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags["sagemaker:project-name"] == PROJECT
    parameters = {
        p["Name"].removeprefix(f"/{PROJECT}/"): p["Value"]
        for p in ssm.get_parameters_by_path(Path=f"/{PROJECT}/")["Parameters"]
    }
    assert set(parameters) == SSM_NAMES
    assert parameters["artifact-bucket"] == bucket
    assert parameters["kms-key-arn"] == outputs["KmsKeyArn"]
    assert parameters["model-package-group"] == outputs["ModelPackageGroupName"] == PROJECT
    assert parameters["sagemaker-execution-role-arn"] == outputs["SageMakerExecutionRoleArn"]
    assert parameters["pipeline-starter-role-arn"] == outputs["PipelineStarterRoleArn"]
    assert parameters["train-image-uri"] == outputs["TrainImageRepositoryUri"]
    assert parameters["train-image-uri"].endswith(f"/{PROJECT}/train")
    assert parameters["inference-image-uri"].endswith(f"/{PROJECT}/inference")
    repositories = {r["repositoryName"]: r for r in aws("ecr").describe_repositories()["repositories"]}
    assert repositories[f"{PROJECT}/train"]["imageTagMutability"] == "IMMUTABLE"
    assert repositories[f"{PROJECT}/inference"]["imageTagMutability"] == "IMMUTABLE"
    assert ("GitHubCiRoleArn" in outputs) == (ci == "github-actions")
    rules = {r["Name"]: r for r in aws("events").list_rules()["Rules"]}
    approved = [r for r in rules.values() if "ModelApprovedRule" in r["Name"]]
    assert len(approved) == (ci == "codepipeline")
    for rule in approved:
        assert json.loads(rule["EventPattern"])["detail"]["ModelPackageGroupName"] == [PROJECT]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_model_package_group_deploys_to_moto(aws):
    from moto.cloudformation.parsing import get_model_map

    if "AWS::SageMaker::ModelPackageGroup" not in get_model_map():
        pytest.skip("this moto version has no CloudFormation support for AWS::SageMaker::ModelPackageGroup")
    deploy(aws, "toolchain")
    group = aws("sagemaker").describe_model_package_group(ModelPackageGroupName=PROJECT)
    assert group["ModelPackageGroupName"] == PROJECT


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_endpoint_stack_deploys_to_moto(aws):
    outputs = deploy(aws, "endpoint")
    sagemaker, cloudwatch = aws("sagemaker"), aws("cloudwatch")

    endpoint = sagemaker.describe_endpoint(EndpointName=outputs["EndpointName"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["ProductionVariants"][0]["VariantName"] == VARIANT
    assert config["DataCaptureConfig"]["KmsKeyId"] == sample_parameters("endpoint")["KmsKeyArn"]
    if moto_supports("AWS::CloudWatch::Alarm"):
        alarms = {a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]}
        assert alarms == {f"{PROJECT}-staging-{name}" for name in _stack_alarms("endpoint")}


SERVERLESS = {"EndpointType": "serverless", "DataCaptureEnabled": "false", "DataCaptureS3Uri": ""}
ASYNC = {
    "EndpointType": "async",
    "AsyncOutputS3Uri": f"s3://{PROJECT}-artifacts/{PROJECT}/async/staging/output/",
    "AsyncFailureS3Uri": f"s3://{PROJECT}-artifacts/{PROJECT}/async/staging/failure/",
    "AutoScalingMinCapacity": "0",
    "AutoScalingMaxCapacity": "3",
}


def test_a_serverless_variant_has_memory_and_concurrency_and_no_instances_scaling_or_capture():
    template, _ = effective_template("endpoint", **SERVERLESS, ServerlessProvisionedConcurrency="2")
    found = template["Resources"]
    config = found["EndpointConfig"]["Properties"]
    (variant,) = config["ProductionVariants"]

    assert variant["ServerlessConfig"] == {
        "MemorySizeInMB": ref("ServerlessMemorySizeMB"),
        "MaxConcurrency": ref("ServerlessMaxConcurrency"),
        "ProvisionedConcurrency": ref("ServerlessProvisionedConcurrency"),
    }
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert not {"KmsKeyId", "DataCaptureConfig", "AsyncInferenceConfig"} & set(config)
    assert not resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert set(resources(template, "AWS::CloudWatch::Alarm")) == {
        "Invocation5xxErrorsAlarm",
        "ModelLatencyP99Alarm",
        "ServerlessConcurrencyAlarm",
    }
    on_demand, _ = effective_template("endpoint", **SERVERLESS)
    assert (
        "ProvisionedConcurrency"
        not in on_demand["Resources"]["EndpointConfig"]["Properties"]["ProductionVariants"][0]["ServerlessConfig"]
    )
    assert load("endpoint")["Parameters"]["ServerlessMemorySizeMB"]["AllowedValues"] == [
        1024,
        2048,
        3072,
        4096,
        5120,
        6144,
    ]


def test_an_async_endpoint_writes_to_s3_notifies_and_scales_on_its_backlog_from_zero():
    template, _ = effective_template("endpoint", **ASYNC)
    found = template["Resources"]
    config = found["EndpointConfig"]["Properties"]["AsyncInferenceConfig"]

    assert config["OutputConfig"]["S3OutputPath"] == ref("AsyncOutputS3Uri")
    assert config["OutputConfig"]["S3FailurePath"] == ref("AsyncFailureS3Uri")
    assert config["OutputConfig"]["NotificationConfig"] == {
        "SuccessTopic": ref("AsyncSuccessTopic"),
        "ErrorTopic": ref("AsyncErrorTopic"),
    }
    assert config["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": ref("AsyncMaxConcurrentInvocations")}
    tracking = found["AsyncBacklogScalingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["CustomizedMetricSpecification"]["MetricName"] == "ApproximateBacklogSizePerInstance"
    assert "ScalingPolicy" not in found  # invocations per instance means nothing for queued requests
    step = found["AsyncScaleFromZeroPolicy"]["Properties"]
    assert step["PolicyType"] == "StepScaling"
    assert step["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
    ]
    alarm = found["AsyncBacklogWithoutCapacityAlarm"]["Properties"]
    assert alarm["MetricName"] == "HasBacklogWithoutCapacity"
    assert alarm["AlarmActions"] == [ref("AsyncScaleFromZeroPolicy")]
    assert load("endpoint")["Parameters"]["AutoScalingMinCapacity"]["MinValue"] == 0
    quiet, _ = effective_template("endpoint", **ASYNC, AsyncNotifications="false")
    assert (
        "NotificationConfig"
        not in quiet["Resources"]["EndpointConfig"]["Properties"]["AsyncInferenceConfig"]["OutputConfig"]
    )
    assert not resources(quiet, "AWS::SNS::Topic")


def test_the_rules_refuse_what_sagemaker_refuses_per_type():
    rules = load("endpoint")["Rules"]
    assert rules["AsyncNeedsOutput"]["RuleCondition"] == {"Fn::Equals": [ref("EndpointType"), "async"]}
    serverless = rules["ServerlessWithoutCapture"]["Assertions"]
    assert {"Fn::Equals": [ref("DataCaptureEnabled"), "false"]} in [a["Assert"] for a in serverless]
    assert {"Fn::Equals": [ref("ShadowModelPackageArn"), ""]} in [a["Assert"] for a in serverless]


def deployed_endpoint_config(aws, **parameters) -> dict:
    """Deploy the endpoint stack to moto with these parameters; the endpoint configuration it created."""
    outputs = deploy(aws, "endpoint", **parameters)
    endpoint = aws("sagemaker").describe_endpoint(EndpointName=outputs["EndpointName"])
    return aws("sagemaker").describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_serverless_endpoint_stack_deploys_to_moto(aws):
    config = deployed_endpoint_config(aws, **SERVERLESS)
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"]["MemorySizeInMB"] == 2048
    assert variant["ServerlessConfig"]["MaxConcurrency"] == 5
    assert not config.get("DataCaptureConfig") and "InstanceType" not in variant
    assert not config.get("KmsKeyId") and not config.get("AsyncInferenceConfig")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_async_endpoint_stack_deploys_to_moto(aws):
    config = deployed_endpoint_config(aws, **ASYNC)
    topics = sorted(t["TopicArn"].rsplit(":", 1)[1] for t in aws("sns").list_topics()["Topics"])
    assert topics == [f"{PROJECT}-staging-async-error", f"{PROJECT}-staging-async-success"]
    output = config["AsyncInferenceConfig"]["OutputConfig"]
    assert output["S3OutputPath"] == ASYNC["AsyncOutputS3Uri"]
    assert output["NotificationConfig"]["SuccessTopic"].endswith(":" + topics[1])
    assert output["NotificationConfig"]["ErrorTopic"].endswith(":" + topics[0])
    assert config["AsyncInferenceConfig"]["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 4}
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
    if moto_supports("AWS::ApplicationAutoScaling::ScalableTarget"):  # else the effective-template test covers it
        scaling = aws("application-autoscaling")
        (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
        assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 3)


@pytest.mark.skipif(not MONITORING, reason="monitoring is not included")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_monitoring_stack_deploys_to_moto(aws):
    deploy(aws, "monitoring", AlarmEmail="ops@example.com")

    (topic,) = aws("sns").list_topics()["Topics"]
    assert topic["TopicArn"].endswith(f":{PROJECT}-monitoring-staging")
    attributes = aws("sns").get_topic_attributes(TopicArn=topic["TopicArn"])["Attributes"]
    assert attributes["KmsMasterKeyId"] == sample_parameters("monitoring")["KmsKeyArn"]
    (target,) = aws("events").list_targets_by_rule(Rule=f"{PROJECT}-drift-failed-staging")["Targets"]
    assert target["Arn"] == topic["TopicArn"]
    if moto_supports("AWS::CloudWatch::Alarm"):
        alarms = {a["AlarmName"]: a for a in aws("cloudwatch").describe_alarms()["MetricAlarms"]}
        assert set(alarms) == {f"{PROJECT}-staging-{name}" for name in _stack_alarms("monitoring")}
        assert all(a["AlarmActions"] == [topic["TopicArn"]] for a in alarms.values())
