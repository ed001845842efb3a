"""The job's metrics: one flat list, written to metrics.json and, when asked, to CloudWatch (PutMetricData).

Metric names follow Model Monitor's (feature_baseline_drift_<feature>, ...) so alarms read the same; the
dimensions are Endpoint (when known) and MonitoringJob.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

from monitoring.violations import DriftResult, Violation

PUT_BATCH = 500  # PutMetricData accepts up to 1000 metric data points per call


def collect_metrics(
    records: int,
    violations: Sequence[Violation],
    drift: Sequence[DriftResult],
    bad_input: Mapping,
    completeness: Mapping[str, float],
    quality: Mapping | None,
) -> list[dict]:
    metrics = [
        {"name": "records", "value": float(records), "unit": "Count"},
        {"name": "violations", "value": float(len(violations)), "unit": "Count"},
        {"name": "bad_input_records", "value": float(bad_input["total"]), "unit": "Count"},
    ]
    metrics += [
        {"name": f"bad_input_{kind}", "value": float(n), "unit": "Count"} for kind, n in bad_input["by_kind"].items()
    ]
    for result in drift:
        if result.distance is not None:
            name = result.feature.replace("prediction:", "prediction_")
            metrics.append({"name": f"feature_baseline_drift_{name}", "value": result.distance, "unit": "None"})
    metrics += [{"name": f"feature_completeness_{n}", "value": v, "unit": "None"} for n, v in completeness.items()]
    for name, value in ((quality or {}).get("metrics") or {}).items():
        if value is not None and not math.isnan(value):
            metrics.append({"name": f"model_quality_{name}", "value": float(value), "unit": "None"})
    for facet, values in ((quality or {}).get("bias") or {}).items():
        for name, value in values.items():
            if name not in ("n_a", "n_d", "n_missing") and value is not None and not math.isnan(value):
                metrics.append({"name": f"model_bias_{name}_{facet}", "value": float(value), "unit": "None"})
    return metrics


def put_metrics(
    metrics: Sequence[dict], namespace: str, dimensions: Mapping[str, str], endpoint_url: str | None = None
) -> int:
    """PutMetricData in batches; botocore retries are limited to one attempt so a failure surfaces at once."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "cloudwatch",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL_CLOUDWATCH") or None,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10),
    )
    dims = [{"Name": k, "Value": v} for k, v in dimensions.items() if v]
    data = [
        {"MetricName": m["name"][:255], "Value": float(m["value"]), "Unit": m["unit"], "Dimensions": dims}
        for m in metrics
    ]
    for start in range(0, len(data), PUT_BATCH):
        client.put_metric_data(Namespace=namespace, MetricData=data[start : start + PUT_BATCH])
    return len(data)
