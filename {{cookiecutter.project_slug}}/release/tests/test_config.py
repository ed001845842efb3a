"""Environment files: the shipped ones load, each kind of mistake is named, and the parameters fit endpoint.yaml."""

from __future__ import annotations

import pytest

from release import config
from release.config import StackInputs, endpoint_stack_parameters, load_environment, load_project
from release.errors import ReleaseError
from release.template import check_parameters, load_template
from release.tests.conftest import CONTRACT_PARAMETERS, edit

INPUTS = StackInputs(
    model_package_arn="arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn-models/3",
    execution_role_arn="arn:aws:iam::123456789012:role/churn-sagemaker",
    kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    data_capture_s3_uri="s3://churn-artifacts/churn/data-capture/staging",
)


@pytest.mark.parametrize("environment", config.ENVIRONMENTS)
def test_shipped_environment_files_are_valid(environment):
    assert load_environment(environment).name == environment


def test_prod_uses_a_canary_deployment():
    assert load_environment("prod").strategy == "CANARY"


def test_unknown_strategy_names_key_value_and_allowed_values(config_dir):
    edit(config_dir, "staging", lambda d: d["deployment"].update(strategy="BLUE"))
    with pytest.raises(ReleaseError) as error:
        load_environment("staging")
    message = str(error.value)
    assert 'deployment.strategy = "BLUE"' in message
    assert "ALL_AT_ONCE, CANARY, LINEAR" in message
    assert "infra/config/staging.json" in message


def test_missing_key_is_named(config_dir):
    edit(config_dir, "dev", lambda d: d["endpoint"].pop("instance_type"))
    with pytest.raises(ReleaseError, match=r"endpoint\.instance_type is missing"):
        load_environment("dev")


def test_wrong_type_is_named(config_dir):
    edit(config_dir, "dev", lambda d: d["endpoint"].update(instance_count="2"))
    with pytest.raises(ReleaseError, match=r'endpoint\.instance_count = "2" must be a whole number'):
        load_environment("dev")


def test_boolean_is_not_accepted_as_a_number(config_dir):
    edit(config_dir, "dev", lambda d: d["alarms"].update(evaluation_periods=True))
    with pytest.raises(ReleaseError, match=r"alarms\.evaluation_periods = true must be a whole number"):
        load_environment("dev")


def test_every_problem_is_reported_at_once(config_dir):
    def change(d):
        d["deployment"]["strategy"] = "BLUE"
        d["deployment"]["maximum_execution_timeout_seconds"] = 10
        d["region"] = "Europe"

    edit(config_dir, "prod", change)
    with pytest.raises(ReleaseError, match="3 problem") as error:
        load_environment("prod")
    assert "maximum_execution_timeout_seconds = 10" in str(error.value)


def test_min_capacity_above_max_is_refused(config_dir):
    edit(config_dir, "staging", lambda d: d["endpoint"]["autoscaling"].update(min_capacity=5, max_capacity=2))
    with pytest.raises(ReleaseError, match="min_capacity = 5 is above max_capacity = 2"):
        load_environment("staging")


def test_environment_must_match_the_file(config_dir):
    edit(config_dir, "prod", lambda d: d.update(environment="staging"))
    with pytest.raises(ReleaseError, match="environment = \"staging\" but the file is for 'prod'"):
        load_environment("prod")


def test_malformed_json_is_reported_with_its_position(config_dir):
    (config_dir / "dev.json").write_text('{"environment": "dev",')
    with pytest.raises(ReleaseError, match=r"infra/config/dev.json is not valid JSON: .*line 1"):
        load_environment("dev")


def test_missing_file_is_reported(config_dir):
    (config_dir / "dev.json").unlink()
    with pytest.raises(ReleaseError, match=r"infra/config/dev.json is missing"):
        load_environment("dev")


def test_unknown_environment_is_refused():
    with pytest.raises(ReleaseError, match="unknown environment 'qa'"):
        load_environment("qa")


def test_project_name_and_region_come_from_pyproject():
    project = load_project()
    assert project.name and "_" not in project.name
    assert project.region
    assert project.stack_name("prod") == f"{project.name}-endpoint-prod"


@pytest.mark.parametrize("environment", config.ENVIRONMENTS)
def test_stack_parameters_are_exactly_the_contract(environment):
    parameters = endpoint_stack_parameters(load_project(), load_environment(environment), INPUTS)
    assert sorted(parameters) == sorted(CONTRACT_PARAMETERS)
    assert all(isinstance(value, str) for value in parameters.values())


@pytest.mark.skipif(not config.ENDPOINT_TEMPLATE.is_file(), reason="infra/lib/endpoint.yaml is not in this tree")
@pytest.mark.parametrize("environment", config.ENVIRONMENTS)
def test_endpoint_template_accepts_the_parameters_of_every_environment(environment):
    _, document = load_template(config.ENDPOINT_TEMPLATE)
    parameters = endpoint_stack_parameters(load_project(), load_environment(environment), INPUTS)
    check_parameters(parameters, document, "infra/lib/endpoint.yaml")
    assert set(document["Parameters"]) == set(CONTRACT_PARAMETERS)


def test_template_check_names_the_rejected_parameter():
    document = {
        "Parameters": {
            "KmsKeyArn": {"Type": "String", "AllowedPattern": "^arn:aws:kms:.+$"},
            "InstanceCount": {"Type": "Number", "MinValue": 1},
            "DeploymentStrategy": {"Type": "String", "AllowedValues": ["ALL_AT_ONCE", "CANARY"]},
        }
    }
    with pytest.raises(ReleaseError) as error:
        check_parameters(
            {"KmsKeyArn": "", "InstanceCount": "0", "DeploymentStrategy": "LINEAR", "Extra": "x"},
            document,
            "endpoint.yaml",
        )
    message = str(error.value)
    assert "KmsKeyArn = '' does not match" in message
    assert "InstanceCount = '0' is below the minimum 1" in message
    assert "DeploymentStrategy = 'LINEAR': allowed values are ALL_AT_ONCE, CANARY" in message
    assert "Extra: passed by release/config.py but not declared" in message


def test_data_capture_destination_is_empty_when_capture_is_off(config_dir):
    edit(config_dir, "dev", lambda d: d["endpoint"]["data_capture"].update(enabled=False))
    parameters = endpoint_stack_parameters(load_project(), load_environment("dev"), INPUTS)
    assert parameters["DataCaptureEnabled"] == "false"
    assert parameters["DataCaptureS3Uri"] == ""
