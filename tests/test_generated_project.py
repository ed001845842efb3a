"""The generated repository's own workflow, for real: `make setup`, `make pipeline`, the tests, `make lint`.

The other problem types, GitHub Actions and a repository without monitoring (Python 3.11, MIT); the binary
classification repository with monitoring on CodePipeline runs the whole `make test` in
tests/test_release_upgrade.py. All bakes share one model environment, one inference-image environment and one
AWS-side environment per test worker (the ``e2e_venv``, ``inference_venv`` and ``aws_venv`` fixtures), so only
the first run of a machine pays for installing the pinned dependencies.
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


# The README's whole `make test` runs once, in tests/test_release_upgrade.py: on the repository updated
# from v0.1.0 (binary classification, monitoring, CodePipeline), which is first compared file by file with a
# fresh bake of the same answers. The bakes here run `make pipeline` and the tests their answers change, so no
# check runs twice: a problem type changes the trained model and its gates (the quality, bias and
# data-quality tests, the local pipeline, the Processing jobs); GitHub Actions changes the roles
# CI assumes and the CI definitions; a repository without monitoring changes the local pipeline (no drift
# baselines) and the release scripts (no monitoring stack). `make lint` runs once, in the variant with every
# Dockerfile and the workflows; cfn-lint, checkov, ruff and the CI checks run on every variant elsewhere.
# Tests that do not depend on the answers (the data contract, the estimators of every problem type, the
# serving contract, ...) run in the full `make test`.
PROBLEM_TESTS = " ".join(
    f"model/tests/{name}.py"
    for name in (
        "test_model_quality",
        "test_bias",
        "test_data_quality",
        "test_local_pipeline",
        "test_processing_entrypoints",
    )
)
# Without monitoring/ the release and pipeline code (the same files in every variant) takes other branches:
# the monitor step is refused, preflight checks no drift image or Processing quota, the batch pipeline has no
# data-quality step, and the roles of infra/lib/toolchain.yaml lose the drift job's grants. These are the
# tests of those branches; the rest of release/tests and pipeline/tests runs in the upgraded repository.
NO_MONITORING_AWS_TESTS = " ".join(
    (
        "release/tests/test_monitor.py",
        "release/tests/test_preflight.py",
        "release/tests/test_roles.py",
        "release/tests/test_deploy.py",
        "pipeline/tests/test_batch_pipeline.py",
        "pipeline/tests/test_pipeline_role.py",
    )
)
VARIANTS = [
    pytest.param(
        "multiclass_classification", True, "codepipeline", {"MODEL_TESTS": PROBLEM_TESTS}, id="multiclass"
    ),
    pytest.param(
        "regression",
        True,
        "github-actions",
        {
            "MODEL_TESTS": PROBLEM_TESTS,
            "AWS_TESTS": "release/tests/test_roles.py pipeline/tests/test_pipeline_role.py cicd/tests",
            "lint": True,
        },
        id="regression-github-actions",
    ),
    pytest.param(
        "binary_classification",
        False,
        "codepipeline",
        {
            "MODEL_TESTS": "model/tests/test_local_pipeline.py",
            "AWS_TESTS": NO_MONITORING_AWS_TESTS,
        },
        id="binary-no-monitoring",
    ),
]


@pytest.mark.parametrize(("problem_type", "include_monitoring", "ci_provider", "runs"), VARIANTS)
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
    runs,
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

    suites = [("test-model", {"MODEL_TESTS": runs["MODEL_TESTS"], "INFERENCE_VENV": inference_venv})]
    if "AWS_TESTS" in runs:
        suites.append(("test-aws", {"AWS_TESTS": runs["AWS_TESTS"], "AWS_VENV": aws_venv}))
    for target, variables in suites:
        output = make(project, target, e2e_venv, timeout=1200, **variables).stdout
        closing = [line for line in output.splitlines() if re.search(r"\d+ passed", line)]
        assert len(closing) == 1, f"`make {target}` printed no pytest summary:\n{output[-3000:]}"
        assert not re.search(r"\d+ (failed|errors?)\b", closing[0]), closing[0]

    # ruff, hadolint, cfn-lint, checkov and the CI-definition checks, as a developer runs them before a push
    # (tests/test_infra.py and tests/test_ci_definitions.py run cfn-lint, checkov and check_ci.py everywhere).
    if runs.get("lint"):
        make(
            project, "lint", e2e_venv, timeout=900, AWS_VENV=aws_venv, CHECKOV_VENV=checkov_bin.parent.parent
        )
