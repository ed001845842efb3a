"""The job's AWS calls against moto's server on 127.0.0.1: captures read from S3, metrics put to CloudWatch."""

from __future__ import annotations

import os
import socket
import time

from monitoring.tests.conftest import read_json, run_job, traffic, write_captures

NAMESPACE = "Monitoring/Test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_metrics_are_put_to_cloudwatch(tmp_path, schema, baseline_dir, moto_url, aws_env):
    import boto3

    write_captures(tmp_path / "capture", schema, traffic(schema, 500, seed=71, drift={"monthly_charges": 40.0}))
    code = run_job(
        baseline_dir,
        tmp_path / "out",
        tmp_path / "capture",
        extra=(
            "--cloudwatch-namespace",
            NAMESPACE,
            "--cloudwatch-endpoint-url",
            moto_url,
            "--endpoint-name",
            "churn-prod",
        ),
    )
    assert code == 2
    client = boto3.client("cloudwatch", endpoint_url=moto_url, region_name="us-east-1")
    names = {m["MetricName"] for m in client.list_metrics(Namespace=NAMESPACE)["Metrics"]}
    local = {m["name"] for m in read_json(tmp_path / "out" / "metrics.json")["metrics"]}
    assert names == local
    assert "feature_baseline_drift_monthly_charges" in names
    dimensions = client.list_metrics(Namespace=NAMESPACE, MetricName="violations")["Metrics"][0]["Dimensions"]
    assert {"Name": "Endpoint", "Value": "churn-prod"} in dimensions


def test_an_unreachable_cloudwatch_fails_fast_with_exit_1(tmp_path, schema, baseline_dir, aws_env):
    write_captures(tmp_path / "capture", schema, traffic(schema, 50, seed=72))
    started = time.monotonic()
    code = run_job(
        baseline_dir,
        tmp_path / "out",
        tmp_path / "capture",
        extra=("--cloudwatch-namespace", NAMESPACE, "--cloudwatch-endpoint-url", f"http://127.0.0.1:{free_port()}"),
    )
    assert code == 1
    assert time.monotonic() - started < 15
    assert os.path.exists(tmp_path / "out" / "metrics.json")


def test_captures_are_read_from_an_s3_prefix_like_a_local_folder(
    tmp_path, schema, baseline_dir, moto_url, aws_env, monkeypatch
):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    local = tmp_path / "capture"
    write_captures(local, schema, traffic(schema, 300, seed=73, drift={"monthly_charges": 40.0}))
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    s3.create_bucket(Bucket="captures")
    for path in local.rglob("*.jsonl"):
        s3.upload_file(str(path), "captures", f"endpoint/AllTraffic/{path.relative_to(local).as_posix()}")
    assert run_job(baseline_dir, tmp_path / "from_s3", "s3://captures/endpoint/AllTraffic") == 2
    assert run_job(baseline_dir, tmp_path / "from_disk", local) == 2
    from_s3 = read_json(tmp_path / "from_s3" / "constraint_violations.json")
    assert from_s3 == read_json(tmp_path / "from_disk" / "constraint_violations.json")
    assert read_json(tmp_path / "from_s3" / "summary.json")["records"] == 300
