"""Take a template release to a fleet of generated repositories, each on its own branch.

    python -m fleet update [--to v1.4.0] [--test-cmd "make test"] [--venv PATH] REPO [REPO ...]
    python -m fleet update --repos-file repos.txt

A REPO is a local path (updated in place: a new branch is created there and the original branch is checked
out again afterwards) or a git URL (cloned into --workdir, updated on a new branch, the branch pushed back).
For each one: refuse a dirty work tree, skip it when it is already at the release, otherwise create the
branch ``template-update/<release>``, run the repository's own ``cicd/update_template.py`` logic (copier
update with every check, restored on failure), commit the result (conflict markers included, so the team
resolves them on the branch), run its tests, push when it came from a URL, open a pull request with the
GitHub CLI when --open-pr is given and ``gh`` is available, and otherwise report "branch ready".

Exit code: 0 when every repository ended updated or already current, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPDATE_SCRIPT = ROOT / "{{cookiecutter.project_slug}}" / "cicd" / "update_template.py"
BRANCH_PREFIX = "template-update/"
DEFAULT_TEST_COMMAND = "make test"
TEST_TIMEOUT_SECONDS = 3600
CLONE_TIMEOUT_SECONDS = 300

UPDATED = "updated"
CONFLICTS = "conflicts"
TESTS_FAILED = "tests failed"
CURRENT = "already current"
ERROR = "error"
SUCCESS = {UPDATED, CURRENT}


def load_update_template():
    """The generated repositories' own update logic, straight from the template (it holds no Jinja)."""
    spec = importlib.util.spec_from_file_location("fleet.update_template", UPDATE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


ut = load_update_template()


@dataclass
class Result:
    repo: str
    result: str = ERROR
    before: str = ""
    after: str = ""
    branch: str = ""
    details: str = ""


def one_line(exc: Exception, limit: int = 240) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def is_url(repo: str) -> bool:
    return "://" in repo or repo.startswith("git@") or re.match(r"^[\w.-]+@[\w.-]+:", repo) is not None


def repo_name(repo: str) -> str:
    name = repo.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return name.removesuffix(".git") or "repo"


def git(cwd: Path, *args: str) -> str:
    return ut.git(cwd, *args)


def current_branch(project: Path) -> str:
    """The branch to return to (or the commit, on a detached HEAD)."""
    try:
        return git(project, "symbolic-ref", "--quiet", "--short", "HEAD").strip()
    except ut.UpdateError:
        return git(project, "rev-parse", "HEAD").strip()


def branch_exists(project: Path, branch: str) -> bool:
    return ut.resolve(project, f"refs/heads/{branch}") is not None


def set_source(project: Path, src: str) -> None:
    """Point ``_src_path`` at a template that moved (a line edit keeps copier's layout)."""
    path = project / ut.ANSWERS_FILE
    text = path.read_text(encoding="utf-8")
    new, count = re.subn(r"(?m)^_src_path:.*$", f"_src_path: {src}", text)
    if not count:
        raise ut.UpdateError(f"{ut.ANSWERS_FILE} has no `_src_path` line to point at {src}")
    path.write_text(new, encoding="utf-8")


def commit(project: Path, message: str) -> None:
    git(project, "add", "--all")
    # --no-verify: a pre-commit hook must not block (or rewrite) conflict markers the team resolves later.
    git(project, "commit", "--quiet", "--no-verify", "--message", message)


def run_tests(project: Path, command: str, venv: str | None, log_path: Path) -> tuple[bool, str]:
    env = dict(os.environ)
    if venv:
        env["VENV"] = venv
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        try:
            process = subprocess.run(
                command,
                shell=True,
                cwd=project,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=TEST_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False, f"`{command}` timed out after {TEST_TIMEOUT_SECONDS} s (log: {log_path})"
    seconds = time.monotonic() - started
    if process.returncode:
        lines = [
            line
            for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.strip()
        ]
        last = lines[-1].strip()[:120] if lines else ""
        return False, f"`{command}` exited {process.returncode} in {seconds:.0f} s: {last} (log: {log_path})"
    return True, f"`{command}` passed in {seconds:.0f} s"


def open_pull_request(project: Path, branch: str, title: str, body: str) -> str:
    """A pull request through the GitHub CLI when it is installed and logged in; else the branch is ready."""
    if not shutil.which("gh"):
        return "branch ready (no pull request: the GitHub CLI `gh` is not installed)"
    process = subprocess.run(
        ["gh", "pr", "create", "--head", branch, "--title", title, "--body", body],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if process.returncode:
        reason = (process.stderr or process.stdout).strip().splitlines()
        return f"branch ready (pull request not opened: {reason[-1] if reason else 'gh failed'})"
    return f"pull request {process.stdout.strip()}"


class Fleet:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.workdir = workdir

    def say(self, index: int, total: int, repo: str, message: str) -> None:
        print(f"[{index}/{total}] {repo}: {message}", file=sys.stderr, flush=True)

    def checkout(self, repo: str, log) -> tuple[Path, bool]:
        """The work tree to update, and whether it is a clone of a URL."""
        if is_url(repo):
            dest = self.workdir / repo_name(repo)
            suffix = 1
            while dest.exists():
                suffix += 1
                dest = self.workdir / f"{repo_name(repo)}-{suffix}"
            log(f"cloning into {dest}")
            try:
                git(self.workdir, "clone", "--quiet", repo, str(dest))
            except ut.UpdateError as exc:
                raise ut.UpdateError(f"unreachable (check the URL and your git credentials): {exc}") from exc
            return dest, True
        path = Path(repo).expanduser()
        if not path.is_dir():
            raise ut.UpdateError(f"no such directory: {path}")
        return path.resolve(), False

    def update_one(self, repo: str, index: int, total: int) -> Result:
        result = Result(repo)

        def log(message: str) -> None:
            self.say(index, total, repo, message)

        try:
            project, cloned = self.checkout(repo, log)
            ut.work_tree_root(project)
            ut.ensure_clean(project)
            with tempfile.TemporaryDirectory(prefix="fleet-plan-") as tmp:
                plan = ut.make_plan(project, self.args.to, Path(tmp), src_path=self.args.template)
        except ut.UpdateError as exc:
            result.details = (
                one_line(exc)
                if "uncommitted" not in str(exc)
                else ("dirty work tree: commit or stash the changes, then run the fleet again")
            )
            log(f"error: {result.details}")
            return result
        result.before, result.after = plan.recorded, plan.target
        if plan.current:
            result.result = CURRENT
            log(f"already at {plan.recorded}")
            return result
        branch = f"{self.args.branch_prefix}{plan.target}"
        result.branch = branch
        if branch_exists(project, branch):
            result.details = f"branch {branch} already exists: merge or delete it, then run the fleet again"
            result.branch = ""
            log(f"error: {result.details}")
            return result
        original = current_branch(project)
        log(f"updating {plan.recorded} -> {plan.target} on branch {branch}")
        git(project, "switch", "--quiet", "--create", branch)
        try:
            outcome = self.apply(project, plan, log)
        except ut.UpdateError as exc:
            git(project, "switch", "--quiet", "--force", original)
            git(project, "branch", "--quiet", "-D", branch)
            result.branch = ""
            result.details = one_line(exc)
            log(f"error: {result.details}")
            return result
        if outcome.conflicts:
            result.result = CONFLICTS
            shown = ", ".join(outcome.conflicts[:3]) + (" ..." if len(outcome.conflicts) > 3 else "")
            result.details = f"{files(len(outcome.conflicts))} with conflict markers: {shown}; tests not run"
            log(f"conflicts in {shown}")
        else:
            log(f"running tests: {self.args.test_cmd}")
            log_path = self.workdir / f"{index:02d}-{repo_name(repo)}-tests.log"
            passed, summary = run_tests(project, self.args.test_cmd, self.args.venv, log_path)
            result.result = UPDATED if passed else TESTS_FAILED
            result.details = summary
            log(summary)
        result.details += "; " + self.publish(project, cloned, branch, plan, outcome, log)
        if not cloned:
            git(project, "switch", "--quiet", original)
        return result

    def apply(self, project: Path, plan, log):
        if self.args.template and self.args.template != plan.answers.get("_src_path"):
            set_source(project, self.args.template)
            commit(project, f"Template source moved to {self.args.template}")
        outcome = ut.update(project, plan.target, log=log)
        commit(project, f"Update the template from {plan.recorded} to {plan.target}")
        return outcome

    def publish(self, project: Path, cloned: bool, branch: str, plan, outcome, log) -> str:
        where = "" if not cloned else f" in {project}"
        if cloned and not self.args.no_push:
            try:
                git(project, "push", "--quiet", "origin", branch)
            except ut.UpdateError as exc:
                return f"push failed ({one_line(exc)}): branch ready{where}"
            log(f"pushed {branch}")
        elif not cloned and self.args.push:
            try:
                git(project, "push", "--quiet", "--set-upstream", "origin", branch)
            except ut.UpdateError as exc:
                return f"push failed ({one_line(exc)}): branch ready{where}"
        if self.args.open_pr:
            body = f"Template update from {plan.recorded} to {plan.target}.\n\n" + (
                f"Conflicts to resolve: {', '.join(outcome.conflicts)}\n" if outcome.conflicts else ""
            )
            return open_pull_request(project, branch, f"Template update to {plan.target}", body)
        return f"branch ready{where}"

    def run(self, repos: list[str]) -> list[Result]:
        results = []
        for index, repo in enumerate(repos, 1):
            try:
                results.append(self.update_one(repo, index, len(repos)))
            except ut.UpdateError as exc:  # a git step outside the guarded ones
                results.append(Result(repo, details=one_line(exc)))
        return results


def table(results: list[Result]) -> str:
    headers = ("repository", "from", "to", "result", "branch", "details")
    rows = [(r.repo, r.before, r.after, r.result, r.branch, r.details) for r in results]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers) - 1)]
    lines = []
    for row in [headers, (*("-" * w for w in widths), "-------"), *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    counts = {}
    for r in results:
        counts[r.result] = counts.get(r.result, 0) + 1
    lines.append("")
    lines.append(", ".join(f"{count} {name}" for name, count in counts.items()))
    return "\n".join(lines)


def read_repos(args: argparse.Namespace) -> list[str]:
    repos = list(args.repos)
    if args.repos_file:
        for line in Path(args.repos_file).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                repos.append(line)
    return repos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    update = sub.add_parser("update", help="update generated repositories to a template release")
    update.add_argument("repos", nargs="*", help="local paths or git URLs of generated repositories")
    update.add_argument("--repos-file", help="a file with one repository per line (# comments allowed)")
    update.add_argument("--to", default=None, help="template release to take (default: the newest tag)")
    update.add_argument(
        "--template",
        default=None,
        help="template source to update from when it moved (rewrites `_src_path` on the branch)",
    )
    update.add_argument(
        "--test-cmd",
        default=DEFAULT_TEST_COMMAND,
        help=f"command that runs a repository's tests (default: {DEFAULT_TEST_COMMAND!r})",
    )
    update.add_argument(
        "--venv", default=None, help="exported as VENV for the test command (a shared environment)"
    )
    update.add_argument("--branch-prefix", default=BRANCH_PREFIX, help=f"default: {BRANCH_PREFIX}")
    update.add_argument(
        "--workdir", type=Path, default=None, help="where URLs are cloned and test logs are kept"
    )
    update.add_argument("--no-push", action="store_true", help="do not push branches of cloned repositories")
    update.add_argument(
        "--push", action="store_true", help="also push branches of local repositories to origin"
    )
    update.add_argument("--open-pr", action="store_true", help="open pull requests with the GitHub CLI (gh)")
    args = parser.parse_args(argv)
    repos = read_repos(args)
    if not repos:
        parser.error("give at least one repository (a path or a git URL) or --repos-file")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleet-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    print(
        f"fleet: {len(repos)} repositories, release {args.to or 'newest'}, work dir {workdir}",
        file=sys.stderr,
    )
    results = Fleet(args, workdir).run(repos)
    print(table(results))
    return 0 if all(r.result in SUCCESS for r in results) else 1
