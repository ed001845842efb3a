"""The names in infra.contract are the ones the stacks use: one test, against infra/lib."""

from __future__ import annotations

import re

from infra import contract
from pipeline import sagemaker_settings
from release import aws

MONITORING_ONLY = {"monitoring_image_uri"}


def ssm_parameter_names(template: dict) -> set[str]:
    """The Name of every AWS::SSM::Parameter, with the project prefix left as the template writes it."""
    names = set()
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::SSM::Parameter":
            names.add(str(resource["Properties"]["Name"]).rsplit("/", 1)[-1])
    return names


def test_every_ssm_parameter_the_code_reads_is_one_the_toolchain_writes():
    template = contract.read_template((contract.LIB / "toolchain.yaml").read_text(encoding="utf-8"))
    written = ssm_parameter_names(template)
    read = {name for key, (name, _) in contract.SSM_PARAMETERS.items() if key not in MONITORING_ONLY}
    assert read <= written, f"the code reads SSM parameters the toolchain stack does not write: {read - written}"
    assert set(sagemaker_settings.SSM_PARAMETERS) <= set(contract.SSM_PARAMETERS)
    assert set(aws.SETTINGS) <= set(contract.SSM_PARAMETERS)


def test_the_resource_name_is_the_one_the_stacks_are_named_after():
    project, _ = contract.project_settings()
    assert "_" not in project
    toolchain = (contract.LIB / "toolchain.yaml").read_text(encoding="utf-8")
    assert f"/{project}/{contract.SSM_PARAMETERS['artifact_bucket'][0]}" in toolchain


def test_the_reader_keeps_short_forms_as_their_long_forms():
    document = contract.read_template(
        "Resources:\n  A:\n    Type: X\n    Properties:\n      B: !GetAtt C.Arn\n      D: !Ref E\n"
    )
    properties = document["Resources"]["A"]["Properties"]
    assert properties["B"] == {"Fn::GetAtt": ["C", "Arn"]}
    assert properties["D"] == {"Ref": "E"}


def test_every_stack_publishes_exactly_the_contract_outputs_under_their_conditions():
    monitoring = (contract.LIB / "monitoring.yaml").is_file()
    for stack, outputs in contract.STACK_OUTPUTS.items():
        path = contract.LIB / f"{stack}.yaml"
        if not path.is_file():
            assert stack == "monitoring" and not monitoring
            continue
        published = contract.read_template(path.read_text(encoding="utf-8")).get("Outputs", {})
        expected = {
            name: condition
            for name, condition in outputs.items()
            if monitoring or name not in contract.MONITORING_OUTPUTS
        }
        assert {name: output.get("Condition") for name, output in published.items()} == expected, stack


def test_the_outputs_the_runbook_reads_are_in_the_contract():
    runbook = (contract.LIB.parents[1] / "docs" / "runbook.md").read_text(encoding="utf-8")
    read = set(re.findall(r"\$\(outputs (\w+)\)", runbook))
    assert read <= set(contract.STACK_OUTPUTS["toolchain"]), read
