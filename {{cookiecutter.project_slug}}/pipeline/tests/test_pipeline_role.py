"""pipeline/sagemaker_pipeline.py runs here as the role that runs it on AWS, with moto's IAM enforcement on.

The train stage runs `make pipeline-remote` (sagemaker_pipeline.py upsert --start --wait): in CodePipeline the
CodeBuild project whose buildspec is pipeline/buildspec/train.yml, with its service role; in GitHub Actions
.github/workflows/train.yml, with the role of vars.AWS_CI_ROLE_ARN (the toolchain's GitHubCiRole). The role's
policies are read from infra/lib/toolchain.yaml by release/tests/roles.py (conditions resolved, resources widened
for moto), so an action the script calls and the policy lacks fails here, not on the first real training run.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeline import sagemaker_api
from pipeline import sagemaker_pipeline as sp
from pipeline import sagemaker_settings as ss
from pipeline.tests.test_sagemaker_pipeline import REGION, SSM_VALUES, put_data, put_ssm
from release.tests import roles

ROOT = Path(__file__).resolve().parents[2]
ROLE = roles.ROLES[roles.ci_provider()]["build"]
BUCKET = SSM_VALUES["artifact-bucket"]
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
UPSERT = ["upsert", "--env", "dev", "--region", REGION, "--image-tag", "c0ffee", "--start"]
DENIED = re.compile(r"AccessDenied|not authorized", re.IGNORECASE)


_DEFINITIONS: dict[str, dict] = {}


@pytest.fixture(autouse=True)
def build_each_definition_once(monkeypatch):
    """The definition is built offline (test_sagemaker_pipeline.py proves it makes no call): once per settings."""
    build = sp.definition_json

    def cached(settings: ss.Settings) -> dict:
        key = repr(settings)
        if key not in _DEFINITIONS:
            _DEFINITIONS[key] = build(settings)
        return copy.deepcopy(_DEFINITIONS[key])

    monkeypatch.setattr(sp, "definition_json", cached)


@pytest.fixture
def toolchain(aws_env):
    """What the toolchain stack leaves behind: its SSM parameters and the raw data under the artifact bucket."""
    put_ssm(REGION, {**SSM_VALUES, "kms-key-arn": KMS_KEY})
    put_data()
    return aws_env


def test_the_role_is_the_one_that_runs_the_train_stage():
    """The train stage is pipeline/buildspec/train.yml (make pipeline-remote: sagemaker_pipeline.py upsert --start);
    CodeBuild runs it with its project's service role, GitHub Actions (cicd/run_stage.py) with AWS_CI_ROLE_ARN."""
    assert "make pipeline-remote" in (ROOT / "pipeline" / "buildspec" / "train.yml").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-m pipeline.sagemaker_pipeline upsert --env $(ENV) --start" in makefile
    arn_of_role = ({"Fn::GetAtt": [ROLE, "Arn"]}, {"Fn::GetAtt": f"{ROLE}.Arn"})
    if roles.ci_provider() == "codepipeline":
        (project,) = [
            r
            for r in roles.toolchain_resources().values()
            if r["Type"] == "AWS::CodeBuild::Project"
            and r["Properties"]["Source"].get("BuildSpec") == "pipeline/buildspec/train.yml"
        ]
        assert project["Properties"]["ServiceRole"] in arn_of_role
    else:
        workflow = (ROOT / ".github" / "workflows" / "train.yml").read_text(encoding="utf-8")
        assert re.search(r"role-to-assume: \$\{\{ vars\.AWS_CI_ROLE_ARN \}\}", workflow)
        assert "python -m cicd.run_stage train" in workflow
        runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
        assert 'AWS_CI_ROLE_ARN --body "$(outputs GitHubCiRoleArn)"' in runbook
        outputs = roles.load_template(roles.TOOLCHAIN)[1]["Outputs"]
        assert outputs["GitHubCiRoleArn"]["Value"] in arn_of_role


def test_upsert_and_start_run_as_the_train_role(toolchain, moto_url, monkeypatch, capsys):
    with roles.acting_as(ROLE, moto_url, BUCKET, monkeypatch):
        assert sp.main(UPSERT) == 0, capsys.readouterr().err  # SSM, S3 listing, describe + create, start
        assert sp.main(UPSERT) == 0, capsys.readouterr().err  # describe + update, start
    out = capsys.readouterr().out
    assert "created pipeline" in out and "updated pipeline" in out and out.count("started execution") == 2
    sm = boto3.client("sagemaker", region_name=REGION)
    executions = sm.list_pipeline_executions(PipelineName=SSM_VALUES["sagemaker-pipeline-name"])
    assert len(executions["PipelineExecutionSummaries"]) == 2


@pytest.mark.parametrize("without", [[], ["sagemaker:ListPipelineExecutionSteps"]], ids=["role", "guard"])
def test_following_an_execution_is_authorised_for_the_train_role(toolchain, moto_url, monkeypatch, capsys, without):
    """--wait: moto authorises DescribePipelineExecution and ListPipelineExecutionSteps before it serves them; it
    cannot serve the second (not implemented: a 500 once authorised), so the test stops there. The guard takes
    ListPipelineExecutionSteps out of the role: the same call is then refused."""
    with roles.acting_as(ROLE, moto_url, BUCKET, monkeypatch, without=without):
        assert sp.main(UPSERT) == 0, capsys.readouterr().err
        execution = capsys.readouterr().out.split("started execution ")[1].split()[0]
        client = boto3.Session(region_name=REGION).client("sagemaker")  # a new session: the role's credentials
        with pytest.raises(ClientError) as failure:
            sagemaker_api.wait(client, execution, poll_seconds=0, out=lambda line: None)
    assert failure.value.operation_name == "ListPipelineExecutionSteps"
    if without:
        assert DENIED.search(str(failure.value)), failure.value
    else:  # authorised, then moto's "not implemented"
        assert failure.value.response["Error"]["Code"] == "500", failure.value


@pytest.mark.parametrize(
    ("action", "step"),
    [
        ("ssm:GetParameter", "reading the toolchain's SSM parameters"),
        ("s3:ListBucket", "listing the input data for its version"),
        ("sagemaker:DescribePipeline", "looking the pipeline up"),
        ("sagemaker:CreatePipeline", "creating the pipeline"),
        ("sagemaker:StartPipelineExecution", "starting an execution"),
    ],
)
def test_an_action_missing_from_the_role_fails_the_run(toolchain, moto_url, monkeypatch, capsys, action, step):
    """The guard itself: without `action`, moto refuses the call and the script fails naming it."""
    with roles.acting_as(ROLE, moto_url, BUCKET, monkeypatch, without=[action]):
        code = sp.main(UPSERT)
    err = capsys.readouterr().err
    assert code != 0, f"the run passed without {action} ({step})"
    assert action in err, err  # moto names the action it refused; the script passes the message on
