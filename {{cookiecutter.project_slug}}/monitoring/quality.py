"""Model quality from captured predictions joined with ground truth, gated like training (baseline.json).

Ground truth is small next to the captures (only labelled events), so it is read first and held by id; the
captures then stream past and only the predictions that have a label are kept. Memory is O(labelled events).
The join key is the capture's inferenceId, falling back to its eventId, as Model Monitor joins them.

Bias drift needs the sensitive attribute. A facet that is also a model feature is in the captured request
itself; any other facet never reaches the endpoint, so ground truth carries it: JSON ground-truth data such as
{"label": "yes", "age_group": "over_60"} (or lists under "labels" and the facet name, one per row), which
also overrides a captured value. When every matched event has every sensitive feature of schema.json, the
Clarify-named bias metrics are computed on the joined rows and checked against baseline.json's bias gates.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
from collections.abc import Mapping, Sequence

import numpy as np

from model.common.data_contract import DataValidationError, Schema
from monitoring.capture import (
    GROUND_TRUTH_ROW_MISMATCH,
    INVALID_LABEL,
    MALFORMED_GROUND_TRUTH,
    UNMATCHED_GROUND_TRUTH,
    BadInput,
    Source,
)


def decode_labels(ground_truth: Mapping) -> list:
    """groundTruthData {data, encoding} -> a list of labels (one per row of the inference)."""
    return decode_ground_truth(ground_truth)[0]


def decode_ground_truth(ground_truth: Mapping, facet_names: Sequence[str] = ()) -> tuple[list, dict[str, list]]:
    """groundTruthData -> (labels, {sensitive feature: values}) with one value per row of the inference."""
    facets: dict[str, list] = {}
    encoding = str(ground_truth.get("encoding", "CSV")).upper()
    data = ground_truth.get("data")
    if encoding == "BASE64":
        data = base64.b64decode(str(data), validate=True).decode("utf-8")
        encoding = "CSV"
    if encoding == "JSON":
        value = json.loads(data) if isinstance(data, str) else data
        if isinstance(value, dict):
            facets = {n: v if isinstance(v, list) else [v] for n in facet_names if (v := value.get(n)) is not None}
            value = value.get("label", value.get("labels"))
        return (value if isinstance(value, list) else [value]), facets
    if encoding != "CSV" or not isinstance(data, str):
        raise ValueError(f"encoding {ground_truth.get('encoding')!r} with data {str(data)[:40]!r}")
    return [value for row in csv.reader(data.splitlines()) for value in row], facets


class GroundTruth:
    """Labels by event id, and the (label, prediction) pairs matched so far."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.labels: dict[str, list] = {}
        self.facets: dict[str, dict[str, list]] = {}  # id -> sensitive feature -> values, when ground truth has them
        self.matched: dict[str, dict] = {}  # id -> {"labels", "predictions"}
        self.joined_facets: dict[str, list] | None = None
        self.bad = BadInput()

    def load(self, sources: Sequence[Source]) -> GroundTruth:
        for source in sources:
            with source.open() as stream:
                for number, raw in enumerate(stream, start=1):
                    if not raw.strip():
                        continue
                    where = f"{source.uri}:{number}"
                    try:
                        record = json.loads(raw)
                        metadata = record["eventMetadata"]
                        key = metadata.get("inferenceId") or metadata["eventId"]
                        names = [s.name for s in self.schema.sensitive_features]
                        labels, facets = decode_ground_truth(record["groundTruthData"], names)
                    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
                        self.bad.add(MALFORMED_GROUND_TRUTH, where, f"{type(exc).__name__}: {exc}")
                        continue
                    self.labels[str(key)] = labels
                    if facets:
                        self.facets[str(key)] = facets
        return self

    def observe(
        self,
        inference_id: str | None,
        event_id: str | None,
        outputs: Mapping[str, list],
        inputs: Mapping[str, Sequence] | None = None,
    ) -> None:
        """Called for every decoded capture record: keep its predictions (and the facets among its inputs) when a
        label waits for them."""
        for key in (inference_id, event_id):
            if key is not None and str(key) in self.labels:
                match: dict = {"predictions": {k: list(v) for k, v in outputs.items()}}
                facets = {n: _plain(inputs[n]) for n in self._facets_in_requests if inputs and n in inputs}
                if facets:
                    match["facets"] = facets
                self.matched[str(key)] = match
                return

    @property
    def _facets_in_requests(self) -> list[str]:
        features = set(self.schema.feature_names)
        return [s.name for s in self.schema.sensitive_features if s.name in features]

    # ------------------------------------------------------------------------------------ shard states
    def to_state(self) -> dict:
        return {"labels": self.labels, "facets": self.facets, "matched": self.matched, "bad": self.bad.to_json()}

    def merge_state(self, state: Mapping) -> None:
        """Every shard reads the whole ground truth: its problems count once (the largest count), not summed."""
        self.labels.update(state["labels"])
        self.facets.update(state.get("facets", {}))
        self.matched.update(state["matched"])
        other = BadInput.from_json(state["bad"])
        for kind, count in other.counts.items():
            if count > self.bad.counts[kind]:
                self.bad.counts[kind] = count
                self.bad.examples[kind] = other.examples.get(kind, [])

    # ------------------------------------------------------------------------------------------ metrics
    def pairs(self) -> tuple[list, dict[str, list]]:
        """Matched labels and predictions row by row; mismatched row counts are counted, not guessed."""
        labels: list = []
        predictions: dict[str, list] = {}
        names = [s.name for s in self.schema.sensitive_features]
        self.joined_facets: dict[str, list] | None = {n: [] for n in names} if names else None
        for key, match in sorted(self.matched.items()):
            rows = self.labels[key]
            outputs = match["predictions"]
            width = len(next(iter(outputs.values())))
            if len(rows) != width:
                self.bad.add(GROUND_TRUTH_ROW_MISMATCH, key, f"{len(rows)} labels for {width} predictions")
                continue
            labels += rows
            for name, values in outputs.items():
                predictions.setdefault(name, []).extend(values)
            facets = {**match.get("facets", {}), **self.facets.get(key, {})}
            if self.joined_facets is not None:
                if all(len(facets.get(n, [])) == len(rows) for n in names):
                    for n in names:
                        self.joined_facets[n] += facets[n]
                else:
                    self.joined_facets = None  # one event without its facets: bias cannot be measured fairly
        return labels, predictions

    def evaluate(self, gates: Mapping | None) -> dict:
        """quality metrics (model/common/metrics.py) on the matched rows, checked against baseline.json."""
        unmatched = len(self.labels) - len(self.matched)
        if unmatched:
            self.bad.add(
                UNMATCHED_GROUND_TRUTH, "ground truth", f"{unmatched} labelled events have no capture", count=unmatched
            )
        labels, predictions = self.pairs()
        report: dict = {
            "labelled_events": len(self.labels),
            "matched_events": len(self.matched),
            "unmatched_ground_truth": unmatched,
            "rows": len(labels),
        }
        if not labels:
            report["status"] = "not_computed: no ground truth matched a captured prediction"
            return report
        try:
            from model.common import metrics
        except ImportError as exc:
            report["status"] = f"not_computed: model/common/metrics.py is not importable ({exc})"
            return report
        y_true, keep = self._targets(labels)
        schema = self.schema
        if schema.is_classification:
            index = {c: i for i, c in enumerate(schema.classes)}
            values = np.array([index.get(p, -1) for p in predictions["predicted_label"]])[keep]
            rows = [p for p, k in zip(predictions["probabilities"], keep, strict=True) if k]
            probabilities = np.asarray(rows, dtype=np.float64) if rows and all(rows) else None
        else:
            values = np.asarray(predictions["score"], dtype=np.float64)[keep]
            probabilities = None
        if not len(y_true):
            report["status"] = "not_computed: no valid label"
            return report
        quality = metrics.quality_metrics(schema, y_true, values, probabilities)
        report.update(status="computed", metrics=quality)
        bias: dict = {}
        if self.joined_facets is not None:
            sensitive = {n: np.asarray(v, dtype=object)[keep] for n, v in self.joined_facets.items()}
            bias = metrics.bias_metrics(schema, sensitive, y_true, values)
            report["bias"] = bias
        elif schema.sensitive_features:
            report["bias_status"] = (
                "not_computed: neither the captured requests nor the ground truth carry "
                + ", ".join(s.name for s in schema.sensitive_features)
                + ' for every matched event (send JSON ground truth such as {"label": ..., "<facet>": ...})'
            )
        if gates:
            results = metrics.check_gates(
                {"quality": gates.get("quality", {}), "bias": gates.get("bias", {}) if bias else {}}, quality, bias
            )
            report["gates"] = [
                {
                    "group": g.group,
                    "metric": f"{g.metric}[{g.facet}]" if g.facet else g.metric,
                    "value": g.value,
                    "bound": g.bound,
                    "status": g.status,
                }
                for g in results
            ]
        return report

    def _targets(self, labels: list) -> tuple[np.ndarray, np.ndarray]:
        """Labels -> targets via the contract; invalid labels are counted and their rows left out."""
        keep = np.ones(len(labels), dtype=bool)
        try:
            return self.schema.coerce_target(labels), keep
        except DataValidationError:
            pass
        values = []
        for i, label in enumerate(labels):
            try:
                values.append(self.schema.coerce_target([label])[0])
            except DataValidationError as exc:
                keep[i] = False
                self.bad.add(INVALID_LABEL, f"label row {i}", str(exc))
        dtype = np.int64 if self.schema.is_classification else np.float64
        return np.asarray(values, dtype=dtype), keep


def _plain(values: Sequence) -> list:
    """Captured values as JSON-ready Python values (the state of a shard is written as JSON)."""
    out = values.tolist() if hasattr(values, "tolist") else list(values)
    return [None if isinstance(v, float) and v != v else v for v in out]
