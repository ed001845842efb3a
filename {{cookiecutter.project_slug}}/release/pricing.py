"""An ESTIMATE of an environment's endpoint cost from the sizes in infra/config/<env>.json (release.py status/deploy).

Not a bill and not fetched at run time: a small table of approximate on-demand list prices, region us-east-1,
SageMaker AI real-time inference instances and Serverless Inference. The table was written on PRICES_AS_OF without
a check against SOURCE: compare it with SOURCE (and update the date) before relying on the figures. Other regions,
savings plans, data processed and storage change the figure.
"""

from __future__ import annotations

from release.config import EnvironmentConfig

PRICES_AS_OF = "2026-12-06"
SOURCE = "https://aws.amazon.com/sagemaker/ai/pricing/ (on-demand, us-east-1)"
HOURS_PER_MONTH = 730
# Real-time (and asynchronous) inference, USD per instance-hour.
INSTANCE_HOURLY_USD = {
    "ml.t2.medium": 0.056,
    "ml.t2.large": 0.111,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.g4dn.xlarge": 0.736,
}
# Serverless Inference, USD per GB-second of memory: while a request runs (on demand), and for each provisioned
# concurrency whether used or not.
SERVERLESS_GB_SECOND_USD = 0.00002
PROVISIONED_GB_SECOND_USD = 0.0000048
REFERENCE_REQUEST_SECONDS = 0.1  # the serverless line prices a million requests of this duration
FOOTNOTE = (
    f"cost: an estimate from infra/config sizes and release/pricing.py's approximate list prices (written "
    f"{PRICES_AS_OF}; check them against {SOURCE}); not a bill - region, savings plans and data processed change it"
)


def _money(value: float) -> str:
    return f"${value:,.0f}" if value >= 10 else f"${value:,.2f}"


def monthly_instances(instance_type: str, low: int, high: int) -> str:
    hourly = INSTANCE_HOURLY_USD.get(instance_type)
    if hourly is None:
        return f"{instance_type} x{low}-{high}: no price in release/pricing.py"
    low_cost, high_cost = (hourly * HOURS_PER_MONTH * n for n in (low, high))
    span = _money(low_cost) if low == high else f"{_money(low_cost)}-{_money(high_cost)}"
    count = f"x{low}" if low == high else f"x{low}-{high}"
    return f"{instance_type} {count}: ~{span}/month"


def describe(env: EnvironmentConfig) -> str:
    """One line: what the configured endpoint costs, roughly, per month (or per million requests)."""
    endpoint = env.data["endpoint"]
    kind = env.endpoint_type
    if kind == "serverless":
        block = endpoint["serverless"]
        gigabytes = block["memory_size_mb"] / 1024
        per_million = gigabytes * REFERENCE_REQUEST_SECONDS * 1_000_000 * SERVERLESS_GB_SECOND_USD
        line = (
            f"serverless {block['memory_size_mb']} MB: $0 idle, ~{_money(per_million)} per million "
            f"{REFERENCE_REQUEST_SECONDS * 1000:.0f}-ms requests"
        )
        if block["provisioned_concurrency"]:
            warm = block["provisioned_concurrency"] * gigabytes * HOURS_PER_MONTH * 3600 * PROVISIONED_GB_SECOND_USD
            line += f" + ~{_money(warm)}/month for {block['provisioned_concurrency']} provisioned"
        return line
    scaling = endpoint["autoscaling"]
    low = scaling["min_capacity"]
    high = max(scaling["max_capacity"], low)
    line = monthly_instances(endpoint["instance_type"], low, high)
    if kind == "async":
        line = f"async {line}" + (" (nothing while scaled to zero)" if low == 0 else "")
    shadow = endpoint.get("shadow_variant", {})
    if kind == "realtime" and shadow.get("enabled"):
        line += " + shadow " + monthly_instances(
            shadow["instance_type"], shadow["instance_count"], shadow["instance_count"]
        )
    return line
