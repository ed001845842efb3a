"""The drift baselines (monitoring/baselines/) in S3, where the scheduled drift job reads them.

Each file goes to s3://<artifact bucket>/<project>/monitoring/<env>/baselines/ with its SHA-256 in the object's
metadata; a file whose copy already carries that digest is skipped (under SSE-KMS an ETag is no content hash), and
objects under that prefix that the folder no longer has are deleted: the job downloads the whole prefix, so a
leftover output_statistics.json of an older model would be compared with the new one's traffic.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from release.config import BASELINE_FILES, OPTIONAL_BASELINE_FILES, ROOT
from release.errors import ReleaseError
from release.output import Output

DIGEST_KEY = "sha256"  # x-amz-meta-sha256


@dataclass(frozen=True)
class Plan:
    upload: list[str]  # file names to put
    unchanged: list[str]  # file names already in S3 with the same content
    delete: list[str]  # keys under the prefix the folder no longer has


def _shown(folder: Path) -> str:
    try:
        return str(folder.resolve().relative_to(ROOT)) + "/"
    except ValueError:
        return str(folder) + "/"


def read_folder(folder: Path) -> dict[str, bytes]:
    """The baseline files to publish, checked: the required ones are there and every file is JSON."""
    shown = _shown(folder)
    fix = (
        "write the baselines with make pipeline (training runs monitoring/drift_baseline.py and copies its output to "
        "monitoring/baselines/), commit the folder and run the command again"
    )
    if not folder.is_dir():
        raise ReleaseError(f"{shown} is missing: the drift job has no baseline to compare the traffic with", fix)
    missing = [name for name in BASELINE_FILES if not (folder / name).is_file()]
    if missing:
        raise ReleaseError(f"{shown} lacks {', '.join(missing)} (the drift job needs {', '.join(BASELINE_FILES)})", fix)
    files = {}
    problems = []
    for name in (*BASELINE_FILES, *OPTIONAL_BASELINE_FILES):
        path = folder / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            json.loads(data)
        except ValueError as exc:
            problems.append(f"{shown}{name} is not valid JSON: {exc}")
        files[name] = data
    if problems:
        raise ReleaseError("\n  - ".join(["the baselines cannot be published:", *problems]), fix)
    return files


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plan(s3, bucket: str, prefix: str, files: dict[str, bytes]) -> Plan:
    """Compare the folder with what is under s3://bucket/prefix/ (one HeadObject per file, one listing)."""
    upload, unchanged = [], []
    for name, data in sorted(files.items()):
        try:
            head = s3.head_object(Bucket=bucket, Key=f"{prefix}/{name}")
        except ClientError as exc:
            if exc.response["Error"].get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            head = {}
        same = head.get("Metadata", {}).get(DIGEST_KEY) == digest(data)
        (unchanged if same else upload).append(name)
    wanted = {f"{prefix}/{name}" for name in files}
    stale = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        stale.extend(item["Key"] for item in page.get("Contents", []) if item["Key"] not in wanted)
    return Plan(upload, unchanged, sorted(stale))


def publish(s3, out: Output, bucket: str, prefix: str, files: dict[str, bytes], dry_run: bool) -> Plan:
    """Make s3://bucket/prefix/ hold exactly the folder's baseline files; returns what was (or would be) done."""
    todo = plan(s3, bucket, prefix, files)
    location = f"s3://{bucket}/{prefix}/"
    if not todo.upload and not todo.delete:
        out.say(f"baselines: {location} already holds these {len(files)} files; nothing to upload")
        return todo
    for name in todo.upload:
        params = {
            "Bucket": bucket,
            "Key": f"{prefix}/{name}",
            "Body": files[name],
            "ContentType": "application/json",
            "Metadata": {DIGEST_KEY: digest(files[name])},
        }
        if dry_run:
            out.call("s3.put_object", {**params, "Body": f"<{len(files[name])} bytes of {name}>"})
            continue
        s3.put_object(**params)
        out.say(f"baselines: uploaded {name} to {location}")
    for key in todo.delete:
        if dry_run:
            out.call("s3.delete_object", {"Bucket": bucket, "Key": key})
            continue
        s3.delete_object(Bucket=bucket, Key=key)
        out.say(f"baselines: deleted s3://{bucket}/{key} (not in the baselines folder any more)")
    if todo.unchanged:
        out.say(f"baselines: {', '.join(todo.unchanged)} unchanged")
    return todo
