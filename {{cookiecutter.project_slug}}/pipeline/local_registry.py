"""A model registry on disk that behaves like SageMaker's Model Registry: groups, numbered versions, approval.

    registry/<model package group>/v0001/{model.tar.gz, evaluation.json, package.json}

Registration is atomic (built in a temporary folder, then renamed under a lock), so a failed or interrupted run
never leaves a half-registered version. package.json uses the Model Registry's field names.

    python -m pipeline.local_registry list
    python -m pipeline.local_registry approve 3 --note "reviewed"
    python -m pipeline.local_registry export --dest build/serving [--version N | --approved]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from infra import contract
from model.common import paths

STATUSES = ("PendingManualApproval", "Approved", "Rejected")
DEFAULT_ROOT = paths.REPO_ROOT / "registry"


class RegistryError(RuntimeError):
    pass


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalRegistry:
    def __init__(self, root: str | Path, group: str):
        self.root = Path(root)
        self.group = group
        self.path = self.root / group

    @contextmanager
    def _lock(self):
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _version_dir(self, version: int) -> Path:
        return self.path / f"v{version:04d}"

    def versions(self) -> list[int]:
        if not self.path.is_dir():
            return []
        return sorted(
            int(p.name[1:]) for p in self.path.glob("v[0-9][0-9][0-9][0-9]") if (p / "package.json").is_file()
        )

    def describe(self, version: int) -> dict:
        path = self._version_dir(version) / "package.json"
        if not path.is_file():
            known = ", ".join(map(str, self.versions())) or "none"
            raise RegistryError(f"model package version {version} not found in {self.path} (registered: {known})")
        return json.loads(path.read_text(encoding="utf-8"))

    def list(self) -> list[dict]:
        return [self.describe(v) for v in self.versions()]

    def register(
        self,
        model_tar: str | Path,
        evaluation: dict,
        lineage: dict,
        status: str = "PendingManualApproval",
        description: str = "",
    ) -> dict:
        model_tar = Path(model_tar)
        if status not in STATUSES:
            raise RegistryError(f"status {status!r}: use one of {', '.join(STATUSES)}")
        if not tarfile.is_tarfile(model_tar):
            raise RegistryError(f"{model_tar} is not a model.tar.gz: run training first")
        with self._lock():
            version = (self.versions() or [0])[-1] + 1
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.path))
            try:
                shutil.copyfile(model_tar, staging / "model.tar.gz")
                (staging / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
                package = {
                    "ModelPackageGroupName": self.group,
                    "ModelPackageVersion": version,
                    "ModelPackageDescription": description,
                    "ModelApprovalStatus": status,
                    "CreationTime": _now(),
                    "ModelDataUrl": "model.tar.gz",
                    "ModelDataSha256": _sha256(staging / "model.tar.gz"),
                    "ModelMetrics": {
                        "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "evaluation.json"}}
                    },
                    "MetadataProperties": {
                        "CommitId": lineage.get("git_commit", "unknown"),
                        "GeneratedBy": lineage.get("pipeline_run", ""),
                    },
                    "Lineage": lineage,
                    "ApprovalHistory": [
                        {"ModelApprovalStatus": status, "Time": _now(), "By": _user(), "Note": "registered"}
                    ],
                }
                (staging / "package.json").write_text(json.dumps(package, indent=2) + "\n", encoding="utf-8")
                os.rename(staging, self._version_dir(version))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return package

    def update_status(self, version: int, status: str, note: str = "") -> dict:
        if status not in STATUSES:
            raise RegistryError(f"status {status!r}: use one of {', '.join(STATUSES)}")
        with self._lock():
            package = self.describe(version)
            package["ModelApprovalStatus"] = status
            package["ApprovalHistory"].append(
                {"ModelApprovalStatus": status, "Time": _now(), "By": _user(), "Note": note}
            )
            path = self._version_dir(version) / "package.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(package, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        return package

    def latest(self, approved_only: bool = False) -> dict:
        for version in reversed(self.versions()):
            package = self.describe(version)
            if not approved_only or package["ModelApprovalStatus"] == "Approved":
                return package
        what = "approved model package" if approved_only else "registered model package"
        raise RegistryError(
            f"no {what} in {self.path}: run `make pipeline` first"
            + (" and approve a version (`make approve VERSION=n`)" if approved_only else "")
        )

    def export(self, version: int, dest: str | Path) -> Path:
        """Extract a version's model.tar.gz into dest (replacing what was there), checking its SHA-256 first."""
        package = self.describe(version)
        tar = self._version_dir(version) / "model.tar.gz"
        if _sha256(tar) != package["ModelDataSha256"]:
            raise RegistryError(f"{tar} does not match the SHA-256 recorded at registration: the registry was modified")
        dest = Path(dest)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        with tarfile.open(tar, "r:gz") as archive:
            archive.extractall(dest, filter="data")
        return dest


def _user() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def default_group() -> str:
    """The model package group named after the project (its resource name, as on AWS)."""
    return contract.project_settings()[0]


def _table(packages: list[dict]) -> str:
    rows = [("version", "status", "created", "model version", "commit")]
    for p in packages:
        rows.append(
            (
                str(p["ModelPackageVersion"]),
                p["ModelApprovalStatus"],
                p["CreationTime"],
                p["Lineage"].get("model_version", ""),
                p["Lineage"].get("git_commit", "")[:10],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The local model registry.")
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("REGISTRY_DIR", DEFAULT_ROOT)))
    parser.add_argument("--group", default=None, help="model package group (default: the project name)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every version with its approval status")
    for name in ("approve", "reject"):
        cmd = sub.add_parser(name, help=f"{name} a version")
        cmd.add_argument("version", type=int)
        cmd.add_argument("--note", default="")
    show = sub.add_parser("describe", help="one version's package.json")
    show.add_argument("version", type=int)
    export = sub.add_parser("export", help="extract a version's artifact for serving")
    export.add_argument("--dest", type=Path, required=True)
    export.add_argument("--version", type=int)
    export.add_argument("--approved", action="store_true", help="the latest Approved version")
    args = parser.parse_args(argv)
    registry = LocalRegistry(args.root, args.group or default_group())
    try:
        if args.command == "list":
            packages = registry.list()
            print(_table(packages) if packages else f"no model packages in {registry.path}")
        elif args.command in ("approve", "reject"):
            status = "Approved" if args.command == "approve" else "Rejected"
            registry.update_status(args.version, status, args.note)
            print(f"model package {registry.group}/{args.version} is now {status}")
        elif args.command == "describe":
            print(json.dumps(registry.describe(args.version), indent=2))
        else:
            package = registry.describe(args.version) if args.version else registry.latest(args.approved)
            registry.export(package["ModelPackageVersion"], args.dest)
            print(package["ModelPackageVersion"])
    except RegistryError as exc:
        print(f"registry: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
