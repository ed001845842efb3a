"""A template as CloudFormation sees it for given parameter values: conditions evaluated, Fn::If chosen,
AWS::NoValue removed, and the resources and outputs whose condition is false dropped. The stack tests and the
role tests (release/tests/roles.py) read the templates through it."""

from __future__ import annotations

import copy
from typing import Any

NO_VALUE = object()


def evaluate(expression: Any, template: dict, values: dict) -> bool:
    ((function, argument),) = expression.items()
    if function in ("Condition", "Fn::Condition"):
        return evaluate(template["Conditions"][argument], template, values)
    if function == "Fn::Not":
        return not evaluate(argument[0], template, values)
    if function == "Fn::And":
        return all(evaluate(a, template, values) for a in argument)
    if function == "Fn::Or":
        return any(evaluate(a, template, values) for a in argument)
    if function == "Fn::Equals":
        left, right = (plain(side, values) for side in argument)
        return str(left) == str(right)
    raise AssertionError(f"condition function {function} is not handled by the tests")


def plain(node: Any, values: dict) -> Any:
    """A Ref or Fn::Join of parameter values as the value it stands for (pseudo parameters stay named)."""
    if isinstance(node, dict) and "Ref" in node:
        name = node["Ref"]
        return values.get(name, name) if name.startswith("AWS::") else values[name]
    if isinstance(node, dict) and "Fn::Join" in node:
        separator, items = node["Fn::Join"]
        items = plain(items, values)
        return separator.join(str(plain(i, values)) for i in (items if isinstance(items, list) else [items]))
    return node


def apply(node: Any, template: dict, values: dict) -> Any:
    """Fn::If chosen and AWS::NoValue removed everywhere below node."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            chosen = when_true if evaluate({"Condition": name}, template, values) else when_false
            return apply(chosen, template, values)
        if node == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        out = {}
        for key, value in node.items():
            value = apply(value, template, values)
            if value is not NO_VALUE:
                out[key] = value
        return out
    if isinstance(node, list):
        items = [apply(v, template, values) for v in node]
        return [i for i in items if i is not NO_VALUE]
    return node


def effective(template: dict, values: dict) -> dict:
    """The template with its conditions applied for these parameter values."""
    out = copy.deepcopy(dict(template))
    for section in ("Resources", "Outputs"):
        out[section] = {
            name: apply({k: v for k, v in item.items() if k != "Condition"}, template, values)
            for name, item in template.get(section, {}).items()
            if "Condition" not in item or evaluate({"Condition": item["Condition"]}, template, values)
        }
    return out
