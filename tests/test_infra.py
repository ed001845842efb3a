"""The generated CloudFormation stacks of every variant: cfn-lint, checkov and infra/tests report nothing.

Every variant's cookiecutter bake (the session's ``bakes``; copier's output is compared with it elsewhere)
is grouped by the content of infra/ and monitoring/alarms/, so each tool runs once per distinct set of stacks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.baking import variant_id
from tests.conftest import VARIANTS

HASHED_FOLDERS = ("infra", "monitoring/alarms")
WORKERS = max(1, min(2, os.cpu_count() or 1))  # checkov and pytest are CPU bound
JUNK = {"__pycache__", ".pytest_cache"}


@dataclass
class InfraGroup:
    """Variants whose infra/ and monitoring/alarms/ are byte for byte the same, and one bake of them."""

    digest: str
    project: Path
    variants: list[str]

    def describe(self) -> str:
        more = len(self.variants) - 3
        shown = ", ".join(self.variants[:3]) + (f" and {more} more" if more > 0 else "")
        return f"{self.digest[:12]} ({shown})"


def infra_digest(project: Path) -> str:
    digest = hashlib.sha256()
    for folder in HASHED_FOLDERS:
        for path in sorted((project / folder).rglob("*")):
            if path.is_file() and not JUNK.intersection(path.parts):
                name = path.relative_to(project).as_posix().encode()
                digest.update(name + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def infra_groups(bakes: dict, tmp_path_factory: pytest.TempPathFactory) -> list[InfraGroup]:
    """Group the session's cookiecutter bakes; each group runs in its own copy (the tools write caches)."""
    out = tmp_path_factory.mktemp("infra-groups")
    groups: dict[str, InfraGroup] = {}
    for answers in VARIANTS:
        name = variant_id(answers)
        baked = bakes[name].cookiecutter
        digest = infra_digest(baked)
        if digest in groups:
            groups[digest].variants.append(name)
        else:
            groups[digest] = InfraGroup(digest, Path(shutil.copytree(baked, out / name)), [name])
    return list(groups.values())


def run_everywhere(groups: list[InfraGroup], command: Callable[[Path], list[str]], timeout: int) -> list[str]:
    """Run command in each group's project (in parallel); the failures, each with its variants and output."""

    def run(group: InfraGroup) -> str | None:
        result = subprocess.run(
            command(group.project),
            cwd=group.project,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode == 0:
            return None
        return f"{group.describe()}: exit {result.returncode}\n{result.stdout[-4000:]}{result.stderr[-2000:]}"

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return [failure for failure in pool.map(run, groups) if failure]


def test_every_variant_is_baked_and_grouped(infra_groups, capsys):
    with capsys.disabled():
        print(f"\ninfra: {len(VARIANTS)} variants, {len(infra_groups)} distinct infra/ + monitoring/alarms/")
    assert sum(len(g.variants) for g in infra_groups) == len(VARIANTS)
    for group in infra_groups:
        assert sorted(p.name for p in (group.project / "infra" / "lib").glob("*.yaml"))


def test_cfn_lint_reports_nothing(infra_groups, aws_venv):
    cfn_lint = aws_venv / "bin" / "cfn-lint"

    def command(project: Path) -> list[str]:
        return [str(cfn_lint), *sorted(str(p) for p in (project / "infra" / "lib").glob("*.yaml"))]

    failures = run_everywhere(infra_groups, command, timeout=300)
    assert not failures, "\n\n".join(failures)


def test_checkov_fails_no_check(infra_groups, checkov_bin):
    def command(project: Path) -> list[str]:
        return [
            str(checkov_bin),
            "--directory",
            "infra/lib",
            "--config-file",
            "infra/.checkov.yaml",
            "--framework",
            "cloudformation",
            "--compact",
            "--quiet",
            "--skip-download",
        ]

    failures = run_everywhere(infra_groups, command, timeout=600)
    assert not failures, "\n\n".join(failures)


def test_the_generated_infra_tests_pass(infra_groups, aws_venv):
    """infra/tests of each distinct bake in the AWS environment (contracts, alarms, moto smoke deployment)."""
    python = aws_venv / "bin" / "python"

    def command(project: Path) -> list[str]:
        return [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "infra/tests"]

    failures = run_everywhere(infra_groups, command, timeout=900)
    assert not failures, "\n\n".join(failures)
