"""The one error type the release commands raise: what is wrong, and what to do about it."""

from __future__ import annotations


class ReleaseError(Exception):
    """A problem the user can act on; release.py prints it and exits with status 2."""

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  what to do: {self.fix}" if self.fix else self.problem
