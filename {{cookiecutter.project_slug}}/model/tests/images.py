"""An image's installed code, rebuilt from its Dockerfile without Docker.

Each Dockerfile copies the project files it needs to /tmp/project and runs `pip install --no-deps /tmp/project`.
`installed_packages` does the same here: it stages the files the COPY lines name, builds the wheel with pip (the
same build backend, from pyproject.toml) and unpacks it into a folder. `python -m <module>` started in that
folder imports the image's packages, not the checkout's, so a module the image lacks fails here as in the image.
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "/tmp/project"
IGNORED = shutil.ignore_patterns("tests", "__pycache__", "*.pyc", "Dockerfile")


def copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """The COPY lines that fill the project folder: (sources, destination)."""
    out = []
    for line in re.findall(r"^COPY\s+(.+)$", dockerfile.read_text(encoding="utf-8"), flags=re.MULTILINE):
        *sources, destination = line.split()
        if destination.startswith(PROJECT):
            out.append((sources, destination))
    return out


def stage(dockerfile: Path, dest: Path) -> Path:
    """The project folder the Dockerfile builds from, under `dest`."""
    for sources, destination in copies(dockerfile):
        target = dest / destination[len(PROJECT) :].lstrip("/")
        for source in sources:
            matches = glob.glob(str(ROOT / source))
            assert matches, f"{dockerfile}: COPY {source}: no such file in the repository"
            for match in map(Path, matches):
                if match.is_dir():
                    shutil.copytree(match, target, ignore=IGNORED, dirs_exist_ok=True)
                else:
                    into = target if destination.endswith("/") else target.parent
                    into.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(match, into / match.name if destination.endswith("/") else target)
    return dest


def installed_packages(dockerfile: Path, work: Path) -> Path:
    """The folder of packages `pip install --no-deps /tmp/project` puts in the image's site-packages."""
    project = stage(dockerfile, work / "project")
    wheels = work / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(project)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("*.whl")
    site = work / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site
