"""Migration to template v0.3.0: the repository's Python code became installed packages.

copier runs this after its update (``_stage == "after"``), inside the repository being updated. The
template's own files already arrive with package imports (``from model.train import dataset``); this
rewrites the same bare-name imports in the team's own Python files (``import dataset`` ->
``from model.train import dataset``), which only worked while the Makefile put every folder on the
module search path. Only imports of the template's modules change; each changed file is listed. A renamed
module keeps its old name as an alias, so the code below the import still runs
(``from model.train import evaluation_job as evaluation_step``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TRAIN = (
    *("data_quality", "dataset", "draft_schema", "evaluate", "explain", "hyperparameters", "model_card"),
    *("onnx_export", "prepare", "preprocessing", "train"),
)
MONITORING = ("capture", "cloudwatch", "drift_job", "drift_statistics", "quality", "report", "violations")
# Bare module name (v0.2.0 and earlier) -> (package, module) in v0.3.0; a package alone keeps the module name.
MODULES: dict[str, tuple[str, str] | str] = {
    "data_contract": ("model.common", "data_contract"),
    "model_artifact": ("model.common", "model_artifact"),
    "metrics": ("model.common", "metrics"),
    "make_sample_data": ("model.common", "sample_data"),
    "evaluation_step": ("model.train", "evaluation_job"),
    "baseline": ("monitoring", "drift_baseline"),
    "endpoint_tests": ("release", "endpoint_checks"),
    "run_stage": ("cicd", "run_stage"),
    "check_ci": ("cicd", "check_ci"),
    "update_template": ("cicd", "update_template"),
    "local_pipeline": ("pipeline", "local_pipeline"),
    "local_registry": ("pipeline", "local_registry"),
    "sagemaker_pipeline": ("pipeline", "sagemaker_pipeline"),
    "iam_rules": ("infra.tests", "iam_rules"),
    **dict.fromkeys(TRAIN, "model.train"),
    **dict.fromkeys(("bench", "data_capture", "predictor", "serve"), "model.inference"),
    **dict.fromkeys(("fixtures_inference", "fixtures_train", "serving"), "model.tests"),
    **dict.fromkeys(MONITORING, "monitoring"),
}
MODULES = {name: target if isinstance(target, tuple) else (target, name) for name, target in MODULES.items()}
IMPORT = re.compile(r"^(\s*)import (\w+)(\s+as\s+\w+)?(\s*#.*)?$")
FROM = re.compile(r"^(\s*)from (\w+) import (.*)$")
SKIPPED = {".venv", ".venv-aws", ".venv-inference", ".venv-checkov", "build", "registry", "node_modules"}


def rewrite(text: str, own_module: str) -> str:
    lines = text.split("\n")
    for i, line in enumerate(lines):
        match = IMPORT.match(line)
        if match and match.group(2) in MODULES and match.group(2) != own_module:
            package, module = MODULES[match.group(2)]
            alias = match.group(3) or (f" as {match.group(2)}" if module != match.group(2) else "")
            lines[i] = f"{match.group(1)}from {package} import {module}{alias}{match.group(4) or ''}"
            continue
        match = FROM.match(line)
        if match and match.group(2) in MODULES and match.group(2) != own_module:
            package, module = MODULES[match.group(2)]
            lines[i] = f"{match.group(1)}from {package}.{module} import {match.group(3)}"
    return "\n".join(lines)


def python_files(project: Path) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [project / name for name in listed if not SKIPPED & set(Path(name).parts)]


def main() -> int:
    project = Path.cwd()
    changed = []
    for path in python_files(project):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        updated = rewrite(text, path.stem)
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            changed.append(path.relative_to(project).as_posix())
    for name in changed:
        print(f"migration: package imports in {name}")
    if not changed:
        print("migration: no file of yours imports the template's modules by bare name")
    return 0


if __name__ == "__main__":
    sys.exit(main())
