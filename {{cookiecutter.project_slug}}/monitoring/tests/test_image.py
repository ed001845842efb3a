"""The drift job's image (monitoring/Dockerfile): same pins as the rest of the repository, and the files it
copies are all the job needs to start."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_the_copied_files_are_enough_to_run_the_job(tmp_path):
    """Rebuild the image's /opt/ml/code from the Dockerfile's COPY lines and start the job from there."""
    code = tmp_path / "code"
    copies = re.findall(r"^COPY\s+(.+)$", DOCKERFILE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert copies
    for line in copies:
        *sources, destination = line.split()
        for source in sources:
            matches = glob.glob(str(ROOT / source))
            assert matches, f"COPY {source}: no such file in the repository"
            for match in matches:
                target = code / destination
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(match, target)

    started = subprocess.run(
        [sys.executable, str(code / "monitoring" / "drift_job.py"), "--help"], capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    assert "--last-hours" in started.stdout
    lazy = subprocess.run(
        [sys.executable, "-c", "import metrics, predictor"],
        cwd=code,
        env={"PYTHONPATH": ":".join(str(code / p) for p in ("model/common", "model/inference", "model/train"))},
        capture_output=True,
        text=True,
    )
    assert lazy.returncode == 0, lazy.stderr
    assert (code / "model" / "config" / "baseline.json").is_file()
