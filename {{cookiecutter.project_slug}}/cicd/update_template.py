"""Take a newer release of the template this repository was generated from (``make update-template``).

The repository records its template source and version in ``.copier-answers.yml``. This script checks
everything ``copier update`` needs before it touches a file, then runs it: template changes arrive, your own
edits stay (three-way merge), and real conflicts are marked inline with ``<<<<<<< before updating``. If
anything fails on the way, the repository is put back exactly as it was (the work tree must be clean to
start, so that is always possible).

Usage:
    python -m cicd.update_template                   # update to the newest release
    python -m cicd.update_template --vcs-ref v1.4.0  # or to a given release (tag, branch or commit)
    python -m cicd.update_template --check           # only say whether a newer release exists

Exit codes:
    update: 0 updated (or already current), 1 updated with conflicts to resolve, 2 error (nothing changed)
    --check: 0 current, 10 a newer release is available, 2 error
    (``make`` turns every non-zero exit into 2: scripts that need the difference call this file directly, read
    the first word of the output, ``current:`` or ``available:``, or, under GitHub Actions, the ``status``
    output written to ``$GITHUB_OUTPUT``.)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANSWERS_FILE = ".copier-answers.yml"
CONFLICT_MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")
GIT_TIMEOUT_SECONDS = 300

EXIT_OK = 0
EXIT_CONFLICTS = 1
EXIT_ERROR = 2
EXIT_NEWER_RELEASE = 10

# What the repository's own default answers look like: anything else is a hand edit to check.
SCALAR_TYPES = (str, bool, int, float, type(None))


class UpdateError(Exception):
    """A problem that stops the update before (or instead of) changing anything; the message says the fix."""


@dataclass
class Plan:
    """Where the template is, which version the repository has, and which one it would move to."""

    project: Path
    src_path: str
    recorded: str
    recorded_version: str
    target: str
    target_version: str
    releases: list[str]
    answers: dict[str, Any]
    recorded_commit: str
    target_commit: str
    migrations: list[str] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return self.recorded_commit == self.target_commit


@dataclass
class Outcome:
    status: str  # "current", "updated", "conflicts"
    recorded: str
    target: str
    changed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def git(cwd: Path, *args: str, timeout: int = GIT_TIMEOUT_SECONDS) -> str:
    """Run git without ever prompting for credentials; raise UpdateError with git's own words."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise UpdateError(f"git {' '.join(args)} did not finish within {timeout} s") from exc
    except OSError as exc:
        raise UpdateError(f"git is not installed or not on PATH ({exc}): install git and retry") from exc
    if result.returncode:
        raise UpdateError((result.stderr or result.stdout).strip() or f"git {' '.join(args)} failed")
    return result.stdout


def work_tree_root(project: Path) -> Path:
    try:
        return Path(git(project, "rev-parse", "--show-toplevel").strip())
    except UpdateError as exc:
        raise UpdateError(
            f"{project} is not a git repository, and updates need one to merge your edits with the template's: "
            "run `git init && git add --all && git commit -m 'Generated from the template'` first"
        ) from exc


def ensure_clean(project: Path) -> None:
    """copier merges against the last commit; uncommitted work would be mixed into the update."""
    status = git(project, "status", "--porcelain", "--untracked-files=normal").splitlines()
    if status:
        shown = "\n".join(f"    {line}" for line in status[:10])
        more = f"\n    ... and {len(status) - 10} more" if len(status) > 10 else ""
        raise UpdateError(
            f"the work tree has uncommitted changes:\n{shown}{more}\n"
            "Commit them (`git add --all && git commit`) or stash them (`git stash --include-untracked`), "
            "then run the update again."
        )


def load_answers(project: Path) -> dict[str, Any]:
    import yaml

    path = project / ANSWERS_FILE
    restore = f"restore it from history (`git log -- {ANSWERS_FILE}`, then `git checkout <commit> -- {ANSWERS_FILE}`)"
    if not path.is_file():
        raise UpdateError(
            f"{ANSWERS_FILE} is missing, so the template source and version are unknown: {restore}, "
            "or recreate it with `_src_path` (the template's URL) and `_commit` (the release it was generated from)"
        )
    try:
        answers = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UpdateError(f"{ANSWERS_FILE} is not valid YAML ({exc}): fix the syntax or {restore}") from exc
    if not isinstance(answers, dict):
        raise UpdateError(f"{ANSWERS_FILE} must be a mapping of answers, not {type(answers).__name__}: {restore}")
    for key in ("_src_path", "_commit"):
        value = answers.get(key)
        if not isinstance(value, str) or not value.strip():
            what = "the template's URL or path" if key == "_src_path" else "the template release it came from"
            raise UpdateError(
                f"{ANSWERS_FILE}: `{key}` is {value!r}; it must be {what} (for example "
                f"{'https://github.com/<org>/sagemaker-mlops-template.git' if key == '_src_path' else 'v1.2.0'}): "
                f"set it, commit, and retry, or {restore}"
            )
    for key, value in answers.items():
        if not key.startswith("_") and not isinstance(value, SCALAR_TYPES):
            raise UpdateError(
                f"{ANSWERS_FILE}: answer `{key}` is {value!r}, but answers are single values: "
                f"set it back to one value, or {restore}"
            )
    return answers


def is_remote(src: str) -> bool:
    return "://" in src or src.startswith(("git@", "gh:", "gl:")) or re.match(r"^[\w.-]+@[\w.-]+:", src) is not None


def expand_source(src: str) -> str:
    """copier's shortcuts for GitHub and GitLab, so git can reach the same place."""
    if src.startswith("gh:"):
        return f"https://github.com/{src[3:]}"
    if src.startswith("gl:"):
        return f"https://gitlab.com/{src[3:]}"
    return src


def clone_template(src: str, dest: Path) -> None:
    source = expand_source(src)
    if not is_remote(source) and not Path(source).exists():
        raise UpdateError(
            f"the template source {src!r} (`_src_path` in {ANSWERS_FILE}) does not exist on this machine. "
            f"If the template moved, set `_src_path` to its new URL or path, commit, and retry"
        )
    try:
        git(dest.parent, "clone", "--quiet", "--bare", source, str(dest))
    except UpdateError as exc:
        raise UpdateError(
            f"the template source {src!r} (`_src_path` in {ANSWERS_FILE}) is unreachable: {exc}\n"
            "Check the network and your git credentials for it; if the template moved, set `_src_path` to its "
            "new URL, commit, and retry"
        ) from exc


def parse_version(text: str):
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return None


def releases(clone: Path) -> list[str]:
    """The template's release tags (PEP 440 versions, no pre-releases), oldest first, as copier orders them."""
    tags = git(clone, "tag", "--list").split()
    versions = [(parse_version(tag), tag) for tag in tags]
    return [tag for version, tag in sorted(v for v in versions if v[0] is not None and not v[0].is_prerelease)]


def resolve(clone: Path, ref: str) -> str | None:
    try:
        return git(clone, "rev-parse", "--verify", "--quiet", ref + "^" + "{commit}").strip()
    except UpdateError:
        return None


def version_of(clone: Path, ref: str) -> str:
    """The release a commit belongs to (``git describe``), which is what copier compares versions with."""
    try:
        return git(clone, "describe", "--tags", "--abbrev=0", ref).strip()
    except UpdateError:
        return ""


def read_template_config(clone: Path, commit: str) -> dict[str, Any]:
    import yaml

    try:
        return yaml.safe_load(git(clone, "show", f"{commit}:copier.yml")) or {}
    except UpdateError as exc:
        raise UpdateError(
            f"the template at {commit} has no copier.yml: is `_src_path` the right template? ({exc})"
        ) from exc


def check_answers_against(config: dict[str, Any], answers: dict[str, Any]) -> None:
    """Choices and types of the target release's questions (copier itself then runs the validators)."""
    for name, spec in config.items():
        if name.startswith("_") or not isinstance(spec, dict) or name not in answers or spec.get("when") is False:
            continue
        value = answers[name]
        choices = spec.get("choices")
        if isinstance(choices, dict):
            choices = list(choices.values())
        if choices and value not in choices:
            raise UpdateError(
                f"{ANSWERS_FILE}: answer `{name}` is {value!r}, which the template does not offer; "
                f"use one of {', '.join(map(str, choices))}: edit the file, commit, and retry"
            )
        if spec.get("type") == "bool" and not isinstance(value, bool):
            raise UpdateError(
                f"{ANSWERS_FILE}: answer `{name}` is {value!r}, but it is a yes/no question: "
                "write true or false, commit, and retry"
            )


def migrations_between(config: dict[str, Any], recorded_version: str, target_version: str) -> list[str]:
    """The template's `_migrations` copier will run for this step (it runs those with from < version <= to)."""
    start, end = parse_version(recorded_version), parse_version(target_version)
    if start is None or end is None:
        return []
    found = []
    for migration in config.get("_migrations") or []:
        if isinstance(migration, dict) and "version" in migration:
            version = parse_version(str(migration["version"]))
            if version is not None and start < version <= end:
                command = migration.get("command")
                shown = " ".join(map(str, command)) if isinstance(command, list) else str(command)
                found.append(f"{migration['version']}: {shown}")
        else:
            found.append(f"every update: {migration}")
    return found


def make_plan(project: Path, vcs_ref: str | None, workdir: Path, src_path: str | None = None) -> Plan:
    """Everything the update needs, checked; ``src_path`` overrides the recorded template source."""
    answers = load_answers(project)
    src = src_path or str(answers["_src_path"])
    recorded = str(answers["_commit"])
    clone = workdir / "template.git"
    clone_template(src, clone)
    known = releases(clone)
    listing = ", ".join(known[-8:]) or "none"
    recorded_commit = resolve(clone, recorded)
    if recorded_commit is None:
        raise UpdateError(
            f"this repository was generated from template version {recorded!r} (`_commit` in {ANSWERS_FILE}), "
            f"which no longer exists in {src} (a deleted tag or rewritten history); copier needs it to tell "
            f"your edits from the template's. Set `_commit` to the existing release closest to it "
            f"(releases: {listing}), commit, retry, and review the resulting diff with care"
        )
    recorded_version = version_of(clone, recorded_commit)
    if parse_version(recorded_version) is None:
        raise UpdateError(
            f"template version {recorded!r} (`_commit` in {ANSWERS_FILE}) is not on or after a release tag, so "
            f"copier cannot order it: set `_commit` to the release it was generated from (releases: {listing}), "
            "commit, and retry"
        )
    if vcs_ref:
        target = vcs_ref
    elif known:
        target = known[-1]
    else:
        raise UpdateError(f"the template at {src} has no release tags (v1.2.3): ask its owners to tag a release")
    target_commit = resolve(clone, target)
    if target_commit is None:
        raise UpdateError(f"template version {target!r} does not exist in {src}: use one of {listing}")
    target_version = version_of(clone, target_commit)
    if parse_version(target_version) is None:
        raise UpdateError(f"{target!r} is not on or after a release tag of the template: use one of {listing}")
    if parse_version(target_version) < parse_version(recorded_version):
        raise UpdateError(
            f"{target!r} ({target_version}) is older than this repository's template version "
            f"{recorded!r} ({recorded_version}); copier does not downgrade: pick {recorded} or newer ({listing})"
        )
    config = read_template_config(clone, target_commit)
    check_answers_against(config, answers)
    return Plan(
        project=project,
        src_path=src,
        recorded=recorded,
        recorded_version=recorded_version,
        target=target,
        target_version=target_version,
        releases=known,
        answers=answers,
        recorded_commit=recorded_commit,
        target_commit=target_commit,
        migrations=migrations_between(config, recorded_version, target_version),
    )


def restore(root: Path, head: str) -> None:
    """Back to the commit the update started from: the tree was clean, so this loses nothing of yours."""
    git(root, "reset", "--quiet", "--hard", head)
    git(root, "clean", "--quiet", "-d", "--force")


def changed_files(root: Path) -> list[str]:
    status = git(root, "status", "--porcelain", "--untracked-files=all", "--no-renames").splitlines()
    return sorted({line[3:].strip('"') for line in status if line.strip()})


def conflicted_files(root: Path, files: list[str]) -> list[str]:
    found = []
    for name in files:
        path = root / name
        if name.endswith(".rej"):
            found.append(name)
            continue
        if not path.is_file():
            continue
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            continue
        if any(line.rstrip().decode("utf-8", "replace") in CONFLICT_MARKERS for line in lines):
            found.append(name)
    return found


def require_copier() -> None:
    """copier (and PyYAML, which it brings) come from requirements-dev.txt."""
    try:
        import copier  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as exc:
        raise UpdateError(
            f"{exc.name} is not installed in this environment ({sys.executable}): run `make setup` "
            "(requirements-dev.txt pins copier), or `pip install copier`"
        ) from exc


def run_copier(plan: Plan, conflict: str, quiet: bool) -> None:
    import copier

    copier.run_update(
        str(plan.project),
        vcs_ref=plan.target,
        defaults=True,
        overwrite=True,
        # Migrations run commands, which copier only does when trusted: granted only when this step crosses
        # a release that declares one (they are listed before the update starts).
        unsafe=bool(plan.migrations),
        quiet=quiet,
        conflict=conflict,
    )


def update(
    project: Path,
    vcs_ref: str | None = None,
    conflict: str = "inline",
    quiet: bool = True,
    log=print,
) -> Outcome:
    """Update ``project`` in place; on any failure restore it and raise UpdateError."""
    require_copier()
    project = project.resolve()
    root = work_tree_root(project)
    ensure_clean(project)
    with tempfile.TemporaryDirectory(prefix="update-template-") as workdir:
        plan = make_plan(project, vcs_ref, Path(workdir))
    if plan.current:
        log(f"already at template version {plan.recorded}: nothing to update")
        return Outcome("current", plan.recorded, plan.target)
    log(f"updating the template from {plan.recorded} to {plan.target} ({plan.src_path})")
    for migration in plan.migrations:
        log(f"  migration {migration}")
    head = git(root, "rev-parse", "HEAD").strip()
    try:
        run_copier(plan, conflict, quiet)
    except BaseException as exc:
        restore(root, head)
        if isinstance(exc, KeyboardInterrupt):
            raise
        message = str(exc).strip() or type(exc).__name__
        raise UpdateError(
            f"copier update failed: {message}\nThe repository is back to its state before the update "
            f"(commit {head[:12]}); nothing was changed."
        ) from exc
    files = changed_files(root)
    conflicts = conflicted_files(root, files)
    if load_answers(project).get("_commit") == plan.recorded:
        restore(root, head)
        raise UpdateError(f"copier did not move `_commit` on to {plan.target}; the repository was restored")
    return Outcome("conflicts" if conflicts else "updated", plan.recorded, plan.target, files, conflicts)


def write_github_output(**values: str) -> None:
    """Under GitHub Actions, also hand the result to later steps (``steps.<id>.outputs.status``...)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as output:
            output.writelines(f"{key}={value}\n" for key, value in values.items())


def check(project: Path, vcs_ref: str | None = None, log=print) -> int:
    """Exit code 0 when current, 10 when a newer release exists; the first word of the line says the same."""
    require_copier()
    project = project.resolve()
    work_tree_root(project)
    with tempfile.TemporaryDirectory(prefix="update-template-") as workdir:
        plan = make_plan(project, vcs_ref, Path(workdir))
    if plan.current:
        log(f"current: template version {plan.recorded} is the newest release")
        write_github_output(status="current", current=plan.recorded, latest=plan.target)
        return EXIT_OK
    log(
        f"available: template release {plan.target} is available (this repository has {plan.recorded}): "
        "run `make update-template`"
    )
    write_github_output(status="available", current=plan.recorded, latest=plan.target)
    return EXIT_NEWER_RELEASE


def report(outcome: Outcome, log=print) -> int:
    if outcome.status == "current":
        return EXIT_OK
    log(f"{len(outcome.changed)} files changed by the update from {outcome.recorded} to {outcome.target}:")
    for name in outcome.changed:
        log(f"  {'CONFLICT ' if name in outcome.conflicts else ''}{name}")
    if outcome.conflicts:
        log(
            f"{len(outcome.conflicts)} files have conflicts marked inline between `<<<<<<< before updating` and "
            "`>>>>>>> after updating`: keep the right lines, delete the markers, then `git add` them. "
            "Review everything with `git diff`, run `make test`, and commit."
        )
        return EXIT_CONFLICTS
    log("review with `git diff`, run `make test`, and commit (for example `git commit -am 'Template update'`)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vcs-ref", default=None, help="template release to take (default: the newest)")
    parser.add_argument("--check", action="store_true", help="only report whether a newer release exists")
    parser.add_argument(
        "--project-dir", type=Path, default=Path.cwd(), help="repository to update (default: current directory)"
    )
    parser.add_argument(
        "--conflict", choices=("inline", "rej"), default="inline", help="how to leave conflicts (default: inline)"
    )
    parser.add_argument("--verbose", action="store_true", help="show copier's per-file output")
    args = parser.parse_args(argv)
    try:
        if args.check:
            return check(args.project_dir, args.vcs_ref)
        outcome = update(args.project_dir, args.vcs_ref, conflict=args.conflict, quiet=not args.verbose)
    except UpdateError as exc:
        print(f"update-template: {exc}", file=sys.stderr)
        if args.check:
            write_github_output(status="error")
        return EXIT_ERROR
    return report(outcome)


if __name__ == "__main__":
    sys.exit(main())
