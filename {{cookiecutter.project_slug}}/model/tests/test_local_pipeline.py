"""The local pipeline end to end: a good run registers a version with its lineage, a failing step registers nothing."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from model.common.model_artifact import sha256_file
from model.tests.fixtures_train import CONFIG, FAST, GIT_COMMIT, csv_with_value
from pipeline import local_pipeline
from pipeline.local_registry import LocalRegistry

GROUP = "test-group"
# A gate no model can pass on the sample data, per problem type.
IMPOSSIBLE = {
    "binary_classification": ("accuracy", 0.999),
    "multiclass_classification": ("accuracy", 0.999),
    "regression": ("r2", 0.999),
}


@dataclass(frozen=True)
class PipelineRun:
    exit_code: int
    stdout: str
    stderr: str
    data: Path
    build_dir: Path
    registry: LocalRegistry


def config_dir(dest: Path, baseline: dict | None = None, hyperparameters: dict | None = None) -> Path:
    shutil.copytree(CONFIG, dest)
    if baseline is not None:
        (dest / "baseline.json").write_text(json.dumps(baseline), encoding="utf-8")
    if hyperparameters is not None:
        current = json.loads((dest / "hyperparameters.json").read_text(encoding="utf-8"))
        (dest / "hyperparameters.json").write_text(json.dumps({**current, **hyperparameters}), encoding="utf-8")
    return dest


def run_pipeline(root: Path, data: Path, config: Path) -> PipelineRun:
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "--data",
        str(data),
        "--config-dir",
        str(config),
        "--build-dir",
        str(root / "build"),
        "--registry",
        str(root / "registry"),
        "--group",
        GROUP,
        "--card-dir",
        str(root / "docs"),
        "--baselines-dir",
        str(root / "baselines"),
    ]
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        patch.setenv("GIT_COMMIT", GIT_COMMIT)
        patch.delenv("OPT_ML_ROOT", raising=False)
        code = local_pipeline.main(argv)
    return PipelineRun(
        code, out.getvalue(), err.getvalue(), data, root / "build", LocalRegistry(root / "registry", GROUP)
    )


@pytest.fixture(scope="module")
def good_run(sample_data, tmp_path_factory) -> PipelineRun:
    root = tmp_path_factory.mktemp("pipeline_ok")
    return run_pipeline(root, sample_data, config_dir(root / "config"))


@pytest.fixture(scope="module")
def gate_failure(sample_data, schema, baseline, tmp_path_factory) -> tuple[PipelineRun, str]:
    root = tmp_path_factory.mktemp("pipeline_gate")
    metric, minimum = IMPOSSIBLE[schema.problem_type]
    gate = {"min": minimum}
    quality = {metric: gate}
    config = config_dir(root / "config", baseline={**baseline, "quality": quality}, hyperparameters=FAST)
    return run_pipeline(root, sample_data, config), metric


@pytest.fixture(scope="module")
def bad_data(sample_data, schema, tmp_path_factory) -> tuple[PipelineRun, str, str]:
    root = tmp_path_factory.mktemp("pipeline_bad_data")
    feature = next(f for f in schema.features if f.maximum is not None)
    value = str(int(feature.maximum) + 1)
    data = csv_with_value(sample_data, root / "data" / "bad.csv", row=10, column=feature.name, value=value)
    return run_pipeline(root, data, config_dir(root / "config")), feature.name, value


# --------------------------------------------------------------------------------------------- a good run
@pytest.mark.slow
def test_good_run_exits_0_and_registers_version_1(good_run):
    assert good_run.exit_code == 0, good_run.stderr
    assert good_run.registry.versions() == [1]


@pytest.mark.slow
def test_good_run_reports_seven_steps(good_run):
    steps = [line for line in good_run.stdout.splitlines() if line.startswith("[") and line.endswith("s)")]
    assert [s.split("]")[0] + "]" for s in steps] == [f"[{i}/7]" for i in range(1, 8)]
    assert all(": ok (" in s for s in steps)


@pytest.mark.slow
def test_registered_version_awaits_manual_approval(good_run):
    assert good_run.registry.describe(1)["ModelApprovalStatus"] == "PendingManualApproval"


@pytest.mark.slow
def test_registered_version_records_its_lineage(good_run):
    lineage = good_run.registry.describe(1)["Lineage"]
    assert lineage["git_commit"] == GIT_COMMIT
    assert lineage["source_data"] == str(good_run.data)
    assert lineage["source_data_sha256"] == sha256_file(good_run.data)
    assert set(lineage) >= {"pipeline_run", "model_version", "model_sha256", "training_data_sha256", "hyperparameters"}


@pytest.mark.slow
def test_registered_archive_holds_the_model_the_lineage_names(good_run, tmp_path):
    exported = good_run.registry.export(1, tmp_path / "serving")
    metadata = json.loads((exported / "metadata.json").read_text(encoding="utf-8"))
    lineage = good_run.registry.describe(1)["Lineage"]
    assert sha256_file(exported / metadata["model_file"]) == lineage["model_sha256"]
    assert metadata["training_data_sha256"] == lineage["training_data_sha256"]


@pytest.mark.slow
def test_registered_archive_is_a_model_tar_gz_with_the_artifact_at_its_root(good_run):
    with tarfile.open(good_run.registry.path / "v0001" / "model.tar.gz", "r:gz") as archive:
        names = sorted(archive.getnames())
    assert names == ["importance.json", "metadata.json", "model.onnx", "schema.json"]


@pytest.mark.slow
def test_registered_evaluation_passed_every_gate(good_run):
    evaluation = json.loads((good_run.registry.path / "v0001" / "evaluation.json").read_text(encoding="utf-8"))
    assert evaluation["passed"] is True
    assert [g for g in evaluation["gates"] if g["status"] == "failed"] == []


# ------------------------------------------------------------------------------------------ failing runs
@pytest.mark.slow
def test_failing_gate_exits_1_naming_the_gate(gate_failure):
    run, metric = gate_failure
    assert run.exit_code == 1
    assert f"gates failed ({metric}" in run.stderr
    assert "the model was not registered" in run.stderr


@pytest.mark.slow
def test_failing_gate_registers_nothing(gate_failure):
    run, _ = gate_failure
    assert run.registry.versions() == []


@pytest.mark.slow
def test_failing_gate_still_shows_the_gate_table(gate_failure):
    run, metric = gate_failure
    row = next(line for line in run.stdout.splitlines() if f"| {metric} " in line)
    assert "min 0.999" in row
    assert "failed" in row


def test_data_outside_the_schema_exits_1_naming_the_issue(bad_data):
    run, column, value = bad_data
    assert run.exit_code == 1
    assert f"row 10, column '{column}': value '{value}' is above the maximum" in run.stderr


def test_data_outside_the_schema_registers_nothing(bad_data):
    run, _, _ = bad_data
    assert run.registry.versions() == []


def test_data_outside_the_schema_stops_before_training(bad_data):
    run, _, _ = bad_data
    assert not list(run.build_dir.glob("runs/*/opt_ml"))


def test_a_registered_run_writes_the_model_card_and_the_drift_baselines(good_run):
    docs = good_run.build_dir.parent / "docs"
    card = (docs / "model_card.md").read_text(encoding="utf-8")
    assert "v1" in card or "version 1" in card.lower()
    assert (docs / "model_card.json").is_file()
    baselines = good_run.build_dir.parent / "baselines"
    if not (CONFIG.parents[1] / "monitoring" / "drift_baseline.py").is_file():
        assert not baselines.exists()  # a repository generated without monitoring has no drift baselines
        return
    for name in ("statistics.json", "constraints.json"):
        assert json.loads((baselines / name).read_text(encoding="utf-8"))["version"] == 0
