"""Finish a cookiecutter-born repository so it matches what copier produces.

1. Prune: delete what the prune table (cookiecutter.json ``_prune``: path -> Jinja condition) excludes.
   copier.yml's ``_exclude`` is generated from the same table, so both tools drop the same files.
2. Write ``.copier-answers.yml`` the way copier does, so the repository can later run ``copier update``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from jinja2.sandbox import SandboxedEnvironment

# Rendered by cookiecutter: the whole context, including the private prune table.
CONTEXT = json.loads(r"""{{ cookiecutter | jsonify }}""")
ANSWERS_FILE = ".copier-answers.yml"
ANSWERS_HEADER = "# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY\n"


def answers(context: dict) -> dict:
    """The user's answers: cookiecutter marks everything else (settings, private data) with a leading '_'."""
    return {key: value for key, value in context.items() if not key.startswith("_")}


def prune(project_dir: Path, context: dict) -> list[str]:
    env = SandboxedEnvironment()
    removed = []
    for relpath, condition in context.get("_prune", {}).items():
        if not env.compile_expression(condition)(**answers(context)):
            continue
        target = project_dir / relpath.strip("/")
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            continue
        removed.append(relpath)
    return removed


def template_dir(context: dict) -> Path:
    """Absolute path of the template checkout cookiecutter rendered from.

    ``_repo_dir`` is relative when the user gave a relative path. While hooks run, cookiecutter's own working
    directory is the template checkout (it runs hooks inside ``work_in(repo_dir)``), so read it from the
    parent process on Linux; elsewhere resolve against the shell's ``PWD``.
    """
    repo_dir = Path(context["_repo_dir"])
    if repo_dir.is_absolute():
        return repo_dir
    parent_cwd = Path(f"/proc/{os.getppid()}/cwd")
    if parent_cwd.exists():
        return parent_cwd.resolve()
    return (Path(os.environ.get("PWD", os.getcwd())) / repo_dir).resolve()


def git(directory: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def template_commit(directory: Path) -> str | None:
    """What copier records as ``_commit``: ``git describe`` when the template is the root of a git repo."""
    toplevel = git(directory, "rev-parse", "--show-toplevel")
    if not toplevel or Path(toplevel).resolve() != directory.resolve():
        return None
    return git(directory, "describe", "--tags", "--always")


def source_path(context: dict, directory: Path) -> str:
    """The template URL as given, or an absolute path: a relative ``_src_path`` breaks ``copier update``."""
    template = str(context["_template"])
    if "://" in template or template.startswith(("git@", "gh:", "gl:", "bb:")):
        return template
    return str(directory)


def answers_document(context: dict) -> str:
    directory = template_dir(context)
    data = {}
    commit = template_commit(directory)
    if commit:
        data["_commit"] = commit
    data["_src_path"] = source_path(context, directory)
    data.update(answers(context))
    # Same serialisation as copier's ``to_nice_yaml`` filter: sorted keys, 4-space indent, block style.
    return ANSWERS_HEADER + yaml.dump(data, indent=4, allow_unicode=True, default_flow_style=False)


def main() -> int:
    project_dir = Path.cwd()
    prune(project_dir, CONTEXT)
    (project_dir / ANSWERS_FILE).write_text(answers_document(CONTEXT), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
