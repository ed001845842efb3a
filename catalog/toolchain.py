"""The generated repository's toolchain stack, made project-independent for the catalog product.

A generated repository's infra/lib/toolchain.yaml has the project's name baked into resource names (ECR repositories,
SSM parameters, CodeBuild projects, ...). The catalog product nests that same file once for every SageMaker
project, so the registration bakes it for a placeholder name and turns every string holding the placeholder into an
``Fn::Sub`` on the nested stack's SageMakerProjectName parameter. Instantiated for a name, the result is the toolchain
a bake with that name produces (tests/test_toolchain.py checks it). No second copy of the toolchain is kept here.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from catalog.errors import CatalogError

# A name no template text contains; hyphenated so that the slug (underscores) and resource (hyphens) forms differ.
PLACEHOLDER_NAME = "zqx-project-name-zqx"
PLACEHOLDER_SLUG = PLACEHOLDER_NAME.replace("-", "_")
NAME_PARAMETER = "SageMakerProjectName"
SLUG_VARIABLE = "ProjectSlug"
# Sections where CloudFormation accepts only literal values.
LITERAL_SECTIONS = ("Description", "Metadata", "Parameters", "Rules", "Mappings", "Conditions")
GENERIC_NAME = "SageMaker project"


class CloudFormationLoader(yaml.SafeLoader):
    """YAML as CloudFormation reads it: short-form intrinsics as their long forms (``!GetAtt A.B`` ->
    ``{"Fn::GetAtt": ["A", "B"]}``), dates and times as strings (a ``Version: 2012-10-17`` policy). The one
    reader of CloudFormation YAML in the template's own code (the catalog and the bake-matrix tests)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    key = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    return {key: value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)
CloudFormationLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_template(text: str) -> dict[str, Any]:
    """CloudFormation YAML (short-form intrinsics included) as the JSON structure CloudFormation sees."""
    document = yaml.load(text, Loader=CloudFormationLoader)
    if not isinstance(document, dict) or "Resources" not in document:
        raise CatalogError("the baked infra/lib/toolchain.yaml is not a CloudFormation template (no Resources)")
    return document


def slug_expression() -> dict[str, Any]:
    return {"Fn::Join": ["_", {"Fn::Split": ["-", {"Ref": NAME_PARAMETER}]}]}


def substitute(text: str, escape: bool) -> Any:
    """A string holding the placeholder as an Fn::Sub on the project name (and its slug form)."""
    if escape:
        text = text.replace("${", "${!")
    text = text.replace(PLACEHOLDER_NAME, f"${{{NAME_PARAMETER}}}")
    if PLACEHOLDER_SLUG in text:
        return {
            "Fn::Sub": [
                text.replace(PLACEHOLDER_SLUG, f"${{{SLUG_VARIABLE}}}"),
                {SLUG_VARIABLE: slug_expression()},
            ]
        }
    return {"Fn::Sub": text}


def holds_placeholder(text: str) -> bool:
    return PLACEHOLDER_NAME in text or PLACEHOLDER_SLUG in text


def parameterise(node: Any) -> Any:
    if isinstance(node, str):
        return substitute(node, escape=True) if holds_placeholder(node) else node
    if isinstance(node, list):
        return [parameterise(item) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"}:
            return parameterise_sub(node["Fn::Sub"])
        return {key: parameterise(value) for key, value in node.items()}
    return node


def parameterise_sub(argument: Any) -> Any:
    if isinstance(argument, str):
        return substitute(argument, escape=False) if holds_placeholder(argument) else {"Fn::Sub": argument}
    text, variables = argument
    variables = {key: parameterise(value) for key, value in variables.items()}
    if not holds_placeholder(text):
        return {"Fn::Sub": [text, variables]}
    result = substitute(text, escape=False)
    if isinstance(result["Fn::Sub"], list):
        body, extra = result["Fn::Sub"]
        return {"Fn::Sub": [body, {**variables, **extra}]}
    return {"Fn::Sub": [result["Fn::Sub"], variables]}


def literal(node: Any) -> Any:
    """Where only literals are allowed (descriptions, labels), the project is named generically."""
    if isinstance(node, str):
        return node.replace(PLACEHOLDER_NAME, GENERIC_NAME).replace(PLACEHOLDER_SLUG, GENERIC_NAME)
    if isinstance(node, list):
        return [literal(item) for item in node]
    if isinstance(node, dict):
        return {key: literal(value) for key, value in node.items()}
    return node


def check_no_name_in_values(template: dict[str, Any]) -> None:
    """Outside Resources and Outputs only descriptions may name the project: values there cannot take parameters."""
    for section in ("Mappings", "Conditions", "Rules"):
        if holds_placeholder(json.dumps(template.get(section, {}))):
            raise CatalogError(f"the toolchain stack uses the project name in {section}, which cannot take parameters")
    for name, spec in template.get("Parameters", {}).items():
        values = {key: value for key, value in spec.items() if key not in ("Description", "ConstraintDescription")}
        if holds_placeholder(json.dumps(values)):
            raise CatalogError(f"the toolchain stack's parameter {name} has the project name in its default or values")


def project_independent(baked_yaml: str) -> bytes:
    """The toolchain baked for PLACEHOLDER_NAME, with that name turned into the SageMakerProjectName parameter."""
    template = load_template(baked_yaml)
    if NAME_PARAMETER not in template.get("Parameters", {}):
        raise CatalogError(f"the toolchain stack has no {NAME_PARAMETER} parameter, so SageMaker cannot pass it")
    check_no_name_in_values(template)
    result = {}
    for section, value in template.items():
        if section in ("Resources", "Outputs"):
            result[section] = parameterise(value)
        elif section in LITERAL_SECTIONS:
            result[section] = literal(value)
        else:
            result[section] = value
    text = json.dumps(result, indent=1, sort_keys=False)
    if holds_placeholder(text.replace(f"${{{NAME_PARAMETER}}}", "")):
        raise CatalogError("the project name is left in the toolchain stack where no parameter can replace it")
    return (text + "\n").encode()
