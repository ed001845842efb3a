"""Fixtures for the AWS-side tests (run in the AWS environment: requirements-aws.txt).

moto's server (`moto_url`) and the clean AWS environment (`aws_env`) come from the repository's root conftest.py.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def pytest_configure(config):
    # The SageMaker SDK warns about its own internal deprecations while it builds a definition; nothing to act on.
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:sagemaker(\..*)?")
    config.addinivalue_line("filterwarnings", "ignore:The 'dependencies' parameter is deprecated:DeprecationWarning")
