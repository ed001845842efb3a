"""Template migrations that copier runs during `copier update` (listed in cookiecutter.json ``_migrations``).

copier calls this script from the NEW template's checkout, inside the repository being updated, after its
own update has finished (``_stage == "after"``), with ``VERSION_FROM`` / ``VERSION_TO`` in the environment.
It is never copied into generated repositories (it lives outside the template subdirectory) and cookiecutter
ignores it (only ``pre_gen_project`` / ``post_gen_project`` are hooks).

    migrate.py move OLD NEW
        The template moved OLD to NEW. copier on its own deletes OLD (also when the team edited it) and writes
        the template's NEW. This merges the team's version of OLD (from the last commit) into NEW: a three-way
        merge whose base is the template's OLD at the version the repository came from, so the team's edits
        and the template's changes both arrive at NEW, real conflicts are marked inline like copier's
        (``<<<<<<< before updating`` ... ``>>>>>>> after updating``), and OLD is removed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ANSWERS_FILE = ".copier-answers.yml"
LABELS = ("before updating", "last update", "after updating")


def git(
    cwd: Path, *args: str, input_: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, input=input_, capture_output=True, check=check)


def committed(project: Path, relpath: str) -> bytes | None:
    """A file as the last commit holds it (``./``: relative to the project, not the repository root)."""
    result = git(project, "show", f"HEAD:./{relpath}", check=False)
    return result.stdout if result.returncode == 0 else None


def template_file_at(version: str, relpath: str, project: Path) -> bytes | None:
    """The template's rendering of ``relpath`` at ``version`` with the answers of the last commit."""
    import copier

    answers = yaml.safe_load(committed(project, ANSWERS_FILE) or b"{}") or {}
    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    with tempfile.TemporaryDirectory(prefix="migrate-base-") as tmp:
        destination = Path(tmp) / "project"
        copier.run_copy(
            str(answers["_src_path"]),
            str(destination),
            data=data,
            vcs_ref=version,
            defaults=True,
            quiet=True,
            unsafe=False,
        )
        path = destination / relpath
        return path.read_bytes() if path.is_file() else None


def merge(ours: bytes, base: bytes, theirs: bytes) -> tuple[bytes, bool]:
    """git merge-file on three versions; returns the result and whether conflicts were marked."""
    with tempfile.TemporaryDirectory(prefix="migrate-merge-") as tmp:
        paths = []
        for name, content in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp) / name
            path.write_bytes(content)
            paths.append(str(path))
        result = subprocess.run(
            ["git", "merge-file", "--stdout", *(arg for label in LABELS for arg in ("-L", label)), *paths],
            capture_output=True,
            check=False,
        )
        if result.returncode < 0 or result.returncode > 127:
            raise RuntimeError(result.stderr.decode(errors="replace"))
        return result.stdout, result.returncode > 0


def move(project: Path, old: str, new: str, version_from: str) -> int:
    ours = committed(project, old)
    if ours is None:
        print(f"migration: {old} was not in the repository; nothing to move")
        return 0
    old_path, new_path = project / old, project / new
    base = template_file_at(version_from, old, project)
    if base is None:
        print(f"migration: {old} did not come from the template ({version_from}); left where it is")
        return 0
    theirs = new_path.read_bytes() if new_path.is_file() else None
    if ours == base:
        # The team never edited it: copier already wrote the template's NEW and removed OLD.
        if old_path.exists() and theirs is not None:
            old_path.unlink()
        print(f"migration: {old} -> {new} (unedited, the template's version arrives)")
        return 0
    new_path.parent.mkdir(parents=True, exist_ok=True)
    if theirs is None:
        result, conflicted = ours, False
    else:
        result, conflicted = merge(ours, base, theirs)
    new_path.write_bytes(result)
    if old_path.exists():
        old_path.unlink()
    note = "; CONFLICTS marked inline: resolve them" if conflicted else ", your edits kept"
    print(f"migration: moved {old} -> {new}{note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True)
    moving = sub.add_parser("move", help="merge the team's OLD into the template's NEW, remove OLD")
    moving.add_argument("old")
    moving.add_argument("new")
    args = parser.parse_args(argv)
    version_from = os.environ.get("VERSION_FROM")
    if not version_from:
        print("migrate.py runs inside `copier update` (VERSION_FROM is not set)", file=sys.stderr)
        return 2
    project = Path.cwd()
    return move(project, args.old.strip("/"), args.new.strip("/"), version_from)


if __name__ == "__main__":
    sys.exit(main())
