"""Local data capture in SageMaker's format, so serve -> capture -> `make monitor` runs on a laptop.

Each captured invocation is one JSON line under <root>/<endpoint>/<variant>/yyyy/mm/dd/hh/, exactly the layout and
fields an endpoint's DataCaptureConfig writes to S3, so the drift job reads local and real captures alike.
Every worker process appends to its own file, so lines from several workers never interleave.
"""

from __future__ import annotations

import base64
import json
import os
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

TEXT_ENCODINGS = {"text/csv": "CSV", "application/json": "JSON", "application/jsonlines": "JSON"}


def _encode(body: bytes, content_type: str) -> tuple[str, str]:
    """(data, encoding): CSV/JSON bodies stay readable text, anything else (or non-UTF-8) becomes BASE64."""
    encoding = TEXT_ENCODINGS.get(content_type.split(";")[0].strip().lower())
    if encoding:
        try:
            return body.decode("utf-8"), encoding
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), "BASE64"


class DataCapture:
    def __init__(
        self, root: str | Path, sampling_percentage: float = 100.0, endpoint: str = "local", variant: str = "AllTraffic"
    ):
        if not 0 <= sampling_percentage <= 100:
            raise ValueError(
                f"DATA_CAPTURE_SAMPLING_PERCENTAGE = {sampling_percentage}: give a percentage between 0 and 100"
            )
        self.root = Path(root) / endpoint / variant
        self.sampling_percentage = sampling_percentage
        self._hour: str | None = None
        self._handle = None
        self._random = random.Random()

    def sampled(self) -> bool:
        return self.sampling_percentage >= 100 or self._random.random() * 100 < self.sampling_percentage

    def _file(self, now: datetime):
        hour = now.strftime("%Y/%m/%d/%H")
        if hour != self._hour or self._handle is None:
            if self._handle is not None:
                self._handle.close()
            folder = self.root / hour
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{now.strftime('%M-%S-%f')}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
            self._handle = open(folder / name, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the hour
            self._hour = hour
        return self._handle

    def record(
        self, request: bytes, request_type: str, response: bytes, response_type: str, inference_id: str | None = None
    ) -> dict:
        now = datetime.now(UTC)
        data_in, encoding_in = _encode(request, request_type)
        data_out, encoding_out = _encode(response, response_type)
        metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        if inference_id:
            metadata["inferenceId"] = inference_id
        line = {
            "captureData": {
                "endpointInput": {
                    "observedContentType": request_type,
                    "mode": "INPUT",
                    "data": data_in,
                    "encoding": encoding_in,
                },
                "endpointOutput": {
                    "observedContentType": response_type,
                    "mode": "OUTPUT",
                    "data": data_out,
                    "encoding": encoding_out,
                },
            },
            "eventMetadata": metadata,
            "eventVersion": "0",
        }
        handle = self._file(now)
        handle.write(json.dumps(line, separators=(",", ":")) + "\n")
        handle.flush()
        return line

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def from_environment(env=os.environ) -> DataCapture | None:
    root = env.get("DATA_CAPTURE_DIR")
    if not root:
        return None
    try:
        percentage = float(env.get("DATA_CAPTURE_SAMPLING_PERCENTAGE", "100"))
    except ValueError:
        raise ValueError(
            f"DATA_CAPTURE_SAMPLING_PERCENTAGE = {env['DATA_CAPTURE_SAMPLING_PERCENTAGE']!r}: give a number 0-100"
        ) from None
    return DataCapture(root, percentage, env.get("ENDPOINT_NAME", "local"), env.get("VARIANT_NAME", "AllTraffic"))
