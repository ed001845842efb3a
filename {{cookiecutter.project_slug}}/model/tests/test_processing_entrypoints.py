"""The SageMaker pipeline's Processing jobs, run natively: prepare.py and evaluation_job.py with the very paths and
arguments of pipeline/sagemaker_pipeline.py, /opt/ml remapped to a folder, and train.py between them as the
training job runs it.

The important check is the last hop: the condition step and the fail step read `passed` and `failed_gates` from
evaluation.json with JSON paths fixed in the pipeline definition; here those paths must resolve, with the right
types, in the file the script actually writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from model.common import model_artifact
from model.tests.fixtures_train import GIT_COMMIT, opt_ml_tree, project_hyperparameters, run_train_script
from pipeline import sagemaker_pipeline as sp

pytestmark = pytest.mark.slow  # trains a model and runs the evaluation job twice


@dataclass(frozen=True)
class Container:
    """A stand-in for the job container's file system: /opt/ml/processing under `root`. The job code and its
    schema.json and gates file are the installed project package, as in the training image."""

    root: Path
    gates: Path | None = None  # a gates file given with --baseline instead of the packaged one

    def path(self, container_path: str) -> Path:
        prefix = sp.PROCESSING
        if container_path == prefix or container_path.startswith(prefix + "/"):
            return self.root / "processing" / container_path[len(prefix) :].lstrip("/")
        raise AssertionError(f"{container_path} is outside /opt/ml/processing")

    def arguments(self, arguments: list[str]) -> list[str]:
        mapped = [str(self.path(a)) if a.startswith("/opt/ml/") else a for a in arguments]
        return [*mapped, "--baseline", str(self.gates)] if self.gates else mapped


def new_container(root: Path, baseline: dict | None = None) -> Container:
    if baseline is None:
        return Container(root)
    gates = root / "gates.json"
    root.mkdir(parents=True, exist_ok=True)
    gates.write_text(json.dumps(baseline), encoding="utf-8")
    return Container(root, gates)


def run_job(container: Container, module: str, arguments: list[str]) -> subprocess.CompletedProcess:
    """The job's module as the Processing step's entrypoint runs it: python -m <module> <arguments>."""
    env = {**os.environ, "GIT_COMMIT": GIT_COMMIT}
    return subprocess.run(
        [sys.executable, "-m", module, *container.arguments(arguments)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def copy_input(source: Path, dest: Path) -> None:
    """What Processing does with an S3Prefix input: the objects under the prefix land in the local path."""
    dest.mkdir(parents=True, exist_ok=True)
    for file in [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file()):
        shutil.copyfile(file, dest / file.name)


def json_get(document: dict, path: str):
    """The subset of JsonGet's path syntax the pipeline uses: dot-separated keys."""
    value = document
    for key in path.split("."):
        assert isinstance(value, dict) and key in value, f"{path!r} does not resolve in evaluation.json"
        value = value[key]
    return value


@pytest.fixture(scope="module")
def prepared(sample_data, tmp_path_factory) -> Container:
    container = new_container(tmp_path_factory.mktemp("prepare"))
    copy_input(sample_data, container.path(sp.PREPARE_INPUTS["data"]))
    result = run_job(container, sp.PREPARE_MODULE, sp.PREPARE_ARGUMENTS)
    assert result.returncode == 0, result.stderr
    return container


@pytest.fixture(scope="module")
def model_tar(prepared, tmp_path_factory) -> Path:
    """The training step: train.py under the training contract on the prepare outputs, packed as SageMaker does."""
    root = opt_ml_tree(
        tmp_path_factory.mktemp("opt_ml"),
        train=prepared.path(sp.PREPARE_OUTPUTS["train"]),
        validation=prepared.path(sp.PREPARE_OUTPUTS["validation"]),
        hyperparameters=project_hyperparameters(),
    )
    result = run_train_script("train", env={"OPT_ML_ROOT": str(root)})
    assert result.returncode == 0, result.stderr
    return model_artifact.package(root / "model", root / "output" / "model.tar.gz")


def evaluate(prepared: Container, model_tar: Path, root: Path, baseline: dict | None = None) -> Container:
    container = new_container(root, baseline)
    sources = {
        "model": model_tar,
        "test": prepared.path(sp.PREPARE_OUTPUTS["test"]),
        "validation": prepared.path(sp.PREPARE_OUTPUTS["validation"]),
    }
    assert set(sources) == set(sp.EVALUATE_INPUTS)
    for name, source in sources.items():
        copy_input(source, container.path(sp.EVALUATE_INPUTS[name]))
    result = run_job(container, sp.EVALUATE_MODULE, sp.EVALUATE_ARGUMENTS)
    assert result.returncode == 0, result.stderr
    return container


@pytest.fixture(scope="module")
def evaluated(prepared, model_tar, tmp_path_factory) -> Container:
    return evaluate(prepared, model_tar, tmp_path_factory.mktemp("evaluate"))


def read_output(container: Container, name: str) -> dict:
    folder = container.path(sp.EVALUATE_OUTPUTS[sp.EVALUATION_OUTPUT])
    return json.loads((folder / name).read_text(encoding="utf-8"))


def test_prepare_writes_every_output_the_pipeline_uploads(prepared):
    for name, local in sp.PREPARE_OUTPUTS.items():
        files = list(prepared.path(local).iterdir())
        assert files, f"prepare.py wrote nothing to the {name} output ({local})"
    report = json.loads((prepared.path(sp.PREPARE_OUTPUTS["report"]) / "data_report.json").read_text("utf-8"))
    assert set(report["splits"]) == {"train", "validation", "test"}


def test_condition_paths_resolve_in_the_written_evaluation_json(evaluated):
    evaluation = read_output(evaluated, sp.EVALUATION_FILE)
    passed = json_get(evaluation, sp.GATES_PASSED_PATH)
    failed = json_get(evaluation, sp.FAILED_GATES_PATH)
    assert isinstance(passed, bool)  # the condition compares it with JSON true
    assert isinstance(failed, str)
    assert passed is all(g["status"] != "failed" for g in evaluation["gates"])
    assert (failed == "") is passed


def test_evaluation_json_holds_metrics_and_every_gate(evaluated, schema, baseline):
    evaluation = read_output(evaluated, sp.EVALUATION_FILE)
    quality_key = f"{schema.problem_type}_metrics"
    for metric in baseline["quality"]:
        assert "value" in evaluation[quality_key][metric]
    gated = {(g["group"], g["metric"]) for g in evaluation["gates"]}
    assert {("quality", m) for m in baseline["quality"]} <= gated
    assert {("bias", m) for m in baseline["bias"]} <= gated


def test_the_model_package_reports_are_written(evaluated, schema):
    for name in sp.MODEL_METRICS_FILES.values():
        assert isinstance(read_output(evaluated, name), dict), name
    bias = read_output(evaluated, "bias.json")
    facets = bias["post_training_bias_metrics"]["facets"]
    assert set(facets) == {f.name for f in schema.sensitive_features}
    importance = read_output(evaluated, "explainability.json")["explanations"]["permutation_importance"]
    assert set(importance["global_importance"]) == set(schema.feature_names)


def test_failed_gates_are_named_for_the_fail_step(prepared, model_tar, baseline, tmp_path):
    metric = next(iter(baseline["quality"]))
    strict = {**baseline, "quality": {**baseline["quality"], metric: impossible_bound(metric)}}
    evaluation = read_output(evaluate(prepared, model_tar, tmp_path, strict), sp.EVALUATION_FILE)
    assert json_get(evaluation, sp.GATES_PASSED_PATH) is False
    assert json_get(evaluation, sp.FAILED_GATES_PATH).startswith(f"{metric} = ")


def impossible_bound(metric: str) -> dict:
    """A gate no model meets: an error metric below zero, a score above its maximum of 1."""
    return {"max": -1.0} if metric in ("rmse", "mae", "log_loss") else {"min": 1.01}
