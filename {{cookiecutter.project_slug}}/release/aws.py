"""AWS clients and the toolchain settings (SSM parameters under /PROJECT/, each overridable by a flag).

Clients honour the usual AWS variables (AWS_PROFILE, AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, ...), so the same code
runs against AWS and against a local emulator.
"""

from __future__ import annotations

import functools
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
        "inference_image_uri",
        "monitoring_image_uri",  # only with monitoring
    )
}


class Clients:
    """One client per service, created on first use, all in one region."""

    def __init__(self, region: str):
        self.region = region
        self._session = boto3.session.Session(region_name=region)
        self._config = Config(retries={"mode": "standard"}, user_agent_extra="release-scripts")

    @functools.cached_property
    def sagemaker(self):
        return self._session.client("sagemaker", config=self._config)

    @functools.cached_property
    def cloudformation(self):
        return self._session.client("cloudformation", config=self._config)

    @functools.cached_property
    def s3(self):
        return self._session.client("s3", config=self._config)

    @functools.cached_property
    def ssm(self):
        return self._session.client("ssm", config=self._config)

    @functools.cached_property
    def sts(self):
        return self._session.client("sts", config=self._config)

    @functools.cached_property
    def autoscaling(self):
        """Application Auto Scaling (the endpoint variant's scalable target)."""
        return self._session.client("application-autoscaling", config=self._config)

    @functools.cached_property
    def ecr(self):
        return self._session.client("ecr", config=self._config)

    @functools.cached_property
    def iam(self):
        return self._session.client("iam", config=self._config)

    @functools.cached_property
    def quotas(self):
        """Service Quotas."""
        return self._session.client("service-quotas", config=self._config)

    @functools.cached_property
    def connections(self):
        """CodeConnections (the source connection of the codepipeline variant)."""
        return self._session.client("codeconnections", config=self._config)


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
