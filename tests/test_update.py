"""A repository born from cookiecutter can take template fixes later with `copier update`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import copier
import yaml

from tests.baking import ANSWERS_FILE, TEMPLATE_DIR_NAME, bake_cookiecutter, git, make_template_repo

ANSWERS = {"project_name": "Fraud Score", "license": "MIT", "problem_type": "regression"}


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-verify", "--message", message)


def test_cookiecutter_born_project_is_updated_by_copier(tmp_path):
    template = make_template_repo(tmp_path / "template", tag="v1.0.0")
    project = bake_cookiecutter(template, ANSWERS, tmp_path / "projects")
    recorded = yaml.safe_load((project / ANSWERS_FILE).read_text(encoding="utf-8"))
    assert recorded["_commit"] == "v1.0.0"
    assert recorded["_src_path"] == str(template)

    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "generated")
    # The team edits a generated file and adds its own.
    license_path = project / "LICENSE"
    license_path.write_text(license_path.read_text().replace("MIT License", "MIT License (Fraud team)", 1))
    (project / "NOTES.md").write_text("Our own notes.\n")
    commit_all(project, "local edits")

    # The template ships a fix to the same file (far from the local edit) and a new file, as release v1.1.0.
    template_license = template / TEMPLATE_DIR_NAME / "LICENSE"
    template_license.write_text(
        template_license.read_text().replace("SOFTWARE.\n", "SOFTWARE.\n\nSee NOTICE.\n", 1)
    )
    (template / TEMPLATE_DIR_NAME / "NOTICE").write_text("{{ cookiecutter.project_name }} notice.\n")
    commit_all(template, "template fix")
    git(template, "tag", "v1.1.0")

    copier.run_update(str(project), defaults=True, overwrite=True, unsafe=False, quiet=True)

    updated_license = license_path.read_text()
    assert "MIT License (Fraud team)" in updated_license, "local edit lost"
    assert "See NOTICE." in updated_license, "template fix not applied"
    assert (project / "NOTICE").read_text() == "Fraud Score notice.\n"
    assert (project / "NOTES.md").read_text() == "Our own notes.\n"
    assert not list(project.rglob("*.rej"))
    assert "<<<<<<<" not in updated_license
    after = yaml.safe_load((project / ANSWERS_FILE).read_text(encoding="utf-8"))
    assert after["_commit"] == "v1.1.0"
    assert {key: after[key] for key in ANSWERS} == ANSWERS


def test_changing_the_license_answer_on_update_prunes_the_license(tmp_path):
    """_exclude is re-evaluated on update, so the prune table also applies to changed answers."""
    template = make_template_repo(tmp_path / "template", tag="v1.0.0")
    project = bake_cookiecutter(template, ANSWERS, tmp_path / "projects")
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "generated")
    assert (project / "LICENSE").exists()

    copier.run_update(
        str(project), data={"license": "Proprietary"}, defaults=True, overwrite=True, unsafe=False, quiet=True
    )

    assert not (project / "LICENSE").exists()
    assert yaml.safe_load((project / ANSWERS_FILE).read_text(encoding="utf-8"))["license"] == "Proprietary"


def test_relative_template_path_is_recorded_as_absolute(tmp_path):
    """A relative ``_src_path`` would break later updates, so the hook records the absolute checkout path."""
    template = make_template_repo(tmp_path / "template")
    subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", "out", "template"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    answers_file = tmp_path / "out" / "customer_churn" / ANSWERS_FILE
    recorded = yaml.safe_load(answers_file.read_text(encoding="utf-8"))
    assert recorded["_src_path"] == str(template)
    assert recorded["_commit"] == "v0.0.0"


def test_template_outside_git_records_no_commit_under_either_tool(tmp_path):
    repo = make_template_repo(tmp_path / "repo")
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    from_cookiecutter = bake_cookiecutter(plain, ANSWERS, tmp_path / "cc")
    copier.run_copy(str(plain), str(tmp_path / "cp"), data=ANSWERS, defaults=True, unsafe=False, quiet=True)
    answers = (from_cookiecutter / ANSWERS_FILE).read_text(encoding="utf-8")
    assert answers == (tmp_path / "cp" / ANSWERS_FILE).read_text(encoding="utf-8")
    assert "_commit" not in yaml.safe_load(answers)
