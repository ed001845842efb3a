"""The stack templates (infra/lib/endpoint.yaml, monitoring.yaml): read them, and check parameter values against
their declarations before AWS does.

CloudFormation reports a bad parameter only after a change set was requested; checking AllowedValues,
AllowedPattern and the numeric bounds here names the parameter and the config key behind it up front.
"""

from __future__ import annotations

import re
from pathlib import Path

from infra import contract
from release.errors import ReleaseError

MAX_TEMPLATE_BODY = 51_200  # CloudFormation's limit for TemplateBody; larger templates go through S3


def load_template(path: Path) -> tuple[str, dict]:
    """(the template text, the parsed document)."""
    try:
        body = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReleaseError(
            f"the stack template {path} is missing", f"restore infra/lib/{path.name} from the repository"
        ) from None
    try:
        document = contract.read_template(body)
    except Exception as exc:  # cfn-lint's decoder raises its own errors for YAML and JSON alike
        raise ReleaseError(f"{path} is not valid YAML: {exc}", "fix the template (make lint-infra checks it)") from None
    if not isinstance(document, dict) or not isinstance(document.get("Parameters"), dict):
        raise ReleaseError(f"{path} declares no Parameters", f"restore infra/lib/{path.name} from the repository")
    return body, document


def check_parameters(parameters: dict[str, str], document: dict, source: str, stack: str = "endpoint") -> None:
    """Raise one ReleaseError listing every parameter the template would reject."""
    declared = document["Parameters"]
    problems = []
    for name in sorted(set(parameters) - set(declared)):
        problems.append(f"{name}: passed by release/config.py but not declared in {source}")
    for name, spec in declared.items():
        if name not in parameters:
            if "Default" not in spec:
                problems.append(f"{name}: required by {source} but not produced by release/config.py")
            continue
        problems.extend(_value_problems(name, parameters[name], spec))
    if problems:
        raise ReleaseError(
            f"the {stack} stack would reject these parameters:\n  - " + "\n  - ".join(problems),
            "fix the environment file or the setting named above (flags or SSM parameters)",
        )


def _value_problems(name: str, value: str, spec: dict) -> list[str]:
    shown = repr(value)
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return [f"{name} = {shown}: allowed values are {', '.join(map(str, spec['AllowedValues']))}"]
    if "AllowedPattern" in spec and spec.get("Type") == "String" and not re.fullmatch(spec["AllowedPattern"], value):
        return [f"{name} = {shown} does not match {spec['AllowedPattern']}"]
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return [f"{name} = {shown} is not a number"]
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return [f"{name} = {shown} is below the minimum {spec['MinValue']}"]
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return [f"{name} = {shown} is above the maximum {spec['MaxValue']}"]
    return []


def defaults(document: dict) -> dict[str, str]:
    """The template's parameter defaults as CloudFormation reports them back (strings)."""
    found = {}
    for name, spec in document["Parameters"].items():
        if "Default" in spec:
            value = spec["Default"]
            found[name] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return found
