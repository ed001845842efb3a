"""Golden file listings: the exact files each variant of the template generates.

Regenerate after adding, removing or renaming files in the template, then review the diff:

    python -m tests.golden --update      (or: make golden)
    python -m tests.golden --check       exit 1 and print a diff when a listing is stale
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

from tests.baking import bake_cookiecutter, list_files, make_template_repo, variant_id, variants

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def golden_path(answers: dict) -> Path:
    return GOLDEN_DIR / f"{variant_id(answers)}.txt"


def read_listing(answers: dict) -> list[str] | None:
    path = golden_path(answers)
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else None


def listing_diff(expected: list[str] | None, actual: list[str], name: str) -> str:
    """A unified diff that says which files appeared or vanished, and how to accept the change."""
    if expected is None:
        return f"no golden listing {name}: run `python -m tests.golden --update` and review it."
    diff = difflib.unified_diff(expected, actual, f"golden/{name}", "generated", lineterm="")
    return (
        "\n".join(diff) + "\n\nIf this change is intended, run `python -m tests.golden --update` and commit "
        "the updated tests/golden/ listings."
    )


def current_listings() -> dict[str, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        template = make_template_repo(Path(tmp) / "template")
        return {
            variant_id(answers): list_files(
                bake_cookiecutter(template, answers, Path(tmp) / variant_id(answers))
            )
            for answers in variants()
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--update", action="store_true", help="rewrite tests/golden/ from the template")
    mode.add_argument("--check", action="store_true", help="fail when a listing differs")
    args = parser.parse_args(argv)
    listings = current_listings()
    wanted = {f"{name}.txt" for name in listings}
    stale = sorted(path.name for path in GOLDEN_DIR.glob("*.txt") if path.name not in wanted)
    failed = False
    for name, files in listings.items():
        path = GOLDEN_DIR / f"{name}.txt"
        expected = path.read_text(encoding="utf-8").splitlines() if path.exists() else None
        if expected == files:
            continue
        if args.update:
            GOLDEN_DIR.mkdir(exist_ok=True)
            path.write_text("".join(f"{line}\n" for line in files), encoding="utf-8")
            print(f"updated {path.relative_to(GOLDEN_DIR.parent.parent)}")
        else:
            print(listing_diff(expected, files, path.name))
            failed = True
    for name in stale:
        if args.update:
            (GOLDEN_DIR / name).unlink()
            print(f"removed tests/golden/{name} (no such variant any more)")
        else:
            print(f"tests/golden/{name} belongs to no variant")
            failed = True
    if not failed:
        print(f"{len(listings)} golden listings checked in tests/golden/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
