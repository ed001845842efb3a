"""The SageMaker Projects catalog (catalog/): seeding a project's repository, and the AWS side.

The seeding job is tested here, with the template's own cookiecutter, against a local bare git remote. The
registration CLI and the CloudFormation templates need boto3, moto, cfn-lint and checkov, which this
environment does not have: their suite (catalog/tests) runs in the AWS environment, as a subprocess.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.artifacts import build_bundle
from catalog.seed import seed_repository
from tests.baking import ROOT, git

VERSION = "v0.0.0"
ANSWERS = {"ci_provider": "github-actions", "problem_type": "regression"}


PLAIN = ("-o", "addopts=-ra --strict-markers")


def tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file below root (outside .git): contents and whether it is executable."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] != ".git":
            files[relative.as_posix()] = (path.read_bytes(), bool(path.stat().st_mode & stat.S_IXUSR))
    return files


@pytest.fixture(scope="module")
def bundle(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(template_repo, VERSION, VERSION, tmp_path_factory.mktemp("release"))


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True)
    return path


def seed(bundle: Path, remote: Path, workdir: Path, template_url: str, name: str = "churn-model") -> str:
    workdir.mkdir()
    return seed_repository.seed(
        bundle=bundle,
        version=VERSION,
        project_name=name,
        answers=ANSWERS,
        template_url=template_url,
        remote=str(remote),
        branch="main",
        workdir=workdir,
    )


def test_seeded_repository_equals_a_cookiecutter_bake_with_the_same_name(
    template_repo: Path, bundle: Path, remote: Path, tmp_path: Path
) -> None:
    from cookiecutter.main import cookiecutter

    template_url = f"git+file://{template_repo}"  # git+: cookiecutter clones it like a hosted template
    commit = seed(bundle, remote, tmp_path / "seed", template_url)

    pushed = tmp_path / "pushed"
    subprocess.run(["git", "clone", "--quiet", "--branch", "main", str(remote), str(pushed)], check=True)
    assert git(pushed, "rev-parse", "HEAD").strip() == commit
    assert git(pushed, "status", "--porcelain", "--ignored") == ""

    config = tmp_path / "cookiecutter.yaml"
    config.write_text(f"cookiecutters_dir: '{tmp_path / 'cc'}'\nreplay_dir: '{tmp_path / 'replay'}'\n")
    direct = Path(
        cookiecutter(
            template_url,
            checkout=VERSION,
            no_input=True,
            extra_context={**ANSWERS, "project_name": "churn-model"},
            output_dir=str(tmp_path / "direct"),
            config_file=str(config),
        )
    )
    assert direct.name == "churn_model"
    expected, actual = tree(direct), tree(pushed)
    assert sorted(actual) == sorted(expected)
    assert [name for name in expected if actual[name] != expected[name]] == []
    answers_file = actual[".copier-answers.yml"][0].decode()
    assert f"_commit: {VERSION}\n" in answers_file
    assert f"_src_path: {template_url}\n" in answers_file


def test_a_non_empty_repository_is_refused_and_left_unchanged(
    template_repo: Path, bundle: Path, remote: Path, tmp_path: Path
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    git(existing, "init", "--quiet", "--initial-branch=main")
    (existing / "README.md").write_text("already here\n")
    git(existing, "add", "README.md")
    git(existing, "commit", "--quiet", "-m", "first")
    git(existing, "push", "--quiet", str(remote), "HEAD:refs/heads/main")
    before = git(remote, "for-each-ref")

    with pytest.raises(
        seed_repository.SeedError, match=r"is not empty .*refs/heads/main.*never overwrites"
    ) as error:
        seed(bundle, remote, tmp_path / "seed", f"file://{template_repo}")
    assert error.value.exit_code == 2
    assert git(remote, "for-each-ref") == before


@pytest.mark.parametrize("name", ["churn model", "churn_model", "1churn", "churn-", "c" * 33])
def test_a_bad_project_name_is_refused_before_anything_is_written(
    template_repo: Path, bundle: Path, remote: Path, tmp_path: Path, name: str
) -> None:
    with pytest.raises(
        seed_repository.SeedError, match=f"project name '{name}' is not a SageMaker project name"
    ):
        seed(bundle, remote, tmp_path / "seed", f"file://{template_repo}", name=name)
    assert git(remote, "for-each-ref") == ""


def test_a_name_the_template_rejects_is_refused_with_the_templates_message(
    template_repo: Path, bundle: Path, remote: Path, tmp_path: Path
) -> None:
    with pytest.raises(seed_repository.SeedError, match="project_slug 'class' is a Python keyword") as error:
        seed(bundle, remote, tmp_path / "seed", f"file://{template_repo}", name="class")
    assert error.value.exit_code == 2
    assert git(remote, "for-each-ref") == ""


def test_the_seeding_command_line_pushes_and_then_refuses(
    template_repo: Path, bundle: Path, remote: Path, tmp_path: Path
) -> None:
    """What the CodeBuild job runs (buildspec.yml): answers from the registration's answers.json."""
    answers = tmp_path / "answers.json"
    answers.write_text('{"ci_provider": "github-actions"}\n')
    command = [
        sys.executable,
        str(ROOT / "catalog/seed/seed_repository.py"),
        "--bundle",
        str(bundle),
        "--version",
        VERSION,
        "--project-name",
        "fraud-scoring",
        "--template-url",
        f"git+file://{template_repo}",
        "--answers-file",
        str(answers),
        "--branch",
        "main",
        "--remote",
        str(remote),
    ]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert re.match(
        rf"Pushed [0-9a-f]{{40}} to {re.escape(str(remote))} branch main \(template {VERSION}\)", first.stdout
    )
    assert 'name = "fraud_scoring"' in git(remote, "show", "main:pyproject.toml")
    assert git(remote, "ls-tree", "--name-only", "main", ".github/workflows/").strip()

    second = subprocess.run(command, capture_output=True, text=True)
    assert second.returncode == 2
    assert second.stderr.startswith("seeding refused: repository ") and "is not empty" in second.stderr


# --- The AWS side, in the AWS environment ---------------------------------------------------------------

CATALOG = ROOT / "catalog"
CALLED_THROUGH_API = re.compile(r"\.(?:call|pages|op|portfolio_op)\(\s*\"([a-z0-9_]+)\"")
CALLED_ON_CLIENT = re.compile(r"client\(\"[a-z0-9-]+\"\)\.([a-z0-9_]+)\(")
CALLED_INLINE = re.compile(r"\b(?:codebuild|sagemaker)\.([a-z0-9_]+)\(")


def aws_operations_in_source() -> set[str]:
    """Every AWS operation the catalog's code can call: registration, seeding script, inline functions."""
    found = set()
    for path in CATALOG.glob("*.py"):
        found |= set(CALLED_THROUGH_API.findall(path.read_text(encoding="utf-8")))
    found |= set(
        CALLED_ON_CLIENT.findall((CATALOG / "seed" / "seed_repository.py").read_text(encoding="utf-8"))
    )
    for path in CATALOG.glob("*.yaml"):
        found |= set(CALLED_INLINE.findall(path.read_text(encoding="utf-8")))
    return found


@pytest.fixture(scope="module")
def aws_suite(
    aws_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess, set[str]]:
    """catalog/tests in the AWS environment (boto3, moto, cfn-lint), recording each AWS operation it makes."""
    from botocore import xform_name

    log = tmp_path_factory.mktemp("calls") / "calls.log"
    env = {
        **os.environ,
        "CATALOG_CALL_LOG": str(log),
        "CATALOG_COOKIECUTTER": str(Path(sys.executable).parent / "cookiecutter"),
    }
    result = subprocess.run(
        # The template's addopts ask for pytest-xdist, which the AWS environment lacks: plain options (PLAIN).
        [
            str(aws_venv / "bin" / "python"),
            "-m",
            "pytest",
            "catalog/tests",
            "-q",
            "-p",
            "no:cacheprovider",
            *PLAIN,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return result, {xform_name(line.split()[1]) for line in lines}


def test_the_registration_and_seeding_suite_passes_against_moto_and_the_stubber(aws_suite) -> None:
    result, _ = aws_suite
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_every_aws_call_in_the_catalog_is_exercised(aws_suite) -> None:
    _, called = aws_suite
    in_source = aws_operations_in_source()
    assert {
        "put_bucket_cors",
        "add_tags",
        "create_constraint",
        "associate_principal_with_portfolio",
    } <= in_source
    assert sorted(in_source - called) == []


def test_checkov_passes_on_every_catalog_template(checkov_bin: Path) -> None:
    result = subprocess.run(
        [
            str(checkov_bin),
            "--directory",
            str(CATALOG),
            "--framework",
            "cloudformation",
            "--quiet",
            "--compact",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    import json

    report = json.loads(result.stdout)
    assert report["summary"]["failed"] == 0, result.stdout
    assert report["summary"]["passed"] > 0
    for path in CATALOG.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert text.count("- id: CKV_") == text.count("comment: "), (
            f"{path.name}: every checkov skip says why"
        )
