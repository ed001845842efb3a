"""Reading tabular data from a file or a SageMaker channel folder, validated against the data contract."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model.common.data_contract import MAX_REPORTED_ISSUES, DataValidationError, Issue, Schema, is_missing

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


def read_table(path: str | Path, schema: Schema | None = None) -> pd.DataFrame:
    """Every value as text, empty meaning missing, so the contract (not pandas' guessing) decides types.

    Given the schema, columns the schema says are numbers are read as float64 directly (NaN for empty cells),
    which takes a fraction of the time and memory of millions of Python strings; a file where any such cell does
    not parse as a number is read as text instead, so validation can name each bad row and value.
    """
    frames = []
    for file in data_files(path):
        typed = _read_typed(file, schema) if schema is not None else None
        if typed is not None:
            frames.append(typed)
        elif file.suffix == ".parquet":
            frame = pd.read_parquet(file).astype(object)
            frames.append(frame.where(frame.notna(), ""))
        else:
            frames.append(pd.read_csv(file, dtype=str, keep_default_na=False))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def numeric_columns(schema: Schema) -> set[str]:
    """Columns the contract reads as numbers: numeric features and facets, and a regression target."""
    names = {f.name for f in schema.features if f.is_numeric}
    names |= {s.name for s in schema.sensitive_features if s.is_numeric}
    if not schema.is_classification:
        names.add(schema.target)
    return names


def _read_typed(file: Path, schema: Schema) -> pd.DataFrame | None:
    """One file with the schema's numeric columns as float64 and every other column as text, or None."""
    import pyarrow as pa

    numeric = numeric_columns(schema)
    try:
        if file.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(file)
            if len(set(table.column_names)) != len(table.column_names):
                return None
            columns = {}
            for name, column in zip(table.column_names, table.columns, strict=True):
                kind = column.type
                if name in numeric and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                    columns[name] = column.to_numpy(zero_copy_only=False).astype(np.float64)
                elif name in numeric:
                    return None  # numbers stored as text (or worse): the text path checks them cell by cell
                else:
                    values = column.to_pandas().astype(object)
                    columns[name] = values.where(values.notna(), "").to_numpy()
            return pd.DataFrame(columns, columns=table.column_names)
        import csv

        import pyarrow.csv as pacsv

        with open(file, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
        if not header or len(set(header)) != len(header):
            return None  # pandas' reader renames repeated headers; keep its behaviour for those files
        types = {name: pa.float64() if name in numeric else pa.string() for name in header}
        table = pacsv.read_csv(
            file,
            convert_options=pacsv.ConvertOptions(
                column_types=types, null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError, ValueError):
        return None
    frame = table.to_pandas()
    for name in header:
        if name not in numeric:
            frame[name] = frame[name].astype(object)
    return frame


@dataclass
class Dataset:
    frame: pd.DataFrame
    columns: dict[str, np.ndarray]  # validated feature columns
    target: np.ndarray | None  # class indices or float values
    sensitive: dict[str, np.ndarray]  # facet columns: float64 with NaN (numeric) or str with None (categorical)
    dropped_rows: int = 0  # rows without a label, left out because schema.json says "missing_target": "drop"

    def __len__(self) -> int:
        return len(self.frame)


def validate(
    schema: Schema, frame: pd.DataFrame, *, require_target: bool = True, require_sensitive: bool = True
) -> Dataset:
    """Check a table against the contract; raise one DataValidationError listing every broken rule.

    Problems are collected column by column across the whole table (missing columns, bad values, missing
    labels, facets), so one run shows everything to fix. Labelled data (``require_target``) is training data:
    a feature with no value at all is refused there, since nothing could be learnt from it.
    """
    issues: list[Issue] = []
    total = 0
    needed = list(schema.feature_names)
    if require_target:
        needed.append(schema.target)
    if require_sensitive:
        needed += [s.name for s in schema.sensitive_features if s.name not in needed]
    for name in needed:
        if name not in frame.columns:
            issues.append(
                Issue(name, "is required by schema.json but is not in the data" + _closest(name, frame.columns))
            )
    if frame.empty:
        raise DataValidationError([*issues, Issue("*", "the data set has no rows")])

    dropped = 0
    if require_target and schema.target in frame.columns:
        missing = frame[schema.target].map(is_missing).to_numpy(dtype=bool)
        count = int(missing.sum())
        if count and schema.missing_target == "drop":
            frame = frame.loc[~missing].reset_index(drop=True)
            dropped = count
            if frame.empty:
                raise DataValidationError([Issue(schema.target, f"has no value in any of the {count} rows")])
        elif count:
            rows = ", ".join(str(i) for i in np.flatnonzero(missing)[:5])
            issues.append(
                Issue(
                    schema.target,
                    f"has no value in {count} of {len(missing)} rows (rows {rows}{', ...' if count > 5 else ''}): "
                    'fill them in, remove them, or set "missing_target": "drop" in schema.json',
                )
            )

    present = [n for n in schema.feature_names if n in frame.columns]
    columns: dict[str, np.ndarray] = {}
    try:
        columns = schema.coerce_columns({n: _values(frame[n]) for n in present}, names=present)
    except DataValidationError as exc:
        issues += exc.issues
        total += exc.total - len(exc.issues)
    if require_target:
        for name, column in columns.items():
            if len(column) and _all_missing(column):
                issues.append(
                    Issue(
                        name,
                        f"has no value in any of the {len(column)} rows: nothing can be learnt from it; remove it "
                        "from the features in schema.json or fix the export",
                    )
                )

    target = None
    if require_target and schema.target in frame.columns and not any(i.column == schema.target for i in issues):
        try:
            target = schema.coerce_target(frame[schema.target].tolist())
        except DataValidationError as exc:
            issues += exc.issues
            total += exc.total - len(exc.issues)

    sensitive = {}
    for facet in schema.sensitive_features:
        if facet.name not in frame.columns:
            continue
        values, found = facet.coerce(frame[facet.name].tolist())
        issues += found[:MAX_REPORTED_ISSUES]
        total += max(0, len(found) - MAX_REPORTED_ISSUES)
        sensitive[facet.name] = values
    if issues:
        raise DataValidationError(issues, total=total + len(issues))
    return Dataset(frame=frame, columns=columns, target=target, sensitive=sensitive, dropped_rows=dropped)


def _values(column: pd.Series):
    """A column as the contract's coercion takes it: numbers read as numbers stay one float64 array."""
    return column.to_numpy() if column.dtype.kind == "f" else column.tolist()


def _all_missing(column: np.ndarray) -> bool:
    if column.dtype.kind == "f":
        return bool(np.isnan(column).all())
    return all(v is None for v in column)


def _closest(name: str, columns) -> str:
    """A hint for a column that is not there: the data's columns with the most similar names."""
    import difflib

    names = [str(c) for c in columns]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    lowered = [c for c in names if c.lower() == name.lower() and c not in close]
    close = lowered + close
    return f" (closest columns: {', '.join(repr(c) for c in close)})" if close else ""


def load(schema: Schema, path: str | Path, **kwargs) -> Dataset:
    frame = read_table(path, schema)
    try:
        return validate(schema, frame, **kwargs)
    except DataValidationError:
        if not any(kind == "f" for kind in frame.dtypes.map(lambda d: d.kind)):
            raise
    # Report problems with the cells as the file writes them ('121', not 121.0): read it again as text.
    return validate(schema, read_table(path), **kwargs)
