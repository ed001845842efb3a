"""The generated CloudFormation stacks of every variant: checkov and infra/tests report nothing.

Every variant's cookiecutter bake (the session's ``bakes``; copier's output is compared with it elsewhere)
is grouped by the content of infra/ and monitoring/alarms/. checkov reads every distinct template once;
infra/tests (which also runs cfn-lint on every template of infra/lib) runs in the fewest groups that hold
every distinct file, counting the repository tests/test_release_upgrade.py updates, which runs infra/tests
in its whole `make test`.
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

from tests.baking import UPGRADE_ANSWERS, bake_cookiecutter, variant_id
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


def infra_files(project: Path) -> frozenset[tuple[str, str]]:
    """(path, content hash) of every file under HASHED_FOLDERS."""
    found = set()
    for folder in HASHED_FOLDERS:
        for path in (project / folder).rglob("*"):
            if path.is_file() and not JUNK.intersection(path.parts):
                found.add(
                    (path.relative_to(project).as_posix(), hashlib.sha256(path.read_bytes()).hexdigest())
                )
    return frozenset(found)


def covering_groups(groups: list[InfraGroup], covered: frozenset[tuple[str, str]]) -> list[InfraGroup]:
    """The fewest groups (greedy) that hold, with `covered`, every distinct file of every group.

    A file's content depends on one or two answers (the toolchain stack on the CI provider and monitoring, the
    monitoring stack and its alarms on the problem type; the endpoint and batch stacks and infra/config on
    none), so infra/tests run once in a real repository per distinct file covers every variant: 4 repositories
    besides the upgraded one instead of 7.
    """
    files = {group.digest: infra_files(group.project) for group in groups}
    left = frozenset().union(*files.values()) - covered
    chosen = []
    while left:
        best = max(sorted(groups, key=lambda g: g.digest), key=lambda g: len(files[g.digest] & left))
        chosen.append(best)
        left -= files[best.digest]
    return chosen


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


def distinct_templates(groups: list[InfraGroup], folder: Path) -> dict[str, list[str]]:
    """Copy each distinct infra/lib template of the groups into folder once: file name -> variants it serves.

    A template's content depends on few answers (the toolchain on the CI provider, the monitoring stack on the
    problem type), so the groups share most of their templates and a scanner needs to read each only once.
    """
    folder.mkdir(parents=True, exist_ok=True)
    served: dict[str, list[str]] = {}
    for group in groups:
        for template in sorted((group.project / "infra" / "lib").glob("*.yaml")):
            content = template.read_bytes()
            name = f"{template.stem}-{hashlib.sha256(content).hexdigest()[:12]}.yaml"
            if name not in served:
                (folder / name).write_bytes(content)
            served.setdefault(name, []).extend(group.variants)
    return served


def test_checkov_fails_no_check(infra_groups, checkov_bin, tmp_path):
    """One checkov run over every distinct template of every variant, with the generated configuration."""
    configs = {(g.project / "infra" / ".checkov.yaml").read_bytes() for g in infra_groups}
    assert len(configs) == 1, (
        "infra/.checkov.yaml differs between variants: scan each configuration on its own"
    )
    served = distinct_templates(infra_groups, tmp_path / "templates")
    (tmp_path / ".checkov.yaml").write_bytes(configs.pop())
    command = [str(checkov_bin), "--directory", "templates", "--config-file", ".checkov.yaml"]
    command += ["--framework", "cloudformation", "--compact", "--quiet", "--skip-download"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    failed = sorted(name for name in served if name in result.stdout)
    variants = sorted({variant for name in failed for variant in served[name]})
    assert result.returncode == 0, (
        f"checkov failed (exit {result.returncode}) on {', '.join(failed) or 'the templates'}, serving "
        f"{variants}:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    )


def upgrade_group(groups: list[InfraGroup], template: Path, tmp_path: Path) -> InfraGroup | None:
    """The group whose infra/ is that of tests/test_release_upgrade.py's repository (its answers)."""
    answers = {key: value for key, value in UPGRADE_ANSWERS.items() if key != "project_name"}
    digest = infra_digest(bake_cookiecutter(template, answers, tmp_path / "upgrade-answers"))
    return next((group for group in groups if group.digest == digest), None)


def test_the_generated_infra_tests_pass(infra_groups, aws_venv, template_repo, tmp_path):
    """infra/tests in the AWS environment (contracts, alarms, cfn-lint, moto deployments) in the repositories
    that hold, with the upgraded one, every distinct infra/ and monitoring/alarms/ file of every variant."""
    python = aws_venv / "bin" / "python"

    def command(project: Path) -> list[str]:
        return [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "infra/tests"]

    upgraded = upgrade_group(infra_groups, template_repo, tmp_path)
    assert upgraded is not None, (
        "no group holds the upgraded repository's answers: its infra/tests ran nowhere"
    )
    groups = covering_groups(infra_groups, covered=infra_files(upgraded.project))
    failures = run_everywhere(groups, command, timeout=900)
    assert not failures, "\n\n".join(failures)
