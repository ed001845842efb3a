"""Every variant, baked by both tools: exact file lists, identical trees, clean and parseable output."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from catalog.toolchain import CloudFormationLoader
from tests.baking import (
    ANSWERS_FILE,
    INTERACTING,
    axes,
    iter_text_files,
    list_files,
    uncovered_pairs,
    variant_id,
)
from tests.conftest import VARIANTS
from tests.golden import golden_path, listing_diff, read_listing

IDS = [variant_id(answers) for answers in VARIANTS]
# Files that legitimately keep `${{ ... }}` (GitHub Actions expressions); only those expressions are allowed.
GITHUB_EXPRESSION_FILES = (
    ".github/workflows/*.yml",
    ".github/workflows/*.yaml",
    ".github/actions/*/action.yml",
)
# Jinja delimiters as templates write them: `{{ x }}`, `{%- if %}`, `{# c #}`, `{{cookiecutter.x}}`, `{%if%}`.
# Bare `}}` and `%}` also occur in valid code ({"a": {"b": 1}}, f"{share:.0%}"), so a delimiter counts as a
# leftover when spaced or trimmed like Jinja's, or when it opens a cookiecutter variable or a Jinja statement.
JINJA_STATEMENTS = "if|elif|else|endif|for|endfor|set|endset|raw|endraw|macro|endmacro|include|import|now"
TEMPLATE_LEFTOVER = re.compile(
    r"\{\{[\s-]|[\s-]\}\}|\{%[\s-]|[\s-]%\}|\{#[\s-]|\{\{\s*cookiecutter\b|\{%\s*("
    + JINJA_STATEMENTS
    + r")\b"
)
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)


def test_the_matrix_holds_every_interacting_combination_and_every_pair_of_answers():
    all_axes = axes()
    assert uncovered_pairs(VARIANTS, all_axes) == set()
    combinations = {tuple(answers[name] for name in INTERACTING) for answers in VARIANTS}
    expected = 1
    for name in INTERACTING:
        expected *= len(all_axes[name])
    assert len(combinations) == expected
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("name", IDS)
def test_file_list_matches_golden_listing(bakes, name):
    baked = bakes[name]
    actual = list_files(baked.cookiecutter)
    expected = read_listing(baked.answers)
    assert actual == expected, listing_diff(expected, actual, golden_path(baked.answers).name)


def test_every_golden_listing_belongs_to_a_variant():
    from tests.golden import GOLDEN_DIR

    names = {f"{name}.txt" for name in IDS}
    orphans = sorted(path.name for path in GOLDEN_DIR.glob("*.txt") if path.name not in names)
    assert not orphans, f"stale listings {orphans}: run `python -m tests.golden --update`"


@pytest.mark.parametrize("name", IDS)
def test_cookiecutter_and_copier_generate_identical_trees(bakes, name):
    baked = bakes[name]
    files = list_files(baked.cookiecutter)
    assert files == list_files(baked.copier)
    differing = [
        relpath
        for relpath in files
        if relpath != ANSWERS_FILE
        and (baked.cookiecutter / relpath).read_bytes() != (baked.copier / relpath).read_bytes()
    ]
    assert not differing, f"files differ between cookiecutter and copier: {differing}"


@pytest.mark.parametrize("name", IDS)
def test_both_tools_record_the_same_answers(bakes, name):
    baked = bakes[name]
    from_cookiecutter = yaml.safe_load((baked.cookiecutter / ANSWERS_FILE).read_text(encoding="utf-8"))
    from_copier = yaml.safe_load((baked.copier / ANSWERS_FILE).read_text(encoding="utf-8"))
    assert from_cookiecutter == from_copier
    assert from_cookiecutter["_commit"] == "v0.0.0"
    for question, value in baked.answers.items():
        assert from_cookiecutter[question] == value
    # Same serialisation too, so a cookiecutter-born repository looks exactly like a copier-born one.
    assert (baked.cookiecutter / ANSWERS_FILE).read_bytes() == (baked.copier / ANSWERS_FILE).read_bytes()


def leftovers(relpath: str, text: str) -> list[str]:
    if any(fnmatch.fnmatch(relpath, pattern) for pattern in GITHUB_EXPRESSION_FILES):
        text = GITHUB_EXPRESSION.sub("", text)
    return [
        f"{relpath}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), start=1)
        if TEMPLATE_LEFTOVER.search(line)
    ]


@pytest.mark.parametrize("name", IDS)
def test_no_template_syntax_survives(bakes, name):
    found = [
        hit for relpath, text in iter_text_files(bakes[name].cookiecutter) for hit in leftovers(relpath, text)
    ]
    assert not found, "template syntax left in generated files:\n" + "\n".join(found)


def test_leftover_check_sees_jinja_but_allows_github_expressions():
    assert leftovers("README.md", "name: {{ cookiecutter.project_slug }}")
    assert leftovers("a.py", "{% if x %}")
    assert leftovers("a.py", "x = 1 }}")
    assert leftovers("a.py", "{{cookiecutter.project_slug}}")
    assert leftovers("a.py", "{%if x%}")
    assert not leftovers("a.py", 'options = {"a": {"zipmap": False}}')
    assert not leftovers("a.py", 'f"more than {limit:.0%} missing: {over}"')
    assert not leftovers(".github/workflows/ci.yml", "run: echo ${{ github.sha }}")
    assert leftovers(".github/workflows/ci.yml", "run: echo ${{ github.sha }} {{ oops }}")


# CloudFormation's short forms (!Ref, !Sub, !GetAtt ...) read like the catalog reads them.
TaggedLoader = CloudFormationLoader


@pytest.mark.parametrize("name", IDS)
def test_structured_files_parse(bakes, name):
    project = bakes[name].cookiecutter
    errors = []
    for relpath in list_files(project):
        path = project / relpath
        try:
            if relpath.endswith(".json"):
                json.loads(path.read_text(encoding="utf-8"))
            elif relpath.endswith((".yml", ".yaml")):
                list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=TaggedLoader))
            elif relpath.endswith(".toml"):
                tomllib.loads(path.read_text(encoding="utf-8"))
        except (ValueError, yaml.YAMLError) as error:
            errors.append(f"{relpath}: {error}")
    assert not errors, "\n".join(errors)


def run_ruff(project, *args):
    config = project / "pyproject.toml"
    assert config.exists(), "the generated project has no pyproject.toml holding its ruff configuration"
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", "--config", str(config), "."],
        cwd=project,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("name", IDS)
def test_generated_python_passes_ruff_with_the_projects_config(bakes, name):
    project = bakes[name].cookiecutter
    check = run_ruff(project, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    form = run_ruff(project, "format", "--check")
    assert form.returncode == 0, form.stdout + form.stderr


def test_the_templates_own_code_passes_ruff():
    """`make lint`'s ruff on the template's own code (the folders its Makefile names), so CI enforces it."""
    root = Path(__file__).resolve().parents[1]
    folders = re.search(r'ruff" check (.+)$', (root / "Makefile").read_text(), re.MULTILINE).group(1).split()
    assert "benchmarks" in folders and "tests" in folders, folders
    for args in (("check",), ("format", "--check")):
        command = [sys.executable, "-m", "ruff", *args, "--no-cache", *folders]
        result = subprocess.run(command, cwd=root, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", IDS)
def test_pruned_paths_are_absent_and_kept_paths_present(bakes, name):
    """The prune table yields the same decision under both tools for every variant."""
    from jinja2.sandbox import SandboxedEnvironment

    from tests.baking import load_config

    baked = bakes[name]
    env = SandboxedEnvironment()
    answers = yaml.safe_load((baked.cookiecutter / ANSWERS_FILE).read_text(encoding="utf-8"))
    for relpath, condition in load_config()["_prune"].items():
        pruned = bool(env.compile_expression(condition)(**answers))
        for project in (baked.cookiecutter, baked.copier):
            assert (project / relpath.strip("/")).exists() is not pruned, (project, relpath)
