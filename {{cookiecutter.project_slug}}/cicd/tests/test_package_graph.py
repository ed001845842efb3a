"""docs/architecture.md's package map is generated from the code, and every package imports only what it may."""

from __future__ import annotations

import shutil

from cicd import package_graph
from model.common import paths


def test_the_package_map_in_the_docs_is_current_and_every_import_is_allowed(capsys):
    assert package_graph.main(["--check"]) == 0, capsys.readouterr().err


def test_the_inference_and_training_code_stay_apart():
    packages = package_graph.collect_imports(paths.REPO_ROOT, package_graph.find_packages(paths.REPO_ROOT))
    assert packages["model.inference"].imports <= {"model.common"}
    assert packages["model.common"].imports == set()
    assert "model.train" not in packages["pipeline"].imports


def test_a_forbidden_import_is_named_with_the_fix(tmp_path):
    for name in ("model", "pipeline"):
        shutil.copytree(paths.REPO_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    (tmp_path / "model" / "inference" / "leak.py").write_text("def f():\n    from model.train import train\n")
    packages = package_graph.collect_imports(tmp_path, package_graph.find_packages(tmp_path))
    (problem,) = package_graph.violations(packages)
    assert "model.inference imports model.train" in problem and "model/inference/__init__.py" in problem


def test_a_stale_map_is_reported(tmp_path, monkeypatch, capsys):
    doc = tmp_path / "architecture.md"
    text = package_graph.DOC.read_text(encoding="utf-8")
    doc.write_text(text.replace("| `model.train` |", "| `model.training` |"), encoding="utf-8")
    monkeypatch.setattr(package_graph, "DOC", doc)
    assert package_graph.main(["--check"]) == 1
    assert "make architecture" in capsys.readouterr().err
