"""What the commands print: progress lines, the calls a dry run would make, and tables."""

from __future__ import annotations

import json
import sys
from typing import TextIO


class Output:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def say(self, text: str = "") -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def call(self, operation: str, params: dict) -> None:
        """A call a dry run would make, with its parameters."""
        self.say(f"[dry-run] would call {operation}:")
        for line in json.dumps(params, indent=2, default=str).splitlines():
            self.say("    " + line)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
        for row in [header, ["-" * w for w in widths], *rows]:
            self.say("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
