"""endpoint.endpoint_type: realtime, serverless and async endpoints through validation, deploy (moto), a type change
(a replacement, refused without --replace, shown by --dry-run), status's cost estimate, and make test-endpoint's
asynchronous mode (moto's S3, a Stubber for InvokeEndpointAsync, and the real serve.py answering in SageMaker's place).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse

import pytest
from botocore.stub import ANY, Stubber

from release import commands, endpoint_checks, pricing
from release.config import load_environment, load_project
from release.errors import ReleaseError
from release.output import Output
from release.tests.conftest import LOG, add_package, client, edit, writes
from release.tests.test_endpoint_checks import _model_python, expect_in_service, serve_py

SCHEMA = endpoint_checks.load_schema()


@pytest.fixture
def ctx(toolchain, moto_template):
    return commands.Context(project=load_project(), template=moto_template, out=Output())


def stack_parameters(environment: str) -> dict[str, str]:
    name = f"{load_project().name}-endpoint-{environment}"
    found = client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in found["Parameters"]}


def as_async(data: dict) -> None:
    data["endpoint"]["endpoint_type"] = "async"
    data["endpoint"]["autoscaling"]["min_capacity"] = 0


def as_serverless(data: dict) -> None:
    data["endpoint"]["endpoint_type"] = "serverless"
    data["endpoint"]["data_capture"]["enabled"] = False


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "change,words",
    [
        (lambda d: d["endpoint"].update(endpoint_type="lambda"), 'endpoint.endpoint_type = "lambda" is not allowed'),
        (
            lambda d: (as_serverless(d), d["endpoint"]["serverless"].update(memory_size_mb=1536)),
            "endpoint.serverless.memory_size_mb = 1536 is not allowed: use one of 1024, 2048, 3072, 4096, 5120, 6144",
        ),
        (
            lambda d: (as_async(d), d["endpoint"]["async"].update(output_path="")),
            'endpoint.async.output_path = "" is not allowed',
        ),
        (
            lambda d: (as_async(d), d["endpoint"].pop("async")),
            'endpoint.endpoint_type is "async" but endpoint.async is missing: add it with output_path',
        ),
        (
            lambda d: (as_serverless(d), d["endpoint"]["serverless"].update(provisioned_concurrency=9)),
            "provisioned_concurrency = 9 is above endpoint.serverless.max_concurrency = 5",
        ),
        (
            lambda d: (as_serverless(d), d["endpoint"]["data_capture"].update(enabled=True)),
            "endpoint.data_capture.enabled = true on a serverless endpoint",
        ),
        (
            lambda d: (as_async(d), d["endpoint"]["shadow_variant"].update(enabled=True)),
            "endpoint.shadow_variant.enabled = true on a async endpoint",
        ),
        (
            lambda d: d["endpoint"]["autoscaling"].update(min_capacity=0),
            "endpoint.autoscaling.min_capacity = 0 on a realtime endpoint",
        ),
    ],
)
def test_a_configuration_sagemaker_would_refuse_stops_deploy_before_any_aws_call(ctx, config_dir, change, words):
    edit(config_dir, "staging", change)
    before = len(LOG)
    with pytest.raises(ReleaseError) as error:
        commands.deploy(ctx, "staging")
    assert words in str(error.value)
    assert "infra/config/staging.json" in str(error.value)
    assert LOG[before:] == []


def test_the_default_files_give_dev_serverless_and_staging_prod_realtime():
    assert [load_environment(e).endpoint_type for e in ("dev", "staging", "prod")] == [
        "serverless",
        "realtime",
        "realtime",
    ]


# --------------------------------------------------------------------------------------------------- deploy
def test_a_serverless_deploy_passes_memory_and_concurrency_and_no_capture(ctx, toolchain, capsys):
    add_package(toolchain, 1)
    assert commands.deploy(ctx, "dev") == "CREATE_COMPLETE"
    parameters = stack_parameters("dev")
    assert parameters["EndpointType"] == "serverless"
    assert (parameters["ServerlessMemorySizeMB"], parameters["ServerlessMaxConcurrency"]) == ("2048", "5")
    assert (parameters["DataCaptureEnabled"], parameters["DataCaptureS3Uri"]) == ("false", "")
    assert parameters["AsyncOutputS3Uri"] == ""
    assert "serverless endpoint" in capsys.readouterr().out


def test_an_async_deploy_writes_to_the_artifact_bucket_and_may_scale_to_zero(ctx, toolchain, config_dir):
    add_package(toolchain, 1)
    edit(config_dir, "staging", as_async)
    assert commands.deploy(ctx, "staging") == "CREATE_COMPLETE"
    parameters = stack_parameters("staging")
    bucket = toolchain["artifact-bucket"]
    prefix = load_environment("staging").data["endpoint"]["async"]["output_path"]
    assert parameters["EndpointType"] == "async"
    assert parameters["AsyncOutputS3Uri"] == f"s3://{bucket}/{prefix}"
    assert parameters["AsyncFailureS3Uri"].startswith(f"s3://{bucket}/") and parameters["AsyncNotifications"] == "true"
    assert parameters["AutoScalingMinCapacity"] == "0"


def test_a_type_change_is_a_replacement_refused_without_replace_and_shown_by_dry_run(
    ctx, toolchain, config_dir, capsys
):
    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    edit(config_dir, "staging", as_serverless)
    since = len(LOG)
    with pytest.raises(ReleaseError, match="endpoint type realtime -> serverless") as error:
        commands.deploy(ctx, "staging")
    assert "REPLACEMENT" in str(error.value) and "REPLACE=1" in error.value.fix
    assert writes(since) == []

    ctx.dry_run = True
    capsys.readouterr()
    assert commands.deploy(ctx, "staging") == "DRY-RUN"
    out = capsys.readouterr().out
    assert "REPLACEMENT" in out and "would call cloudformation.delete_stack" in out
    assert '"ChangeSetType": "CREATE"' in out
    assert writes(since) == [] and stack_parameters("staging")["EndpointType"] == "realtime"

    ctx.dry_run, ctx.allow_replacement = False, True
    assert commands.deploy(ctx, "staging") == "CREATE_COMPLETE"
    assert stack_parameters("staging")["EndpointType"] == "serverless"
    assert "cloudformation:DeleteStack" in writes(since)


def test_status_shows_each_type_and_a_cost_estimate(ctx, toolchain, config_dir, capsys):
    add_package(toolchain, 1)
    commands.deploy(ctx, "staging")
    edit(config_dir, "staging", as_async)
    commands.status(ctx, ["dev", "staging", "prod"])
    out = capsys.readouterr().out
    assert "cost (estimate)" in out and pricing.PRICES_AS_OF in out and "not a bill" in out
    assert "serverless 2048 MB: $0 idle" in out
    assert "realtime (configured async: next deploy replaces)" in out
    assert "ml.m5.large x2-6: ~$168-$504/month" in out  # prod: 2 to 6 instances at 0.115 USD per hour


def test_the_cost_lines_follow_the_configured_sizes(config_dir):
    edit(
        config_dir, "dev", lambda d: d["endpoint"]["serverless"].update(memory_size_mb=4096, provisioned_concurrency=2)
    )
    edit(config_dir, "staging", as_async)
    edit(config_dir, "prod", lambda d: d["endpoint"].update(instance_type="ml.x9.large"))
    dev, staging, prod = (pricing.describe(load_environment(e)) for e in ("dev", "staging", "prod"))
    # 4 GB x 0.1 s x 1e6 x 0.00002; 2 x 4 GB x 730 h x 3600 s x 0.0000048
    assert dev == "serverless 4096 MB: $0 idle, ~$8.00 per million 100-ms requests + ~$101/month for 2 provisioned"
    assert staging == "async ml.m5.large x0-2: ~$0.00-$168/month (nothing while scaled to zero)"
    assert prod == "ml.x9.large x2-6: no price in release/pricing.py"


# ----------------------------------------------------------------------------------- make test-endpoint, async
def play_sagemaker(runtime, s3, port: int) -> list[dict]:
    """After each InvokeEndpointAsync: what SageMaker's queue worker does - read the input object, call the
    container, write its answer at the OutputLocation (2xx) or its error body at the FailureLocation."""
    requests: list[dict] = []

    def remember(params, **kwargs):
        requests.append(dict(params))

    def answer(parsed, **kwargs):
        request = requests[-1]
        bucket, _, key = request["InputLocation"].removeprefix("s3://").partition("/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(
            "POST", "/invocations", body, {"Content-Type": request["ContentType"], "Accept": request["Accept"]}
        )
        response = connection.getresponse()
        data = response.read()
        target = parsed["OutputLocation"] if response.status < 300 else parsed["FailureLocation"]
        out_bucket, _, out_key = urllib.parse.urlsplit(target).netloc, None, urllib.parse.urlsplit(target).path[1:]
        s3.put_object(Bucket=out_bucket, Key=out_key, Body=data)

    runtime.meta.events.register("before-parameter-build.sagemaker-runtime.InvokeEndpointAsync", remember)
    runtime.meta.events.register("after-call.sagemaker-runtime.InvokeEndpointAsync", answer)
    return requests


@pytest.mark.skipif(_model_python() is None, reason="no model environment: set SMT_MODEL_PYTHON or run make setup")
def test_async_mode_submits_through_s3_and_checks_the_answers_of_the_real_server(aws, tmp_path, capsys):
    bucket = "async-checks"
    s3, sagemaker, runtime = client("s3"), client("sagemaker"), client("sagemaker-runtime")
    s3.create_bucket(Bucket=bucket)
    timed = 3
    calls = 3 + len(endpoint_checks.bad_requests(SCHEMA)) + 1 + timed
    with serve_py(tmp_path) as port, Stubber(sagemaker) as sm, Stubber(runtime) as rt:
        expect_in_service(sm)
        for i in range(calls):
            rt.add_response(
                "invoke_endpoint_async",
                {
                    "InferenceId": f"id-{i}",
                    "OutputLocation": f"s3://{bucket}/out/{i}.out",
                    "FailureLocation": f"s3://{bucket}/failure/{i}.out",
                },
                {
                    "EndpointName": "e",
                    "InputLocation": ANY,
                    "ContentType": ANY,
                    "Accept": ANY,
                    "InvocationTimeoutSeconds": 60,
                },
            )
        requests = play_sagemaker(runtime, s3, port)
        transport = endpoint_checks.AsyncTransport(sagemaker, runtime, s3, "e", bucket, "in/", timeout=30)
        results = endpoint_checks.run_checks(transport, SCHEMA, timed, 60_000)
        rt.assert_no_pending_responses()
    failed = [r for r in results if not r[1]]
    assert not failed, failed
    assert all(r["InputLocation"].startswith(f"s3://{bucket}/in/") for r in requests)
    failures = s3.list_objects_v2(Bucket=bucket, Prefix="failure/").get("KeyCount", 0)
    assert failures == len(endpoint_checks.bad_requests(SCHEMA))  # each bad request landed at the failure path


def test_the_timed_requests_and_the_limit_follow_the_endpoint_type_unless_given():
    env = load_environment("staging")
    realtime = endpoint_checks.SageMakerTransport(None, None, "e")
    queued = endpoint_checks.AsyncTransport(None, None, None, "e", "b", "in/", timeout=900)
    assert endpoint_checks.timing_plan(realtime, env, None, 0) == (endpoint_checks.REQUESTS, env.latency_p99_ms)
    assert endpoint_checks.timing_plan(queued, env, None, 0) == (endpoint_checks.ASYNC_REQUESTS, 900_000)
    assert endpoint_checks.timing_plan(queued, env, 50, 2500) == (50, 2500)  # an explicit 50 stays 50


def test_an_async_answer_that_never_comes_times_out_and_a_5xx_failure_is_not_a_refusal(aws):
    bucket = "async-timeouts"
    s3, runtime = client("s3"), client("sagemaker-runtime")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="failure/1.out", Body=json.dumps({"error": "internal_error"}).encode())
    responses = [
        {"OutputLocation": f"s3://{bucket}/out/0.out", "FailureLocation": f"s3://{bucket}/failure/0.out"},
        {"OutputLocation": f"s3://{bucket}/out/1.out", "FailureLocation": f"s3://{bucket}/failure/1.out"},
    ]
    with Stubber(runtime) as rt:
        for response in responses:
            rt.add_response("invoke_endpoint_async", response)
        transport = endpoint_checks.AsyncTransport(None, runtime, s3, "e", bucket, "in/", timeout=0.05)
        transport.sleep = lambda seconds: time.sleep(0.01)
        late = transport.invoke(b"1,2\n", "text/csv")
        broken = transport.invoke(b"1,2\n", "text/csv")
    assert late.status == 504 and b"no answer at" in late.body
    assert broken.status == 500
