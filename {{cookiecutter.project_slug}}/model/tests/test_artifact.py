"""The model artifact: integrity checks before loading, the model.tar.gz round trip, and faithful scoring."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile

import numpy as np
import pytest

from model.common.model_artifact import ArtifactError, Scorer, extract, package, verify_artifact, write_artifact
from model.train import dataset
from model.train import hyperparameters as hp
from model.train.preprocessing import build_pipeline


@pytest.fixture
def artifact_copy(trained, tmp_path):
    """A private copy of the session's artifact, free to damage."""
    return shutil.copytree(trained.model_dir, tmp_path / "model")


def model_file(model_dir):
    return model_dir / json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))["model_file"]


def test_untouched_artifact_verifies(artifact_copy):
    metadata = verify_artifact(artifact_copy)
    assert set(metadata["files"]) == {model_file(artifact_copy).name, "schema.json"}


def test_tampered_model_file_is_refused_naming_the_file(artifact_copy):
    path = model_file(artifact_copy)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one flipped bit
    with pytest.raises(ArtifactError, match=re.escape(f"{path.name} has SHA-256")):
        verify_artifact(artifact_copy)


def test_tampered_schema_is_refused_naming_the_file(artifact_copy):
    path = artifact_copy / "schema.json"
    path.write_text(path.read_text(encoding="utf-8") + " ", encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"schema\.json has SHA-256"):
        Scorer(artifact_copy)


def test_missing_model_file_is_refused_naming_the_file(artifact_copy):
    path = model_file(artifact_copy)
    path.unlink()
    with pytest.raises(ArtifactError, match=re.escape(f"{path.name} is missing from the artifact")):
        verify_artifact(artifact_copy)


def test_metadata_without_file_hashes_is_refused(artifact_copy):
    path = artifact_copy / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), "files": {}}))
    model_file(artifact_copy).write_bytes(b"truncated")
    with pytest.raises(ArtifactError, match="records no SHA-256"):
        verify_artifact(artifact_copy)


def test_packaging_the_same_model_twice_gives_the_same_bytes(trained, tmp_path):
    first = package(trained.model_dir, tmp_path / "a" / "model.tar.gz").read_bytes()
    second = package(trained.model_dir, tmp_path / "b" / "model.tar.gz").read_bytes()
    assert first == second


def test_missing_metadata_says_the_folder_is_not_an_artifact(artifact_copy):
    (artifact_copy / "metadata.json").unlink()
    with pytest.raises(ArtifactError, match=r"metadata\.json not found"):
        Scorer(artifact_copy)


def test_metadata_from_another_format_version_is_refused(artifact_copy):
    path = artifact_copy / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), "format_version": 99}))
    with pytest.raises(ArtifactError, match="format_version 99"):
        verify_artifact(artifact_copy)


def test_write_artifact_rejects_an_unknown_format(schema, tmp_path):
    with pytest.raises(ValueError, match="model_format 'pickle'"):
        write_artifact(tmp_path, model_bytes=b"", model_format="pickle", schema=schema, metadata={})


def test_package_and_extract_round_trip_byte_for_byte(trained, tmp_path):
    tar = package(trained.model_dir, tmp_path / "model.tar.gz")
    out = extract(tar, tmp_path / "extracted")
    originals = sorted(p.name for p in trained.model_dir.iterdir())
    assert sorted(p.name for p in out.iterdir()) == originals
    assert all((out / n).read_bytes() == (trained.model_dir / n).read_bytes() for n in originals)
    verify_artifact(out)


def test_package_members_are_sorted_with_zero_timestamps(trained, tmp_path):
    with tarfile.open(package(trained.model_dir, tmp_path / "model.tar.gz"), "r:gz") as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid) for m in members} == {(0, 0, 0)}


def test_extract_refuses_a_member_outside_the_destination(tmp_path):
    tar = tmp_path / "evil.tar.gz"
    with tarfile.open(tar, "w:gz") as archive:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(tarfile.FilterError):
        extract(tar, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()


def test_extract_refuses_a_link_outside_the_destination(tmp_path):
    tar = tmp_path / "evil.tar.gz"
    with tarfile.open(tar, "w:gz") as archive:
        info = tarfile.TarInfo("model.onnx")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)
    with pytest.raises(tarfile.FilterError):
        extract(tar, tmp_path / "dest")
    assert not (tmp_path / "dest" / "model.onnx").is_symlink()


@pytest.mark.slow
def test_scorer_predictions_equal_scikit_learn_on_the_same_rows(trained, scorer, schema):
    """Refit the recorded pipeline on the recorded training data: a seeded fit is deterministic."""
    params = hp.parse(scorer.metadata["hyperparameters"])
    fitted = dataset.load(schema, trained.train_path, require_sensitive=False)
    pipeline = build_pipeline(schema, params).fit(schema.to_frame(fitted.columns), fitted.target)
    rows = dataset.load(schema, trained.test_path)
    prediction = scorer.predict(rows.columns)
    frame = schema.to_frame(rows.columns)
    if schema.is_classification:
        expected = pipeline.predict_proba(frame)
        np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-4)
        assert (prediction.values == expected.argmax(axis=1)).mean() >= 0.995
    else:
        expected = pipeline.predict(frame)
        np.testing.assert_allclose(prediction.values, expected, rtol=1e-4, atol=1e-3)
