"""The model artifact: what training writes to /opt/ml/model and what serving loads from it.

Layout (the same files end up in model.tar.gz):

    model.onnx | model.skops   the fitted preprocessing + estimator
    schema.json                the data contract the model was trained under
    metadata.json              version, lineage, hyperparameters, metrics and the SHA-256 of every file above

Loading verifies every SHA-256 before anything is deserialised, so a tampered or truncated artifact is
refused. ONNX is the default format (served by onnxruntime, no scikit-learn in the inference image); skops is
the fallback for estimators skl2onnx cannot convert, loaded with an explicit list of trusted types, never pickle.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.common.data_contract import Schema
from model.common.image_formats import SERVES, image_format

METADATA_FILE = "metadata.json"
SCHEMA_FILE = "schema.json"
MODEL_FILES = {"onnx": "model.onnx", "skops": "model.skops"}
# What each inference image serves. The image is built for one format (Dockerfile ARG MODEL_FORMAT); the build
# stage and `make setup-inference` choose it from the `model_format` hyperparameter: "skops" builds the image with
# scikit-learn (model/inference/requirements-skops.txt), anything else the ONNX-only image.
FORMAT_VERSION = 1


class ArtifactError(RuntimeError):
    """The artifact is missing, incomplete or has been modified since training."""


def servable(metadata: dict) -> tuple[bool, str]:
    """Whether the inference image this artifact's repository builds can load it, and if not, why and the fix.

    A model whose estimator does not export to ONNX falls back to skops under model_format=auto; the default image
    has no scikit-learn, so such a model would fail to load in production. It may ship only when the repository
    opted into the skops image by setting model_format=skops.
    """
    artifact = metadata.get("model_format")
    image = image_format(metadata.get("hyperparameters", {}).get("model_format", "auto"))
    if artifact in SERVES[image]:
        return True, f"{artifact} artifact, {image} inference image"
    reason = metadata.get("fallback_reason", "")
    return False, (
        f"the artifact is in the {artifact} format{f' ({reason})' if reason else ''} but the inference image is "
        f'built for {image} and cannot load it: set "model_format": "skops" in '
        "model/config/hyperparameters.json (the build stage and `make setup-inference` then install scikit-learn "
        "into the inference image), or choose an estimator that exports to ONNX"
    )


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_artifact(
    model_dir: str | Path, *, model_bytes: bytes, model_format: str, schema: Schema, metadata: dict
) -> dict:
    """Write the model, the schema and metadata.json (with file hashes) into model_dir; returns the metadata."""
    if model_format not in MODEL_FILES:
        raise ValueError(f"model_format {model_format!r}: use one of {sorted(MODEL_FILES)}")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model_file = MODEL_FILES[model_format]
    (model_dir / model_file).write_bytes(model_bytes)
    (model_dir / SCHEMA_FILE).write_text(json.dumps(schema.raw, indent=2) + "\n", encoding="utf-8")
    files = {name: sha256_file(model_dir / name) for name in (model_file, SCHEMA_FILE)}
    full = {
        "format_version": FORMAT_VERSION,
        **metadata,
        "model_format": model_format,
        "model_file": model_file,
        "model_sha256": files[model_file],
        "files": files,
    }
    full.setdefault("model_version", f"{metadata.get('created_at', '')[:19].replace(':', '')}-{files[model_file][:8]}")
    tmp = model_dir / (METADATA_FILE + ".tmp")
    tmp.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, model_dir / METADATA_FILE)
    return full


def read_metadata(model_dir: str | Path) -> dict:
    path = Path(model_dir) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(
            f"{path} not found: {model_dir} is not a model artifact (run training first, or point "
            "SM_MODEL_DIR / --model-dir at the extracted model.tar.gz)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{path} is not valid JSON ({exc}): the artifact is damaged; retrain or restore it"
        ) from None
    if metadata.get("format_version") != FORMAT_VERSION or "files" not in metadata:
        raise ArtifactError(
            f"{path}: format_version {metadata.get('format_version')!r} is not {FORMAT_VERSION}: "
            "this artifact was written by another version of the template; retrain it"
        )
    return metadata


def verify_artifact(model_dir: str | Path) -> dict:
    """Check every recorded SHA-256; returns the metadata or raises ArtifactError naming the file."""
    model_dir = Path(model_dir)
    metadata = read_metadata(model_dir)
    unlisted = {metadata.get("model_file"), SCHEMA_FILE} - set(metadata["files"])
    if unlisted:
        raise ArtifactError(
            f"{model_dir / METADATA_FILE} records no SHA-256 for {sorted(map(str, unlisted))}: the artifact cannot be "
            "verified; refusing to load it (retrain, or restore the original model.tar.gz)"
        )
    for name, expected in metadata["files"].items():
        path = model_dir / name
        if not path.is_file():
            raise ArtifactError(f"{path} is missing from the artifact: retrain or restore the model")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"{path} has SHA-256 {actual} but metadata.json records {expected}: the artifact was modified "
                "after training; refusing to load it (retrain, or restore the original model.tar.gz)"
            )
    return metadata


@dataclass
class Prediction:
    """Model output for n rows: class indices + probabilities (classification) or values (regression)."""

    values: np.ndarray
    probabilities: np.ndarray | None = None


class Scorer:
    """A verified artifact ready to score validated columns."""

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        self.metadata = verify_artifact(self.model_dir)
        self.schema = Schema.load(self.model_dir / SCHEMA_FILE)
        self.format = self.metadata["model_format"]
        model_path = self.model_dir / self.metadata["model_file"]
        if self.format == "onnx":
            self._session = _onnx_session(model_path)
            self._output_names = [o.name for o in self._session.get_outputs()]
            self._input_names = [i.name for i in self._session.get_inputs()]
            if len(self._input_names) != len(self.schema.features):
                raise ArtifactError(
                    f"{model_path} takes {len(self._input_names)} inputs but {self.model_dir / SCHEMA_FILE} lists "
                    f"{len(self.schema.features)} features: retrain, or restore the original model.tar.gz"
                )
        elif self.format == "skops":
            self._model = _skops_load(model_path, self.metadata.get("skops_trusted_types", []))
        else:
            raise ArtifactError(f"model_format {self.format!r} in metadata.json is not one of {sorted(MODEL_FILES)}")

    @property
    def model_version(self) -> str:
        return str(self.metadata.get("model_version", "unknown"))

    def predict(self, columns: dict[str, np.ndarray]) -> Prediction:
        if self.format == "onnx":
            outputs = self._session.run(self._output_names, self.schema.to_model_inputs(columns, self._input_names))
            if self.schema.is_classification:
                return Prediction(np.asarray(outputs[0]).astype(np.int64).ravel(), np.asarray(outputs[1]))
            return Prediction(np.asarray(outputs[0], dtype=np.float64).ravel())
        frame = self.schema.to_frame(columns)
        if self.schema.is_classification:
            probabilities = self._model.predict_proba(frame)
            return Prediction(probabilities.argmax(axis=1).astype(np.int64), probabilities.astype(np.float32))
        return Prediction(np.asarray(self._model.predict(frame), dtype=np.float64).ravel())


def _onnx_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread per session: the server runs one worker process per core, so intra-op threads would only
    # fight each other; it also makes latency predictable.
    options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _skops_load(path: Path, trusted: list[str]):
    try:
        import skops.io as sio
    except ImportError:
        raise ArtifactError(
            "this artifact uses the skops fallback format, which needs scikit-learn and skops: build the inference "
            "image with --build-arg MODEL_FORMAT=skops (model/inference/requirements-skops.txt)"
        ) from None
    untrusted = set(sio.get_untrusted_types(file=path)) - set(trusted)
    if untrusted:
        raise ArtifactError(
            f"{path} contains types not recorded as trusted at training time: {sorted(untrusted)}; refusing to load it"
        )
    return sio.load(path, trusted=sorted(trusted))


def package(model_dir: str | Path, tar_path: str | Path) -> Path:
    """model_dir -> model.tar.gz with stable member order and timestamps, as SageMaker uploads it."""
    model_dir, tar_path = Path(model_dir), Path(tar_path)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tar_path.with_suffix(tar_path.suffix + ".tmp")
    # gzip's header carries a timestamp too: zero it, so the same model always packs to the same bytes.
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as archive,
    ):
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            info = archive.gettarinfo(str(path), arcname=str(path.relative_to(model_dir)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(path, "rb") as handle:
                archive.addfile(info, handle)
    os.replace(tmp, tar_path)
    return tar_path


def extract(tar_path: str | Path, dest: str | Path) -> Path:
    """model.tar.gz -> dest, refusing links and paths outside dest (the 'data' extraction filter)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "r:gz") as archive:
        archive.extractall(dest, filter="data")
    return dest


def read_tar_member(tar_path: str | Path, name: str) -> bytes:
    with tarfile.open(tar_path, "r:gz") as archive:
        member = archive.extractfile(name)
        if member is None:
            raise ArtifactError(f"{tar_path} has no file {name}")
        return io.BytesIO(member.read()).getvalue()
