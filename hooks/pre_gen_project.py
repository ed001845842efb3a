"""Validate the answers before cookiecutter writes anything.

The rules live once, in cookiecutter.json's ``_validators`` (Jinja expressions and messages); copier runs the
very same rules as its question validators (see copier.yml). Like copier, stop at the first invalid answer and
print ``Validation error for question '<name>': <message>``. Exiting 1 makes cookiecutter delete the
project directory it has just created, so a bad answer leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import sys

from jinja2.sandbox import SandboxedEnvironment

# Rendered by cookiecutter: the whole context, including the private rule table and lists.
CONTEXT = json.loads(r"""{{ cookiecutter | jsonify }}""")


def regex_search(value: str, pattern: str) -> str | None:
    """Same result as copier's ``regex_search`` (jinja2-ansible-filters) for the rules' use."""
    match = re.search(pattern, value)
    return match.group() if match else None


def regex_replace(value: str, pattern: str, replacement: str = "") -> str:
    """Same result as copier's ``regex_replace`` (jinja2-ansible-filters)."""
    return re.sub(pattern, replacement, value)


def first_error(context: dict) -> str | None:
    env = SandboxedEnvironment(keep_trailing_newline=True)
    env.filters["regex_search"] = regex_search
    env.filters["regex_replace"] = regex_replace
    variables = {key: value for key, value in context.items() if not key.startswith("__")}
    for rule in context["_validators"]:
        if env.compile_expression(rule["invalid_if"])(**variables):
            message = env.from_string(rule["message"]).render(**variables).strip()
            return f"Validation error for question '{rule['question']}': {message}"
    return None


def main() -> int:
    error = first_error(CONTEXT)
    if error:
        sys.stderr.write(error + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
