"""The template lifecycle: a repository generated from one release takes the next with `make update-template`.

Every test builds real releases in a temporary git repository (the work tree's template tagged v1.0.0, then
commits on top tagged v1.1.0, v2.0.0...), generates a repository from the first, commits it, makes the
team's edits, and updates through the generated repository's own ``cicd/update_template.py``.
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

from tests.baking import ANSWERS_FILE, bake_cookiecutter, git
from tests.releasing import (
    UPDATE_SCRIPT,
    commit_all,
    edit,
    first_release,
    generate,
    head,
    release,
    set_config,
    status,
    template_file,
    update_template,
)

ANSWERS = {"project_name": "Fraud Score", "problem_type": "regression"}
MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")
TEAM_FUNCTION = "\n\ndef team_metric(values):\n    return sum(values) / len(values)\n"


def answers_of(project: Path) -> dict:
    return yaml.safe_load((project / ANSWERS_FILE).read_text(encoding="utf-8"))


def files_with_markers(project: Path) -> list[str]:
    found = []
    for path in project.rglob("*"):
        if ".git" in path.parts or not path.is_file():
            continue
        lines = path.read_bytes().decode("utf-8", "replace").splitlines()
        if any(line.rstrip() in MARKERS for line in lines):
            found.append(path.relative_to(project).as_posix())
    return sorted(found)


def tracked(project: Path) -> set[str]:
    return set(git(project, "ls-files").split())


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    return first_release(tmp_path / "template")


def v1_1_fix(template: Path) -> None:
    """A typical fix release: a code change and a new file."""
    edit(template_file(template, "model/common/metrics.py"), "import json\n", "import json\nimport logging\n")
    template_file(template, "docs/upgrading.md").write_text("upgrades\n")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Releases v1.0.0 and v1.1.0, and a repository generated from v1.0.0, for tests that only read them."""
    base = tmp_path_factory.mktemp("shared")
    template = first_release(base / "template")
    pristine = generate(template, base / "fraud_score", ANSWERS)
    release(template, "v1.1.0", v1_1_fix)
    return template, pristine


@pytest.fixture
def behind(shared, tmp_path: Path) -> Path:
    """A fresh copy of the repository generated from v1.0.0 (v1.1.0 is out)."""
    return Path(shutil.copytree(shared[1], tmp_path / "fraud_score", symlinks=True))


@pytest.fixture
def project(v1: Path, tmp_path: Path) -> Path:
    return generate(v1, tmp_path / "fraud_score", ANSWERS)


def update(project: Path, **kwargs):
    return update_template.update(project, log=lambda *_: None, **kwargs)


def test_template_changes_arrive_and_local_edits_survive(v1, project):
    # The team's edits: code, a configuration value, a new file, the README.
    metrics = project / "model/common/metrics.py"
    metrics.write_text(metrics.read_text() + TEAM_FUNCTION)
    edit(
        project / "infra/config/dev.json", '"instance_type": "ml.m5.large"', '"instance_type": "ml.c5.xlarge"'
    )
    (project / "model/train/team_features.py").write_text("FEATURES = ['tenure_months']\n")
    (project / "README.md").write_text(
        (project / "README.md").read_text() + "\n## Team notes\nOn call: us.\n"
    )
    commit_all(project, "team edits")
    before = tracked(project)

    def v1_1(template: Path) -> None:
        # Modify (far from the team's edits), add, delete, and rename a file the team never edited.
        edit(
            template_file(template, "model/common/metrics.py"),
            "import json\n",
            "import json\nimport logging\n",
        )
        edit(
            template_file(template, "infra/config/dev.json"),
            '"environment": "dev",',
            '"environment": "dev",\n  "cost_center": "",',
        )
        template_file(template, "docs/upgrading.md").write_text(
            "# {{ cookiecutter.project_name }} upgrades\n"
        )
        template_file(template, "docs/explainability.md").unlink()
        template_file(template, "docs/contracts.md").rename(template_file(template, "docs/data-contracts.md"))

    release(v1, "v1.1.0", v1_1)
    outcome = update(project)

    assert (outcome.status, outcome.recorded, outcome.target, outcome.conflicts) == (
        "updated",
        "v1.0.0",
        "v1.1.0",
        [],
    )
    text = metrics.read_text()
    assert "import logging" in text and TEAM_FUNCTION in text
    dev = json.loads((project / "infra/config/dev.json").read_text())
    assert dev["cost_center"] == "" and dev["endpoint"]["instance_type"] == "ml.c5.xlarge"
    assert (project / "model/train/team_features.py").read_text() == "FEATURES = ['tenure_months']\n"
    assert (project / "README.md").read_text().endswith("## Team notes\nOn call: us.\n")
    assert (project / "docs/upgrading.md").read_text() == "# Fraud Score upgrades\n"
    assert not (project / "docs/explainability.md").exists()
    assert not (project / "docs/contracts.md").exists() and (project / "docs/data-contracts.md").is_file()
    assert answers_of(project)["_commit"] == "v1.1.0"
    assert {k: answers_of(project)[k] for k in ANSWERS} == ANSWERS
    assert files_with_markers(project) == [] and not list(project.rglob("*.rej"))
    # Nothing lost: every file the team had is still there, except what the template itself removed or moved.
    now = {
        p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts
    }
    assert before - now == {"docs/explainability.md", "docs/contracts.md"}


def test_a_real_conflict_is_marked_inline_and_the_rest_still_arrives(v1, project):
    edit(
        project / "infra/config/prod.json",
        '"instance_type": "ml.m5.large"',
        '"instance_type": "ml.c5.2xlarge"',
    )
    commit_all(project, "bigger prod endpoint")

    def v1_1(template: Path) -> None:
        path = template_file(template, "infra/config/prod.json")
        edit(path, '"instance_type": "ml.m5.large"', '"instance_type": "ml.m5.xlarge"')
        template_file(template, "docs/upgrading.md").write_text("upgrades\n")

    release(v1, "v1.1.0", v1_1)
    outcome = update(project)

    assert outcome.status == "conflicts"
    assert outcome.conflicts == ["infra/config/prod.json"] == files_with_markers(project)
    text = (project / "infra/config/prod.json").read_text()
    assert '"instance_type": "ml.c5.2xlarge"' in text, "the team's value is lost"
    assert '"instance_type": "ml.m5.xlarge"' in text, "the template's value is lost"
    assert (project / "docs/upgrading.md").read_text() == "upgrades\n"
    assert update_template.report(outcome, log=lambda *_: None) == update_template.EXIT_CONFLICTS


def test_changing_answers_prunes_template_files_but_keeps_the_teams(behind):
    """An answer changed on update re-renders and re-prunes; the team's files and owned files stay."""
    project = behind
    (project / "monitoring/team_runbook.md").write_text("Our drift runbook.\n")
    commit_all(project, "runbook")
    schema = (project / "model/config/schema.json").read_text()
    assert '"problem_type": "regression"' in schema

    copier.run_update(
        str(project),
        data={"include_monitoring": False, "problem_type": "binary_classification"},
        defaults=True,
        overwrite=True,
        unsafe=False,
        quiet=True,
    )

    assert answers_of(project)["include_monitoring"] is False
    assert not (project / "monitoring/drift_job.py").exists()
    assert (project / "monitoring/team_runbook.md").read_text() == "Our drift runbook.\n"
    assert (project / "docs/upgrading.md").exists()
    assert answers_of(project)["problem_type"] == "binary_classification"
    assert not re.search(r"(?m)^monitor:", (project / "Makefile").read_text())
    # The data contract is the team's (_skip_if_exists): the new problem type does not rewrite it.
    assert (project / "model/config/schema.json").read_text() == schema


def test_files_the_team_owns_are_kept_as_they_are(v1, project):
    """`_skip_if_exists` with copier 9.19.1: an existing file is left exactly as it is, edited or not.

    A deleted one comes back with the new release's content; files not listed merge three ways.
    """
    hyper = project / "model/config/hyperparameters.json"
    edit(hyper, '"n_estimators": "150"', '"n_estimators": "400"')
    team_hyper = hyper.read_text()
    untouched_baseline = (project / "model/config/baseline.json").read_text()
    (project / "model/config/model_card.json").unlink()
    edit(project / "infra/config/staging.json", '"instance_count": 1', '"instance_count": 2')
    commit_all(project, "tuned")

    def v1_1(template: Path) -> None:
        edit(
            template_file(template, "model/config/hyperparameters.json"),
            '"learning_rate": "0.1"',
            '"learning_rate": "0.05"',
        )
        edit(template_file(template, "model/config/baseline.json"), '"min_rows": 500', '"min_rows": 1000')
        edit(
            template_file(template, "model/config/model_card.json"),
            '"risk_rating": "Unknown"',
            '"risk_rating": "Medium"',
        )
        edit(
            template_file(template, "infra/config/staging.json"),
            '"region":',
            '"cost_center": "",\n  "region":',
        )

    release(v1, "v1.1.0", v1_1)
    outcome = update(project)

    assert outcome.status == "updated"
    assert hyper.read_text() == team_hyper, "tuned hyperparameters were overwritten"
    assert (project / "model/config/baseline.json").read_text() == untouched_baseline, (
        "gates changed under the team"
    )
    assert json.loads((project / "model/config/model_card.json").read_text())["risk_rating"] == "Medium"
    staging = json.loads((project / "infra/config/staging.json").read_text())
    assert staging["cost_center"] == "" and staging["endpoint"]["instance_count"] == 2


def test_a_moved_file_keeps_the_teams_edits_across_the_migration(v1, project):
    edit(
        project / "docs/contracts.md",
        "# Layout and contracts\n",
        "# Layout and contracts\n\nTeam: read this first.\n",
    )
    commit_all(project, "team note")

    def v2(template: Path) -> None:
        old, new = (
            template_file(template, "docs/contracts.md"),
            template_file(template, "docs/architecture.md"),
        )
        new.write_text(old.read_text().replace("## How data flows", "## How data flows (v2)"))
        old.unlink()
        set_config(
            template,
            _migrations=[{"version": "v2.0.0", "move": ["docs/contracts.md", "docs/architecture.md"]}],
        )

    release(v1, "v2.0.0", v2)
    # Migrations run commands, so copier wants trust; the update script grants it only for the template's own.
    with pytest.raises(copier.errors.UnsafeTemplateError):
        copier.run_update(str(project), defaults=True, overwrite=True, unsafe=False, quiet=True)
    assert status(project) == ""

    outcome = update(project)

    assert outcome.status == "updated" and outcome.conflicts == []
    assert not (project / "docs/contracts.md").exists()
    moved = (project / "docs/architecture.md").read_text()
    assert "Team: read this first." in moved and "## How data flows (v2)" in moved
    commit_all(project, "template v2.0.0")

    # Across the boundary only once: the next release does not move anything again.
    release(v1, "v2.1.0", lambda t: template_file(t, "docs/upgrading.md").write_text("upgrades\n"))
    plan_log: list[str] = []
    outcome = update_template.update(project, log=plan_log.append)
    assert outcome.status == "updated" and not any("migration" in line for line in plan_log)
    assert (project / "docs/architecture.md").read_text() == moved


def test_an_unedited_moved_file_simply_moves(v1, project):
    def v2(template: Path) -> None:
        template_file(template, "docs/contracts.md").rename(template_file(template, "docs/architecture.md"))
        set_config(
            template,
            _migrations=[{"version": "v2.0.0", "move": ["docs/contracts.md", "docs/architecture.md"]}],
        )

    original = (project / "docs/contracts.md").read_text()
    release(v1, "v2.0.0", v2)
    assert update(project).status == "updated"
    assert not (project / "docs/contracts.md").exists()
    assert (project / "docs/architecture.md").read_text() == original


def test_a_cookiecutter_born_repository_is_adopted(v1, tmp_path):
    project = bake_cookiecutter(v1, ANSWERS, tmp_path / "cc")
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "generated by cookiecutter")
    metrics = project / "model/common/metrics.py"
    metrics.write_text(metrics.read_text() + TEAM_FUNCTION)
    commit_all(project, "team metric")
    release(v1, "v1.1.0", v1_1_fix)

    outcome = update(project)

    assert outcome.status == "updated"
    assert "import logging" in metrics.read_text() and TEAM_FUNCTION in metrics.read_text()
    assert answers_of(project)["_commit"] == "v1.1.0"


def test_already_current_changes_nothing(behind):
    outcome = update(behind, vcs_ref="v1.0.0")
    assert outcome.status == "current" and status(behind) == ""


# Bad input: a clear message with the fix, and the repository exactly as it was.


def assert_refused(project: Path, *expected: str, **kwargs) -> str:
    before = head(project)
    with pytest.raises(update_template.UpdateError) as caught:
        update(project, **kwargs)
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, message
    assert head(project) == before
    return message


def test_a_dirty_work_tree_is_refused(behind):
    project = behind
    (project / "scratch.txt").write_text("work in progress\n")
    edit(project / "README.md", "#", "# (draft)")
    assert_refused(project, "uncommitted changes", "scratch.txt", "README.md", "git stash")
    assert (project / "scratch.txt").exists() and not (project / "docs/upgrading.md").exists()


def test_an_unreachable_template_source_is_refused(shared, behind, tmp_path):
    v1, project = shared[0], behind
    answers = project / ANSWERS_FILE
    edit(answers, f"_src_path: {v1}", f"_src_path: {tmp_path / 'moved-away'}")
    commit_all(project, "template moved")
    assert_refused(project, "does not exist", "set `_src_path`")
    edit(answers, f"_src_path: {tmp_path / 'moved-away'}", "_src_path: https://127.0.0.1:9/org/template.git")
    commit_all(project, "template on a dead server")
    assert_refused(project, "unreachable", "https://127.0.0.1:9/org/template.git")
    assert status(project) == ""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("problem_type: regression", "problem_type: clustering", "answer `problem_type` is 'clustering'"),
        ("include_monitoring: true", "include_monitoring: maybe", "yes/no question"),
        ("_commit: v1.0.0", "_commit: ''", "`_commit` is ''"),
        ("project_name: Fraud Score", "project_name: [Fraud, Score]", "answers are single values"),
        ("aws_region: us-east-1", "aws_region: mars-1", "aws_region 'mars-1' is not a region"),
        ("project_name: Fraud Score", "project_name: 'Fraud Score", "not valid YAML"),
    ],
)
def test_a_hand_edited_invalid_answers_file_is_refused(behind, old, new, expected):
    project = behind
    edit(project / ANSWERS_FILE, old, new)
    commit_all(project, "hand edit")
    assert_refused(project, expected)
    assert status(project) == "" and not (project / "docs/upgrading.md").exists()


def test_a_template_version_that_no_longer_exists_is_refused(behind):
    project = behind
    edit(project / ANSWERS_FILE, "_commit: v1.0.0", "_commit: v0.9.0")
    commit_all(project, "generated from a withdrawn release")
    message = assert_refused(project, "'v0.9.0'", "no longer exists", "v1.0.0, v1.1.0")
    assert "Set `_commit`" in message


def test_a_downgrade_and_an_unknown_version_are_refused(behind):
    project = behind
    assert update(project, vcs_ref="v1.1.0").status == "updated"
    commit_all(project, "v1.1.0")
    assert_refused(project, "older than", vcs_ref="v1.0.0")
    assert_refused(project, "'v9.9.9' does not exist", vcs_ref="v9.9.9")


def test_a_failure_mid_update_restores_the_repository(v1, project):
    """A migration that fails after copier wrote the new release's files: everything is rolled back."""
    metrics = project / "model/common/metrics.py"
    metrics.write_text(metrics.read_text() + TEAM_FUNCTION)
    commit_all(project, "team metric")
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts}

    def v2(template: Path) -> None:
        edit(
            template_file(template, "model/common/metrics.py"),
            "import json\n",
            "import json\nimport logging\n",
        )
        template_file(template, "docs/upgrading.md").write_text("upgrades\n")
        (template / "hooks" / "fail_migration.py").write_text("import sys\nsys.exit('disk full')\n")
        set_config(template, _migrations=[{"version": "v2.0.0", "script": "hooks/fail_migration.py"}])

    release(v1, "v2.0.0", v2)
    message = assert_refused(project, "copier update failed", "back to its state before the update")
    assert status(project) == ""
    after = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before, message


# The command line the generated Makefile calls: `make update-template [VERSION=..] [CHECK=1]`.


def run_script(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "GITHUB_OUTPUT"}
    return subprocess.run(
        [sys.executable, "-m", "cicd.update_template", *args],
        cwd=project,
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_generated_script_reports_with_exit_codes(behind, tmp_path):
    project = behind
    assert (project / "cicd/update_template.py").read_bytes() == UPDATE_SCRIPT.read_bytes()
    newer = run_script(project, "--check", GITHUB_OUTPUT=str(tmp_path / "github-output"))
    assert newer.returncode == 10
    assert newer.stdout.startswith("available: template release v1.1.0 is available")
    assert (tmp_path / "github-output").read_text() == "status=available\ncurrent=v1.0.0\nlatest=v1.1.0\n"
    assert status(project) == ""

    (project / "notes.txt").write_text("draft\n")
    dirty = run_script(project)
    assert dirty.returncode == 2 and "uncommitted changes" in dirty.stderr
    (project / "notes.txt").unlink()

    done = run_script(project, "--vcs-ref", "v1.1.0")
    assert done.returncode == 0, done.stderr
    assert "docs/upgrading.md" in done.stdout and "git diff" in done.stdout
    commit_all(project, "template v1.1.0")
    current = run_script(project, "--check")
    assert current.returncode == 0 and current.stdout.startswith("current: template version v1.1.0")

    edit(project / ANSWERS_FILE, "_src_path: ", f"_src_path: {tmp_path / 'gone'}  # ")
    commit_all(project, "template moved")
    gone = run_script(project, "--check")
    assert gone.returncode == 2 and "does not exist" in gone.stderr


def test_migration_entries_become_copier_migrations():
    from tests.releasing import generator

    assert generator.migration({"version": "v2.0.0", "move": ["a.md", "docs/a.md"]}) == {
        "version": "v2.0.0",
        "when": "{{ _stage == 'after' }}",
        "command": [
            "{{ _copier_python }}",
            "{{ _copier_conf.src_path }}/hooks/migrate.py",
            "move",
            "a.md",
            "docs/a.md",
        ],
    }
    script = generator.migration({"version": "v3.0.0", "script": "hooks/migrations/x.py", "stage": "before"})
    assert script["when"] == "{{ _stage == 'before' }}"
    assert script["command"] == ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrations/x.py"]
    both = {"version": "v1", "move": ["a", "b"], "script": "x.py"}
    for bad in ({"move": ["a", "b"]}, both, {"version": "v1"}):
        with pytest.raises(ValueError, match="exactly one of 'move'"):
            generator.migration(bad)
    with pytest.raises(ValueError, match="'stage' must be one of before, after"):
        generator.migration({"version": "v1", "script": "x.py", "stage": "during"})
