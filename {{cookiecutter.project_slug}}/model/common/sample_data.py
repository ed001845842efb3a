"""Write the sample dataset: synthetic customer records for each problem type, the same bytes on every machine.

It uses only the standard library's seeded random generator (its sequence is stable across Python versions),
so the pipeline and the tests run offline with no download. The records have a categorical feature, missing
values and a sensitive attribute (age_group, kept out of the features and used for bias metrics), so every code
path runs. Replace data/sample.csv with your own table and edit model/config/schema.json to train on real data.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import random
import sys
from pathlib import Path

from model.common import paths

CONTRACTS = ("month_to_month", "one_year", "two_year")
PAYMENTS = ("card", "bank_transfer", "invoice")
AGE_GROUPS = ("under_40", "40_to_60", "over_60")
COLUMNS = (
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "usage_gb",
    "contract_type",
    "payment_method",
    "age_group",
)
TARGETS = {"binary_classification": "churned", "multiclass_classification": "next_plan", "regression": "annual_value"}


def _maybe_missing(rng: random.Random, value: object, rate: float) -> object:
    return "" if rng.random() < rate else value


def make_rows(problem_type: str, rows: int, seed: int) -> list[list[object]]:
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        contract = rng.choices(CONTRACTS, weights=(5, 3, 2))[0]
        payment = rng.choice(PAYMENTS)
        age_group = rng.choices(AGE_GROUPS, weights=(5, 4, 2))[0]
        tenure = min(120, int(rng.expovariate(1 / (8 if contract == "month_to_month" else 30))))
        charges = round(max(5.0, rng.gauss(65, 25) + (15 if contract == "two_year" else 0)), 2)
        calls = min(50, int(rng.expovariate(1 / 1.5)))
        usage = round(max(0.0, rng.gauss(40, 18) + 0.2 * tenure), 1)
        # A latent score drives every target; age_group shifts it only slightly, so the sample passes the
        # default bias gates while still giving the bias metrics something to measure.
        score = (
            1.4 * (contract == "month_to_month")
            - 0.9 * (contract == "two_year")
            + 0.55 * calls
            - 0.045 * tenure
            + 0.012 * (charges - 65)
            - 0.01 * (usage - 45)
            + 0.35 * (payment == "invoice")
            + 0.1 * (age_group == "over_60")
            + rng.gauss(0, 0.7)
            - 0.9
        )
        if problem_type == "binary_classification":
            target: object = "yes" if score > 0 else "no"
        elif problem_type == "multiclass_classification":
            value = usage + 0.6 * charges + rng.gauss(0, 10)
            target = "basic" if value < 65 else ("standard" if value < 95 else "premium")
        else:
            target = round(max(0.0, 12 * charges * (1 - 1 / (1 + math.exp(-score))) + 4 * usage + rng.gauss(0, 40)), 2)
        out.append(
            [
                tenure,
                _maybe_missing(rng, charges, 0.03),
                _maybe_missing(rng, calls, 0.02),
                _maybe_missing(rng, usage, 0.05),
                contract,
                _maybe_missing(rng, payment, 0.04),
                age_group,
                target,
            ]
        )
    return out


def render_csv(problem_type: str, rows: int, seed: int) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, TARGETS[problem_type]])
    writer.writerows(make_rows(problem_type, rows, seed))
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--schema",
        type=Path,
        default=paths.SCHEMA_FILE,
        help="schema.json whose problem_type selects the target (default: %(default)s)",
    )
    parser.add_argument("--problem-type", choices=sorted(TARGETS), help="overrides the schema's problem_type")
    parser.add_argument("--rows", type=int, default=4000, help="number of records (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=20261125, help="random seed (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=paths.SAMPLE_DATA, help="output CSV (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows {args.rows}: give a positive number of records")
    problem_type = args.problem_type or json.loads(args.schema.read_text(encoding="utf-8"))["problem_type"]
    text = render_csv(problem_type, args.rows, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.rows} {problem_type} records to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
