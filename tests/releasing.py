"""Synthetic template releases and generated repositories for the update and fleet tests.

A release is the work tree's template (``tests.baking.make_template_repo``) tagged ``v1.0.0``, plus commits
on top tagged as later versions: exactly what a template repository's history looks like to copier.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import copier

from tests.baking import ROOT, TEMPLATE_DIR_NAME, git, make_template_repo

UPDATE_SCRIPT = ROOT / TEMPLATE_DIR_NAME / "cicd" / "update_template.py"


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


generator = load_module("generate_copier_yml", ROOT / "scripts" / "generate_copier_yml.py")
update_template = load_module("update_template", UPDATE_SCRIPT)


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-verify", "--message", message)


def template_file(template: Path, relpath: str) -> Path:
    """A file of the generated repository as the template holds it."""
    return template / TEMPLATE_DIR_NAME / relpath


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def first_release(dest: Path, tag: str = "v1.0.0") -> Path:
    return make_template_repo(dest, tag=tag)


def release(template: Path, tag: str, change: Callable[[Path], None]) -> None:
    """Change the template (``change(template)``), commit, tag: a new release."""
    change(template)
    commit_all(template, f"release {tag}")
    git(template, "tag", tag)


def set_config(template: Path, **private: Any) -> None:
    """Set private keys of the template's cookiecutter.json and regenerate copier.yml (`make copier-yml`)."""
    path = template / "cookiecutter.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(private)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (template / "copier.yml").write_text(generator.render(config), encoding="utf-8")


def generate(
    template: Path, dest: Path, answers: dict[str, Any] | None = None, vcs_ref: str | None = None
) -> Path:
    """A generated repository committed as its team would: ``git init`` and a first commit."""
    copier.run_copy(
        str(template), str(dest), data=answers or {}, defaults=True, unsafe=False, vcs_ref=vcs_ref, quiet=True
    )
    git(dest, "init", "--quiet", "--initial-branch=main")
    commit_all(dest, "Generated from the template")
    return dest


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def status(repo: Path) -> str:
    return git(repo, "status", "--porcelain", "--untracked-files=all")
