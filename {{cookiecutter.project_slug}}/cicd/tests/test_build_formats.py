"""The build stage builds the inference image for the artifact format training writes, and records that format
(one artifact path to production): model_format skops -> the skops image, auto/onnx -> the onnx image."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "pipeline" / "buildspec" / "build.yml"


def build_commands() -> list[str]:
    return yaml.safe_load(BUILD.read_text(encoding="utf-8"))["phases"]["build"]["commands"]


@pytest.mark.parametrize(
    ("model_format", "image"), [("auto", "onnx"), ("onnx", "onnx"), ("skops", "skops"), ("pickle", "")]
)
def test_the_inference_format_follows_the_hyperparameters(tmp_path, model_format, image):
    (tmp_path / "model" / "config").mkdir(parents=True)
    (tmp_path / "model" / "config" / "hyperparameters.json").write_text(json.dumps({"model_format": model_format}))
    select = next(c for c in build_commands() if "INFERENCE_FORMAT=$(" in c)
    guard = next(c for c in build_commands() if c.startswith('test -n "$INFERENCE_FORMAT"'))
    result = subprocess.run(
        ["bash", "-c", f'{select}\n{guard}\necho "format=$INFERENCE_FORMAT"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if image:
        assert result.returncode == 0 and f"format={image}" in result.stdout
    else:
        assert result.returncode != 0 and "model_format must be auto, onnx or skops" in result.stdout


def test_the_inference_image_is_built_with_the_format_and_records_it():
    script = next(c for c in build_commands() if "build_and_push()" in c)
    assert '--build-arg "MODEL_FORMAT=$INFERENCE_FORMAT"' in script
    assert '--label "com.sagemaker-mlops.model-format=$INFERENCE_FORMAT"' in script
    assert 'format_tag="$IMAGE_TAG-$INFERENCE_FORMAT"' in script and 'docker push "$uri:$format_tag"' in script
    spec = yaml.safe_load(BUILD.read_text(encoding="utf-8"))
    assert "INFERENCE_FORMAT" in spec["env"]["exported-variables"]
    assert "inference_model_format" in " ".join(spec["phases"]["post_build"]["commands"])


def test_the_release_scripts_read_the_tag_the_build_stage_pushes():
    from release import formats

    assert formats.format_tag("abc", "skops") == "abc-skops"
    assert formats.IMAGE_LABEL in BUILD.read_text(encoding="utf-8")
