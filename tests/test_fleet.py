"""`python -m fleet update` on a mixed fleet: behind, conflicting, current, breaking, dirty, remote, gone."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from fleet import cli
from tests.baking import ANSWERS_FILE, git
from tests.releasing import commit_all, edit, first_release, generate, head, release, status, template_file

BRANCH = "template-update/v1.1.0"
# The team's own check, run as the repositories' test command: it pins the dev endpoint's instance type.
CHECK = (
    "import json, sys\n"
    "endpoint = json.load(open('infra/config/dev.json'))['endpoint']\n"
    "if endpoint['instance_type'] != 'ml.m5.large':\n"
    "    sys.exit(f\"dev endpoint is {endpoint['instance_type']}, the load test assumes ml.m5.large\")\n"
)
PASSING_CHECK = "print('ok')\n"


def v1_1(template: Path) -> None:
    edit(template_file(template, "model/common/metrics.py"), "import json\n", "import json\nimport logging\n")
    edit(
        template_file(template, "infra/config/dev.json"),
        '"instance_type": "ml.m5.large"',
        '"instance_type": "ml.m5.xlarge"',
    )
    edit(
        template_file(template, "infra/config/prod.json"),
        '"instance_type": "ml.m5.large"',
        '"instance_type": "ml.m5.xlarge"',
    )


def branch_file(repo: Path, branch: str, relpath: str) -> str:
    return git(repo, "show", f"{branch}:{relpath}")


def branches(repo: Path) -> set[str]:
    return set(git(repo, "branch", "--list", "--format=%(refname:short)").split())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    base = tmp_path_factory.mktemp("fleet")
    template = first_release(base / "template")
    seed = generate(template, base / "seed", {"project_name": "Seed"})
    (seed / "check.py").write_text(PASSING_CHECK)
    commit_all(seed, "team check")

    def repo(name: str) -> Path:
        return Path(shutil.copytree(seed, base / name, symlinks=True))

    behind = repo("behind")
    conflicted = repo("conflicted")
    edit(
        conflicted / "infra/config/prod.json",
        '"instance_type": "ml.m5.large"',
        '"instance_type": "ml.c5.2xlarge"',
    )
    commit_all(conflicted, "bigger prod endpoint")
    breaks = repo("breaks")
    (breaks / "check.py").write_text(CHECK)
    commit_all(breaks, "load-test assumption")
    dirty = repo("dirty")
    (dirty / "wip.txt").write_text("work in progress\n")
    upstream = base / "remote.git"
    git(base, "clone", "--quiet", "--bare", str(repo("remote-source")), str(upstream))

    release(template, "v1.1.0", v1_1)
    current = generate(template, base / "current", {"project_name": "Current"})
    (current / "check.py").write_text(PASSING_CHECK)
    commit_all(current, "team check")
    return {
        "template": template,
        "behind": behind,
        "conflicted": conflicted,
        "current": current,
        "breaks": breaks,
        "dirty": dirty,
        "remote": f"file://{upstream}",
        "unreachable": f"file://{base / 'no-such-repo.git'}",
        "upstream": upstream,
        "workdir": base / "work",
    }


@pytest.fixture(scope="module")
def run(fleet) -> dict:
    names = ["behind", "conflicted", "current", "breaks", "dirty", "remote", "unreachable"]
    heads = {name: head(fleet[name]) for name in names if isinstance(fleet[name], Path)}
    argv = [
        "update",
        *(str(fleet[name]) for name in names),
        "--test-cmd",
        f"{sys.executable} check.py",
        "--workdir",
        str(fleet["workdir"]),
        "--open-pr",
    ]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    rows = {}
    for line in out.getvalue().splitlines():
        for name in names:
            if line.startswith(str(fleet[name]) + " "):
                rows[name] = line
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "rows": rows, "heads": heads}


def test_the_summary_table_has_one_row_per_repository_with_its_result(run):
    assert run["code"] == 1
    expected = {
        "behind": "updated",
        "conflicted": "conflicts",
        "current": "already current",
        "breaks": "tests failed",
        "dirty": "error",
        "remote": "updated",
        "unreachable": "error",
    }
    for name, result in expected.items():
        assert re.search(rf"\s{result}(\s|$)", run["rows"][name]), run["stdout"]
    assert run["stdout"].splitlines()[0].split() == [
        "repository",
        "from",
        "to",
        "result",
        "branch",
        "details",
    ]
    assert "2 updated, 1 conflicts, 1 already current, 1 tests failed, 2 error" in run["stdout"]
    # Progress per repository while it runs.
    for index in range(1, 8):
        assert f"[{index}/7] " in run["stderr"]


def test_a_repository_behind_gets_a_branch_with_the_update_and_stays_on_its_branch(fleet, run):
    repo = fleet["behind"]
    assert "v1.0.0  v1.1.0" in run["rows"]["behind"] and BRANCH in run["rows"]["behind"]
    assert "branch ready" in run["rows"]["behind"]
    assert branches(repo) == {"main", BRANCH}
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert head(repo) == run["heads"]["behind"] and status(repo) == ""
    assert yaml.safe_load(branch_file(repo, BRANCH, ANSWERS_FILE))["_commit"] == "v1.1.0"
    assert "import logging" in branch_file(repo, BRANCH, "model/common/metrics.py")
    assert git(repo, "rev-list", "--count", f"main..{BRANCH}").strip() == "1"


def test_a_conflict_is_committed_on_the_branch_for_the_team_to_resolve(fleet, run):
    repo = fleet["conflicted"]
    assert (
        "infra/config/prod.json" in run["rows"]["conflicted"] and "tests not run" in run["rows"]["conflicted"]
    )
    text = branch_file(repo, BRANCH, "infra/config/prod.json")
    assert "<<<<<<< before updating" in text and "ml.c5.2xlarge" in text and "ml.m5.xlarge" in text
    assert head(repo) == run["heads"]["conflicted"] and status(repo) == ""


def test_a_repository_already_current_gets_no_branch(fleet, run):
    assert branches(fleet["current"]) == {"main"}
    assert "v1.1.0  v1.1.0" in run["rows"]["current"]


def test_failing_tests_are_reported_and_the_branch_kept(fleet, run):
    row = run["rows"]["breaks"]
    assert "exited 1" in row and "the load test assumes ml.m5.large" in row
    assert BRANCH in branches(fleet["breaks"])
    dev = json.loads(branch_file(fleet["breaks"], BRANCH, "infra/config/dev.json"))
    assert dev["endpoint"]["instance_type"] == "ml.m5.xlarge"


def test_a_dirty_repository_is_left_alone(fleet, run):
    repo = fleet["dirty"]
    assert "dirty work tree: commit or stash" in run["rows"]["dirty"]
    assert branches(repo) == {"main"} and head(repo) == run["heads"]["dirty"]
    assert (repo / "wip.txt").read_text() == "work in progress\n"


def test_a_git_url_is_cloned_updated_and_its_branch_pushed_back(fleet, run):
    upstream = fleet["upstream"]
    assert BRANCH in set(git(upstream, "branch", "--list", "--format=%(refname:short)").split())
    assert yaml.safe_load(branch_file(upstream, BRANCH, ANSWERS_FILE))["_commit"] == "v1.1.0"
    assert yaml.safe_load(branch_file(upstream, "main", ANSWERS_FILE))["_commit"] == "v1.0.0"


def test_an_unreachable_url_is_reported_and_nothing_is_pushed(fleet, run):
    row = run["rows"]["unreachable"]
    assert "unreachable" in row and "check the URL" in row
    assert not Path(fleet["unreachable"].removeprefix("file://")).exists()


def test_no_repositories_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["update"])
    assert caught.value.code == 2 and "at least one repository" in capsys.readouterr().err


def test_a_moved_template_is_followed_with_template(fleet, tmp_path):
    """--template: the recorded source moved; the branch first points the repository at the new one."""
    moved = tmp_path / "moved-template"
    git(tmp_path, "clone", "--quiet", str(fleet["template"]), str(moved))
    repo = Path(shutil.copytree(fleet["template"].parent / "remote-source", tmp_path / "repo", symlinks=True))
    edit(repo / ANSWERS_FILE, f"_src_path: {fleet['template']}", "_src_path: /srv/templates/retired")
    commit_all(repo, "template source as recorded years ago")

    code = cli.main(
        ["update", str(repo), "--template", str(moved), "--test-cmd", "true", "--workdir", str(tmp_path)]
    )

    assert code == 0
    answers = yaml.safe_load(branch_file(repo, BRANCH, ANSWERS_FILE))
    assert (answers["_src_path"], answers["_commit"]) == (str(moved), "v1.1.0")
    assert git(repo, "rev-list", "--count", f"main..{BRANCH}").strip() == "2"
