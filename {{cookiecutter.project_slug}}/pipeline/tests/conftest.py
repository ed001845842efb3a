"""Fixtures for the AWS-side tests (run in the AWS environment: requirements-aws.txt).

moto's server (`moto_url`) and the clean AWS environment (`aws_env`) come from the repository's root conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def pytest_configure(config):
    # The SageMaker SDK warns about its own internal deprecations while it builds a definition; nothing to act on.
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:sagemaker(\..*)?")
    config.addinivalue_line("filterwarnings", "ignore:The 'dependencies' parameter is deprecated:DeprecationWarning")


class NetworkUsed(AssertionError):
    pass


@contextlib.contextmanager
def offline() -> Iterator[list]:
    """Inside, any outgoing connection (an AWS call, telemetry) fails and is recorded in the yielded list; the AWS
    credentials are dummies. A context manager, so module-scoped fixtures can build definitions offline too."""
    attempts: list = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise NetworkUsed(f"connection attempted to {address}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.delenv("AWS_PROFILE", raising=False)
        yield attempts


def definition_offline(main, output: Path, *options: str) -> dict:
    """A pipeline module's `definition` command for dev (image tag abc123), run with the network cut off."""
    argv = ["definition", "--env", "dev", "--region", REGION, "--image-tag", "abc123", "--output", str(output)]
    with offline() as attempts:
        code = main([*argv, *options])
    assert code == 0 and attempts == []
    return json.loads(output.read_text(encoding="utf-8"))


@pytest.fixture
def no_network() -> Iterator[list]:
    """Any outgoing connection (an AWS call, telemetry) fails the test."""
    with offline() as attempts:
        yield attempts
