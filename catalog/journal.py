"""The registration's plan and record: what is done, what would be done (--dry-run), and how to take it back."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Created:
    description: str
    undo: Callable[[], Any]


@dataclass
class Journal:
    """Every change goes through ``change``: printed, skipped in a dry run, and remembered with its undo."""

    dry_run: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    created: list[Created] = field(default_factory=list)
    changes: int = 0

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def keep(self, description: str) -> None:
        """Something already in the wanted state: nothing to do."""
        self.say(f"  = {description}")

    def change(self, description: str, action: Callable[[], Any], undo: Callable[[], Any] | None = None) -> Any:
        self.changes += 1
        if self.dry_run:
            self.say(f"  + would {description}")
            return None
        self.say(f"  + {description}")
        result = action()
        if undo is not None:
            self.created.append(Created(description, undo))
        return result

    def rollback(self) -> list[Created]:
        """Undo this run's changes, newest first; returns what could not be undone."""
        left = []
        for item in reversed(self.created):
            try:
                item.undo()
            except Exception as error:  # keep undoing the rest, report what stays
                self.say(f"  ! could not undo: {item.description} ({type(error).__name__}: {error})")
                left.append(item)
            else:
                self.say(f"  - undone: {item.description}")
        self.created = []
        return list(reversed(left))
