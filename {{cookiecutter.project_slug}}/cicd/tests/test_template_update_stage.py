"""The template-update stage's push, run from the buildspec itself: CodeConnections clones are read-only.

The stage's last command is run in bash in a throw-away repository whose `make update-template` is a stand-in
that changes a file (the update itself is tested in the template's own suite); the remote is a local bare
repository, reached through git's `insteadOf` for the HTTPS address the stage builds from the token.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILDSPEC = ROOT / "pipeline" / "buildspec" / "template-update.yml"
IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def checkout(tmp_path) -> tuple[Path, Path]:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    work = tmp_path / "work"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    (work / "README.md").write_text("v1\n", encoding="utf-8")
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "--message", "first")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_make = bin_dir / "make"
    fake_make.write_text('#!/bin/bash\necho "template v2" >> README.md\n', encoding="utf-8")
    fake_make.chmod(0o755)
    fake_gh = bin_dir / "gh"  # never reach GitHub from a test
    fake_gh.write_text('#!/bin/bash\necho "gh: offline" >&2\nexit 1\n', encoding="utf-8")
    fake_gh.chmod(0o755)
    return work, remote


def push_command() -> str:
    commands = yaml.safe_load(BUILDSPEC.read_text(encoding="utf-8"))["phases"]["build"]["commands"]
    return next(c for c in commands if "git push" in c)


def run_stage(work: Path, **env: str) -> subprocess.CompletedProcess:
    variables = yaml.safe_load(BUILDSPEC.read_text(encoding="utf-8"))["env"]["variables"]
    environment = {
        **os.environ,
        **IDENTITY,
        **{k: str(v) for k, v in variables.items()},
        "PATH": f"{work.parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "UPDATE_AVAILABLE": "true",
        "FULL_REPOSITORY_ID": "example-org/fraud-model",
        **env,
    }
    if "GH_TOKEN" not in env:
        environment.pop("GH_TOKEN", None)
    return subprocess.run(
        ["bash", "-c", push_command()], cwd=work, env=environment, capture_output=True, text=True, timeout=60
    )


def branches(remote: Path) -> list[str]:
    return git(remote, "branch", "--format=%(refname:short)").split()


def test_a_codeconnections_source_without_a_token_fails_naming_the_parameter(checkout):
    work, remote = checkout
    result = run_stage(work, SOURCE_PROVIDER="CodeConnections")
    assert result.returncode == 1
    assert "TemplateUpdateTokenSecretArn" in result.stdout and "example-org/fraud-model" in result.stdout
    assert branches(remote) == ["main"]


def test_a_codeconnections_source_pushes_with_the_token_to_the_connected_repository(checkout):
    work, remote = checkout
    address = "https://x-access-token:s3cret@github.com/example-org/fraud-model.git"
    git(work, "config", f"url.{remote}.insteadOf", address)
    result = run_stage(work, SOURCE_PROVIDER="CodeConnections", GH_TOKEN="s3cret")
    assert result.returncode == 0, result.stdout + result.stderr
    pushed = [b for b in branches(remote) if b.startswith("template-update/")]
    assert len(pushed) == 1
    assert "template v2" in git(remote, "show", f"{pushed[0]}:README.md")


def test_other_sources_push_to_their_own_remote(checkout):
    work, remote = checkout
    result = run_stage(work, SOURCE_PROVIDER="CodeCommit")
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(b.startswith("template-update/") for b in branches(remote))
