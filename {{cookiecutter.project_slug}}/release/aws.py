"""AWS clients and the toolchain settings (SSM parameters under /PROJECT/, each overridable by a flag).

Clients honour the usual AWS variables (AWS_PROFILE, AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, ...), so the same code
runs against AWS and against a local emulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3
from botocore.config import Config

from infra import contract
from release.config import Project
from release.errors import ReleaseError

# setting -> (SSM parameter name under /PROJECT/, the flag that overrides it)
# The SSM parameters (infra.contract) the release scripts read: setting -> (name under /<project>/, flag).
SETTINGS = {
    key: contract.SSM_PARAMETERS[key]
    for key in (
        "artifact_bucket",
        "kms_key_arn",
        "model_package_group",
        "execution_role_arn",
        "pipeline_starter_role_arn",
        "inference_image_uri",
        "monitoring_image_uri",  # only with monitoring
    )
}


# The clients the release code uses, by attribute name -> boto3 service name.
SERVICES = {
    "sagemaker": "sagemaker",
    "cloudformation": "cloudformation",
    "s3": "s3",
    "ssm": "ssm",
    "sts": "sts",
    "autoscaling": "application-autoscaling",  # the endpoint variant's scalable target
    "ecr": "ecr",
    "iam": "iam",
    "quotas": "service-quotas",
    "connections": "codeconnections",  # the source connection of the codepipeline variant
}


class Clients:
    """One client per service (Clients(region).sagemaker, .autoscaling, ...), created on first use, one region."""

    def __init__(self, region: str):
        self.region = region
        self._session = boto3.session.Session(region_name=region)
        self._config = Config(retries={"mode": "standard"}, user_agent_extra="release-scripts")

    def __getattr__(self, name: str):
        if name not in SERVICES:
            raise AttributeError(name)
        client = self._session.client(SERVICES[name], config=self._config)
        setattr(self, name, client)  # created once: later reads find the attribute
        return client


@dataclass
class Settings:
    """Toolchain settings: flags first, then SSM (one GetParameters call for all that are still unknown)."""

    project: Project
    clients: Clients
    overrides: dict[str, str]

    def __post_init__(self):
        self._values = {k: v for k, v in self.overrides.items() if v}

    def get(self, *names: str) -> dict[str, str]:
        missing = [n for n in names if n not in self._values]
        if missing:
            paths = {self.project.ssm_prefix + SETTINGS[n][0]: n for n in missing}
            answer = self.clients.ssm.get_parameters(Names=sorted(paths))
            for parameter in answer["Parameters"]:
                self._values[paths[parameter["Name"]]] = parameter["Value"]
            absent = [n for n in missing if n not in self._values]
            if absent:
                lines = [f"{self.project.ssm_prefix}{SETTINGS[n][0]} (or the flag {SETTINGS[n][1]})" for n in absent]
                raise ReleaseError(
                    f"these settings are not in SSM Parameter Store in {self.clients.region}:\n  - "
                    + "\n  - ".join(lines),
                    "deploy the toolchain stack (infra/lib/toolchain.yaml), which writes them, or pass the flags",
                )
        return {n: self._values[n] for n in names}

    def one(self, name: str) -> str:
        return self.get(name)[name]


def check_account(clients: Clients, expected: str, source: str) -> None:
    """Refuse to release into the wrong account when the environment file names one."""
    if not expected:
        return
    actual = clients.sts.get_caller_identity()["Account"]
    if actual != expected:
        raise ReleaseError(
            f"the credentials in use belong to account {actual}, but {source} sets account_id = {expected}",
            f"switch to credentials of account {expected} (AWS_PROFILE) or correct account_id in {source}",
        )
