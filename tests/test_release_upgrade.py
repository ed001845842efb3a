"""This release reaches a repository generated from the previous real release, with `make update-template`.

Only the branch lands (never tags), so the test makes the tags itself in a throw-away clone: the previous
release at the commit CHANGELOG.md records for it, and the work tree's template on top as the next release.
The repository is a real bake of that previous release, committed and edited by its team the way teams do;
after the update it keeps the team's edits, gains the release's files, and still runs its pipeline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml

from tests.baking import ANSWERS_FILE, GIT_IDENTITY, ROOT, git, template_source_files
from tests.test_generated_project import make

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

RELEASE = re.compile(r"^## \[(?P<version>\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", re.MULTILINE)
COMMIT = re.compile(r"^Commit: `(?P<commit>[0-9a-f]{7,40})`", re.MULTILINE)
CONFLICT = re.compile(rb"^<<<<<<< before updating", re.MULTILINE)
ANSWERS = {
    "project_name": "Fraud Score",
    "problem_type": "binary_classification",
    "ci_provider": "codepipeline",
}


def released() -> list[tuple[str, str]]:
    """(version, commit) of every release CHANGELOG.md records, newest first."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    out = []
    matches = list(RELEASE.finditer(text))
    for i, match in enumerate(matches):
        section = text[match.end() : matches[i + 1].start() if i + 1 < len(matches) else len(text)]
        commit = COMMIT.search(section)
        if commit:
            out.append((match["version"], commit["commit"]))
    return out


def project_version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def test_changelog_records_the_commit_of_every_release_and_the_version_is_new():
    releases = released()
    assert releases, "CHANGELOG.md records no release commit (a `Commit: `<sha>`` line under each release)"
    assert ("0.1.0", "b6ee936") in releases
    version = project_version()
    recorded = {v for v, _ in releases}
    # The version in pyproject.toml is either the newest recorded release or the one being prepared.
    assert version == releases[0][0] or version not in recorded


@pytest.fixture(scope="module")
def template_history(tmp_path_factory) -> tuple[Path, str, str]:
    """A clone of this repository with the previous release tagged at its recorded commit and the work tree's
    template committed on top, tagged as the version in pyproject.toml."""
    previous_version, previous_commit = next((v, c) for v, c in released() if v != project_version())
    clone = tmp_path_factory.mktemp("history") / "sagemaker-mlops-template"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(ROOT), str(clone)], check=True)
    try:
        git(clone, "cat-file", "-e", f"{previous_commit}^{{commit}}")
    except subprocess.CalledProcessError:
        pytest.fail(
            f"commit {previous_commit} (v{previous_version}) is not in this clone: CI needs the full history"
        )
    git(clone, "tag", f"v{previous_version}", previous_commit)
    for relpath in template_source_files():
        target = clone / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relpath, target)
    for relpath in git(clone, "ls-files", "--", "{{cookiecutter.project_slug}}", "hooks").splitlines():
        if not (ROOT / relpath).exists():
            git(clone, "rm", "--quiet", "--", relpath)
    git(clone, "add", "--all")
    git(clone, "commit", "--quiet", "--allow-empty", "--no-verify", "--message", "release under test")
    git(clone, "tag", f"v{project_version()}")
    return clone, f"v{previous_version}", f"v{project_version()}"


def test_a_repository_of_the_previous_release_takes_this_release_with_make_update_template(
    template_history, tmp_path, e2e_venv
):
    clone, previous, current = template_history
    assert previous != current, f"pyproject.toml still says {current}: bump the version for the release"
    project = tmp_path / "fraud_score"
    copier.run_copy(
        str(clone), str(project), data=ANSWERS, defaults=True, unsafe=False, quiet=True, vcs_ref=previous
    )
    assert yaml.safe_load((project / ANSWERS_FILE).read_text(encoding="utf-8"))["_commit"] == previous
    git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "--message", f"Generated from the template {previous}")

    # The team's edits: a line in the README, a hyperparameter (a file the team owns), a file of its own.
    readme = project / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nOwned by the fraud team.\n", encoding="utf-8")
    hyperparameters = project / "model" / "config" / "hyperparameters.json"
    tuned = {**json.loads(hyperparameters.read_text(encoding="utf-8")), "n_estimators": "120"}
    hyperparameters.write_text(json.dumps(tuned, indent=2) + "\n", encoding="utf-8")
    schema_before = (project / "model" / "config" / "schema.json").read_bytes()
    (project / "docs" / "team.md").write_text("# Fraud team notes\n", encoding="utf-8")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "--message", "Team edits")

    # The previous release's own `make update-template`, run by an interpreter that has the pinned copier.
    update = subprocess.run(
        [
            "make",
            "-C",
            str(project),
            "update-template",
            f"VENV={Path(sys.prefix)}",
            f"STAMP={sys.prefix}/pyvenv.cfg",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **GIT_IDENTITY},
    )
    assert update.returncode == 0, f"update failed:\n{update.stdout[-4000:]}\n{update.stderr[-4000:]}"
    after = yaml.safe_load((project / ANSWERS_FILE).read_text(encoding="utf-8"))
    assert after["_commit"] == current
    assert {key: after[key] for key in ANSWERS} == ANSWERS

    conflicts = [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.parts and CONFLICT.search(path.read_bytes())
    ]
    assert conflicts == [], f"the update left conflicts: {conflicts}"
    assert not list(project.rglob("*.rej"))
    assert "Owned by the fraud team." in readme.read_text(encoding="utf-8")
    assert json.loads(hyperparameters.read_text(encoding="utf-8"))["n_estimators"] == "120"
    assert (project / "model" / "config" / "schema.json").read_bytes() == schema_before
    assert (project / "docs" / "team.md").exists()
    for arrived in ("model/train/onnx_export.py", "model/train/draft_schema.py", "docs/own-table.md"):
        assert (project / arrived).is_file(), f"{arrived} did not arrive with {current}"

    # The updated repository works with the schema.json and configuration kept from the previous release.
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "--message", f"Template {current}")
    make(project, "setup", e2e_venv, timeout=1800)
    pipeline = make(project, "pipeline", e2e_venv, timeout=900).stdout
    assert "pipeline finished" in pipeline and "model format     | onnx" in pipeline, pipeline[-3000:]
