"""Shared fixtures: one template repository and one bake of every variant per test session."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.baking import (
    GIT_IDENTITY,
    ROOT,
    TEMPLATE_DIR_NAME,
    bake_cookiecutter,
    bake_copier,
    make_template_repo,
    variant_id,
    variants,
)

VARIANTS = variants()


# Modules whose module-scoped fixtures do costly work for all their tests (train the table corpus, run the
# catalog's AWS suite, build a fleet of repositories, bake for the CI checks, group the stacks, prepare
# repositories behind a release): under pytest-xdist each runs whole on one worker, so none is built twice.
# The other modules' tests go to whichever worker is free.
WHOLE_MODULES = (
    "test_table_corpus",
    "test_catalog",
    "test_fleet",
    "test_ci_definitions",
    "test_infra",
    "test_lifecycle",
)


# The longest tests first, so the two workers never end with one long test running alone.
LONG_FIRST = (
    "test_release_upgrade",
    "test_table_corpus",
    "test_generated_project",
    "test_own_table_walkthrough",
    "test_infra",
    "test_catalog",
    "test_lifecycle",
)


def _module(item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _module(item) in WHOLE_MODULES:
            item.add_marker(pytest.mark.xdist_group(_module(item)))
    rank = {name: position for position, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(_module(item), len(LONG_FIRST)))


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
    """Every variant baked once by each tool; the tests below only read these trees.

    Under pytest-xdist the first worker to ask bakes them into the run's shared temporary folder and the other
    reuses them (the trees are only read), so the 24 bakes happen once per run, not once per worker.
    """
    from filelock import FileLock

    def bake_all(out: Path) -> None:
        for answers in VARIANTS:
            name = variant_id(answers)
            bake_cookiecutter(template_repo, answers, out / "cookiecutter" / name)
            bake_copier(template_repo, answers, out / "copier" / name)

    if os.environ.get("PYTEST_XDIST_WORKER"):
        out = tmp_path_factory.getbasetemp().parent / "bakes"  # the folder all workers of this run share
        with FileLock(f"{out}.lock"):
            if not (out / ".complete").exists():
                bake_all(out)
                (out / ".complete").touch()
    else:
        out = tmp_path_factory.mktemp("bakes")
        bake_all(out)

    def project(tool: str, name: str) -> Path:
        (tree,) = (out / tool / name).iterdir()  # the project folder, named after its slug
        return tree

    return {
        variant_id(answers): Baked(
            answers=answers,
            cookiecutter=project("cookiecutter", variant_id(answers)),
            copier=project("copier", variant_id(answers)),
        )
        for answers in VARIANTS
    }


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sagemaker-mlops-template"


def worker_suffix() -> str:
    """Empty without pytest-xdist, else "-gw0", "-gw1", ...: each worker installs the generated projects it
    tests into environments of its own (`make setup` installs the project editable), so two never race."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"-{worker}" if worker else ""


@contextmanager
def cache_lock(name: str):
    """One process at a time builds a given environment in the cache (xdist workers, parallel CI jobs)."""
    from filelock import FileLock

    cache_root().mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_root() / f".{name}.lock")):
        yield


@pytest.fixture(scope="session")
def e2e_venv() -> Path:
    """One environment shared by every generated project's suite (one per xdist worker), kept between runs.

    Override with SMT_E2E_VENV; by default it lives in the user's cache dir so CI re-runs reuse it.
    The generated Makefile's ``make setup VENV=...`` is a no-op once the pins are installed.
    """
    override = os.environ.get("SMT_E2E_VENV")
    venv = (
        Path(override + worker_suffix()) if override else cache_root() / f"e2e-venv-py3.11{worker_suffix()}"
    )
    venv.parent.mkdir(parents=True, exist_ok=True)
    return venv.resolve()


def _tool_venv(name: str, override_env: str, requirements: Path, per_worker: bool = True) -> Path:
    """A virtual environment in the cache dir holding one requirements file, created (or refreshed) on demand.

    The stamp is the requirements file's hash, so a changed pin reinstalls and an unchanged one is a no-op.
    Environments the generated Makefile installs a project into are per xdist worker (``per_worker``).
    """
    import hashlib
    import subprocess
    import sys

    override = os.environ.get(override_env)
    suffix = worker_suffix() if per_worker else ""
    venv = Path(override + suffix) if override else cache_root() / f"{name}{suffix}"
    stamp = venv / f".installed-{hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]}"
    with cache_lock(venv.name):
        if not stamp.exists():
            if not (venv / "bin" / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    "-r",
                    str(requirements),
                ],
                check=True,
            )
            for old in venv.glob(".installed-*"):
                old.unlink()
            stamp.touch()
    return venv.resolve()


@pytest.fixture(scope="session")
def aws_venv() -> Path:
    """The generated repository's AWS-side environment, from its requirements-aws.txt.

    boto3, the SageMaker SDK v3, moto, cfn-lint and check-jsonschema. Override with SMT_AWS_VENV.
    """
    return _tool_venv("aws-venv-py3.11", "SMT_AWS_VENV", ROOT / TEMPLATE_DIR_NAME / "requirements-aws.txt")


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    """checkov from its own environment (it pins an older boto3). Override the venv with SMT_CHECKOV_VENV."""
    venv = _tool_venv(
        "checkov-venv",
        "SMT_CHECKOV_VENV",
        ROOT / TEMPLATE_DIR_NAME / "requirements-checkov.txt",
        per_worker=False,
    )
    return venv / "bin" / "checkov"


@pytest.fixture(scope="session")
def inference_venv() -> Path:
    """The inference image's environment: model/inference/requirements.txt and nothing else (no scikit-learn).

    Serving from it proves the exported artifact needs only onnxruntime. Override with SMT_INFERENCE_VENV.
    """
    return _tool_venv(
        "inference-venv-py3.11",
        "SMT_INFERENCE_VENV",
        ROOT / TEMPLATE_DIR_NAME / "model" / "inference" / "requirements.txt",
    )


__all__ = ["ROOT", "VARIANTS", "Baked"]
