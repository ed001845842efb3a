"""What each image installs, rebuilt from its Dockerfile (model.tests.images): the packages its COPY lines send,
built by pip from pyproject.toml. The training image holds every job entrypoint and the contract files; the
inference image serves from its packages in the inference environment, with no scikit-learn or pandas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from model.tests.images import ROOT, installed_packages

INFERENCE_PYTHON = os.environ.get("INFERENCE_PYTHON")


@pytest.fixture(scope="module")
def training_image(tmp_path_factory) -> Path:
    return installed_packages(ROOT / "model" / "train" / "Dockerfile", tmp_path_factory.mktemp("train-image"))


@pytest.fixture(scope="module")
def inference_image(tmp_path_factory) -> Path:
    return installed_packages(ROOT / "model" / "inference" / "Dockerfile", tmp_path_factory.mktemp("serve-image"))


def test_the_training_image_holds_every_job_and_the_contract_files(training_image):
    for module in ("model/train/train.py", "model/train/prepare.py", "model/train/evaluation_job.py"):
        assert (training_image / module).is_file(), module
    for name in ("schema.json", "baseline.json", "hyperparameters.json"):
        assert (training_image / "model" / "config" / name).read_bytes() == (
            ROOT / "model" / "config" / name
        ).read_bytes()
    assert not list(training_image.rglob("tests")), "the image installs no test package"
    started = subprocess.run(
        [sys.executable, "-c", "import model.train.train as t, model.train.evaluation_job; print(t.__file__)"],
        cwd=training_image,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    assert Path(started.stdout.strip()).is_relative_to(training_image)


@pytest.mark.skipif(not INFERENCE_PYTHON, reason="INFERENCE_PYTHON is set by `make test-model`")
def test_the_inference_image_serves_from_its_packages_without_training_libraries(inference_image):
    script = (
        "import sys, model.inference.serve as s\n"
        "assert not {'sklearn', 'pandas'} & set(sys.modules), sorted(sys.modules)\n"
        "print(s.__file__)\n"
    )
    started = subprocess.run(
        [INFERENCE_PYTHON, "-c", script], cwd=inference_image, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    assert Path(started.stdout.strip()).is_relative_to(inference_image)
    assert (inference_image / "model" / "config" / "schema.json").is_file()
