"""The laptop loop end to end: train -> baselines -> serve.py with capture -> drift job on the capture files."""

from __future__ import annotations

import csv
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, read_json, run_job

CONFIG = ROOT / "model" / "config"
START_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    import make_sample_data
    import prepare
    import train

    work = tmp_path_factory.mktemp("loop")
    make_sample_data.main(["--schema", str(CONFIG / "schema.json"), "--rows", "1500", "--out", str(work / "data.csv")])
    prepare.run(work / "data.csv", CONFIG / "schema.json", CONFIG / "baseline.json", work / "splits")
    train.run(work / "splits" / "train", work / "model", {"n_estimators": "30"}, CONFIG / "schema.json")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "monitoring" / "baseline.py"),
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
        env={**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("model/common", "model/inference"))},
    )
    return {"model": work / "model", "baselines": work / "baselines", "test": work / "splits/test/test.csv"}


def serve_and_send(model_dir: Path, capture: Path, bodies: list[bytes], log: Path) -> None:
    """serve.py with capture on, one POST per body, then SIGTERM; bounded in time and request count."""
    env = {
        **os.environ,
        "DATA_CAPTURE_DIR": str(capture),
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("model/common", "model/inference")),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "model/inference/serve.py"),
                "serve",
                "--model-dir",
                str(model_dir),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline, port = time.monotonic() + START_TIMEOUT, None
        while port is None and time.monotonic() < deadline:
            lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
            port = next((r["port"] for r in lines if r.get("event") == "serving"), None)
            time.sleep(0.05)
        assert port, log.read_text()
        for body in bodies:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
            assert connection.getresponse().status == 200
            connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=START_TIMEOUT)


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
