"""cookiecutter.json is the one source of truth: copier.yml, the embedded lists and the tables follow it."""

from __future__ import annotations

import importlib.util
import keyword
import re
from pathlib import Path

import yaml

from tests.baking import ROOT, TEMPLATE_DIR_NAME, load_config, questions


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "generate_copier_yml", ROOT / "scripts" / "generate_copier_yml.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = load_generator()


def test_copier_yml_is_what_the_generator_produces():
    committed = (ROOT / "copier.yml").read_text(encoding="utf-8")
    assert committed == generator.render(load_config()), "copier.yml is stale: run `make copier-yml`"


def test_copier_yml_asks_the_same_questions_in_the_same_order():
    copier = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    asked = [key for key in copier if not key.startswith("_") and key != "cookiecutter"]
    assert asked == list(questions())


def test_copier_choices_and_defaults_match_cookiecutter():
    copier = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    for name, value in questions().items():
        if isinstance(value, list):
            assert list(copier[name]["choices"].values()) == value, name
            assert copier[name]["default"] == value[0], name


def test_every_question_has_a_friendly_prompt():
    config = load_config()
    prompts = config["__prompts__"]
    for name, value in questions().items():
        assert name in prompts, f"{name} has no entry in __prompts__"
        if isinstance(value, list):
            assert prompts[name].get("__prompt__"), f"{name}: choice prompt needs '__prompt__'"
            assert set(value) <= set(prompts[name]), f"{name}: every choice needs a label"
        else:
            assert isinstance(prompts[name], str) and prompts[name].strip(), name
    assert set(prompts) <= set(questions()), "a prompt exists for a question that does not"


def test_embedded_regions_are_botocores_sagemaker_regions():
    """botocore is pinned in requirements-dev.txt; after bumping it run `make copier-yml REFRESH=1`."""
    assert load_config()["_aws_regions"] == generator.sagemaker_regions()


def test_embedded_keywords_cover_this_pythons_keywords():
    embedded = set(load_config()["_python_keywords"])
    assert set(keyword.kwlist) | set(keyword.softkwlist) <= embedded
    assert load_config()["_python_keywords"] == generator.python_keywords()


def test_rules_are_ordered_like_the_questions():
    """copier validates question by question; the pre-gen hook stops at the first failing rule in list order.

    Listing rules in question order makes both report the same first error; a rule may only read its own
    question and earlier ones, since copier has not asked the later ones yet.
    """
    order = list(questions())
    rules = load_config()["_validators"]
    positions = [order.index(rule["question"]) for rule in rules]
    assert positions == sorted(positions)
    for rule in rules:
        later = order[order.index(rule["question"]) + 1 :]
        text = rule["invalid_if"] + rule["message"]
        used = [name for name in later if re.search(rf"\b{name}\b", text)]
        assert not used, f"rule of {rule['question']} reads later questions {used}"


def test_prune_table_paths_exist_in_the_template():
    for relpath in load_config()["_prune"]:
        assert (ROOT / TEMPLATE_DIR_NAME / relpath.strip("/")).exists(), f"prune rule for missing {relpath}"


def test_prune_rules_become_copier_exclusions():
    copier = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    for relpath, condition in load_config()["_prune"].items():
        assert f"{{% if {condition} %}}/{relpath.strip('/')}{{% endif %}}" in copier["_exclude"]


def test_hooks_embed_the_context_instead_of_copying_rules():
    """The hooks read rules and prune table from cookiecutter.json at bake time: nothing to keep in sync."""
    for hook in ("pre_gen_project.py", "post_gen_project.py"):
        source = Path(ROOT / "hooks" / hook).read_text(encoding="utf-8")
        assert "{{ cookiecutter | jsonify }}" in source
