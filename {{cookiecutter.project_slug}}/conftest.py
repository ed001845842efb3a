"""Fixtures every test folder shares: one moto server per session on 127.0.0.1, a clean AWS environment pointing at
it for each test that asks (fake credentials, one attempt per call, no profile, a reset moto state), and one
botocore loader for the whole run."""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

import pytest

NO_FILE = Path(__file__).resolve().parent / "does-not-exist"


@pytest.fixture(scope="session", autouse=True)
def shared_service_models():
    """Every botocore session of the run reads the AWS service models through one loader, so each model (the
    SageMaker API's is megabytes of JSON) is parsed once per run. The tests create clients on fresh sessions
    thousands of times; parsing the models again for each was half of the AWS tests' time."""
    try:
        import botocore.session
    except ImportError:  # the inference environment has no AWS SDK
        yield
        return
    original = botocore.session.create_loader
    loaders: dict = {}

    def create_loader(search_path_string=None):
        if search_path_string not in loaders:
            loaders[search_path_string] = original(search_path_string)
        return loaders[search_path_string]

    botocore.session.create_loader = create_loader
    yield
    botocore.session.create_loader = original


@pytest.fixture(scope="session")
def moto_url() -> str:
    """moto's server in this process, on a free loopback port; subprocesses reach it over HTTP too."""
    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_region() -> str:
    """The region the tests' clients use; a folder's conftest overrides it (release/tests: the project's region)."""
    return "us-east-1"


@pytest.fixture
def aws_env(monkeypatch, moto_url, aws_region) -> str:
    """boto3 in this process and in subprocesses talks to moto only, from a clean state; returns the region."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": aws_region,
        "AWS_REGION": aws_region,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_CONFIG_FILE": str(NO_FILE / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(NO_FILE / "credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10).read()
    return aws_region
