"""One artifact path to production: a model ships only if the inference image the repository builds can load it.

The image is built for one format (model_format=skops adds scikit-learn); evaluate.py turns "can the image load
this artifact" into a gate, so neither the local pipeline nor the SageMaker Pipeline registers a model the deploy
stage's image would fail to load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from model.common import model_artifact
from model.train import evaluate
from model.train.onnx_export import export_skops

ROOT = Path(__file__).resolve().parents[2]
INFERENCE_PYTHON = os.environ.get("INFERENCE_PYTHON")


def skops_artifact(trained, dest: Path, model_format_hyperparameter: str) -> Path:
    """A model in the skops fallback format, as train.py writes it after a fallback (or when asked for skops)."""
    from model.common.data_contract import Schema
    from model.train import dataset
    from model.train import hyperparameters as hp
    from model.train.preprocessing import build_pipeline

    metadata = json.loads((trained.model_dir / "metadata.json").read_text(encoding="utf-8"))
    schema = Schema.load(trained.model_dir / "schema.json")
    params = hp.parse({**metadata["hyperparameters"], "n_estimators": "5"})
    data = dataset.load(schema, trained.train_path, require_sensitive=False)
    pipeline = build_pipeline(schema, params).fit(schema.to_frame(data.columns), data.target)
    model_bytes, trusted = export_skops(pipeline)
    extra = {
        "hyperparameters": {**metadata["hyperparameters"], "model_format": model_format_hyperparameter},
        "skops_trusted_types": trusted,
        "fallback_reason": "skl2onnx could not convert estimator 'example'",
    }
    for key in ("model_version", "files", "model_file", "model_sha256", "onnx_parity"):
        metadata.pop(key, None)
    model_artifact.write_artifact(
        dest, model_bytes=model_bytes, model_format="skops", schema=schema, metadata={**metadata, **extra}
    )
    return dest


@pytest.mark.parametrize(
    ("artifact", "hyperparameter", "expected"),
    [
        ("onnx", "auto", True),
        ("onnx", "onnx", True),
        ("onnx", "skops", True),
        ("skops", "auto", False),
        ("skops", "onnx", False),
        ("skops", "skops", True),
        ("skops", '"skops"', True),  # the SageMaker SDK JSON-quotes hyperparameters
    ],
)
def test_the_image_serves_onnx_always_and_skops_only_when_the_repository_opted_in(artifact, hyperparameter, expected):
    ok, detail = model_artifact.servable(
        {"model_format": artifact, "hyperparameters": {"model_format": hyperparameter}}
    )
    assert ok is expected, detail
    if not ok:
        assert '"model_format": "skops"' in detail and "model/config/hyperparameters.json" in detail


def test_a_skops_fallback_fails_the_artifact_gate_and_names_the_fix(trained, tmp_path):
    model_dir = skops_artifact(trained, tmp_path / "model", "auto")
    report = evaluate.run(model_dir, trained.test_path, ROOT / "model" / "config" / "baseline.json")
    gate = next(g for g in report["gates"] if g["metric"] == "model_format")
    assert gate["status"] == "failed" and not report["passed"]
    assert "skl2onnx could not convert estimator 'example'" in gate["bound"]
    assert "model_format = n/a (gate the artifact is in the skops format" in report["failed_gates"]


def test_a_skops_artifact_passes_the_artifact_gate_when_the_repository_opted_in(trained, tmp_path):
    model_dir = skops_artifact(trained, tmp_path / "model", "skops")
    report = evaluate.run(model_dir, trained.test_path, ROOT / "model" / "config" / "baseline.json")
    gate = next(g for g in report["gates"] if g["metric"] == "model_format")
    assert gate["status"] == "passed", gate


def test_the_onnx_model_passes_the_artifact_gate(trained):
    report = evaluate.run(trained.model_dir, trained.test_path, ROOT / "model" / "config" / "baseline.json")
    gate = next(g for g in report["gates"] if g["metric"] == "model_format")
    assert gate["status"] == "passed" and gate["bound"] == "onnx artifact, onnx inference image"


@pytest.mark.skipif(not INFERENCE_PYTHON, reason="INFERENCE_PYTHON is set by `make test-model`")
@pytest.mark.skipif(
    '"skops"' in (ROOT / "model" / "config" / "hyperparameters.json").read_text(encoding="utf-8"),
    reason="this repository opted into the skops inference image",
)
def test_the_inference_environment_holds_exactly_what_the_image_installs(trained, tmp_path):
    """The ONNX model loads and scores there; a skops artifact is refused with the fix, as in the image."""
    skops_dir = skops_artifact(trained, tmp_path / "skops", "skops")
    onnx_dir = shutil.copytree(trained.model_dir, tmp_path / "onnx")
    script = (
        "import sys\nfrom model.common import model_artifact\n"
        "try:\n    import sklearn\nexcept ImportError:\n    print('no scikit-learn')\n"
        "model_artifact.Scorer(sys.argv[1])\nprint('onnx loads')\n"
        "try:\n    model_artifact.Scorer(sys.argv[2])\n"
        "except model_artifact.ArtifactError as exc:\n    print('skops refused:', exc)\n"
    )
    result = subprocess.run(
        [INFERENCE_PYTHON, "-c", script, str(onnx_dir), str(skops_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "onnx loads" in result.stdout, result.stderr
    assert "no scikit-learn" in result.stdout
    assert "skops refused" in result.stdout and "MODEL_FORMAT=skops" in result.stdout
