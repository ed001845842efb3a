"""A transform job's settings under CreateTransformJob's names, and the record handling they imply.

Standard library only: the local runner (batch.run) and the AWS side (a Batch Transform step of a SageMaker
Pipeline, from .venv-aws) build on the same TransformSettings, so a filter or a payload limit means the same thing
on a laptop and in a transform job. `TransformSettings.to_api()` gives the fields of a CreateTransformJob request;
`TransformSettings.from_api()` reads them back (a settings file in that shape).

DataProcessing filters are JSONPath expressions in the subset Batch Transform supports:

    $                     the whole record
    $.name  $['name']     one member of a JSON object (the value)
    $['a','b']            several members (an object holding just those members, in that order)
    $[2]  $[-1]           one element of a list (a CSV row is a list of fields)
    $[0,3]  $[1:]  $[0,5:]  $[:-1]    several elements, indexes and slices (a list)
    $.*  $[*]             every member or element (a list)
    $.features[1:]  $.a.b  $.a['x','y']    chained selections

A CSV record is the list of its fields, so only index selections apply to it; the joined record of a CSV input is
the input's fields followed by the model's output fields (JoinSource Input). A JSON record joined with its output
gains a member "SageMakerOutput"; a JSON record that is not an object becomes {"SageMakerInput": record,
"SageMakerOutput": output}. An index outside the record is an error, as in Batch Transform.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

CSV = "text/csv"
JSONLINES = "application/jsonlines"
CONTENT_TYPES = (CSV, JSONLINES)
# File extensions -> content type (Batch Transform takes ContentType from the job; locally the file says it).
EXTENSIONS = {".csv": CSV, ".jsonl": JSONLINES, ".jsonlines": JSONLINES, ".ndjson": JSONLINES}
BATCH_STRATEGIES = ("MultiRecord", "SingleRecord")
SPLIT_TYPES = ("Line",)
ASSEMBLE_WITH = ("Line",)
JOIN_SOURCES = ("None", "Input")
# Container names for the strategy (SAGEMAKER_BATCH_STRATEGY, GET /execution-parameters).
CONTAINER_STRATEGIES = {"MultiRecord": "MULTI_RECORD", "SingleRecord": "SINGLE_RECORD"}
MAX_TRANSFORM_BUDGET_MB = 100  # MaxConcurrentTransforms x MaxPayloadInMB <= 100
MAX_JSONPATH_LENGTH = 63  # DataProcessing's length constraint
OUTPUT_KEY = "SageMakerOutput"
INPUT_KEY = "SageMakerInput"


class SettingsError(ValueError):
    """A transform setting is invalid; the message names the setting, the value and the fix."""


class FilterError(ValueError):
    """A JSONPath filter does not apply to a record (a missing member, an index outside the row)."""


# ----------------------------------------------------------------------------------------------- JSONPath
@dataclass(frozen=True)
class _Step:
    kind: str  # "names", "indexes" or "all"
    names: tuple[str, ...] = ()
    indexes: tuple[int | slice, ...] = ()

    @property
    def single(self) -> bool:
        """One plain name or index: the selection is the value itself, not a container of values."""
        if self.kind == "names":
            return len(self.names) == 1
        return self.kind == "indexes" and len(self.indexes) == 1 and isinstance(self.indexes[0], int)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_QUOTED = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*""")
_INDEX = re.compile(r"\s*(-?\d+)?\s*(:)?\s*(-?\d+)?\s*")


@dataclass(frozen=True)
class JsonPath:
    """A parsed DataProcessing filter; apply() selects from one record."""

    expression: str
    steps: tuple[_Step, ...] = field(default=())

    @classmethod
    def parse(cls, expression: str, setting: str = "filter") -> JsonPath:
        text = expression.strip()

        def fail(problem: str) -> SettingsError:
            return SettingsError(
                f"{setting} = {expression!r}: {problem}; Batch Transform accepts $, $.name, $['a','b'], $[0,2], "
                "$[1:], $[0,5:], $[*] and chains of them (e.g. $.features[1:])"
            )

        if not text.startswith("$"):
            raise fail("a JSONPath starts with $")
        if len(text) > MAX_JSONPATH_LENGTH:
            raise fail(f"it has {len(text)} characters, more than the {MAX_JSONPATH_LENGTH} DataProcessing allows")
        steps: list[_Step] = []
        position = 1
        while position < len(text):
            rest = text[position:]
            if rest.startswith(".["):  # Batch Transform's documentation writes $.field1.['a','b']
                position += 1
                continue
            if rest.startswith(".."):
                raise fail("recursive descent (..) is not supported")
            if rest.startswith(".*"):
                steps.append(_Step("all"))
                position += 2
                continue
            if rest.startswith("."):
                match = _NAME.match(text, position + 1)
                if not match:
                    raise fail(f"a member name must follow '.' at position {position}")
                steps.append(_Step("names", names=(match.group(),)))
                position = match.end()
                continue
            if rest.startswith("["):
                end = _closing_bracket(text, position)
                if end < 0:
                    raise fail(f"the '[' at position {position} is not closed")
                steps.append(_parse_brackets(text[position + 1 : end], fail))
                position = end + 1
                continue
            raise fail(f"unexpected {rest[0]!r} at position {position}")
        return cls(text, tuple(steps))

    @property
    def is_identity(self) -> bool:
        return not self.steps

    def apply(self, record: Any) -> Any:
        value = record
        for step in self.steps:
            value = _select(step, value, self.expression)
        return value


def _closing_bracket(text: str, start: int) -> int:
    quote = None
    for i in range(start + 1, len(text)):
        ch = text[i]
        if quote:
            if ch == "\\":
                continue
            if ch == quote and text[i - 1] != "\\":
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "]":
            return i
    return -1


def _parse_brackets(inner: str, fail) -> _Step:
    if inner.strip() == "*":
        return _Step("all")
    if not inner.strip():
        raise fail("empty brackets []")
    if inner.strip()[0] in "'\"":
        names, position = [], 0
        while position < len(inner):
            match = _QUOTED.match(inner, position)
            if not match:
                raise fail(f"[{inner}] mixes quoted names with something else")
            name = match.group(1) if match.group(1) is not None else match.group(2)
            names.append(re.sub(r"\\(.)", r"\1", name))
            position = match.end()
            if position < len(inner):
                if inner[position] != ",":
                    raise fail(f"[{inner}]: separate names with commas")
                position += 1
        return _Step("names", names=tuple(names))
    indexes: list[int | slice] = []
    for part in inner.split(","):
        match = _INDEX.fullmatch(part)
        if not match or (match.group(1) is None and match.group(2) is None):
            raise fail(f"[{inner}]: {part.strip()!r} is neither an index nor a slice start:end")
        start, colon, stop = match.groups()
        if colon:
            indexes.append(slice(None if start is None else int(start), None if stop is None else int(stop)))
        elif stop is not None:
            raise fail(f"[{inner}]: {part.strip()!r} is not an index")
        else:
            indexes.append(int(start))
    return _Step("indexes", indexes=tuple(indexes))


def _select(step: _Step, value: Any, expression: str) -> Any:
    if step.kind == "all":
        if isinstance(value, dict):
            return list(value.values())
        if isinstance(value, list):
            return list(value)
        raise FilterError(f"{expression}: [*] applies to an object or a list, not to {_kind(value)}")
    if step.kind == "names":
        if not isinstance(value, dict):
            raise FilterError(f"{expression}: member {step.names[0]!r} asked of {_kind(value)}")
        missing = [name for name in step.names if name not in value]
        if missing:
            raise FilterError(f"{expression}: the record has no member {', '.join(map(repr, missing))}")
        if step.single:
            return value[step.names[0]]
        return {name: value[name] for name in step.names}
    if not isinstance(value, list):
        raise FilterError(f"{expression}: an index asked of {_kind(value)} (indexes apply to CSV rows and lists)")
    out: list = []
    for index in step.indexes:
        if isinstance(index, slice):
            out.extend(value[index])
        elif -len(value) <= index < len(value):
            out.append(value[index])
        else:
            raise FilterError(f"{expression}: index {index} is outside the record's {len(value)} values")
    return out[0] if step.single else out


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"the value {value!r}"


# -------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class TransformSettings:
    """CreateTransformJob's data-handling fields. None = not set: Batch Transform then asks the container's
    GET /execution-parameters (MaxConcurrentTransforms, MaxPayloadInMB, BatchStrategy), and without an answer
    uses 1, 6 and MultiRecord."""

    max_concurrent_transforms: int | None = None  # MaxConcurrentTransforms
    max_payload_in_mb: int | None = None  # MaxPayloadInMB
    batch_strategy: str | None = None  # BatchStrategy
    split_type: str = "Line"  # TransformInput.SplitType
    content_type: str | None = None  # TransformInput.ContentType (None: from each file's extension)
    accept: str | None = None  # TransformOutput.Accept (None: the input's content type)
    assemble_with: str = "Line"  # TransformOutput.AssembleWith
    input_filter: str = "$"  # DataProcessing.InputFilter
    output_filter: str = "$"  # DataProcessing.OutputFilter
    join_source: str = "None"  # DataProcessing.JoinSource
    invocations_timeout_in_seconds: int = 600  # ModelClientConfig.InvocationsTimeoutInSeconds
    invocations_max_retries: int = 3  # ModelClientConfig.InvocationsMaxRetries

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def fail(name: str, value: Any, fix: str) -> SettingsError:
            return SettingsError(f"{name} = {value!r}: {fix}")

        if self.max_concurrent_transforms is not None and not 1 <= self.max_concurrent_transforms <= 100:
            raise fail("MaxConcurrentTransforms", self.max_concurrent_transforms, "give 1..100 (or leave it unset)")
        if self.max_payload_in_mb is not None and not 1 <= self.max_payload_in_mb <= 100:
            raise fail(
                "MaxPayloadInMB",
                self.max_payload_in_mb,
                "give 1..100 megabytes (0, HTTP chunked streaming, is not supported by this model server)",
            )
        if (
            self.max_concurrent_transforms is not None
            and self.max_payload_in_mb is not None
            and self.max_concurrent_transforms * self.max_payload_in_mb > MAX_TRANSFORM_BUDGET_MB
        ):
            raise fail(
                "MaxConcurrentTransforms x MaxPayloadInMB",
                f"{self.max_concurrent_transforms} x {self.max_payload_in_mb}",
                f"the product must not exceed {MAX_TRANSFORM_BUDGET_MB} (a Batch Transform rule): lower one of them",
            )
        choices = {
            "BatchStrategy": (self.batch_strategy, (None, *BATCH_STRATEGIES)),
            "SplitType": (self.split_type, SPLIT_TYPES),
            "AssembleWith": (self.assemble_with, ASSEMBLE_WITH),
            "JoinSource": (self.join_source, JOIN_SOURCES),
            "ContentType": (self.content_type, (None, *CONTENT_TYPES)),
            "Accept": (self.accept, (None, *CONTENT_TYPES)),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                shown = ", ".join(a for a in allowed if a is not None)
                raise fail(name, value, f"use one of {shown}")
        if not 1 <= self.invocations_timeout_in_seconds <= 3600:
            raise fail("InvocationsTimeoutInSeconds", self.invocations_timeout_in_seconds, "give 1..3600 seconds")
        if not 0 <= self.invocations_max_retries <= 3:
            raise fail("InvocationsMaxRetries", self.invocations_max_retries, "give 0..3")
        JsonPath.parse(self.input_filter, "InputFilter")
        JsonPath.parse(self.output_filter, "OutputFilter")

    @property
    def input_path(self) -> JsonPath:
        return JsonPath.parse(self.input_filter, "InputFilter")

    @property
    def output_path(self) -> JsonPath:
        return JsonPath.parse(self.output_filter, "OutputFilter")

    @property
    def joins_input(self) -> bool:
        return self.join_source == "Input"

    def to_api(self) -> dict:
        """The CreateTransformJob fields these settings fill (without names, data sources and resources)."""
        out: dict[str, Any] = {}
        if self.max_concurrent_transforms is not None:
            out["MaxConcurrentTransforms"] = self.max_concurrent_transforms
        if self.max_payload_in_mb is not None:
            out["MaxPayloadInMB"] = self.max_payload_in_mb
        if self.batch_strategy is not None:
            out["BatchStrategy"] = self.batch_strategy
        out["ModelClientConfig"] = {
            "InvocationsTimeoutInSeconds": self.invocations_timeout_in_seconds,
            "InvocationsMaxRetries": self.invocations_max_retries,
        }
        out["TransformInput"] = {"SplitType": self.split_type}
        if self.content_type is not None:
            out["TransformInput"]["ContentType"] = self.content_type
        out["TransformOutput"] = {"AssembleWith": self.assemble_with}
        if self.accept is not None:
            out["TransformOutput"]["Accept"] = self.accept
        out["DataProcessing"] = {
            "InputFilter": self.input_filter,
            "OutputFilter": self.output_filter,
            "JoinSource": self.join_source,
        }
        return out

    @classmethod
    def from_api(cls, request: dict) -> TransformSettings:
        """Settings from CreateTransformJob fields (e.g. a JSON file in that shape); unknown fields are ignored."""
        transform_input = request.get("TransformInput") or {}
        transform_output = request.get("TransformOutput") or {}
        processing = request.get("DataProcessing") or {}
        client = request.get("ModelClientConfig") or {}
        defaults = cls()
        return cls(
            max_concurrent_transforms=request.get("MaxConcurrentTransforms") or None,
            max_payload_in_mb=request.get("MaxPayloadInMB"),
            batch_strategy=request.get("BatchStrategy"),
            split_type=transform_input.get("SplitType", defaults.split_type),
            content_type=transform_input.get("ContentType"),
            accept=transform_output.get("Accept"),
            assemble_with=transform_output.get("AssembleWith", defaults.assemble_with),
            input_filter=processing.get("InputFilter") or "$",
            output_filter=processing.get("OutputFilter") or "$",
            join_source=processing.get("JoinSource", defaults.join_source),
            invocations_timeout_in_seconds=client.get(
                "InvocationsTimeoutInSeconds", defaults.invocations_timeout_in_seconds
            ),
            invocations_max_retries=client.get("InvocationsMaxRetries", defaults.invocations_max_retries),
        )


@dataclass(frozen=True)
class ExecutionParameters:
    """What a job runs with: its own settings where given, else the container's GET /execution-parameters."""

    max_concurrent_transforms: int
    max_payload_in_mb: int
    batch_strategy: str

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_in_mb * 1024 * 1024

    @classmethod
    def resolve(cls, settings: TransformSettings, container: dict | None) -> ExecutionParameters:
        container = container or {}
        strategies = {v: k for k, v in CONTAINER_STRATEGIES.items()}
        resolved = cls(
            max_concurrent_transforms=settings.max_concurrent_transforms
            or int(container.get("MaxConcurrentTransforms") or 1),
            max_payload_in_mb=settings.max_payload_in_mb or int(container.get("MaxPayloadInMB") or 6),
            batch_strategy=settings.batch_strategy
            or strategies.get(str(container.get("BatchStrategy", "")), "MultiRecord"),
        )
        TransformSettings(
            max_concurrent_transforms=resolved.max_concurrent_transforms,
            max_payload_in_mb=resolved.max_payload_in_mb,
            batch_strategy=resolved.batch_strategy,
        )  # the same limits hold for values that came from the container
        return resolved


def content_type_for(name: str) -> str | None:
    """text/csv or application/jsonlines from a file name (a trailing .gz ignored); None when unknown."""
    lowered = name.lower().removesuffix(".gz")
    for extension, content_type in EXTENSIONS.items():
        if lowered.endswith(extension):
            return content_type
    return None


# --------------------------------------------------------------------------------------------- records
def parse_record(line: str, content_type: str) -> Any:
    """One input or output line as the JSON value filters apply to: a CSV row is the list of its fields."""
    if content_type == CSV:
        try:
            rows = list(csv.reader([line], strict=True))
        except csv.Error as exc:
            raise FilterError(f"not a valid CSV line: {exc}") from None
        return rows[0] if rows else []
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise FilterError(f"not valid JSON: {exc}") from None


def render_record(value: Any, content_type: str) -> str:
    """A selected record back to one line (no newline): CSV fields, or compact JSON."""
    if content_type == CSV:
        fields = value if isinstance(value, list) else [value]
        if any(isinstance(f, (dict, list)) for f in fields):
            raise FilterError("the selection holds nested values, which a CSV line cannot: select fields only")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(["" if f is None else f for f in fields])
        return buffer.getvalue()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def join(input_record: Any, output_record: Any, content_type: str) -> Any:
    """JoinSource Input: the input record with the model's output for it."""
    if content_type == CSV:
        output_fields = output_record if isinstance(output_record, list) else [output_record]
        return [*input_record, *output_fields]
    if isinstance(input_record, dict):
        return {**input_record, OUTPUT_KEY: output_record}
    return {INPUT_KEY: input_record, OUTPUT_KEY: output_record}
