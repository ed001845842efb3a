"""monitoring/alarms/alarms.json: every alarm is a valid PutMetricAlarm request and watches a metric that exists."""

from __future__ import annotations

import json
from string import Template

import boto3
import pytest
from botocore.stub import Stubber

from monitoring.tests.conftest import ROOT

ALARMS = json.loads((ROOT / "monitoring" / "alarms" / "alarms.json").read_text(encoding="utf-8"))
BASELINE = json.loads((ROOT / "model" / "config" / "baseline.json").read_text(encoding="utf-8"))
NOT_API_FIELDS = ("id", "rollback", "endpoint_types")


def put_metric_alarm_request(alarm: dict, endpoint: str = "churn-prod", variant: str = "AllTraffic") -> dict:
    names = {"EndpointName": endpoint, "VariantName": variant, "MonitoringNamespace": ALARMS["monitoring_namespace"]}
    rendered = json.loads(Template(json.dumps(alarm)).substitute(names))
    request = {k: v for k, v in rendered.items() if k not in NOT_API_FIELDS}
    return {"AlarmName": f"{endpoint}-{alarm['id']}", **request}


@pytest.mark.parametrize("alarm", ALARMS["alarms"], ids=lambda a: a["id"])
def test_alarm_is_a_valid_put_metric_alarm_request(alarm):
    client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    request = put_metric_alarm_request(alarm)
    with Stubber(client) as stub:  # the Stubber validates every parameter against CloudWatch's API model
        stub.add_response("put_metric_alarm", {}, request)
        client.put_metric_alarm(**request)
        stub.assert_no_pending_responses()


def test_the_endpoint_alarms_cover_errors_and_latency_and_guard_rollbacks():
    rollback = {a["MetricName"] for a in ALARMS["alarms"] if a["rollback"]}
    assert rollback == {"Invocation5XXErrors", "ModelLatency"}


def test_the_drift_and_quality_alarms_watch_metrics_the_drift_job_emits():
    from monitoring.cloudwatch import collect_metrics

    main = next(iter(BASELINE["quality"]))
    emitted = {
        m["name"] for m in collect_metrics(10, [], [], {"total": 0, "by_kind": {}}, {}, {"metrics": {main: 0.5}})
    }
    watched = {a["MetricName"] for a in ALARMS["alarms"] if a["Namespace"] == "${MonitoringNamespace}"}
    assert watched <= emitted


def test_the_quality_alarm_threshold_is_the_gate_in_baseline_json():
    alarm = next(a for a in ALARMS["alarms"] if a["id"] == "model-quality")
    metric = alarm["MetricName"].removeprefix("model_quality_")
    gate = BASELINE["quality"][metric]
    assert alarm["Threshold"] == gate.get("min", gate.get("max"))
    assert alarm["ComparisonOperator"] == ("LessThanThreshold" if "min" in gate else "GreaterThanThreshold")
