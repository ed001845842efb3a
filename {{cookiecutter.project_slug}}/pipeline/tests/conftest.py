"""Fixtures for the AWS-side tests (run in the AWS environment: requirements-aws.txt).

`moto_endpoint` is moto's server on 127.0.0.1 (a free port), one per session; `aws_env` points boto3 at it with fake
credentials, one attempt per call (an API moto lacks fails at once) and a clean moto state for every test.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# The pipeline scripts are run as files (python pipeline/x.py); make them importable as modules for the tests.
sys.path.insert(0, str(ROOT / "pipeline"))


def pytest_configure(config):
    # The SageMaker SDK warns about its own internal deprecations while it builds a definition; nothing to act on.
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:sagemaker(\..*)?")
    config.addinivalue_line("filterwarnings", "ignore:The 'dependencies' parameter is deprecated:DeprecationWarning")


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, moto_endpoint) -> str:
    """Fake credentials, region and endpoint in the environment; returns the region."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(ROOT / "does-not-exist" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(ROOT / "does-not-exist" / "credentials"))
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"), timeout=10)
    return REGION
