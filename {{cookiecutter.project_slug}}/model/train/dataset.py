"""Reading tabular data from a file or a SageMaker channel folder, validated against the data contract."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_contract import DataValidationError, Issue, Schema

SUFFIXES = (".csv", ".parquet")


def data_files(path: str | Path) -> list[Path]:
    """A file, or every .csv/.parquet file in a folder (a SageMaker channel), in a stable order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if files:
            return files
        raise FileNotFoundError(f"{path} holds no {' or '.join(SUFFIXES)} files: put the data set there")
    raise FileNotFoundError(f"{path} does not exist: point the data location at a CSV/Parquet file or folder")


def sha256_of(files: list[Path]) -> str:
    """Lineage: one digest over the data files' bytes, in order."""
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_table(path: str | Path) -> pd.DataFrame:
    """Every value as text, empty meaning missing, so the contract (not pandas' guessing) decides types."""
    frames = []
    for file in data_files(path):
        if file.suffix == ".parquet":
            frame = pd.read_parquet(file).astype(object)
            frames.append(frame.where(frame.notna(), ""))
        else:
            frames.append(pd.read_csv(file, dtype=str, keep_default_na=False))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


@dataclass
class Dataset:
    frame: pd.DataFrame
    columns: dict[str, np.ndarray]  # validated feature columns
    target: np.ndarray | None  # class indices or float values
    sensitive: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.frame)


def validate(
    schema: Schema, frame: pd.DataFrame, *, require_target: bool = True, require_sensitive: bool = True
) -> Dataset:
    """Check a table against the contract; raise DataValidationError listing every broken rule."""
    needed = list(schema.feature_names)
    if require_target:
        needed.append(schema.target)
    if require_sensitive:
        needed += [s.name for s in schema.sensitive_features]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataValidationError([Issue(c, "is required by schema.json but is not in the data") for c in missing])
    if frame.empty:
        raise DataValidationError([Issue("*", "the data set has no rows")])
    columns = schema.coerce_columns({n: frame[n].tolist() for n in schema.feature_names})
    target = schema.coerce_target(frame[schema.target].tolist()) if require_target else None
    sensitive = {}
    for facet in schema.sensitive_features:
        if facet.name not in frame.columns:
            continue
        values = frame[facet.name].astype(str).to_numpy()
        if facet.categories:
            unknown = sorted(set(values) - set(facet.categories))
            if unknown:
                raise DataValidationError(
                    [Issue(facet.name, f"is not one of the categories {list(facet.categories)}", value=unknown[0])]
                )
        sensitive[facet.name] = values
    return Dataset(frame=frame, columns=columns, target=target, sensitive=sensitive)


def load(schema: Schema, path: str | Path, **kwargs) -> Dataset:
    return validate(schema, read_table(path), **kwargs)
