"""The generated repository's own workflow, for real: `make setup`, `make pipeline`, `make test`, `make lint`.

One variant per problem type (Python 3.11, MIT), and one without monitoring; both CI providers. All bakes
share one model environment, one inference-image environment and one AWS-side environment (the
``e2e_venv``, ``inference_venv`` and ``aws_venv`` fixtures), so only the first run of a machine pays for
installing the pinned dependencies.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.baking import bake_cookiecutter, questions

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
PROBLEM_TYPES = questions()["problem_type"]


def make(project, target: str, venv, timeout: int, **variables: object) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    result = subprocess.run(
        [
            "make",
            "-C",
            str(project),
            target,
            f"VENV={venv}",
            *(f"{key}={value}" for key, value in variables.items()),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, (
        f"`make {target}` failed in the {project.name} project (exit {result.returncode}):\n"
        f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
    )
    return result


# Every problem type with monitoring, and one without it: the pruned repository must still pass its own suite.
# Both CI providers are covered: the regression variant uses GitHub Actions.
VARIANTS = [(p, True, "github-actions" if p == "regression" else "codepipeline") for p in PROBLEM_TYPES] + [
    (PROBLEM_TYPES[0], False, "codepipeline")
]


@pytest.mark.parametrize(("problem_type", "include_monitoring", "ci_provider"), VARIANTS)
def test_generated_project_sets_up_runs_its_pipeline_and_passes_its_tests(
    template_repo,
    tmp_path,
    e2e_venv,
    aws_venv,
    inference_venv,
    checkov_bin,
    problem_type,
    include_monitoring,
    ci_provider,
):
    answers = {
        "python_version": "3.11",
        "license": "MIT",
        "problem_type": problem_type,
        "include_monitoring": include_monitoring,
        "ci_provider": ci_provider,
    }
    project = bake_cookiecutter(template_repo, answers, tmp_path)

    make(project, "setup", e2e_venv, timeout=1800)

    pipeline = make(project, "pipeline", e2e_venv, timeout=900).stdout
    gates = re.search(r"gates passed\D*(\d+)/(\d+)", pipeline)
    assert gates, f"`make pipeline` printed no summary with the gate count:\n{pipeline[-3000:]}"
    assert gates.group(1) == gates.group(2), f"not every quality gate passed:\n{pipeline[-3000:]}"
    assert "pipeline finished" in pipeline, pipeline[-3000:]

    # The model suite, then the AWS side's suite (in the shared AWS environment): two pytest summaries.
    tests = make(
        project, "test", e2e_venv, timeout=1200, AWS_VENV=aws_venv, INFERENCE_VENV=inference_venv
    ).stdout
    closing = [line for line in tests.splitlines() if re.search(r"\d+ passed", line)]
    assert len(closing) == 2, f"`make test` did not print both suites' summaries:\n{tests[-3000:]}"
    for line in closing:
        assert not re.search(r"\d+ (failed|errors?)\b", line), line

    # ruff, hadolint, cfn-lint, checkov and the CI-definition checks, as a developer runs them before a push:
    # in the two variants whose AWS side differs most (GitHub Actions; no monitoring). tests/test_infra.py and
    # tests/test_ci_definitions.py run cfn-lint, checkov and check_ci.py on every variant.
    if ci_provider == "codepipeline" and include_monitoring:
        return
    make(project, "lint", e2e_venv, timeout=900, AWS_VENV=aws_venv, CHECKOV_VENV=checkov_bin.parent.parent)
