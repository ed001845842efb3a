"""Fixtures for the AWS-side tests (run in the AWS environment: requirements-aws.txt).

moto's server (`moto_url`) and the clean AWS environment (`aws_env`) come from the repository's root conftest.py.
"""

from __future__ import annotations

import socket
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


@pytest.fixture
def no_network(monkeypatch):
    """Any outgoing connection (an AWS call, telemetry) fails the test."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise NetworkUsed(f"connection attempted to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return attempts
