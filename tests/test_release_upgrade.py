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

from tests.baking import ANSWERS_FILE, GIT_IDENTITY, ROOT, UPGRADE_ANSWERS, git, template_source_files
from tests.test_generated_project import make

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

RELEASE = re.compile(r"^## \[(?P<version>\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", re.MULTILINE)
COMMIT = re.compile(r"^Commit: `(?P<commit>[0-9a-f]{7,40})`", re.MULTILINE)
CONFLICT = re.compile(rb"^<<<<<<< before updating", re.MULTILINE)
ANSWERS = UPGRADE_ANSWERS


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
def template_history(tmp_path_factory) -> tuple[Path, list[str], str]:
    """A clone of this repository with every recorded release tagged at its commit and the work tree's
    template committed on top, tagged as the version in pyproject.toml."""
    releases = [(v, c) for v, c in released() if v != project_version()]
    clone = tmp_path_factory.mktemp("history") / "sagemaker-mlops-template"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(ROOT), str(clone)], check=True)
    for version, commit in releases:
        try:
            git(clone, "cat-file", "-e", f"{commit}^{{commit}}")
        except subprocess.CalledProcessError:
            pytest.fail(f"commit {commit} (v{version}) is not in this clone: CI needs the full history")
        git(clone, "tag", f"v{version}", commit)
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
    return clone, [f"v{v}" for v, _ in releases], f"v{project_version()}"


def bake_and_edit(clone: Path, previous: str, project: Path) -> dict[str, bytes]:
    """A repository generated from `previous`, committed, then edited by its team; returns what must stay."""
    copier.run_copy(
        str(clone), str(project), data=ANSWERS, defaults=True, unsafe=False, quiet=True, vcs_ref=previous
    )
    assert yaml.safe_load((project / ANSWERS_FILE).read_text(encoding="utf-8"))["_commit"] == previous
    git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "--message", f"Generated from the template {previous}")

    # The team's edits: a README line, a hyperparameter (a file the team owns), a file of its own, a changed
    # preprocessing.py, an edited buildspec, a file the release moves (metrics.py) and a test of its own that
    # imports the template's modules the way the previous release allowed (bare names through PYTHONPATH).
    readme = project / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nOwned by the fraud team.\n", encoding="utf-8")
    hyperparameters = project / "model" / "config" / "hyperparameters.json"
    tuned = {**json.loads(hyperparameters.read_text(encoding="utf-8")), "n_estimators": "120"}
    hyperparameters.write_text(json.dumps(tuned, indent=2) + "\n", encoding="utf-8")
    (project / "docs" / "team.md").write_text("# Fraud team notes\n", encoding="utf-8")
    append(project / "model" / "train" / "preprocessing.py", TEAM_PREPROCESSING)
    buildspec = project / "pipeline" / "buildspec" / "train.yml"
    spec = buildspec.read_text(encoding="utf-8")
    buildspec.write_text(
        spec.replace("    ENV: dev\n", f"    ENV: dev\n{TEAM_VARIABLE}\n", 1), encoding="utf-8"
    )
    # Before v0.3.0 the metrics lived in model/train and the modules were imported by bare name.
    packaged = (project / "model" / "common" / "metrics.py").is_file()
    append(project / "model" / ("common" if packaged else "train") / "metrics.py", TEAM_METRIC)
    team_test = TEAM_TEST if not packaged else TEAM_TEST.replace(BARE_IMPORTS, PACKAGE_IMPORTS)
    (project / "model" / "tests" / "test_fraud_team.py").write_text(team_test, encoding="utf-8")
    if packaged and "*.egg-info/" not in (project / ".gitignore").read_text(encoding="utf-8"):
        # v0.3.0's `make setup` leaves the editable install's metadata untracked, and the update refuses an
        # untracked file: the step CHANGELOG 0.4.0's upgrade notes give teams on v0.3.0.
        append(project / ".gitignore", "*.egg-info/\n")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "--message", "Team edits")
    return {"schema": (project / "model" / "config" / "schema.json").read_bytes()}


TEAM_VARIABLE = "    FRAUD_TEAM: owned"
SEARCH_PATH_EDITS = "sys.path\\|PYTHONPATH"
TEAM_PREPROCESSING = """

def fraud_team_columns(schema: Schema) -> list[str]:
    \"\"\"The fraud team's own helper.\"\"\"
    return [f.name for f in schema.features]
"""
TEAM_METRIC = """

def fraud_team_recall_at_top(y_true, scores, share: float = 0.1) -> float:
    \"\"\"The fraud team's own metric: recall among the top `share` of scores.\"\"\"
    order = np.argsort(-np.asarray(scores))[: max(1, int(len(scores) * share))]
    positives = np.asarray(y_true)
    return float(positives[order].sum() / max(1, positives.sum()))
"""
BARE_IMPORTS = "import metrics\nimport preprocessing\nfrom data_contract import Schema\n"
PACKAGE_IMPORTS = (
    "from model.common import metrics\n"
    "from model.common.data_contract import Schema\n"
    "from model.train import preprocessing\n"
)
TEAM_TEST = """import metrics
import preprocessing
from data_contract import Schema


def test_the_fraud_team_helpers_run():
    schema = Schema.load("model/config/schema.json")
    assert preprocessing.fraud_team_columns(schema) == schema.feature_names
    assert metrics.fraud_team_recall_at_top([1, 0, 0, 1], [0.9, 0.1, 0.2, 0.8], share=0.5) == 1.0
"""


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def update(project: Path) -> subprocess.CompletedProcess:
    """The previous release's own `make update-template`, by an interpreter that has the pinned copier."""
    return subprocess.run(
        [
            "make",
            "-C",
            str(project),
            "update-template",
            f"VENV={sys.prefix}",
            f"STAMP={sys.prefix}/pyvenv.cfg",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **GIT_IDENTITY},
    )


def check_updated(project: Path, current: str, kept: dict[str, bytes]) -> None:
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
    assert "Owned by the fraud team." in (project / "README.md").read_text(encoding="utf-8")
    hyperparameters = json.loads((project / "model" / "config" / "hyperparameters.json").read_text("utf-8"))
    assert hyperparameters["n_estimators"] == "120"
    assert (project / "model" / "config" / "schema.json").read_bytes() == kept["schema"]
    assert (project / "docs" / "team.md").exists()
    # Edits in files that stay (their imports changed under them) and in the buildspec are kept.
    preprocessing = (project / "model" / "train" / "preprocessing.py").read_text(encoding="utf-8")
    assert "def fraud_team_columns" in preprocessing
    assert "from model.common.data_contract import" in preprocessing
    assert TEAM_VARIABLE in (project / "pipeline" / "buildspec" / "train.yml").read_text(encoding="utf-8")
    # The moved file carries the team's edit to its new place; the old one is gone.
    assert not (project / "model" / "train" / "metrics.py").exists()
    assert "def fraud_team_recall_at_top" in (project / "model" / "common" / "metrics.py").read_text("utf-8")
    for old, new in MOVED:
        assert not (project / old).exists(), f"{old} is still there after the update"
        assert (project / new).is_file(), f"{new} did not arrive"
    # The team's own test now imports the packages (the migration rewrote it).
    team_test = (project / "model" / "tests" / "test_fraud_team.py").read_text(encoding="utf-8")
    assert "from model.common import metrics" in team_test
    assert "from model.train import preprocessing" in team_test
    for arrived in ("model/common/paths.py", "cicd/package_graph.py", "conftest.py", "docs/own-table.md"):
        assert (project / arrived).is_file(), f"{arrived} did not arrive with {current}"
    leftovers = subprocess.run(
        ["grep", "-rln", "--include=*.py", "--include=Makefile", "--include=*.toml", SEARCH_PATH_EDITS, "."],
        cwd=project,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert [p for p in leftovers if not p.startswith("./.git/")] == []


TEAM_FILES = {
    "README.md",
    "docs/team.md",
    "model/common/metrics.py",
    "model/config/hyperparameters.json",
    "model/tests/test_fraud_team.py",
    "model/train/preprocessing.py",
    "pipeline/buildspec/train.yml",
}


def team_owned() -> set[str]:
    """The files copier never overwrites once they exist (cookiecutter.json's _skip_if_exists)."""
    return set(json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))["_skip_if_exists"])


def differing_files(one: Path, other: Path) -> set[str]:
    def files(root: Path) -> dict[str, bytes]:
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in root.rglob("*")
            if path.is_file() and ".git" not in path.relative_to(root).parts
        }

    left, right = files(one), files(other)
    return {name for name in left.keys() | right.keys() if left.get(name) != right.get(name)}


MOVED = [
    ("model/train/evaluation_step.py", "model/train/evaluation_job.py"),
    ("data/make_sample_data.py", "model/common/sample_data.py"),
    ("pipeline/run_stage.py", "cicd/run_stage.py"),
    ("pipeline/update_template.py", "cicd/update_template.py"),
    ("release/endpoint_tests.py", "release/endpoint_checks.py"),
    ("monitoring/baseline.py", "monitoring/drift_baseline.py"),
]


def test_a_repository_of_the_first_release_takes_this_release_and_still_passes_its_tests(
    template_history, tmp_path, e2e_venv, aws_venv, inference_venv
):
    """v0.1.0 -> this release in one update: every migration between them runs, then `make pipeline` and
    `make test` pass in the updated repository (with the team's own test)."""
    clone, previous, current = template_history
    assert current not in previous, f"pyproject.toml still says {current}: bump the version for the release"
    project = tmp_path / "fraud_score"
    kept = bake_and_edit(clone, "v0.1.0", project)
    result = update(project)
    assert result.returncode == 0, f"update failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    check_updated(project, current, kept)
    # Apart from the team's edits and the files the team owns, the updated repository is a fresh bake of this
    # release, so the `make test` below stands for both (tests/test_generated_project.py relies on it).
    fresh = tmp_path / "fresh"
    copier.run_copy(
        str(clone), str(fresh), data=ANSWERS, defaults=True, unsafe=False, quiet=True, vcs_ref=current
    )
    assert differing_files(project, fresh) - TEAM_FILES - team_owned() == set()

    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "--message", f"Template {current}")
    make(project, "setup", e2e_venv, timeout=1800)
    pipeline = make(project, "pipeline", e2e_venv, timeout=900).stdout
    assert "pipeline finished" in pipeline and "model format     | onnx" in pipeline, pipeline[-3000:]
    tests = make(
        project, "test", e2e_venv, timeout=1800, AWS_VENV=aws_venv, INFERENCE_VENV=inference_venv
    ).stdout
    assert "test_fraud_team.py ." in tests, tests[-3000:]


def test_a_repository_of_the_previous_release_takes_this_release(template_history, tmp_path):
    """The newest release before this one -> this release: the same edits survive, the same files move."""
    clone, previous, current = template_history
    if previous[0] == "v0.1.0":
        pytest.skip("the previous release is v0.1.0, tested above")
    project = tmp_path / "fraud_score"
    kept = bake_and_edit(clone, previous[0], project)
    result = update(project)
    assert result.returncode == 0, f"update failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    check_updated(project, current, kept)
