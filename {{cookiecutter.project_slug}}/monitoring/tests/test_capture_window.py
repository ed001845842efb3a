"""Scheduled runs read only the capture hour folders (yyyy/mm/dd/hh) of the last N complete hours."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitoring.tests.conftest import read_json, run_job, traffic, write_captures

NOW = datetime(2026, 3, 1, 10, 25, tzinfo=UTC)


def capture_hour(root: Path, variant: str, stamp: str, rows: list[list], schema) -> Path:
    """One capture file under <root>/<variant>/<yyyy/mm/dd/hh>/, as SageMaker lays them out."""
    scratch = root.parent / f"scratch-{variant}-{stamp.replace('/', '')}"
    written = write_captures(scratch, schema, rows, name=f"{stamp.replace('/', '-')}.jsonl")
    target = root / variant / stamp / written.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(written, target)
    shutil.rmtree(scratch)
    return target


def test_the_window_is_the_complete_hours_before_now_under_every_variant(tmp_path, schema):
    from monitoring import drift_job

    endpoint = tmp_path / "capture" / "churn-prod"
    rows = traffic(schema, 10, seed=81)
    for variant in ("AllTraffic", "Shadow"):
        for stamp in ("2026/03/01/07", "2026/03/01/08", "2026/03/01/09", "2026/03/01/10"):
            capture_hour(endpoint, variant, stamp, rows, schema)

    folders = drift_job.recent_hour_folders([str(endpoint)], 2, now=NOW)

    assert folders == [
        f"{endpoint}/AllTraffic/2026/03/01/08",
        f"{endpoint}/AllTraffic/2026/03/01/09",
        f"{endpoint}/Shadow/2026/03/01/08",
        f"{endpoint}/Shadow/2026/03/01/09",
    ]


def test_the_window_crosses_midnight_and_skips_hours_without_traffic(tmp_path, schema):
    from monitoring import drift_job

    variant = tmp_path / "capture" / "churn-prod" / "AllTraffic"
    capture_hour(variant.parent, "AllTraffic", "2026/02/28/23", traffic(schema, 5, seed=82), schema)
    just_after_midnight = datetime(2026, 3, 1, 1, 5, tzinfo=UTC)

    assert drift_job.recent_hour_folders([str(variant)], 3, now=just_after_midnight) == [f"{variant}/2026/02/28/23"]


def test_a_run_over_the_last_hours_profiles_only_those_records(tmp_path, schema, baseline_dir):
    from monitoring import drift_job

    endpoint = tmp_path / "capture" / "churn-prod"
    now = datetime.now(UTC)
    previous = (now.replace(minute=0, second=0, microsecond=0) - drift_job.timedelta(hours=1)).strftime("%Y/%m/%d/%H")
    capture_hour(endpoint, "AllTraffic", previous, traffic(schema, 120, seed=83), schema)
    capture_hour(endpoint, "AllTraffic", "2020/01/01/00", traffic(schema, 300, seed=84), schema)

    code = run_job(baseline_dir, tmp_path / "out", endpoint, extra=("--last-hours", "1", "--no-fail-on-violations"))

    assert code == 0
    assert read_json(tmp_path / "out" / "summary.json")["records"] == 120


def test_violations_exit_0_when_the_schedule_reports_them_through_metrics(tmp_path, schema, baseline_dir):
    capture = tmp_path / "capture"
    write_captures(capture, schema, traffic(schema, 300, seed=85, drift={"monthly_charges": 40.0}))

    assert run_job(baseline_dir, tmp_path / "strict", capture) == 2
    assert run_job(baseline_dir, tmp_path / "scheduled", capture, extra=("--no-fail-on-violations",)) == 0
    assert read_json(tmp_path / "scheduled" / "constraint_violations.json")["violations"]


def test_a_bad_window_or_location_is_refused_with_exit_1(tmp_path, baseline_dir, capsys):
    assert run_job(baseline_dir, tmp_path / "out", tmp_path, extra=("--last-hours", "0")) == 1
    assert "--last-hours 0" in capsys.readouterr().err
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "missing", extra=("--last-hours", "1")) == 1
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.usefixtures("aws_env")
def test_the_window_lists_only_the_hour_prefixes_on_s3(tmp_path, schema, baseline_dir, request, monkeypatch):
    import boto3

    from monitoring import drift_job

    endpoint_url = request.getfixturevalue("moto_url")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
    s3.create_bucket(Bucket="capture-window")
    local = tmp_path / "capture" / "churn-prod"
    for stamp, seed in (("2026/03/01/09", 86), ("2026/03/01/05", 87)):
        path = capture_hour(local, "AllTraffic", stamp, traffic(schema, 40, seed=seed), schema)
        s3.upload_file(str(path), "capture-window", f"datacapture/{path.relative_to(local.parent).as_posix()}")

    folders = drift_job.recent_hour_folders(["s3://capture-window/datacapture/churn-prod"], 2, now=NOW)

    assert folders == [
        "s3://capture-window/datacapture/churn-prod/AllTraffic/2026/03/01/08/",
        "s3://capture-window/datacapture/churn-prod/AllTraffic/2026/03/01/09/",
    ]
    job = drift_job.JobState(drift_job.Baseline.load(str(baseline_dir), None)).profile(folders, None)
    assert (job.files, job.features.item_count) == (1, 40)
