"""Bad answers: both tools refuse with the same message naming the question, the value and the fix,
and leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from jinja2 import TemplateError

from tests.baking import bake_cookiecutter, bake_copier

LONG_NAME = "Quarterly Enterprise Customer Retention And Churn Forecasting"  # 61 characters
BAD_ANSWERS = [
    pytest.param(
        {"project_slug": "My-Model"}, "project_slug", "'My-Model'", "for example 'my_model'", id="slug-dash"
    ),
    pytest.param(
        {"project_slug": "1model"}, "project_slug", "'1model'", "starting with a letter", id="slug-digit"
    ),
    pytest.param(
        {"project_slug": "class"}, "project_slug", "'class'", "Python keyword", id="slug-keyword-class"
    ),
    pytest.param(
        {"project_slug": "import"}, "project_slug", "'import'", "Python keyword", id="slug-keyword-import"
    ),
    pytest.param(
        {"project_slug": "match"}, "project_slug", "'match'", "Python keyword", id="slug-soft-keyword"
    ),
    pytest.param(
        {"project_slug": "churn_"},
        "project_slug",
        "'churn_'",
        "for example 'churn'",
        id="slug-trailing-underscore",
    ),
    pytest.param({"project_name": ""}, "project_name", "''", "is blank", id="name-empty"),
    pytest.param({"project_name": "   "}, "project_name", "'   '", "is blank", id="name-spaces"),
    pytest.param(
        {"project_name": "x" * 65},
        "project_name",
        "'" + "x" * 65 + "'",
        "more than the 64 allowed",
        id="name-65",
    ),
    pytest.param({"aws_region": "us-east-9"}, "aws_region", "'us-east-9'", "use one of", id="region-unknown"),
    pytest.param({"aws_region": "mars-1"}, "aws_region", "'mars-1'", "us-east-1", id="region-mars"),
    pytest.param(
        {"author_email": "no-at-sign"}, "author_email", "'no-at-sign'", "name@example.com", id="email-no-at"
    ),
    pytest.param({"author_email": "a@b"}, "author_email", "'a@b'", "name@example.com", id="email-no-domain"),
    pytest.param(
        {"project_name": LONG_NAME},
        "project_slug",
        "'quarterly_enterprise_customer_retention_and_churn_forecasting'",
        "derived from project_name",
        id="name-derives-long-slug",
    ),
    pytest.param(
        {"project_slug": "a_very_long_package_name_for_sagemaker"},
        "project_slug",
        "'a_very_long_package_name_for_sagemaker'",
        "at most 32 characters",
        id="slug-too-long",
    ),
    pytest.param(
        {"description": 'say "hi"'}, "description", "'say \"hi\"'", "double quote", id="description-quote"
    ),
]


def assert_names_question_and_value(message: str, question: str, value: str, fix: str) -> None:
    assert f"Validation error for question '{question}': {question} {value}" in message, message
    assert fix in message, message


@pytest.mark.parametrize(("answers", "question", "value", "fix"), BAD_ANSWERS)
def test_cookiecutter_refuses_and_writes_nothing(
    template_repo, tmp_path, capfd, answers, question, value, fix
):
    out = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake_cookiecutter(template_repo, answers, out)
    assert_names_question_and_value(capfd.readouterr().err, question, value, fix)
    assert list(out.iterdir()) == [], "cookiecutter left files behind"


@pytest.mark.parametrize(("answers", "question", "value", "fix"), BAD_ANSWERS)
def test_copier_refuses_and_writes_nothing(template_repo, tmp_path, answers, question, value, fix):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises((ValueError, TemplateError)) as error:
        bake_copier(template_repo, answers, out)
    assert_names_question_and_value(str(error.value), question, value, fix)
    assert list(out.iterdir()) == [], "copier left files behind"


@pytest.mark.parametrize(("answers", "question", "value", "fix"), BAD_ANSWERS[:3] + BAD_ANSWERS[-2:])
def test_both_tools_give_the_same_message(template_repo, tmp_path, capfd, answers, question, value, fix):
    with pytest.raises(FailedHookException):
        bake_cookiecutter(template_repo, answers, tmp_path / "cc")
    from_cookiecutter = capfd.readouterr().err
    with pytest.raises((ValueError, TemplateError)) as error:
        bake_copier(template_repo, answers, tmp_path / "cp")
    assert str(error.value).strip() in from_cookiecutter


def test_good_edge_answers_are_accepted(template_repo, tmp_path):
    """The longest allowed slug and a region of another partition are valid."""
    answers = {"project_slug": "a" * 32, "aws_region": "cn-northwest-1", "project_name": "x" * 64}
    assert bake_cookiecutter(template_repo, answers, tmp_path / "cc").name == "a" * 32
    assert bake_copier(template_repo, answers, tmp_path / "cp").name == "a" * 32


def test_copier_validates_a_derived_default_under_defaults(template_repo, tmp_path):
    """The derived project_slug is never given, only defaulted: copier >= 9.8 still validates it."""
    with pytest.raises((ValueError, TemplateError)) as error:
        bake_copier(template_repo, {"project_name": LONG_NAME}, tmp_path)
    assert "derived from project_name" in str(error.value)
    assert not any(Path(tmp_path).iterdir())
