"""Shared fixtures: one template repository and one bake of every variant per test session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.baking import (
    GIT_IDENTITY,
    ROOT,
    bake_cookiecutter,
    bake_copier,
    make_template_repo,
    variant_id,
    variants,
)

VARIANTS = variants()


@pytest.fixture(scope="session", autouse=True)
def git_identity() -> None:
    """copier commits inside temporary repositories during updates; CI machines may have no git identity."""
    for key, value in GIT_IDENTITY.items():
        os.environ.setdefault(key, value)


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template_repo(tmp_path_factory.mktemp("template") / "sagemaker-mlops-template")


@dataclass(frozen=True)
class Baked:
    answers: dict
    cookiecutter: Path
    copier: Path


@pytest.fixture(scope="session")
def bakes(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Baked]:
    """Every variant baked once by each tool; the tests below only read these trees."""
    out = tmp_path_factory.mktemp("bakes")
    result = {}
    for answers in VARIANTS:
        name = variant_id(answers)
        result[name] = Baked(
            answers=answers,
            cookiecutter=bake_cookiecutter(template_repo, answers, out / "cookiecutter" / name),
            copier=bake_copier(template_repo, answers, out / "copier" / name),
        )
    return result


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sagemaker-mlops-template"


@pytest.fixture(scope="session")
def e2e_venv() -> Path:
    """One virtual environment shared by every generated project's suite, kept between runs.

    Override with SMT_E2E_VENV; by default it lives in the user's cache dir so CI re-runs reuse it.
    The generated Makefile's ``make setup VENV=...`` is a no-op once the pins are installed.
    """
    override = os.environ.get("SMT_E2E_VENV")
    venv = Path(override) if override else cache_root() / "e2e-venv-py3.11"
    venv.parent.mkdir(parents=True, exist_ok=True)
    return venv.resolve()


__all__ = ["ROOT", "VARIANTS", "Baked"]
