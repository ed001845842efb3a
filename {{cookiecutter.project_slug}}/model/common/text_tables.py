"""Text tables for terminals and logs (standard library only): the first row is the header."""

from __future__ import annotations

from collections.abc import Sequence


def boxed(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, with +---+ rules above and below the header and at the end."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"
    out = [rule]
    for i, row in enumerate(rows):
        out.append("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")
        if i == 0:
            out.append(rule)
    out.append(rule)
    return "\n".join(out)
