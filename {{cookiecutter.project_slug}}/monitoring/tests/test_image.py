"""The drift job's image (monitoring/Dockerfile): same pins as the rest of the repository, and the files it
copies are all the job needs to start."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from model.tests.images import installed_packages

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "monitoring" / "Dockerfile"
IMAGE_REQUIREMENTS = ROOT / "monitoring" / "requirements-job.txt"
TEST_ONLY = {"moto"}


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            found[re.sub(r"\[.*\]", "", name).lower()] = version
    return found


def test_the_image_pins_what_the_tests_and_the_training_code_pin():
    image = pins(IMAGE_REQUIREMENTS)
    monitoring = pins(ROOT / "monitoring" / "requirements.txt")
    training = pins(ROOT / "model" / "train" / "requirements.txt")

    assert all(image.values()), "pin every package of the image with =="
    runtime = {n: v for n, v in monitoring.items() if n not in TEST_ONLY}
    assert {n: image.get(n) for n in runtime} == runtime
    assert {n: v for n, v in image.items() if n in training} == {n: training[n] for n in image if n in training}


def test_the_installed_packages_are_enough_to_run_the_job(tmp_path):
    """The packages the Dockerfile installs (its COPY lines, built by pip) start the job and hold what it imports."""
    site = installed_packages(DOCKERFILE, tmp_path)
    started = subprocess.run(
        [sys.executable, "-m", "monitoring.drift_job", "--help"], cwd=site, capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    assert "--last-hours" in started.stdout
    guard = subprocess.run(  # the retrain-guard pipeline's entrypoint, same image
        [sys.executable, "-m", "monitoring.retrain_guard", "--help"], cwd=site, capture_output=True, text=True
    )
    assert guard.returncode == 0 and "--min-interval-hours" in guard.stdout, guard.stderr
    lazy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import model.common.metrics, model.inference.predictor, monitoring.drift_job as job; print(job.__file__)",
        ],
        cwd=site,
        capture_output=True,
        text=True,
    )
    assert lazy.returncode == 0, lazy.stderr
    assert Path(lazy.stdout.strip()).is_relative_to(site), "the job was imported from the checkout, not the image"
    assert (site / "model" / "config" / "baseline.json").is_file()
    assert not (site / "model" / "train").exists(), "the drift job image installs no training code"
