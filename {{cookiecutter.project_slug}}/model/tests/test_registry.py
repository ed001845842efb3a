"""The local model registry: numbered versions, approval history, atomic registration, checked export."""

from __future__ import annotations

import hashlib
import json

import pytest

from model.common.model_artifact import package
from pipeline import local_registry
from pipeline.local_registry import LocalRegistry, RegistryError

GROUP = "customer-churn"


@pytest.fixture
def model_tar(tmp_path):
    """A small model.tar.gz: registration treats the archive as opaque bytes."""
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "metadata.json").write_text('{"model_version": "m1"}\n', encoding="utf-8")
    (folder / "model.onnx").write_bytes(b"\x08\x07not-a-real-graph")
    return package(folder, tmp_path / "model.tar.gz")


@pytest.fixture
def registry(tmp_path):
    return LocalRegistry(tmp_path / "registry", GROUP)


def register(registry, model_tar, **kwargs):
    return registry.register(model_tar, {"passed": True}, {"git_commit": "abc123", "model_version": "m1"}, **kwargs)


def test_first_registration_is_version_1_pending_approval(registry, model_tar):
    package_ = register(registry, model_tar)
    assert (package_["ModelPackageVersion"], package_["ModelApprovalStatus"]) == (1, "PendingManualApproval")
    assert registry.versions() == [1]


def test_versions_increment(registry, model_tar):
    assert [register(registry, model_tar)["ModelPackageVersion"] for _ in range(3)] == [1, 2, 3]
    assert registry.versions() == [1, 2, 3]


def test_registration_stores_the_archive_evaluation_and_lineage(registry, model_tar):
    register(registry, model_tar)
    folder = registry.path / "v0001"
    assert (folder / "model.tar.gz").read_bytes() == model_tar.read_bytes()
    assert json.loads((folder / "evaluation.json").read_text(encoding="utf-8")) == {"passed": True}
    described = registry.describe(1)
    assert described["MetadataProperties"]["CommitId"] == "abc123"
    assert described["Lineage"]["model_version"] == "m1"


def test_registration_records_the_archive_sha256(registry, model_tar):
    assert register(registry, model_tar)["ModelDataSha256"] == hashlib.sha256(model_tar.read_bytes()).hexdigest()


def test_approval_is_appended_to_the_history(registry, model_tar):
    register(registry, model_tar)
    registry.update_status(1, "Approved", note="reviewed by the team")
    history = registry.describe(1)["ApprovalHistory"]
    assert [(h["ModelApprovalStatus"], h["Note"]) for h in history] == [
        ("PendingManualApproval", "registered"),
        ("Approved", "reviewed by the team"),
    ]
    assert registry.describe(1)["ModelApprovalStatus"] == "Approved"


def test_unknown_status_is_rejected_listing_the_statuses(registry, model_tar):
    register(registry, model_tar)
    with pytest.raises(RegistryError, match="status 'Deployed': use one of PendingManualApproval, Approved, Rejected"):
        registry.update_status(1, "Deployed")


def test_latest_is_the_newest_version(registry, model_tar):
    register(registry, model_tar)
    register(registry, model_tar)
    assert registry.latest()["ModelPackageVersion"] == 2


def test_latest_approved_skips_newer_unapproved_versions(registry, model_tar):
    for _ in range(3):
        register(registry, model_tar)
    registry.update_status(2, "Approved")
    registry.update_status(3, "Rejected")
    assert registry.latest(approved_only=True)["ModelPackageVersion"] == 2


def test_latest_approved_without_approvals_says_how_to_approve(registry, model_tar):
    register(registry, model_tar)
    with pytest.raises(RegistryError, match=r"no approved model package .* approve a version"):
        registry.latest(approved_only=True)


def test_unknown_version_error_lists_the_registered_versions(registry, model_tar):
    register(registry, model_tar)
    register(registry, model_tar)
    with pytest.raises(RegistryError, match=r"version 7 not found .* \(registered: 1, 2\)"):
        registry.describe(7)


def test_export_extracts_the_archive(registry, model_tar, tmp_path):
    register(registry, model_tar)
    dest = registry.export(1, tmp_path / "serving")
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.json", "model.onnx"]


def test_export_replaces_what_was_in_the_destination(registry, model_tar, tmp_path):
    register(registry, model_tar)
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "stale.onnx").write_bytes(b"old")
    registry.export(1, tmp_path / "serving")
    assert not (tmp_path / "serving" / "stale.onnx").exists()


def test_export_refuses_an_archive_modified_after_registration(registry, model_tar, tmp_path):
    register(registry, model_tar)
    stored = registry.path / "v0001" / "model.tar.gz"
    stored.write_bytes(stored.read_bytes() + b"\0")
    with pytest.raises(RegistryError, match="does not match the SHA-256 recorded at registration"):
        registry.export(1, tmp_path / "serving")
    assert not (tmp_path / "serving").exists()


def disk_full(path):
    raise OSError(28, "No space left on device")


def test_failure_during_registration_leaves_no_partial_version(registry, model_tar, monkeypatch):
    monkeypatch.setattr(local_registry, "_sha256", disk_full)
    with pytest.raises(OSError, match="No space left"):
        register(registry, model_tar)
    assert sorted(p.name for p in registry.path.iterdir()) == [".lock"]
    assert registry.versions() == []


def test_next_registration_after_a_failure_is_version_1(registry, model_tar, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(local_registry, "_sha256", disk_full)
        with pytest.raises(OSError):
            register(registry, model_tar)
    assert register(registry, model_tar)["ModelPackageVersion"] == 1


def test_a_file_that_is_not_a_tar_archive_is_refused(registry, tmp_path):
    not_tar = tmp_path / "model.onnx"
    not_tar.write_bytes(b"onnx bytes")
    with pytest.raises(RegistryError, match=r"is not a model\.tar\.gz"):
        register(registry, not_tar)


def test_cli_approve_then_export_the_approved_version(registry, model_tar, tmp_path, capsys):
    register(registry, model_tar)
    register(registry, model_tar)
    common = ["--root", str(registry.root), "--group", GROUP]
    assert local_registry.main([*common, "approve", "1", "--note", "ok"]) == 0
    assert local_registry.main([*common, "export", "--dest", str(tmp_path / "serving"), "--approved"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1"
    assert (tmp_path / "serving" / "model.onnx").is_file()


def test_cli_reports_an_unknown_version_and_exits_1(registry, model_tar, capsys):
    register(registry, model_tar)
    assert local_registry.main(["--root", str(registry.root), "--group", GROUP, "approve", "9"]) == 1
    assert "registered: 1" in capsys.readouterr().err
