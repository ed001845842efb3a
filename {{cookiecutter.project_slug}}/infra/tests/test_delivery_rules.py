"""Rules a first deployment on a real AWS account depends on, one test each: session durations the roles allow,
OIDC trust limited to a branch or an environment, no production change on a pipeline's creation run, base images
from a registry without anonymous pull limits pinned by digest, image expiry that spares what model packages
reference, and stacks that can be deleted (with what is kept on purpose stated)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from infra.tests import iam_rules
from infra.tests.test_stacks import LIB, ROOT, STACKS, effective_template, load, resources

WORKFLOWS = ROOT / ".github" / "workflows"
README = ROOT / "infra" / "README.md"
# GitHub variables holding the role ARNs (README) -> the toolchain's roles.
ROLE_VARIABLES = {"AWS_CI_ROLE_ARN": "GitHubCiRole", "AWS_DEPLOY_ROLE_ARN": "GitHubDeployRole"}
DEFAULT_SESSION_SECONDS = 3600  # configure-aws-credentials' default, and IAM's default MaxSessionDuration
OIDC_SUBJECT = re.compile(
    r"^repo:\$\{FullRepositoryId\}:(ref:refs/heads/\$\{BranchName\}|environment:[A-Za-z0-9_.-]+)$"
)
PINNED = re.compile(r"@sha256:[0-9a-f]{64}$")
# Registries CodeBuild pulls from without Docker Hub's anonymous rate limit: ECR Public, this account's ECR.
UNLIMITED_REGISTRIES = re.compile(r"^(public\.ecr\.aws/|[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/)")
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def workflows() -> dict[str, dict]:
    if not WORKFLOWS.is_dir():
        pytest.skip("no GitHub Actions workflows in this repository (ci_provider codepipeline)")
    return {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(WORKFLOWS.glob("*.yml"))}


def alternatives(value: str) -> list[tuple[str | None, str]]:
    """The values of a GitHub expression `cond && a || b` as (condition, value) pairs; else [(None, value)]."""
    match = re.fullmatch(r"\$\{\{\s*(.+?)\s*&&\s*(.+?)\s*\|\|\s*(.+?)\s*\}\}", value.strip())
    if not match:
        return [(None, value)]
    condition, when_true, when_false = match.groups()
    return [(condition, when_true.strip("'\"")), (f"!{condition}", when_false.strip("'\""))]


def assumed_roles(job: dict) -> list[tuple[dict, str, str | None]]:
    """(configure-aws-credentials step, role, GitHub environment) for each role a job may assume."""
    out = []
    for step in job.get("steps", []):
        if not str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials"):
            continue
        roles = alternatives(str(step["with"]["role-to-assume"]))
        environments = alternatives(str(job["environment"])) if "environment" in job else [(None, None)]
        for role_condition, role_value in roles:
            names = [ROLE_VARIABLES[v] for v in re.findall(r"vars\.([A-Z_]+)", role_value)]
            assert names, f"role-to-assume {role_value!r} names none of the variables {sorted(ROLE_VARIABLES)}"
            for environment_condition, environment in environments:
                if role_condition and environment_condition and role_condition != environment_condition:
                    continue
                out += [(step, name, environment) for name in names]
    return out


def max_session(template: dict, role: str) -> int:
    return int(template["Resources"][role]["Properties"].get("MaxSessionDuration", DEFAULT_SESSION_SECONDS))


# ------------------------------------------------------------------------------------------- session durations
def test_requested_session_durations_fit_the_roles_and_outlive_the_jobs():
    toolchain, _ = effective_template("toolchain", CiProvider="github-actions")
    checked = 0
    for name, workflow in workflows().items():
        for job_id, job in workflow["jobs"].items():
            for step, role, _ in assumed_roles(job):
                seconds = int(step["with"].get("role-duration-seconds", DEFAULT_SESSION_SECONDS))
                allowed = max_session(toolchain, role)
                assert seconds <= allowed, (
                    f"{name} job {job_id}: role-duration-seconds {seconds} > {role} MaxSessionDuration {allowed}: STS "
                    f"refuses it - raise MaxSessionDuration in infra/lib/toolchain.yaml (at most 43200) or ask less"
                )
                assert "timeout-minutes" in job, f"{name} job {job_id}: give timeout-minutes"
                assert seconds >= job["timeout-minutes"] * 60, (
                    f"{name} job {job_id}: credentials of {seconds} s expire before the job's timeout of "
                    f"{job['timeout-minutes']} min - set role-duration-seconds to {job['timeout-minutes'] * 60}"
                )
                checked += 1
    assert checked


def test_no_script_asks_for_a_longer_session_than_the_roles_allow():
    toolchain, _ = effective_template("toolchain", CiProvider="github-actions")
    roles = resources(toolchain, "AWS::IAM::Role")
    shortest = min(max_session(toolchain, name) for name in roles)
    found = []
    for path in ROOT.rglob("*"):
        if not path.is_file() or path.suffix not in {".py", ".yml", ".yaml", ".sh", ""} or "tests" in path.parts:
            continue
        if {".git", "build", ".venv", "node_modules"} & set(path.parts):
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for match in re.finditer(r"(?:DurationSeconds[\"']?\s*[=:]\s*|--duration-seconds[ =])(\d+)", text):
            found.append((path.relative_to(ROOT), int(match.group(1))))
    too_long = [(str(p), s) for p, s in found if s > shortest]
    assert not too_long, f"sessions longer than the shortest MaxSessionDuration ({shortest} s): {too_long}"


# ------------------------------------------------------------------------------------------- OIDC trust
def test_oidc_trust_is_limited_to_a_branch_or_an_environment():
    toolchain, _ = effective_template("toolchain", CiProvider="github-actions")
    federated = [
        (name, statement)
        for name, role in resources(toolchain, "AWS::IAM::Role").items()
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        if statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    ]
    assert federated
    for name, statement in federated:
        condition = statement["Condition"]
        assert set(condition) == {"StringEquals"}, f"{name}: trust only exact subjects (StringEquals, no wildcards)"
        subjects = iam_rules.as_list(condition["StringEquals"]["token.actions.githubusercontent.com:sub"])
        for subject in subjects:
            text = subject["Fn::Sub"] if isinstance(subject, dict) else subject
            assert OIDC_SUBJECT.match(text), (
                f"{name} trusts the OIDC subject {text}: allow only "
                "repo:${FullRepositoryId}:ref:refs/heads/${BranchName} or repo:${FullRepositoryId}:environment:<name>"
            )
        assert condition["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"


def test_every_workflow_job_assumes_a_role_that_trusts_it():
    toolchain, _ = effective_template("toolchain", CiProvider="github-actions")
    for name, workflow in workflows().items():
        for job_id, job in workflow["jobs"].items():
            for _, role, environment in assumed_roles(job):
                statement = toolchain["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
                subjects = [
                    s["Fn::Sub"] if isinstance(s, dict) else s
                    for s in iam_rules.as_list(
                        statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
                    )
                ]
                expected = (
                    "repo:${FullRepositoryId}:environment:" + environment
                    if environment
                    else "repo:${FullRepositoryId}:ref:refs/heads/${BranchName}"
                )
                assert expected in subjects, f"{name} job {job_id} assumes {role}, which does not trust {expected}"


# ------------------------------------------------------------------------------------------- pipelines
def test_pipelines_that_change_production_wait_for_an_approval_first():
    """CodePipeline runs every new pipeline once on creation: a production change must sit behind an approval."""
    toolchain, _ = effective_template("toolchain", CiProvider="codepipeline")
    projects = resources(toolchain, "AWS::CodeBuild::Project")
    checked = 0
    for name, pipeline in resources(toolchain, "AWS::CodePipeline::Pipeline").items():
        assert pipeline["Properties"].get("RestartExecutionOnUpdate") is not True, f"{name} reruns on every update"
        approved = False
        for stage in pipeline["Properties"]["Stages"]:
            stage_approved = approved
            for action in sorted(stage["Actions"], key=lambda a: a.get("RunOrder", 1)):
                kind = action["ActionTypeId"]
                if (kind["Category"], kind["Provider"]) == ("Approval", "Manual"):
                    stage_approved = True
                    continue
                if kind["Provider"] != "CodeBuild":
                    continue
                project = projects[action["Configuration"]["ProjectName"]["Ref"]]["Properties"]
                environment = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
                overrides = json.loads(action["Configuration"].get("EnvironmentVariables", "[]"))
                environment.update({v["name"]: v["value"] for v in overrides})
                production = environment.get("ENV") == "prod" or "#{variables." in str(environment.get("ENV"))
                if project["ServiceRole"] == {"Fn::GetAtt": ["CodeBuildReleaseRole", "Arn"]} and production:
                    checked += 1
                    assert stage_approved, (
                        f"{name}: action {action['Name']} may change production without an approval before it; "
                        "CodePipeline starts the pipeline once when it is created - add a Manual approval first"
                    )
            approved = stage_approved
    assert checked >= 2  # promotion and rollback


# ------------------------------------------------------------------------------------------- base images
def test_base_images_come_from_a_registry_without_pull_limits_pinned_by_digest():
    dockerfiles = sorted(p for p in ROOT.rglob("Dockerfile*") if ".git" not in p.parts and "build" not in p.parts)
    assert dockerfiles
    for path in dockerfiles:
        stages: set[str] = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if not parts or parts[0].upper() != "FROM":
                continue
            words = [w for w in parts[1:] if not w.startswith("--")]
            image = words[0]
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
            if image.lower() in stages or image == "scratch":
                continue
            where = f"{path.relative_to(ROOT)}: FROM {image}"
            assert UNLIMITED_REGISTRIES.match(image), (
                f"{where} - Docker Hub rate-limits anonymous pulls (CodeBuild shares addresses): use ECR Public's "
                "mirror public.ecr.aws/docker/library/<image>"
            )
            assert PINNED.search(image), (
                f"{where} - pin the digest: docker buildx imagetools inspect <image:tag>, then append @sha256:<digest>"
            )


# ------------------------------------------------------------------------------------------- image expiry
def could_match_a_commit(selection: dict) -> bool:
    """Whether an ECR lifecycle selection may pick an image tagged with a commit id (the tag model packages use)."""
    status = selection["tagStatus"]
    if status == "untagged":
        return False
    if status == "any":
        return True
    for prefix in selection.get("tagPrefixList", []):
        if re.fullmatch(r"[0-9a-f]{0,40}", prefix):
            return True
    for pattern in selection.get("tagPatternList", []):
        literal = pattern.replace("*", "")
        if re.fullmatch(r"[0-9a-f]*", literal) and (len(literal) <= 40 if "*" in pattern else COMMIT.match(literal)):
            return True
    return False


def test_lifecycle_rules_never_expire_an_image_a_model_package_references():
    repositories = resources(load("toolchain"), "AWS::ECR::Repository")
    assert repositories
    for name, repository in repositories.items():
        policy = json.loads(repository["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"])
        for rule in policy["rules"]:
            if rule["action"]["type"] != "expire":
                continue
            assert not could_match_a_commit(rule["selection"]), (
                f"{name}: lifecycle rule {rule['rulePriority']} ({rule['selection']}) may expire an image tagged "
                "with a commit, which a registered model package or a running endpoint may still reference - "
                'expire only "untagged" images'
            )


def test_the_lifecycle_check_catches_rules_that_expire_commits():
    assert could_match_a_commit({"tagStatus": "any"})
    assert could_match_a_commit({"tagStatus": "tagged", "tagPrefixList": ["a1"]})
    assert could_match_a_commit({"tagStatus": "tagged", "tagPatternList": ["*"]})
    assert not could_match_a_commit({"tagStatus": "tagged", "tagPrefixList": ["pr-"]})
    assert not could_match_a_commit({"tagStatus": "untagged"})


# ------------------------------------------------------------------------------------------- deletion
RETAINED_BY_NATURE = {
    "AWS::S3::Bucket": "CloudFormation cannot delete a bucket that holds objects",
    "AWS::SageMaker::ModelPackageGroup": "SageMaker refuses to delete a group that holds model versions",
}


def references(node: Any) -> set[str]:
    found = set()
    for item in iam_rules.walk(node):
        if isinstance(item, dict) and "Ref" in item:
            found.add(item["Ref"])
        elif isinstance(item, dict) and "Fn::GetAtt" in item:
            found.add(item["Fn::GetAtt"][0])
        elif isinstance(item, dict) and "Fn::Sub" in item:
            text = item["Fn::Sub"] if isinstance(item["Fn::Sub"], str) else item["Fn::Sub"][0]
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([A-Za-z0-9.]+)\}", text)}
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_can_be_deleted_and_states_what_it_keeps(stack):
    template = load(stack)
    retained = {}
    for name, resource in template["Resources"].items():
        kind = resource["Type"]
        policy = resource.get("DeletionPolicy", "Delete")
        reason = resource.get("Metadata", {}).get("RetainedOnDelete", "")
        if kind in RETAINED_BY_NATURE:
            assert policy == "Retain", f"{stack} {name}: {RETAINED_BY_NATURE[kind]} - set DeletionPolicy: Retain"
        if kind == "AWS::ECR::Repository":
            assert resource["Properties"].get("EmptyOnDelete") is True or policy == "Retain", (
                f"{stack} {name}: a repository with images cannot be deleted - set EmptyOnDelete: true"
            )
        if policy in ("Retain", "RetainExceptOnCreate", "Snapshot"):
            assert len(reason) > 40, f"{stack} {name} is kept on deletion: say why in Metadata RetainedOnDelete"
            assert resource.get("UpdateReplacePolicy") == policy, f"{stack} {name}: keep it on replacement too"
            retained[name] = resource
    for name, resource in retained.items():
        for used in references(resource.get("Properties", {})) & set(template["Resources"]):
            if template["Resources"][used]["Type"] == "AWS::KMS::Key":
                assert used in retained, f"{stack}: {name} is kept but its key {used} is deleted with the stack"
    readme = README.read_text(encoding="utf-8")
    missing = [name for name in retained if f"`{name}`" not in readme]
    assert not missing, f"infra/README.md must state what is kept when {stack} is deleted: {missing}"


# ------------------------------------------------------------------------------------------- encryption, tokens
def test_eventbridge_may_use_the_key_without_conditions_it_cannot_meet():
    if not (LIB / "monitoring.yaml").is_file():
        pytest.skip("monitoring is not included: no encrypted topic EventBridge publishes to")
    statements = load("toolchain")["Resources"]["KmsKey"]["Properties"]["KeyPolicy"]["Statement"]
    events = [
        s
        for s in statements
        if isinstance(s, dict)
        and "events" in json.dumps(s.get("Principal", {}))
        and "kms:GenerateDataKey*" in iam_rules.as_list(s["Action"])
    ]
    assert events, "the key policy must let EventBridge encrypt messages for the monitoring topic"
    for statement in events:
        condition = json.dumps(statement.get("Condition", {}))
        assert "aws:SourceAccount" not in condition and "aws:SourceArn" not in condition, (
            "EventBridge's KMS requests for an SNS target carry no aws:SourceAccount/aws:SourceArn: with such a "
            "condition the failed-run notifications are dropped"
        )


def test_the_template_update_stage_gets_a_push_token_when_one_is_given():
    with_token, _ = effective_template(
        "toolchain", TemplateUpdateTokenSecretArn="arn:aws:secretsmanager:us-east-1:123456789012:secret:push-AbCdEf"
    )
    without, _ = effective_template("toolchain")

    def variables(template: dict) -> dict[str, dict]:
        project = template["Resources"]["TemplateUpdateProject"]["Properties"]
        return {v["Name"]: v for v in project["Environment"]["EnvironmentVariables"]}

    token = variables(with_token)["GH_TOKEN"]
    assert (token["Type"], token["Value"]) == ("SECRETS_MANAGER", {"Ref": "TemplateUpdateTokenSecretArn"})
    assert "GH_TOKEN" not in variables(without)
    assert {"SOURCE_PROVIDER", "FULL_REPOSITORY_ID"} <= variables(without).keys()
    statements = iam_rules.role_statements(with_token, "CodeBuildBuildRole")
    assert any(
        "secretsmanager:GetSecretValue" in iam_rules.as_list(s["Action"])
        and s["Resource"] == {"Ref": "TemplateUpdateTokenSecretArn"}
        for s in statements
    )
    assert not [s for s in iam_rules.role_statements(without, "CodeBuildBuildRole") if "secretsmanager" in str(s)]
