"""boto3 clients and the translation of AWS refusals into what to change."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from catalog.errors import CatalogError

ACCESS_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "403",
}
# IAM actions whose name differs from the API operation's.
ACTION_NAMES = {
    "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "DeleteObjects": "s3:DeleteObject",
    "GetBucketCors": "s3:GetBucketCORS",
    "PutBucketCors": "s3:PutBucketCORS",
    "DeleteBucketCors": "s3:PutBucketCORS",
}
SERVICE_PREFIX = {"s3": "s3", "sagemaker": "sagemaker", "servicecatalog": "servicecatalog", "iam": "iam"}
DENIED_MESSAGE = re.compile(r"not authorized to perform:? (?P<action>[\w-]+:\w+)(?: on resource:? (?P<resource>\S+))?")


def make_client(service: str, region: str, session: Any = None) -> Any:
    """A client that fails fast: one attempt, so a refusal or an outage is reported at once, not retried."""
    import boto3
    from botocore.config import Config

    session = session or boto3.session.Session()
    return session.client(service, region_name=region, config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_denied(error: Exception) -> bool:
    return error_code(error) in ACCESS_DENIED


def explain_denied(error: Exception, service: str, resource: str) -> CatalogError:
    """'the caller lacks <action> on <resource>': from AWS's message when it says, else from the operation."""
    message = str(getattr(error, "response", {}).get("Error", {}).get("Message", ""))
    match = DENIED_MESSAGE.search(message)
    operation = getattr(error, "operation_name", "") or "the operation"
    action = (
        match.group("action")
        if match
        else ACTION_NAMES.get(operation, f"{SERVICE_PREFIX.get(service, service)}:{operation}")
    )
    if match and match.group("resource"):
        resource = match.group("resource").rstrip(".,")
    return CatalogError(
        f"the caller lacks {action} on {resource}: add it to the IAM policy of the identity running the registration "
        "(docs/platform-team-guide.md, 'Permissions' lists every action both modes need)."
    )


class Api:
    """One service's client, with refusals translated; every AWS call of the registration goes through ``call``."""

    def __init__(self, client: Any, service: str) -> None:
        self.client = client
        self.service = service

    def call(self, operation: str, resource: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return getattr(self.client, operation)(**params)
        except ClientError as error:
            if is_denied(error):
                raise explain_denied(error, self.service, resource) from error
            raise

    def pages(self, operation: str, resource: str, items: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated listing, through botocore's paginator for the operation."""
        from botocore.exceptions import ClientError

        try:
            for page in self.client.get_paginator(operation).paginate(**params):
                yield from page.get(items, [])
        except ClientError as error:
            if is_denied(error):
                raise explain_denied(error, self.service, resource) from error
            raise


def not_found(error: Exception, *codes: str) -> bool:
    return error_code(error) in codes


Undo = Callable[[], Any]
