"""The generated repository's own workflow, for real: `make setup`, `make pipeline`, `make test`.

One variant per problem type (Python 3.11, MIT), and one without monitoring. All bakes share one virtual environment (see the
``e2e_venv`` fixture), so only the first run of a machine pays for installing the pinned dependencies.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.baking import bake_cookiecutter, questions

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
PROBLEM_TYPES = questions()["problem_type"]


def make(project, target: str, venv, timeout: int) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    result = subprocess.run(
        ["make", "-C", str(project), target, f"VENV={venv}"],
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
VARIANTS = [(p, True) for p in PROBLEM_TYPES] + [(PROBLEM_TYPES[0], False)]


@pytest.mark.parametrize(("problem_type", "include_monitoring"), VARIANTS)
def test_generated_project_sets_up_runs_its_pipeline_and_passes_its_tests(
    template_repo, tmp_path, e2e_venv, problem_type, include_monitoring
):
    answers = {
        "python_version": "3.11",
        "license": "MIT",
        "problem_type": problem_type,
        "include_monitoring": include_monitoring,
    }
    project = bake_cookiecutter(template_repo, answers, tmp_path)

    make(project, "setup", e2e_venv, timeout=1800)

    pipeline = make(project, "pipeline", e2e_venv, timeout=900).stdout
    gates = re.search(r"gates passed\D*(\d+)/(\d+)", pipeline)
    assert gates, f"`make pipeline` printed no summary with the gate count:\n{pipeline[-3000:]}"
    assert gates.group(1) == gates.group(2), f"not every quality gate passed:\n{pipeline[-3000:]}"
    assert "pipeline finished" in pipeline, pipeline[-3000:]

    tests = make(project, "test", e2e_venv, timeout=900).stdout
    closing = [line for line in tests.splitlines() if re.search(r"\d+ passed", line)]
    assert closing, f"`make test` printed no pytest summary:\n{tests[-3000:]}"
    assert not re.search(r"\d+ (failed|errors?)\b", closing[-1]), closing[-1]
