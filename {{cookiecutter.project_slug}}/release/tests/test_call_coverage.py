"""Every AWS client method the release code calls is exercised by these tests (against moto or a Stubber).

The release code's calls are found in its source: `<...>.<client>.<method>(` where <client> is a client
attribute or variable, plus `get_paginator("<method>")`. A new call without a test fails here.
"""

from __future__ import annotations

import ast

import boto3
import pytest

from release import aws
from release.tests.conftest import CALLS, RELEASE_DIR, TESTS_DIR

# The release code's client attributes (release.aws.Clients) and the sagemaker-runtime client endpoint_checks makes.
CLIENT_NAMES = {**aws.SERVICES, "runtime": "sagemaker-runtime"}


def calls_in_source() -> set[tuple[str, str]]:
    found = set()
    for path in sorted(RELEASE_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if owner_name not in CLIENT_NAMES:
                continue
            method = node.func.attr
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                method = node.args[0].value
            found.add((CLIENT_NAMES[owner_name], method))
    return found


def operation_name(service: str, method: str) -> str:
    mapping = boto3.client(service, region_name="us-east-1").meta.method_to_api_mapping
    assert method in mapping, f"{service}.{method} is not a boto3 client method"
    return mapping[method]


def test_the_scan_finds_the_release_calls():
    calls = calls_in_source()
    assert {
        ("cloudformation", "create_change_set"),
        ("sagemaker", "list_model_packages"),
        ("sagemaker-runtime", "invoke_endpoint"),
    } <= calls


def test_every_client_call_of_the_release_code_is_exercised(request):
    collected = request.config.release_test_files
    expected = {p.name for p in TESTS_DIR.glob("test_*.py")}
    if collected != expected or request.config.option.keyword or request.config.option.markexpr:
        pytest.skip("run the whole release/tests folder to check the call coverage")
    untested = sorted(
        f"{service}.{method}"
        for service, method in calls_in_source()
        if (service, operation_name(service, method)) not in CALLS
    )
    assert untested == [], f"release code calls these without a test: {untested}"
