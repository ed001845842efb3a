"""EventBridge Scheduler expressions, checked the way the service checks them, so a typo in infra/config/<env>.json
stops `make lint` and the release scripts instead of a CloudFormation update half-way.

    rate(<value> <unit>)   value a whole number >= 1; unit minute | hour | day, plural when value > 1
    cron(<min> <hour> <day-of-month> <month> <day-of-week> <year>)   six fields, UTC; one of the two day fields is ?
    at(yyyy-mm-ddThh:mm:ss)   one run at that time

`problem(expression)` returns None for an accepted expression, else what is wrong and how to write it.
"""

from __future__ import annotations

import re
from datetime import datetime

RATE = re.compile(r"^rate\((\d+) ([a-z]+)\)$")
CRON = re.compile(r"^cron\((.*)\)$")
AT = re.compile(r"^at\((.*)\)$")
RATE_UNITS = ("minute", "hour", "day")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
EXAMPLES = '"rate(1 hour)", "rate(6 hours)", "cron(0 6 * * ? *)" (06:00 UTC daily) or "cron(0 6 ? * MON *)"'

# cron field -> (name, lowest, highest, names usable instead of numbers, special characters allowed)
CRON_FIELDS = (
    ("minutes", 0, 59, (), ",-*/"),
    ("hours", 0, 23, (), ",-*/"),
    ("day-of-month", 1, 31, (), ",-*?/LW"),
    ("month", 1, 12, MONTHS, ",-*/"),
    ("day-of-week", 1, 7, DAYS, ",-*?L#"),
    ("year", 1970, 2199, (), ",-*/"),
)


def problem(expression: object) -> str | None:
    """None when EventBridge Scheduler accepts the expression; else a sentence naming what is wrong."""
    if not isinstance(expression, str):
        return f"must be a string such as {EXAMPLES}"
    if expression != expression.strip():
        return "has leading or trailing spaces: remove them"
    if expression.startswith("rate("):
        return _rate_problem(expression)
    if expression.startswith("cron("):
        return _cron_problem(expression)
    if expression.startswith("at("):
        return _at_problem(expression)
    return f"is not a rate(), cron() or at() expression: write one such as {EXAMPLES}"


def _rate_problem(expression: str) -> str | None:
    match = RATE.match(expression)
    if not match:
        return 'is not "rate(<whole number> <unit>)": write e.g. "rate(5 minutes)", "rate(1 hour)" or "rate(2 days)"'
    value, unit = int(match.group(1)), match.group(2)
    singular = unit.removesuffix("s")
    if singular not in RATE_UNITS:
        return f"has the unit {unit!r}: use minute(s), hour(s) or day(s)"
    if value < 1:
        return "has a rate of 0: the value must be 1 or more"
    if value == 1 and unit != singular:
        return f'says "1 {unit}": write "rate(1 {singular})" (singular for 1)'
    if value > 1 and unit == singular:
        return f'says "{value} {unit}": write "rate({value} {unit}s)" (plural above 1)'
    return None


def _cron_problem(expression: str) -> str | None:
    fields = CRON.match(expression).group(1).split()
    if len(fields) != 6:
        return (
            f"has {len(fields)} cron field(s), EventBridge needs 6 (minutes hours day-of-month month day-of-week year):"
            ' e.g. "cron(0 6 * * ? *)"; a five-field Unix cron needs the year field and ? in one day field'
        )
    for field, spec in zip(fields, CRON_FIELDS, strict=True):
        issue = _cron_field_problem(field, *spec)
        if issue:
            return issue
    day_of_month, day_of_week = fields[2], fields[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        return (
            f"has day-of-month {day_of_month!r} and day-of-week {day_of_week!r}: exactly one of the two must be ?"
            ' (e.g. "cron(0 6 * * ? *)" every day, "cron(0 6 ? * MON-FRI *)" on weekdays)'
        )
    return None


def _cron_field_problem(field: str, name: str, low: int, high: int, names: tuple[str, ...], special: str) -> str | None:
    def bad(why: str) -> str:
        return f"has {name} field {field!r}: {why}"

    if field in ("*", "?"):
        return None if field in special else bad("? is allowed only in day-of-month or day-of-week")
    for part in field.split(","):
        if not part:
            return bad("an empty item between commas")
        base, _, step = part.partition("/")
        if step:
            if "/" not in special:
                return bad("/ is not allowed in this field")
            if not step.isdigit() or int(step) < 1:
                return bad(f"the increment {step!r} must be a whole number >= 1")
        if name == "day-of-month" and base in ("L", "LW"):
            continue
        if name == "day-of-month" and base.endswith("W") and base[:-1].isdigit():
            base = base[:-1]
        if name == "day-of-week" and "#" in base:
            day, _, nth = base.partition("#")
            if not nth.isdigit() or not 1 <= int(nth) <= 5:
                return bad(f"{base!r}: the n in day#n must be 1 to 5")
            base = day
        if name == "day-of-week" and base.endswith("L") and len(base) > 1:
            base = base[:-1]
        if name == "day-of-week" and base == "L":
            continue
        bounds = base.split("-") if base != "*" else []
        if len(bounds) > 2:
            return bad(f"{base!r} is not a value or a range a-b")
        if len(bounds) == 2 and "-" not in special:
            return bad("ranges are not allowed in this field")
        for bound in bounds:
            value = _cron_value(bound, names)
            if value is None:
                allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
                return bad(f"{bound!r} is not a value of {allowed}")
            if not low <= value <= high:
                return bad(f"{bound} is outside {low}-{high}")
    return None


def _cron_value(text: str, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text)
    upper = text.upper()
    if upper in names:
        return names.index(upper) + 1
    return None


def _at_problem(expression: str) -> str | None:
    text = AT.match(expression).group(1)
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return f'has the time {text!r}: write "at(yyyy-mm-ddThh:mm:ss)", e.g. "at(2030-01-31T06:00:00)"'
    return None
