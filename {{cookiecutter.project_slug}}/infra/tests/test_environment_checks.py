"""Schedule expressions and the batch and retraining blocks of infra/config/<env>.json are refused as EventBridge
Scheduler and CreateTransformJob would refuse them, naming the key and the value (`make lint`, release scripts)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from infra import contract, environment_checks, schedules


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(7 days)",
        "cron(0 6 * * ? *)",
        "cron(0/15 * ? * MON-FRI *)",
        "cron(30 22 L * ? 2030)",
        "cron(0 8 ? JAN,JUL 2#1 *)",
        "cron(0 8 15W * ? *)",
        "cron(0 8 ? * 6L *)",
        "cron(5,35 14 ? * sun *)",
        "at(2030-01-31T06:00:00)",
    ],
)
def test_expressions_the_scheduler_accepts_pass(expression):
    assert schedules.problem(expression) is None


@pytest.mark.parametrize(
    "expression,words",
    [
        ("rate(1 hours)", "singular"),
        ("rate(2 hour)", "plural"),
        ("rate(0 minutes)", "1 or more"),
        ("rate(5 weeks)", "unit"),
        ("rate(1.5 hours)", "whole number"),
        ("cron(0 6 * * *)", "6"),
        ("cron(0 6 * * * *)", "exactly one"),
        ("cron(0 6 ? * ? *)", "exactly one"),
        ("cron(60 6 * * ? *)", "outside 0-59"),
        ("cron(0 24 * * ? *)", "outside 0-23"),
        ("cron(0 6 0 * ? *)", "outside 1-31"),
        ("cron(0 6 ? * MOX *)", "MOX"),
        ("cron(0 6 ? * 2#6 *)", "1 to 5"),
        ("cron(0 ? * * ? *)", "only in day"),
        ("cron(0/0 6 * * ? *)", "increment"),
        ("cron(0 6 * * ? 1969)", "outside 1970-2199"),
        ("at(2030-02-30T06:00:00)", "yyyy-mm-dd"),
        ("every hour", "rate(), cron() or at()"),
        (" rate(1 hour)", "spaces"),
        (60, "string"),
    ],
)
def test_expressions_the_scheduler_refuses_are_named(expression, words):
    issue = schedules.problem(expression)
    assert issue is not None and words in issue, issue


def config(env: str = "dev") -> dict:
    return json.loads((contract.CONFIG_DIR / f"{env}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_shipped_environment_files_pass(env):
    assert environment_checks.environment_problems(config(env), f"infra/config/{env}.json") == []


def test_retraining_is_off_in_prod_by_default():
    assert config("prod")["retraining"]["on_alarms"] is False


def assert_refused(data: dict, key: str, value, words: str) -> None:
    """Set the dotted key to value in an environment file's content: the checks name the problem (words)."""
    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    problems = environment_checks.environment_problems(data, "infra/config/dev.json")
    assert any(words in p for p in problems), problems


@pytest.mark.parametrize(
    "key,value,words",
    [
        ("batch.schedule_expression", "cron(0 5 * * *)", 'batch.schedule_expression = "cron(0 5 * * *)" has 5'),
        ("retraining.schedule_expression", "rate(1 days)", 'retraining.schedule_expression = "rate(1 days)"'),
        ("monitoring.schedule_expression", "hourly", 'monitoring.schedule_expression = "hourly"'),
        ("batch.BatchStrategy", "MULTI_RECORD", 'batch.BatchStrategy = "MULTI_RECORD" is not allowed'),
        ("batch.MaxPayloadInMB", 101, "batch.MaxPayloadInMB = 101"),
        ("batch.MaxConcurrentTransforms", 40, "x batch.MaxPayloadInMB = 6 is 240 MB"),
        ("batch.DataProcessing.JoinSource", "Output", "batch.DataProcessing.JoinSource"),
        ("batch.DataProcessing.InputFilter", "[1:]", "JSONPath starting with $"),
        ("batch.TransformInput.SplitType", "None", "needs batch.TransformInput.SplitType"),
        ("batch.upload_prefix", "s3://bucket/in/", "batch.upload_prefix"),
        ("retraining.min_interval_hours", 0, "retraining.min_interval_hours = 0"),
        ("retraining.on_alarms", "yes", 'retraining.on_alarms = "yes"'),
    ],
)
def test_a_bad_value_is_refused_naming_the_key_and_value(key, value, words):
    assert_refused(copy.deepcopy(config()), key, value, words)


def test_make_lint_refuses_a_bad_schedule_with_exit_2(tmp_path):
    data = config()
    data["batch"]["schedule_expression"] = "rate(1 hours)"
    (tmp_path / "dev.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "prod.json").write_text(json.dumps(config("prod")), encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "infra.environment_checks", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert 'infra/config/dev.json: batch.schedule_expression = "rate(1 hours)"' in result.stderr
    assert "prod.json" not in result.stderr


@pytest.mark.parametrize(
    "key,value,words",
    [
        ("endpoint.endpoint_type", "batch", 'endpoint.endpoint_type = "batch" is not allowed: use one of "realtime",'),
        ("endpoint.serverless.memory_size_mb", 512, "memory_size_mb = 512 is not allowed: use one of 1024, 2048"),
        ("endpoint.serverless.memory_size_mb", 2500, "memory_size_mb = 2500 is not allowed"),
        ("endpoint.serverless.max_concurrency", 201, "max_concurrency = 201 is not allowed"),
        ("endpoint.serverless.provisioned_concurrency", 6, "above endpoint.serverless.max_concurrency = 5"),
        ("endpoint.data_capture.enabled", True, "endpoint.data_capture.enabled = true on a serverless endpoint"),
        ("network.subnet_ids", ["subnet-1"], "network.subnet_ids / network.enable_network_isolation are set"),
        ("endpoint.shadow_variant.enabled", True, "shadow_variant.enabled = true on a serverless endpoint"),
    ],
)
def test_a_serverless_setting_sagemaker_refuses_is_named(key, value, words):
    data = copy.deepcopy(config("dev"))
    assert data["endpoint"]["endpoint_type"] == "serverless"
    assert_refused(data, key, value, words)


def test_an_async_endpoint_needs_its_output_path_and_may_scale_to_zero():
    data = copy.deepcopy(config("staging"))
    data["endpoint"]["endpoint_type"] = "async"
    data["endpoint"]["autoscaling"]["min_capacity"] = 0
    assert environment_checks.environment_problems(data, "s") == []
    del data["endpoint"]["async"]["output_path"]
    assert environment_checks.environment_problems(data, "s") == [
        's: endpoint.async.output_path is missing: add it (a key prefix in the artifact bucket ending with "/" where '
        'SageMaker writes the answers (e.g. "<project>/async/dev/output/"))'
    ]
    del data["endpoint"]["async"]
    assert "endpoint.async is missing" in environment_checks.environment_problems(data, "s")[0]


def test_a_file_without_endpoint_type_is_realtime_and_only_async_scales_to_zero():
    data = copy.deepcopy(config("staging"))
    del data["endpoint"]["endpoint_type"]
    assert environment_checks.endpoint_type_of(data) == "realtime"
    data["endpoint"]["autoscaling"]["min_capacity"] = 0
    assert "only an async endpoint scales to zero" in environment_checks.environment_problems(data, "s")[0]


def test_make_lint_refuses_an_unknown_endpoint_type_with_exit_2(tmp_path):
    data = config("staging")
    data["endpoint"]["endpoint_type"] = "Serverless"
    (tmp_path / "staging.json").write_text(json.dumps(data), encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "infra.environment_checks", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert 'infra/config/staging.json: endpoint.endpoint_type = "Serverless" is not allowed' in result.stderr
    assert '"realtime", "serverless", "async"' in result.stderr
