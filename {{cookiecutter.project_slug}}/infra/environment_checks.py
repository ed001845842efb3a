"""Checks of the endpoint type, the "batch" and "retraining" blocks of infra/config/<env>.json and of every schedule
expression in it,
shared by `make lint` (python -m infra.environment_checks), the release scripts (release.config) and the batch
pipeline (pipeline.batch_pipeline), so each refuses the same mistakes before any AWS call.

The batch block names its Batch Transform settings exactly as CreateTransformJob does (TransformResources,
BatchStrategy, MaxPayloadInMB, MaxConcurrentTransforms, TransformInput, TransformOutput, DataProcessing); the local
batch scorer reads the same keys. Its lower-case keys are this repository's own: the schedule, the upload prefix
that starts a run, and the optional steps.

endpoint.endpoint_type chooses how the endpoint serves (docs/runbook.md, "Endpoint types"): "realtime" (instances
behind InvokeEndpoint), "serverless" (ProductionVariant ServerlessConfig: memory and concurrency, no instances) or
"async" (AsyncInferenceConfig: requests queued in S3, instances that scale to zero). A combination SageMaker refuses
is refused here first, naming the key: a memory size it does not offer, provisioned concurrency above the maximum,
data capture, a shadow variant or a VPC on a serverless endpoint, a shadow variant on an asynchronous one, an
asynchronous endpoint without its output path.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra import contract, schedules

INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
# An S3 key prefix inside the artifact bucket: no scheme, no leading slash, ends with a slash.
KEY_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()=-][A-Za-z0-9!_.*'()/=-]*/$")
JSON_PATH = re.compile(r"^\$.*$")
MAX_FILTER = 63  # CreateTransformJob's limit on InputFilter / OutputFilter
MAX_PAYLOAD_TIMES_CONCURRENCY = 100  # MaxConcurrentTransforms x MaxPayloadInMB, SageMaker's limit
MAX_INTERVAL_HOURS = 720

# Every schedule expression an environment file may hold: empty means "no schedule" where allowed.
SCHEDULE_KEYS = {
    "monitoring.schedule_expression": False,  # (dotted key, empty allowed)
    "batch.schedule_expression": True,
    "retraining.schedule_expression": True,
}


def _whole(low: int, high: int | None = None) -> tuple[Callable[[Any], bool], str]:
    def check(value: Any) -> bool:
        whole = isinstance(value, int) and not isinstance(value, bool)
        return whole and value >= low and (high is None or value <= high)

    return check, f"a whole number from {low}" + (f" to {high}" if high is not None else " up")


def _one_of(*choices: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda value: value in choices), "one of " + ", ".join(f'"{c}"' for c in choices)


def _filter() -> tuple[Callable[[Any], bool], str]:
    return (
        lambda value: isinstance(value, str) and bool(JSON_PATH.match(value)) and len(value) <= MAX_FILTER,
        f'a JSONPath starting with $ of at most {MAX_FILTER} characters ("$" keeps everything, "$[1:]" drops the'
        " first CSV column)",
    )


BOOL = ((lambda value: isinstance(value, bool)), "true or false")

BATCH_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "TransformResources.InstanceType": (
        lambda v: isinstance(v, str) and bool(INSTANCE_TYPE.match(v)),
        "a SageMaker instance type such as ml.m5.large",
    ),
    "TransformResources.InstanceCount": _whole(1),
    "BatchStrategy": _one_of("MultiRecord", "SingleRecord"),
    "MaxPayloadInMB": _whole(0, 100),
    "MaxConcurrentTransforms": _whole(0),
    "TransformInput.ContentType": _one_of("text/csv", "application/jsonlines"),
    "TransformInput.SplitType": _one_of("Line", "None"),
    "TransformOutput.Accept": _one_of("text/csv", "application/jsonlines"),
    "TransformOutput.AssembleWith": _one_of("Line", "None"),
    "DataProcessing.InputFilter": _filter(),
    "DataProcessing.OutputFilter": _filter(),
    "DataProcessing.JoinSource": _one_of("Input", "None"),
    "schedule_expression": ((lambda v: isinstance(v, str)), 'an EventBridge Scheduler expression, or "" for none'),
    "upload_prefix": (
        lambda v: v == "" or (isinstance(v, str) and bool(KEY_PREFIX.match(v))),
        'a key prefix in the artifact bucket ending with "/" (e.g. "<project>/batch/dev/incoming/"), or ""',
    ),
    "attributions": BOOL,
    "data_quality_check": BOOL,
}
RETRAINING_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "on_alarms": BOOL,
    "schedule_expression": ((lambda v: isinstance(v, str)), 'an EventBridge Scheduler expression, or "" for none'),
    "min_interval_hours": _whole(1, MAX_INTERVAL_HOURS),
}


def lookup(data: Any, dotted: str) -> tuple[bool, Any]:
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _block_problems(data: dict, block: str, fields: dict, source: str) -> list[str]:
    present, values = lookup(data, block)
    if not present:
        return []
    if not isinstance(values, dict):
        return [f"{source}: {block} = {json.dumps(values)} must be an object"]
    problems = []
    for key, (check, allowed) in fields.items():
        found, value = lookup(values, key)
        if not found:
            problems.append(f"{source}: {block}.{key} is missing: add it ({allowed})")
        elif not check(value):
            problems.append(f"{source}: {block}.{key} = {json.dumps(value)} is not allowed: use {allowed}")
    return problems


def batch_problems(data: dict, source: str) -> list[str]:
    """Problems of the "batch" block (none when the block is absent: batch scoring is then not set up)."""
    problems = _block_problems(data, "batch", BATCH_FIELDS, source)
    if problems or "batch" not in data:
        return problems
    batch = data["batch"]
    payload, concurrency = batch["MaxPayloadInMB"], batch["MaxConcurrentTransforms"]
    if payload * max(concurrency, 1) > MAX_PAYLOAD_TIMES_CONCURRENCY:
        problems.append(
            f"{source}: batch.MaxConcurrentTransforms = {concurrency} x batch.MaxPayloadInMB = {payload} is "
            f"{payload * concurrency} MB: SageMaker allows at most {MAX_PAYLOAD_TIMES_CONCURRENCY}; lower either"
        )
    if batch["BatchStrategy"] == "MultiRecord" and batch["TransformInput"]["SplitType"] == "None":
        problems.append(
            f'{source}: batch.BatchStrategy = "MultiRecord" needs batch.TransformInput.SplitType = "Line" '
            '(records are split by line to be batched): set SplitType to "Line" or BatchStrategy to "SingleRecord"'
        )
    if batch["TransformOutput"]["AssembleWith"] == "None" and batch["TransformInput"]["SplitType"] == "Line":
        problems.append(
            f'{source}: batch.TransformOutput.AssembleWith = "None" with SplitType "Line" writes the predictions of a'
            ' file without line breaks between records: set AssembleWith to "Line"'
        )
    return problems


def retraining_problems(data: dict, source: str) -> list[str]:
    return _block_problems(data, "retraining", RETRAINING_FIELDS, source)


# ------------------------------------------------------------------------------------------- endpoint types
ENDPOINT_TYPES = ("realtime", "serverless", "async")
# ProductionVariantServerlessConfig (botocore's sagemaker model, ServerlessMemorySizeInMB 1024-6144 "in 1 GB
# increments"; the same list in AWS::SageMaker::EndpointConfig ServerlessConfig).
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_SERVERLESS_CONCURRENCY = 200  # ServerlessMaxConcurrency / ServerlessProvisionedConcurrency max
MAX_ASYNC_INVOCATIONS_PER_INSTANCE = 1000  # AsyncInferenceClientConfig MaxConcurrentInvocationsPerInstance max

SERVERLESS_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "memory_size_mb": (
        lambda v: v in SERVERLESS_MEMORY_SIZES and not isinstance(v, bool),
        "one of " + ", ".join(str(m) for m in SERVERLESS_MEMORY_SIZES) + " (MB, SageMaker's serverless memory sizes)",
    ),
    "max_concurrency": _whole(1, MAX_SERVERLESS_CONCURRENCY),
    "provisioned_concurrency": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SERVERLESS_CONCURRENCY,
        f"a whole number from 0 (none: every container starts on demand) to {MAX_SERVERLESS_CONCURRENCY}",
    ),
}
ASYNC_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "output_path": (
        lambda v: isinstance(v, str) and bool(KEY_PREFIX.match(v)),
        'a key prefix in the artifact bucket ending with "/" where SageMaker writes the answers '
        '(e.g. "<project>/async/dev/output/")',
    ),
    "failure_path": (
        lambda v: v == "" or (isinstance(v, str) and bool(KEY_PREFIX.match(v))),
        'a key prefix in the artifact bucket ending with "/" for the error answers, or "" for the output path',
    ),
    "input_path": (
        lambda v: isinstance(v, str) and bool(KEY_PREFIX.match(v)),
        'a key prefix in the artifact bucket ending with "/" where requests are uploaded before InvokeEndpointAsync',
    ),
    "notifications": BOOL,
    "max_concurrent_invocations_per_instance": _whole(1, MAX_ASYNC_INVOCATIONS_PER_INSTANCE),
    "target_backlog_per_instance": _whole(1),
    "oldest_request_alarm_seconds": _whole(60),
}


def endpoint_type_of(data: Any) -> str:
    """The environment's endpoint type; "realtime" when the key is absent (files written before it existed)."""
    present, value = lookup(data, "endpoint.endpoint_type")
    return value if present else "realtime"


def endpoint_problems(data: dict, source: str) -> list[str]:
    """The endpoint type and its block, and the settings SageMaker refuses for that type."""
    kind = endpoint_type_of(data)
    if kind not in ENDPOINT_TYPES:
        return [
            f"{source}: endpoint.endpoint_type = {json.dumps(kind)} is not allowed: use one of "
            + ", ".join(f'"{t}"' for t in ENDPOINT_TYPES)
        ]
    problems = _block_problems(data, "endpoint.serverless", SERVERLESS_FIELDS, source)
    problems += _block_problems(data, "endpoint.async", ASYNC_FIELDS, source)
    if kind == "realtime":
        return problems
    block = f"endpoint.{kind}"
    if not lookup(data, block)[0]:
        fields = SERVERLESS_FIELDS if kind == "serverless" else ASYNC_FIELDS
        missing = f'{source}: endpoint.endpoint_type is "{kind}" but {block} is missing: add it with '
        return [*problems, missing + ", ".join(fields) + " (see infra/README.md)"]
    if problems:
        return problems

    def on(key: str) -> bool:
        return lookup(data, key)[1] is True

    if kind == "serverless":
        serverless = data["endpoint"]["serverless"]
        if serverless["provisioned_concurrency"] > serverless["max_concurrency"]:
            problems.append(
                f"{source}: endpoint.serverless.provisioned_concurrency = {serverless['provisioned_concurrency']} is "
                f"above endpoint.serverless.max_concurrency = {serverless['max_concurrency']}: SageMaker wants "
                "provisioned <= max; lower it or raise max_concurrency"
            )
        if on("endpoint.data_capture.enabled"):
            problems.append(
                f"{source}: endpoint.data_capture.enabled = true on a serverless endpoint: SageMaker captures no "
                "traffic of serverless endpoints (no drift monitoring either); set it to false, or use "
                'endpoint_type "realtime" or "async"'
            )
        if lookup(data, "network.subnet_ids")[1] or on("network.enable_network_isolation"):
            problems.append(
                f"{source}: network.subnet_ids / network.enable_network_isolation are set on a serverless endpoint: "
                'serverless endpoints run outside your VPC; clear them or use endpoint_type "realtime" or "async"'
            )
    if on("endpoint.shadow_variant.enabled"):
        problems.append(
            f"{source}: endpoint.shadow_variant.enabled = true on a {kind} endpoint: SageMaker runs shadow variants "
            'only on real-time instance endpoints; set it to false or use endpoint_type "realtime"'
        )
    return problems


def min_capacity_problems(data: dict, source: str) -> list[str]:
    """Only an asynchronous endpoint may scale to zero instances (its requests wait in the queue meanwhile)."""
    present, minimum = lookup(data, "endpoint.autoscaling.min_capacity")
    if present and minimum == 0 and endpoint_type_of(data) == "realtime":
        return [
            f"{source}: endpoint.autoscaling.min_capacity = 0 on a realtime endpoint: only an async endpoint scales to "
            'zero instances; use 1 or more, or endpoint_type "async"'
        ]
    return []


def schedule_problems(data: dict, source: str) -> list[str]:
    """Each schedule expression EventBridge Scheduler would refuse, naming the key and the value."""
    problems = []
    for key, empty_allowed in SCHEDULE_KEYS.items():
        present, value = lookup(data, key)
        if not present or (empty_allowed and value == ""):
            continue
        issue = schedules.problem(value)
        if issue:
            problems.append(f"{source}: {key} = {json.dumps(value)} {issue}")
    return problems


def environment_problems(data: Any, source: str) -> list[str]:
    if not isinstance(data, dict):
        return [f"{source}: the file must hold a JSON object"]
    return (
        endpoint_problems(data, source)
        + min_capacity_problems(data, source)
        + schedule_problems(data, source)
        + batch_problems(data, source)
        + retraining_problems(data, source)
    )


def check_directory(config_dir: Path = contract.CONFIG_DIR) -> list[str]:
    problems = []
    for env in contract.environments(config_dir):
        try:
            path, data = contract.read_environment(env, config_dir)
        except contract.EnvironmentFileError as exc:
            problems.append(exc.problem)
            continue
        problems += environment_problems(data, f"infra/config/{path.name}")
    return problems


def main(argv: list[str] | None = None) -> int:
    config_dir = Path(argv[0]) if argv else contract.CONFIG_DIR
    problems = check_directory(config_dir)
    if problems:
        print(f"{len(problems)} problem(s) in the environment files:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    count = len(contract.environments(config_dir))
    print(f"environment files: {count} checked (endpoint type, schedules, batch, retraining): no problem")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
