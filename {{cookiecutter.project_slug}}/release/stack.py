"""The stacks (endpoint, monitoring): their state, the endpoint's state, and a change-set deployment that reports.

create_change_set -> wait -> describe (printed) -> execute -> wait, with every new stack event printed. An empty
change set is a no-op; a deployment that ends rolled back says which model the endpoint is left serving.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from release.errors import ReleaseError
from release.output import Output

POLL_SECONDS = 10.0
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
HEALTHY = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
ENDPOINT_BUSY = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
ENDPOINT_BROKEN = {"Failed", "UpdateRollbackFailed", "OutOfService"}
# A creation that failed and was rolled back: the stack holds nothing, and CloudFormation can only delete it.
FAILED_CREATION = "ROLLBACK_COMPLETE"


@dataclass(frozen=True)
class Subject:
    """What a stack holds, for the messages that say what is left after a failure."""

    broken: str  # a stack whose creation failed ...
    after_rollback: str  # an update rolled back: ...
    after_failed_create: str  # a creation failed: ...
    uncertain: str  # a rollback could not finish: ...


ENDPOINT = Subject(
    broken="it holds no working endpoint",
    after_rollback="the endpoint is InService with the model package it served before this deployment",
    after_failed_create="no endpoint serves traffic",
    uncertain="the endpoint's state is uncertain",
)
MONITORING = Subject(
    broken="it holds no drift schedule and no alarms",
    after_rollback="the drift job, its schedule and the alarms run as before this update",
    after_failed_create="no drift job is scheduled and no alarm watches the endpoint",
    uncertain="the state of the drift job, its schedule and the alarms is uncertain",
)
BATCH = Subject(
    broken="it holds no batch schedule and no upload rule",
    after_rollback="the batch schedule and upload rule run as before this update",
    after_failed_create="no batch scoring is scheduled or started by uploads",
    uncertain="the state of the batch schedule and upload rule is uncertain",
)


def read_stack(cloudformation, name: str) -> dict | None:
    try:
        return cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in exc.response["Error"].get("Message", ""):
            return None
        raise


def parameters_of(stack: dict | None) -> dict[str, str]:
    if not stack:
        return {}
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}


def read_endpoint(sagemaker, name: str) -> dict | None:
    try:
        return sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if "Could not find endpoint" in exc.response["Error"].get("Message", ""):
            return None
        raise


def delete_steps(stack_name: str, endpoint_name: str = "") -> str:
    """What to run, in order, to remove a stack whose creation failed (and what to do when the deletion fails)."""
    logs = (
        f" and the container logs (CloudWatch log group /aws/sagemaker/Endpoints/{endpoint_name})"
        if endpoint_name
        else ""
    )
    left = f"the endpoint: aws sagemaker delete-endpoint --endpoint-name {endpoint_name}; " if endpoint_name else ""
    return (
        f"1) read the cause: aws cloudformation describe-stack-events --stack-name {stack_name} --query "
        f"\"StackEvents[?contains(ResourceStatus, 'FAILED')].[LogicalResourceId, ResourceStatusReason]\"{logs}; "
        f"2) delete the stack: aws cloudformation delete-stack --stack-name {stack_name}; "
        f"3) wait for it: aws cloudformation wait stack-delete-complete --stack-name {stack_name} - if that reports "
        f"DELETE_FAILED, delete the resource the events name by hand ({left}the alarms: aws cloudwatch "
        f"delete-alarms --alarm-names ...) and run delete-stack again with --retain-resources <its logical id>; "
        "4) fix the cause and deploy again (a stack in ROLLBACK_COMPLETE is deleted and recreated by the next deploy)"
    )


def check_stack_ready(stack: dict | None, name: str, subject: Subject = ENDPOINT, endpoint_name: str = "") -> None:
    """Refuse to start on a stack that is busy or broken, saying what to do.

    ROLLBACK_COMPLETE passes: the release deletes such a stack and creates it again (replace_failed_creation).
    """
    if stack is None:
        return
    status = stack["StackStatus"]
    if status in HEALTHY or status in ("REVIEW_IN_PROGRESS", FAILED_CREATION):
        return
    if status.endswith("_IN_PROGRESS"):
        raise ReleaseError(
            f"stack {name} is {status}: another deployment is running",
            f"wait for it (aws cloudformation describe-stacks --stack-name {name}) and run the command again; "
            f"to stop a running update: aws cloudformation cancel-update-stack --stack-name {name}",
        )
    if status in ("ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"):
        raise ReleaseError(
            f"stack {name} is {status}: its creation (or deletion) failed part-way and {subject.broken}; "
            "CloudFormation cannot update it",
            delete_steps(name, endpoint_name),
        )
    if status == "UPDATE_ROLLBACK_FAILED":
        raise ReleaseError(
            f"stack {name} is UPDATE_ROLLBACK_FAILED: a rollback could not finish, {subject.uncertain}",
            f"finish the rollback (aws cloudformation continue-update-rollback --stack-name {name}), then retry",
        )
    raise ReleaseError(
        f"stack {name} is {status}", f"inspect aws cloudformation describe-stack-events --stack-name {name}"
    )


def check_endpoint_ready(endpoint: dict | None, name: str, stack_name: str) -> None:
    if endpoint is None:
        return
    status = endpoint["EndpointStatus"]
    reason = endpoint.get("FailureReason") or "no reason given"
    if status in ENDPOINT_BROKEN:
        raise ReleaseError(
            f"endpoint {name} is {status} ({reason}); it serves nothing and cannot take an update",
            delete_steps(stack_name, name),
        )
    if status in ENDPOINT_BUSY:
        raise ReleaseError(
            f"endpoint {name} is {status}: an update is in progress",
            f"wait until it is InService (aws sagemaker wait endpoint-in-service --endpoint-name {name}) and run "
            "the command again",
        )


def is_unchanged(
    cloudformation, stack: dict | None, body: str, parameters: dict[str, str], ignore: frozenset[str] = frozenset()
) -> bool:
    """True when the stack already runs this template with these parameters (no change set needed).

    `ignore`: parameters whose difference alone is no reason for an update (the auto-scaled instance count).
    """
    if stack is None or stack["StackStatus"] not in HEALTHY:
        return False
    current = {k: v for k, v in parameters_of(stack).items() if k not in ignore}
    if current != {k: v for k, v in parameters.items() if k not in ignore}:
        return False
    current = cloudformation.get_template(StackName=stack["StackName"], TemplateStage="Original")["TemplateBody"]
    if isinstance(current, str):
        return current.strip() == body.strip()
    try:  # botocore hands a JSON template back parsed
        return current == json.loads(body)
    except ValueError:
        return False


def replace_failed_creation(
    cloudformation, out: Output, stack_name: str, timeout_seconds: float, dry_run: bool, endpoint_name: str = ""
) -> None:
    """Delete a stack left ROLLBACK_COMPLETE by a failed first creation, so that it can be created again.

    Such a stack holds no resource (the rollback deleted them) and CloudFormation accepts no update on it. The
    failure that left it there is printed first, so the next attempt does not repeat it blindly.
    """
    events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    causes = [
        f"{e['LogicalResourceId']}: {e['ResourceStatusReason']}"
        for e in events
        if e["ResourceStatus"].endswith("_FAILED") and e.get("ResourceStatusReason")
    ]
    out.say(
        f"stack {stack_name} is ROLLBACK_COMPLETE: its creation failed"
        + (f" ({causes[-1]})" if causes else "")
        + "; it holds no resource and can only be deleted"
    )
    if endpoint_name:
        out.say(f"  the container logs of that attempt: CloudWatch log group /aws/sagemaker/Endpoints/{endpoint_name}")
    _delete_and_wait(
        cloudformation,
        out,
        stack_name,
        timeout_seconds,
        dry_run,
        endpoint_name,
        "left ROLLBACK_COMPLETE by a failed creation",
    )


def delete_for_replacement(
    cloudformation, out: Output, stack_name: str, timeout_seconds: float, dry_run: bool, endpoint_name: str = ""
) -> None:
    """Delete a healthy endpoint stack whose endpoint changes type, so that it can be created with the new one."""
    _delete_and_wait(cloudformation, out, stack_name, timeout_seconds, dry_run, endpoint_name, "replaced (type change)")


def _delete_and_wait(
    cloudformation, out: Output, stack_name: str, timeout_seconds: float, dry_run: bool, endpoint_name: str, why: str
) -> None:
    if dry_run:
        out.call("cloudformation.delete_stack", {"StackName": stack_name})
        out.say("[dry-run] then: wait until the stack is deleted, and create it again as below")
        return
    stack_id = read_stack(cloudformation, stack_name)["StackId"]
    cloudformation.delete_stack(StackName=stack_name)
    out.say(f"deleting {stack_name} before creating it again")
    deadline = time.monotonic() + timeout_seconds
    while True:
        found = read_stack(cloudformation, stack_id)  # by id: a deleted stack stays readable as DELETE_COMPLETE
        status = found["StackStatus"] if found else "DELETE_COMPLETE"
        if status == "DELETE_COMPLETE":
            out.say(f"deleted {stack_name}")
            return
        if status == "DELETE_FAILED":
            raise ReleaseError(
                f"the deletion of {stack_name} ({why}) failed: "
                f"{found.get('StackStatusReason', 'see its events')}; nothing was created",
                delete_steps(stack_name, endpoint_name),
            )
        if time.monotonic() > deadline:
            raise ReleaseError(
                f"stack {stack_name} is still {status} after {timeout_seconds:.0f} s; nothing was created",
                f"wait for it (aws cloudformation wait stack-delete-complete --stack-name {stack_name}), deploy again",
            )
        time.sleep(POLL_SECONDS)


def change_set_name() -> str:
    return "release-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def deploy(
    cloudformation,
    out: Output,
    *,
    stack_name: str,
    exists: bool,
    body: str,
    parameters: dict[str, str],
    tags: dict[str, str],
    description: str,
    timeout_seconds: float,
    subject: Subject = ENDPOINT,
) -> str:
    """Run one change set to the end; returns the final stack status or raises ReleaseError saying what is left."""
    name = change_set_name()
    change_type = "UPDATE" if exists else "CREATE"
    out.say(f"creating change set {name} ({change_type}) on stack {stack_name}")
    try:
        cloudformation.create_change_set(
            StackName=stack_name,
            ChangeSetName=name,
            ChangeSetType=change_type,
            TemplateBody=body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=CAPABILITIES,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            Description=description[:1024],
        )
    except ClientError as exc:  # some endpoints refuse an empty update outright instead of failing the change set
        if not any(marker in exc.response["Error"].get("Message", "") for marker in NO_CHANGES):
            raise
        out.say("the stack already matches; nothing to do")
        return "UNCHANGED"
    change_set = _wait_for_change_set(cloudformation, stack_name, name, timeout_seconds)
    if change_set["Status"] == "FAILED":
        reason = change_set.get("StatusReason", "")
        cloudformation.delete_change_set(StackName=stack_name, ChangeSetName=name)
        if any(marker in reason for marker in NO_CHANGES):
            out.say("the change set is empty: the stack already matches; nothing to do")
            return "UNCHANGED"
        left = "the stack was not changed"
        if change_type == "CREATE":
            cloudformation.delete_stack(StackName=stack_name)  # an empty REVIEW_IN_PROGRESS shell
            left = "the empty stack shell was deleted"
        raise ReleaseError(
            f"CloudFormation rejected the change set: {reason}; {left}",
            "fix the template or the parameters named in the reason and deploy again",
        )
    out.say("changes:")
    for change in change_set.get("Changes", []):
        rc = change.get("ResourceChange", {})
        replacement = f" (replacement: {rc['Replacement']})" if rc.get("Replacement") else ""
        out.say(
            f"  {rc.get('Action', '?'):8} {rc.get('LogicalResourceId', '?')} [{rc.get('ResourceType', '?')}]"
            f"{replacement}"
        )
    known = {e["EventId"] for e in cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]}
    cloudformation.execute_change_set(StackName=stack_name, ChangeSetName=name)
    out.say(f"executing change set {name}; following the stack events (Ctrl-C stops watching, not the deployment)")
    return wait_for_stack(cloudformation, out, stack_name, known, timeout_seconds, subject)


def _wait_for_change_set(cloudformation, stack_name: str, name: str, timeout_seconds: float) -> dict:
    deadline = time.monotonic() + timeout_seconds
    while True:
        change_set = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=name)
        if change_set["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return change_set
        if time.monotonic() > deadline:
            raise ReleaseError(
                f"change set {name} is still {change_set['Status']} after {timeout_seconds:.0f} s; "
                "nothing was executed",
                f"inspect it: aws cloudformation describe-change-set --stack-name {stack_name} "
                f"--change-set-name {name}",
            )
        time.sleep(POLL_SECONDS)


def wait_for_stack(
    cloudformation,
    out: Output,
    stack_name: str,
    known: set[str],
    timeout_seconds: float,
    subject: Subject = ENDPOINT,
) -> str:
    """Print new events until the stack settles; raise ReleaseError unless it settled on the new version."""
    deadline = time.monotonic() + timeout_seconds
    seen = set(known)
    first_failure = ""
    while True:
        events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
        for event in reversed(events):
            if event["EventId"] in seen:
                continue
            seen.add(event["EventId"])
            reason = event.get("ResourceStatusReason", "")
            if event["ResourceStatus"].endswith("_FAILED") and reason and not first_failure:
                first_failure = f"{event['LogicalResourceId']}: {reason}"
            stamp = event["Timestamp"].strftime("%H:%M:%S")
            out.say(
                f"  {stamp} {event['LogicalResourceId']:28} {event['ResourceStatus']}"
                + (f" - {reason}" if reason else "")
            )
        status = read_stack(cloudformation, stack_name)["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            return _settled(status, stack_name, first_failure, subject)
        if time.monotonic() > deadline:
            raise ReleaseError(
                f"stack {stack_name} is still {status} after {timeout_seconds:.0f} s; the deployment goes on",
                "follow it with release.py status --env ENV or the CloudFormation console",
            )
        time.sleep(POLL_SECONDS)


def _settled(status: str, stack_name: str, cause: str, subject: Subject) -> str:
    cause = cause or "see aws cloudformation describe-stack-events"
    if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        return status
    if status == "UPDATE_ROLLBACK_COMPLETE":
        raise ReleaseError(
            f"the update of {stack_name} failed and CloudFormation rolled it back ({cause}); {subject.after_rollback}",
            "fix the cause and deploy again; release.py status shows what runs",
        )
    if status == FAILED_CREATION:
        raise ReleaseError(
            f"the creation of {stack_name} failed ({cause}); the stack is {status} and {subject.after_failed_create}",
            "fix the cause (for an endpoint that failed its health check: the container logs in CloudWatch, "
            "/aws/sagemaker/Endpoints/<endpoint>), then deploy again: the next deploy deletes this empty stack and "
            f"creates it anew (or delete it yourself: aws cloudformation delete-stack --stack-name {stack_name})",
        )
    if status in ("ROLLBACK_FAILED", "CREATE_FAILED"):
        raise ReleaseError(
            f"the creation of {stack_name} failed ({cause}); the stack is {status} and {subject.after_failed_create}",
            delete_steps(stack_name),
        )
    raise ReleaseError(
        f"stack {stack_name} ended {status} ({cause}); {subject.uncertain}",
        f"finish or undo the update (aws cloudformation continue-update-rollback --stack-name {stack_name}) "
        "and check release.py status",
    )
