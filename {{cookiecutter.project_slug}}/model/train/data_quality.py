"""Profile a validated data set and check it against the `data` gates of model/config/baseline.json."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from model.common.data_contract import Schema
from model.common.metrics import GateResult, check_bound
from model.train.dataset import Dataset

DATA_GATES = ("min_rows", "max_missing_fraction", "max_duplicate_fraction", "min_class_fraction")


def profile(schema: Schema, data: Dataset) -> dict:
    rows = len(data)
    missing = {}
    for name, column in data.columns.items():
        if schema.feature(name).is_numeric:
            missing[name] = float(np.isnan(column).mean()) if rows else 0.0
        else:
            missing[name] = float(np.mean([v is None for v in column])) if rows else 0.0
    keys = [*schema.feature_names, schema.target] if data.target is not None else schema.feature_names
    duplicates = int(data.frame.duplicated(subset=[k for k in keys if k in data.frame.columns]).sum())
    out = {
        "rows": rows,
        "missing_fraction": missing,
        "duplicate_rows": duplicates,
        "duplicate_fraction": duplicates / rows if rows else 0.0,
    }
    if data.target is not None and schema.is_classification:
        counts = np.bincount(data.target, minlength=len(schema.classes))
        out["class_fraction"] = {c: float(n / rows) for c, n in zip(schema.classes, counts, strict=True)}
    elif data.target is not None:
        out["target"] = {
            "mean": float(np.mean(data.target)),
            "std": float(np.std(data.target)),
            "min": float(np.min(data.target)),
            "max": float(np.max(data.target)),
        }
    return out


def check(summary: Mapping, gates: Mapping[str, float]) -> list[GateResult]:
    unknown = set(gates) - set(DATA_GATES)
    if unknown:
        raise ValueError(f"baseline.json data gate {sorted(unknown)[0]!r} is unknown: use {', '.join(DATA_GATES)}")
    results = []
    if "min_rows" in gates:
        results.append(check_bound("data", "rows", summary["rows"], {"min": gates["min_rows"]}))
    if "max_missing_fraction" in gates:
        bound = {"max": gates["max_missing_fraction"]}
        results += [
            check_bound("data", "missing_fraction", f, bound, name) for name, f in summary["missing_fraction"].items()
        ]
    if "max_duplicate_fraction" in gates:
        results.append(
            check_bound(
                "data", "duplicate_fraction", summary["duplicate_fraction"], {"max": gates["max_duplicate_fraction"]}
            )
        )
    if "min_class_fraction" in gates and "class_fraction" in summary:
        bound = {"min": gates["min_class_fraction"]}
        results += [
            check_bound("data", "class_fraction", f, bound, label) for label, f in summary["class_fraction"].items()
        ]
    return results
