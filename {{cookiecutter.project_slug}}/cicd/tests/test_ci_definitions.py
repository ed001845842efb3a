"""The CI/CD definitions: run_stage.py behaves like CodeBuild, and check_ci.py accepts this repository and catches
broken buildspecs and workflows. Runs in the AWS environment (make test-aws)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RUN_STAGE = ("-m", "cicd.run_stage")  # run from the repository root, as the workflows do
CHECK_CI = ("-m", "cicd.check_ci")


def commands(*lines: str, **options: str) -> dict:
    """One buildspec phase: its commands, and options such as on-failure."""
    return {key.replace("_", "-"): value for key, value in options.items()} | {"commands": list(lines)}


def write_stage(tmp_path: Path, phases: dict, env: dict | None = None, version: object = 0.2) -> Path:
    """Write a small buildspec (phases in the order given) to tmp_path/spec/stage.yml, as CodeBuild reads it."""
    spec = {"version": version} | ({"env": env} if env else {}) | {"phases": phases}
    path = tmp_path / "spec" / "stage.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def run_stage(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("CODEBUILD_", "GITHUB_"))}
    environ.update(env or {})
    return subprocess.run(
        [
            sys.executable,
            *RUN_STAGE,
            "stage",
            "--buildspec-dir",
            str(tmp_path / "spec"),
            "--source-dir",
            str(source),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
        timeout=120,
        check=False,
    )


def test_phases_run_in_codebuild_order(tmp_path: Path) -> None:
    write_stage(
        tmp_path,
        {
            phase: commands(f"echo {word} >> order.txt")
            for phase, word in [
                ("post_build", "post"),
                ("build", "build"),
                ("install", "install"),
                ("pre_build", "pre"),
            ]
        },
    )
    result = run_stage(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "src" / "order.txt").read_text().split() == ["install", "pre", "build", "post"]


def test_directory_exports_and_shell_variables_carry_over_between_commands_and_phases(tmp_path: Path) -> None:
    write_stage(
        tmp_path,
        {
            "install": commands("mkdir -p sub && cd sub", "export EXPORTED=one", "PLAIN=two"),
            "build": commands('echo "$GREETING $EXPORTED $PLAIN $(basename "$PWD")" > ../carried.txt'),
        },
        env={"variables": {"GREETING": "hello"}},
    )
    result = run_stage(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "src" / "carried.txt").read_text().strip() == "hello one two sub"


def test_environment_overrides_buildspec_variables(tmp_path: Path) -> None:
    write_stage(tmp_path, {"build": commands('echo "$ENV" > env.txt')}, env={"variables": {"ENV": "prod"}})
    assert run_stage(tmp_path, env={"ENV": "staging"}).returncode == 0
    assert (tmp_path / "src" / "env.txt").read_text().strip() == "staging"


def test_failing_build_fails_the_stage_but_post_build_and_finally_still_run(tmp_path: Path) -> None:
    build = commands("echo before >> log.txt", "exit 3", "echo never >> log.txt") | {
        "finally": ["echo finally >> log.txt"]
    }
    post_build = commands('echo "post succeeding=$CODEBUILD_BUILD_SUCCEEDING" >> log.txt')
    write_stage(tmp_path, {"build": build, "post_build": post_build})
    result = run_stage(tmp_path)
    assert result.returncode == 1
    assert (tmp_path / "src" / "log.txt").read_text().splitlines() == ["before", "finally", "post succeeding=0"]
    assert "exit code 3" in result.stdout
    assert "FAILED" in result.stdout


def test_failing_pre_build_skips_the_later_phases(tmp_path: Path) -> None:
    write_stage(
        tmp_path,
        {"pre_build": commands("exit 1"), "build": commands("touch built"), "post_build": commands("touch posted")},
    )
    assert run_stage(tmp_path).returncode == 1
    assert not (tmp_path / "src" / "built").exists()
    assert not (tmp_path / "src" / "posted").exists()


def test_on_failure_continue_runs_the_next_phase_and_still_fails_the_stage(tmp_path: Path) -> None:
    write_stage(
        tmp_path, {"install": commands("exit 1", on_failure="CONTINUE"), "pre_build": commands("touch continued")}
    )
    assert run_stage(tmp_path).returncode == 1
    assert (tmp_path / "src" / "continued").exists()


def test_phases_option_runs_only_the_selected_phases(tmp_path: Path) -> None:
    write_stage(
        tmp_path,
        {"install": commands("touch installed"), "build": commands("touch built")},
        env={"parameter-store": {"NEEDS_AWS": "/project/never-read"}},
    )
    result = run_stage(tmp_path, "--phases", "install", "--skip-parameter-store")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "src" / "installed").exists()
    assert not (tmp_path / "src" / "built").exists()


def test_wrong_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    write_stage(tmp_path, {"build": commands("true")}, version=0.1)
    result = run_stage(tmp_path)
    assert result.returncode == 2
    assert "version: 0.2" in result.stderr


def echo_parameter(tmp_path: Path, variable: str, name: str) -> None:
    """A stage whose build writes one parameter-store variable to uri.txt."""
    write_stage(
        tmp_path, {"build": commands(f'echo "${variable}" > uri.txt')}, env={"parameter-store": {variable: name}}
    )


def test_parameter_store_value_taken_from_the_environment_when_set(tmp_path: Path) -> None:
    echo_parameter(tmp_path, "IMAGE_URI", "/project/train-image-uri")
    result = run_stage(tmp_path, env={"IMAGE_URI": "from-env", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "src" / "uri.txt").read_text().strip() == "from-env"


@pytest.fixture()
def moto_ssm(aws_env, moto_url) -> dict[str, str]:
    """An SSM parameter in moto (the root conftest's server); the environment a stage subprocess needs to reach it."""
    boto3 = pytest.importorskip("boto3")
    boto3.client("ssm", region_name=aws_env).put_parameter(
        Name="/project/train-image-uri",
        Value="111122223333.dkr.ecr.us-east-1.amazonaws.com/train",
        Type="String",
        Overwrite=True,
    )
    names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_MAX_ATTEMPTS")
    return {name: os.environ[name] for name in names}


def test_parameter_store_values_are_read_from_ssm(tmp_path: Path, moto_ssm: dict[str, str]) -> None:
    echo_parameter(tmp_path, "TRAIN_IMAGE_URI", "/project/train-image-uri")
    result = run_stage(tmp_path, env=moto_ssm)
    assert result.returncode == 0, result.stdout + result.stderr
    uri = (tmp_path / "src" / "uri.txt").read_text().strip()
    assert uri == "111122223333.dkr.ecr.us-east-1.amazonaws.com/train"


def test_missing_ssm_parameter_names_the_variable_and_the_fix(tmp_path: Path, moto_ssm: dict[str, str]) -> None:
    echo_parameter(tmp_path, "MISSING", "/project/not-there")
    result = run_stage(tmp_path, env=moto_ssm)
    assert result.returncode != 0
    assert "env.parameter-store.MISSING" in result.stderr and "/project/not-there" in result.stderr
    assert not (tmp_path / "src" / "uri.txt").exists()


def test_every_stage_buildspec_parses_for_run_stage() -> None:
    for stage in ("build", "train", "deploy-staging", "test-staging", "deploy-prod", "rollback", "template-update"):
        result = subprocess.run(
            [sys.executable, *RUN_STAGE, stage, "--dry-run"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{stage}: {result.stderr}"
        assert "make " in result.stdout


def check_ci(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *CHECK_CI, "--root", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_check_ci_accepts_this_repository() -> None:
    result = check_ci(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture()
def repo_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns(".venv*", ".git", "build", "registry", "__pycache__", ".*_cache", "data")
    shutil.copytree(ROOT, copy, ignore=ignore)
    return copy


def test_check_ci_catches_a_missing_make_target(repo_copy: Path) -> None:
    path = repo_copy / "pipeline" / "buildspec" / "deploy-prod.yml"
    path.write_text(path.read_text().replace("make promote DRY_RUN=1", "make promote-everything DRY_RUN=1"))
    result = check_ci(repo_copy)
    assert result.returncode == 1
    assert "pipeline/buildspec/deploy-prod.yml:" in result.stdout
    assert "no target 'promote-everything'" in result.stdout


def test_check_ci_catches_a_missing_file(repo_copy: Path) -> None:
    extra = repo_copy / "pipeline" / "buildspec" / "extra.yml"
    extra.write_text(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - docker build -f model/serving/Dockerfile .\n"
    )
    result = check_ci(repo_copy)
    assert result.returncode == 1
    assert "extra.yml:5: phases.build.commands[0]: refers to model/serving/Dockerfile" in result.stdout


def test_check_ci_catches_a_wrong_version(repo_copy: Path) -> None:
    path = repo_copy / "pipeline" / "buildspec" / "rollback.yml"
    path.write_text(path.read_text().replace("version: 0.2", "version: 0.1"))
    result = check_ci(repo_copy)
    assert result.returncode == 1
    assert "rollback.yml" in result.stdout and "version: 0.2" in result.stdout


def test_check_ci_catches_a_missing_stage(repo_copy: Path) -> None:
    (repo_copy / "pipeline" / "buildspec" / "train.yml").unlink()
    result = check_ci(repo_copy)
    assert result.returncode == 1
    assert "pipeline/buildspec/train.yml" in result.stdout


def test_check_ci_catches_a_broken_workflow(repo_copy: Path) -> None:
    workflows = repo_copy / ".github" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    (workflows / "broken.yml").write_text(
        textwrap.dedent(
            """
            name: broken
            on: push
            jobs:
              job:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/checkout
                  - run: python -m cicd.run_stage no-such-stage
                    shell: bash
                    timeout-minutes: soon
            """
        )
    )
    result = check_ci(repo_copy)
    assert result.returncode == 1
    assert ".github/workflows/broken.yml" in result.stdout
    assert "not pinned" in result.stdout
    assert "no-such-stage" in result.stdout
    assert "GitHub workflow syntax" in result.stdout  # the schema finding (timeout-minutes must be a number)
