"""The laptop loop end to end: train -> baselines -> serve.py with capture -> drift job on the capture files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from model.tests.serving import Server, invoke
from monitoring.tests.conftest import ROOT, read_json, run_job

CONFIG = ROOT / "model" / "config"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    from model.common import sample_data
    from model.train import prepare, train

    work = tmp_path_factory.mktemp("loop")
    sample_data.main(["--schema", str(CONFIG / "schema.json"), "--rows", "1500", "--out", str(work / "data.csv")])
    prepare.run(work / "data.csv", CONFIG / "schema.json", CONFIG / "baseline.json", work / "splits")
    train.run(work / "splits" / "train", work / "model", {"n_estimators": "30"}, CONFIG / "schema.json")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring.drift_baseline",
            "--data",
            str(work / "splits/train/train.csv"),
            "--schema",
            str(CONFIG / "schema.json"),
            "--model-dir",
            str(work / "model"),
            "--output-dir",
            str(work / "baselines"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return {"model": work / "model", "baselines": work / "baselines", "test": work / "splits/test/test.csv"}


def serve_and_send(model_dir: Path, capture: Path, bodies: list[bytes], log: Path) -> None:
    """serve.py with capture on, one POST per body, then SIGTERM; bounded in time and request count."""
    server = Server(model_dir, log, workers=1, env={"DATA_CAPTURE_DIR": str(capture)})
    try:
        assert all(invoke(server.port, body)[0] == 200 for body in bodies)
    finally:
        assert server.stop() == 0


def batches(rows: list[list[str]], size: int = 10) -> list[bytes]:
    return ["".join(",".join(r) + "\n" for r in rows[i : i + size]).encode() for i in range(0, len(rows), size)]


@pytest.fixture(scope="module")
def test_rows(trained) -> list[list[str]]:
    names = [f["name"] for f in json.loads((CONFIG / "schema.json").read_text())["features"]]
    with open(trained["test"], newline="") as handle:
        return [[r[n] for n in names] for r in csv.DictReader(handle)]


def test_traffic_like_training_passes_the_drift_job(trained, test_rows, tmp_path):
    serve_and_send(trained["model"], tmp_path / "capture", batches(test_rows), tmp_path / "serve.log")
    code = run_job(trained["baselines"], tmp_path / "out", tmp_path / "capture")
    summary = read_json(tmp_path / "out" / "summary.json")
    assert code == 0, read_json(tmp_path / "out" / "constraint_violations.json")
    assert (tmp_path / "out" / "report.html").is_file()
    assert (summary["records"], summary["predictions"]) == (len(test_rows), len(test_rows))  # all read back


def test_drifted_traffic_is_flagged_on_the_drifted_feature(trained, test_rows, tmp_path):
    drifted = [["110", *row[1:]] for row in test_rows]  # tenure_months pushed to the top of its range
    serve_and_send(trained["model"], tmp_path / "capture", batches(drifted), tmp_path / "serve.log")
    assert run_job(trained["baselines"], tmp_path / "out", tmp_path / "capture") == 2
    violations = read_json(tmp_path / "out" / "constraint_violations.json")["violations"]
    assert any(
        v["feature_name"] == "tenure_months" and v["constraint_check_type"] == "baseline_drift_check"
        for v in violations
    )
