"""Bake the template with cookiecutter and copier, the way users do, for tests and golden listings.

Both tools render from a throw-away git repository holding exactly the template files a commit would hold
(tracked plus untracked-but-not-ignored files of the work tree), tagged ``v0.0.0``. A tagged clean repo means
copier renders the work tree, not the last release, and both tools record the same ``_commit``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR_NAME = "{{cookiecutter.project_slug}}"
ANSWERS_FILE = ".copier-answers.yml"
# What a template checkout needs: cookiecutter reads cookiecutter.json + hooks, copier reads copier.yml.
TEMPLATE_PARTS = ("cookiecutter.json", "copier.yml", "hooks", TEMPLATE_DIR_NAME)
# Never part of a template even when not ignored by git (e.g. a run inside the template folder).
JUNK_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".venv", ".DS_Store"}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "template-tests",
    "GIT_AUTHOR_EMAIL": "template-tests@example.com",
    "GIT_COMMITTER_NAME": "template-tests",
    "GIT_COMMITTER_EMAIL": "template-tests@example.com",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return result.stdout


def load_config() -> dict[str, Any]:
    return json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))


def questions() -> dict[str, Any]:
    return {key: value for key, value in load_config().items() if not key.startswith("_")}


def template_source_files(root: Path = ROOT) -> list[Path]:
    """Template files as a commit of the work tree would hold them."""
    try:
        listed = git(
            root, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *TEMPLATE_PARTS
        )
        candidates = [Path(name) for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        candidates = [
            path.relative_to(root)
            for part in TEMPLATE_PARTS
            for path in (root / part).rglob("*")
            if path.is_file()
        ]
    return sorted(
        path for path in candidates if (root / path).is_file() and not JUNK_PARTS.intersection(path.parts)
    )


def make_template_repo(dest: Path, tag: str = "v0.0.0") -> Path:
    """Copy the template into ``dest`` as a fresh git repository tagged ``tag``."""
    dest.mkdir(parents=True, exist_ok=True)
    for relpath in template_source_files():
        target = dest / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relpath, target)
    git(dest, "init", "--quiet", "--initial-branch=main")
    git(dest, "add", "--all")
    git(dest, "commit", "--quiet", "--no-verify", "--message", "template under test")
    git(dest, "tag", tag)
    return dest


# Questions whose answers change the same files together (prunes, stacks, the model suite): every
# combination of them is baked. The other questions (python_version, license) change files of their own, so
# pairwise coverage of their answers against every other question is enough; a new question joins one group.
INTERACTING = ("problem_type", "include_monitoring", "ci_provider")


def axes() -> dict[str, list[Any]]:
    """The choice and yes/no questions with their possible answers."""
    out: dict[str, list[Any]] = {}
    for name, value in questions().items():
        if isinstance(value, list):
            out[name] = value
        elif isinstance(value, bool):
            out[name] = [True, False]
    return out


def uncovered_pairs(rows: list[dict[str, Any]], all_axes: dict[str, list[Any]]) -> set[tuple]:
    """Pairs of (question, answer) that no row holds together."""
    wanted = {
        ((a, x), (b, y))
        for a, b in itertools.combinations(all_axes, 2)
        for x in all_axes[a]
        for y in all_axes[b]
    }
    held = {((a, row[a]), (b, row[b])) for row in rows for a, b in itertools.combinations(all_axes, 2)}
    return wanted - held


# The repository tests/test_release_upgrade.py takes from v0.1.0 to this release and then runs the README's
# whole `make test` in: the other answers are the defaults. tests/test_infra.py leaves its infra/ to that run.
UPGRADE_ANSWERS = {
    "project_name": "Fraud Score",
    "problem_type": "binary_classification",
    "ci_provider": "codepipeline",
}


def variants() -> list[dict[str, Any]]:
    """The bake matrix: every combination of the INTERACTING questions; answers of the others are greedy
    picks so that every pair of answers of any two questions appears in some variant (pairwise coverage)."""
    all_axes = axes()
    free = [name for name in all_axes if name not in INTERACTING]
    fixed = [name for name in all_axes if name in INTERACTING]
    rows: list[dict[str, Any]] = []
    for combo in itertools.product(*(all_axes[name] for name in fixed)):
        base = dict(zip(fixed, combo, strict=True))
        best, best_gain = None, -1
        missing = uncovered_pairs(rows, all_axes)
        for choice in itertools.product(*(all_axes[name] for name in free)):
            row = {**base, **dict(zip(free, choice, strict=True))}
            gain = len(missing) - len(missing & uncovered_pairs([*rows, row], all_axes))
            if gain > best_gain:
                best, best_gain = row, gain
        rows.append(best)
    # Rows for pairs of free answers the product rows could not hold.
    while missing := uncovered_pairs(rows, all_axes):
        (a, x), (b, y) = sorted(missing, key=repr)[0]
        rows.append({**{name: values[0] for name, values in all_axes.items()}, a: x, b: y})
    return [{name: row[name] for name in all_axes} for row in rows]


def variant_id(answers: dict[str, Any]) -> str:
    parts = []
    for name, value in answers.items():
        if isinstance(value, bool):
            parts.append(name if value else f"no_{name}")
        else:
            parts.append(str(value))
    return "-".join(parts)


def bake_cookiecutter(template: Path, answers: dict[str, Any], output_dir: Path) -> Path:
    from cookiecutter.main import cookiecutter

    output_dir.mkdir(parents=True, exist_ok=True)
    return Path(cookiecutter(str(template), no_input=True, extra_context=answers, output_dir=str(output_dir)))


def bake_copier(template: Path, answers: dict[str, Any], output_dir: Path) -> Path:
    """copier writes into the destination it is given, so name it like cookiecutter does: the slug."""
    import copier

    worker = copier.run_copy(
        str(template),
        str(output_dir / "project"),
        data=answers,
        defaults=True,
        unsafe=False,
        vcs_ref="HEAD",
        quiet=True,
    )
    slug = worker.answers.combined["project_slug"]
    project = output_dir / slug
    (output_dir / "project").rename(project)
    return project


def list_files(project: Path) -> list[str]:
    """Sorted POSIX paths of every file (not directory) of a generated project."""
    return sorted(path.relative_to(project).as_posix() for path in project.rglob("*") if path.is_file())


def iter_text_files(project: Path) -> Iterator[tuple[str, str]]:
    for relpath in list_files(project):
        data = (project / relpath).read_bytes()
        if b"\0" in data:
            continue
        try:
            yield relpath, data.decode("utf-8")
        except UnicodeDecodeError:
            continue
