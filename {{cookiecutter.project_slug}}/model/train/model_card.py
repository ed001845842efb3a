"""Write the model card: docs/model_card.md for people, model_card.json for SageMaker Model Cards.

Everything measurable comes from the run itself (the artifact's metadata.json and schema.json, evaluation.json,
the permutation importance, the registry's package.json, prepare's data_report.json); what only people can say
(intended use, business context, limitations) comes from model/config/model_card.json, and every field missing
there is written as a visible "to fill in" note naming the field, so the card is never silently incomplete.

model_card.json follows the content schema of SageMaker Model Cards (model_overview, intended_uses,
business_details, training_details, evaluation_details, additional_information); `check_card_content` enforces the
subset documented in docs/explainability.md before anything is written, so CreateModelCard accepts the content.

    python -m model.train.model_card --model <artifact dir | model.tar.gz> --evaluation evaluation.json \
        [--importance importance.json] [--registry-package package.json] [--data-report data_report.json] \
        [--pipeline-run ID] [--config model/config/model_card.json] --out-dir docs
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from model.common import model_artifact, paths
from model.common.data_contract import Schema, SchemaError
from model.train import evaluate

ROOT = paths.REPO_ROOT
DEFAULT_CONFIG = paths.MODEL_CARD_FILE
MARKDOWN_FILE = "model_card.md"
JSON_FILE = "model_card.json"
CHART_FILE = "model_card_importance.png"
RISK_RATINGS = ("High", "Medium", "Low", "Unknown")
METRIC_TYPES = ("number", "string", "boolean")
MAX_TEXT = 1024  # SageMaker Model Cards' limit for most free-text fields
MAX_CATEGORIES_SHOWN = 20
# SageMaker Model Cards' limits on evaluation names; longer column names are shortened with a digest there (the
# full name goes into the metric's notes) and kept whole everywhere else.
GROUP_NAME_LIMIT = 63
METRIC_NAME_LIMIT = 255

CLARIFY_NAMES = {
    "CI": "class imbalance (facet a vs d in the data)",
    "DPL": "difference in proportions of positive labels",
    "DPPL": "difference in positive proportions of predicted labels",
    "DI": "disparate impact (ratio of predicted positive rates, d / a)",
    "AD": "accuracy difference",
    "RD": "recall difference",
    "SD": "specificity difference",
}
COUNT_NAMES = {"n_a": "group size", "n_d": "group size", "n_missing": "rows without a facet value (in neither group)"}

# model/config/model_card.json: the fields people fill in; each names its place in SageMaker's content schema.
CONFIG_FIELDS = {
    "model_description": "model_overview.model_description",
    "model_owner": "model_overview.model_owner",
    "purpose_of_model": "intended_uses.purpose_of_model",
    "intended_uses": "intended_uses.intended_uses",
    "factors_affecting_model_efficiency": "intended_uses.factors_affecting_model_efficiency",
    "risk_rating": "intended_uses.risk_rating",
    "explanations_for_risk_rating": "intended_uses.explanations_for_risk_rating",
    "business_problem": "business_details.business_problem",
    "business_stakeholders": "business_details.business_stakeholders",
    "line_of_business": "business_details.line_of_business",
    "ethical_considerations": "additional_information.ethical_considerations",
    "caveats_and_recommendations": "additional_information.caveats_and_recommendations",
    "limitations": "additional_information.custom_details.limitations (a list of sentences)",
}


class ModelCardError(ValueError):
    """The card's inputs or its content break the documented structure; the message names the field."""


# --------------------------------------------------------------------------------------------------- config
def to_fill_in(field: str) -> str:
    return f"Not documented yet: fill in '{field}' in model/config/model_card.json."


def load_card_config(path: str | Path | None = DEFAULT_CONFIG) -> dict:
    """The people-written fields; an absent file or field becomes a 'to fill in' note naming the field."""
    data: dict = {}
    if path is not None and Path(path).is_file():
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelCardError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ModelCardError(f"{path}: the top level must be a JSON object with the fields {sorted(CONFIG_FIELDS)}")
        unknown = sorted(set(data) - set(CONFIG_FIELDS))
        if unknown:
            raise ModelCardError(f"{path}: unknown field(s) {unknown}: use the fields {sorted(CONFIG_FIELDS)}")
        for key, value in data.items():
            if key == "limitations":
                if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                    raise ModelCardError(f"{path}: 'limitations' = {value!r}: give a list of non-empty sentences")
            elif not isinstance(value, str) or not value.strip():
                raise ModelCardError(f"{path}: '{key}' = {value!r}: give a non-empty string")
            elif key == "risk_rating" and value not in RISK_RATINGS:
                raise ModelCardError(f"{path}: 'risk_rating' = {value!r}: use one of {', '.join(RISK_RATINGS)}")
            elif len(value) > MAX_TEXT:
                raise ModelCardError(f"{path}: '{key}' has {len(value)} characters: SageMaker allows {MAX_TEXT}")
    config = {key: data.get(key) or to_fill_in(key) for key in CONFIG_FIELDS if key not in ("limitations",)}
    config["risk_rating"] = data.get("risk_rating", "Unknown")
    config["limitations"] = list(data.get("limitations") or [to_fill_in("limitations")])
    return config


# ------------------------------------------------------------------------------------------------- helpers
def _quality(evaluation: Mapping) -> tuple[str, dict]:
    key = next(k for k in evaluation if k.endswith("_metrics") and k != "bias_metrics")
    return key, {name: entry["value"] for name, entry in evaluation[key].items()}


def _gate_name(gate: Mapping) -> str:
    return f"{gate['metric']}[{gate['facet']}]" if gate.get("facet") else gate["metric"]


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _importance_rows(importance) -> list[dict]:
    if importance is None:
        return []
    return list(importance["features"] if isinstance(importance, Mapping) else importance)


def _fit(name: str, limit: int) -> str:
    """A name within a Model Cards limit: unchanged when it fits, else cut and made unique with a digest."""
    if len(name) <= limit:
        return name
    import hashlib

    return f"{name[: limit - 10]}~{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}~"


def _notes(notes: str, name: str, limit: int) -> str:
    return notes if len(name) <= limit else f"{notes}; full name: {name}"[:MAX_TEXT]


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _feature_rule(feature) -> str:
    if not feature.is_numeric:
        shown = ", ".join(feature.categories[:MAX_CATEGORIES_SHOWN])
        if len(feature.categories) > MAX_CATEGORIES_SHOWN:
            shown += f", ... ({len(feature.categories)} in all)"
        return f"one of {shown}" + (" (others accepted as unseen)" if feature.unknown_categories == "accept" else "")
    low = "-inf" if feature.minimum is None else _number(feature.minimum)
    high = "inf" if feature.maximum is None else _number(feature.maximum)
    return f"[{low}, {high}]"


# ---------------------------------------------------------------------------------------------------- JSON
@dataclass(frozen=True)
class CardInputs:
    """What a card is written from (see write_model_card)."""

    metadata: Mapping
    evaluation: Mapping
    schema: Schema
    importance: object
    registry_package: Mapping | None
    project_info: Mapping


def card_content(inputs: CardInputs) -> dict:
    """The SageMaker Model Cards content document."""
    metadata, evaluation, schema = inputs.metadata, inputs.evaluation, inputs.schema
    importance, registry_package, project_info = inputs.importance, inputs.registry_package, inputs.project_info
    config = project_info.get("card") or load_card_config(None)
    quality_key, quality = _quality(evaluation)
    data_report = project_info.get("data_report") or {}
    hyperparameters = metadata.get("hyperparameters", {})
    version = registry_package.get("ModelPackageVersion") if registry_package else None
    overview = {
        "model_description": config["model_description"],
        "model_owner": config["model_owner"],
        "model_name": project_info.get("name", "model"),
        "problem_type": schema.problem_type,
        "algorithm_type": str(hyperparameters.get("estimator", "unknown")),
        "model_artifact": [metadata.get("model_file", "")],
        "inference_environment": {"container_image": [f"{metadata.get('model_format', 'onnx')} inference image"]},
    }
    if version is not None:
        overview["model_version"] = float(version)
    training_metrics = [
        {"name": name, "value": float(value)}
        for name, value in metadata.get("metrics", {}).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    training = {
        "objective_function": {"notes": f"estimator {hyperparameters.get('estimator', 'unknown')}"},
        "training_observations": (
            f"{metadata.get('training_rows', 'n/a')} training rows; training data SHA-256 "
            f"{metadata.get('training_data_sha256', 'n/a')}; validation metrics in training_metrics"
        ),
        "training_job_details": {
            "training_arn": str(metadata.get("training_job", "local")),
            "training_datasets": [f"sha256:{metadata.get('training_data_sha256', 'unknown')}"],
            "training_metrics": training_metrics,
            "hyper_parameters": [{"name": k, "value": str(v)} for k, v in sorted(hyperparameters.items())],
        },
    }
    gates = evaluation.get("gates", [])
    holdout_groups = [
        {
            "name": "holdout quality",
            "metric_data": [{"name": n, "type": "number", "value": float(v)} for n, v in quality.items()],
        },
        {
            "name": "gates (baseline.json)",
            "metric_data": [
                {
                    "name": _fit(_gate_name(g), METRIC_NAME_LIMIT),
                    "type": "string",
                    "value": g["status"],
                    "notes": _notes(f"gate {g['bound']}", _gate_name(g), METRIC_NAME_LIMIT),
                }
                for g in gates
            ],
        },
    ]
    for facet, values in evaluation.get("bias_metrics", {}).items():
        holdout_groups.append(
            {
                "name": _fit(f"bias: {facet}", GROUP_NAME_LIMIT),
                "metric_data": [
                    {"name": name, "type": "number", "value": float(value), "notes": CLARIFY_NAMES.get(name, "")}
                    for name, value in values.items()
                    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))
                ],
            }
        )
    evaluations = [
        {
            "name": "holdout evaluation",
            "evaluation_observation": (
                f"{evaluation.get('test_rows', 'n/a')} held-out test rows; gates "
                f"{'passed' if evaluation.get('passed') else 'FAILED'}"
            ),
            "datasets": ["test split (never used for training)"],
            "metadata": {"report": quality_key, "model_version": str(metadata.get("model_version", "unknown"))},
            "metric_groups": holdout_groups,
        }
    ]
    rows = _importance_rows(importance)
    if rows:
        metric = importance.get("metric", "main metric") if isinstance(importance, Mapping) else "main metric"
        evaluations.append(
            {
                "name": "global feature importance",
                "evaluation_observation": f"permutation importance on the validation split: drop in {metric}",
                "datasets": ["validation split"],
                "metric_groups": [
                    {
                        "name": f"permutation importance ({metric})",
                        "metric_data": [
                            {
                                "name": _fit(r["feature"], METRIC_NAME_LIMIT),
                                "type": "number",
                                "value": float(r["importance_mean"]),
                                "notes": _notes(
                                    f"std {r.get('importance_std') or 0.0:.4f}", r["feature"], METRIC_NAME_LIMIT
                                ),
                            }
                            for r in rows
                        ],
                    }
                ],
            }
        )
    custom = {
        "limitations": " ".join(config["limitations"])[:MAX_TEXT],
        "model_version": str(metadata.get("model_version", "unknown")),
        "model_sha256": str(metadata.get("model_sha256", "unknown")),
        "git_commit": str(metadata.get("git_commit", "unknown")),
        "pipeline_run": str(project_info.get("pipeline_run", "unknown")),
        "data_sha256": str(data_report.get("data_sha256", "unknown")),
        "gates_passed": str(bool(evaluation.get("passed"))).lower(),
    }
    if registry_package:
        custom["model_package"] = (
            f"{registry_package['ModelPackageGroupName']} v{registry_package['ModelPackageVersion']} "
            f"({registry_package['ModelApprovalStatus']})"
        )
        custom["model_package_sha256"] = str(registry_package.get("ModelDataSha256", "unknown"))
    return {
        "model_overview": overview,
        "intended_uses": {
            "purpose_of_model": config["purpose_of_model"],
            "intended_uses": config["intended_uses"],
            "factors_affecting_model_efficiency": config["factors_affecting_model_efficiency"],
            "risk_rating": config["risk_rating"],
            "explanations_for_risk_rating": config["explanations_for_risk_rating"],
        },
        "business_details": {
            "business_problem": config["business_problem"],
            "business_stakeholders": config["business_stakeholders"],
            "line_of_business": config["line_of_business"],
        },
        "training_details": training,
        "evaluation_details": evaluations,
        "additional_information": {
            "ethical_considerations": config["ethical_considerations"],
            "caveats_and_recommendations": config["caveats_and_recommendations"],
            "custom_details": custom,
        },
    }


def check_card_content(card: Mapping) -> None:
    """Enforce the documented subset of SageMaker's model card content schema; raise naming the first bad field."""

    def fail(where: str, problem: str):
        raise ModelCardError(f"model_card.json: {where}: {problem}")

    def text(where: str, value, limit: int = MAX_TEXT) -> None:
        if not isinstance(value, str):
            fail(where, f"expected a string, got {type(value).__name__}")
        if len(value) > limit:
            fail(where, f"{len(value)} characters, more than {limit}")

    def obj(where: str, value, required: Sequence[str]) -> Mapping:
        if not isinstance(value, Mapping):
            fail(where, f"expected an object, got {type(value).__name__}")
        missing = [k for k in required if k not in value]
        if missing:
            fail(where, f"missing {missing}")
        return value

    obj("(top level)", card, ("model_overview", "intended_uses", "business_details", "training_details"))
    obj("(top level)", card, ("evaluation_details", "additional_information"))
    overview = obj("model_overview", card["model_overview"], ("model_name", "problem_type", "algorithm_type"))
    for key in ("model_description", "model_owner", "model_name", "problem_type", "algorithm_type"):
        if key in overview:
            text(f"model_overview.{key}", overview[key])
    if not isinstance(overview.get("model_version", 0.0), (int, float)):
        fail("model_overview.model_version", "expected a number")
    uses = obj("intended_uses", card["intended_uses"], ("purpose_of_model", "intended_uses", "risk_rating"))
    for key, value in uses.items():
        text(f"intended_uses.{key}", value, 2048 if key == "purpose_of_model" else MAX_TEXT)
    if uses["risk_rating"] not in RISK_RATINGS:
        fail("intended_uses.risk_rating", f"{uses['risk_rating']!r} is not one of {', '.join(RISK_RATINGS)}")
    for key, value in obj("business_details", card["business_details"], ()).items():
        text(f"business_details.{key}", value)
    job = obj("training_details", card["training_details"], ("training_job_details",))["training_job_details"]
    for i, item in enumerate(obj("training_details.training_job_details", job, ()).get("training_metrics", [])):
        if not isinstance(item.get("value"), (int, float)):
            fail(f"training_details.training_job_details.training_metrics[{i}].value", "expected a number")
    for i, item in enumerate(job.get("hyper_parameters", [])):
        text(f"training_details.training_job_details.hyper_parameters[{i}].value", item.get("value"))
    if not isinstance(card["evaluation_details"], list):
        fail("evaluation_details", "expected a list")
    for i, entry in enumerate(card["evaluation_details"]):
        where = f"evaluation_details[{i}]"
        obj(where, entry, ("name", "metric_groups"))
        text(f"{where}.name", entry["name"], GROUP_NAME_LIMIT)
        for j, group in enumerate(entry["metric_groups"]):
            group_where = f"{where}.metric_groups[{j}]"
            obj(group_where, group, ("name", "metric_data"))
            text(f"{group_where}.name", group["name"], GROUP_NAME_LIMIT)
            for k, metric in enumerate(group["metric_data"]):
                metric_where = f"{group_where}.metric_data[{k}]"
                obj(metric_where, metric, ("name", "type", "value"))
                text(f"{metric_where}.name", metric["name"], METRIC_NAME_LIMIT)
                kind, value = metric["type"], metric["value"]
                if kind not in METRIC_TYPES:
                    fail(f"{metric_where}.type", f"{kind!r} is not one of {', '.join(METRIC_TYPES)}")
                expected = {"number": (int, float), "string": str, "boolean": bool}[kind]
                if not isinstance(value, expected) or (kind == "number" and isinstance(value, bool)):
                    fail(f"{metric_where}.value", f"{value!r} does not match type {kind!r}")
                if kind == "number" and not math.isfinite(value):
                    fail(f"{metric_where}.value", "must be a finite number")
    extra = obj("additional_information", card["additional_information"], ())
    for key in ("ethical_considerations", "caveats_and_recommendations"):
        if key in extra:
            text(f"additional_information.{key}", extra[key])
    for key, value in extra.get("custom_details", {}).items():
        text(f"additional_information.custom_details.{key}", value)


# ------------------------------------------------------------------------------------------------ Markdown
def card_markdown(inputs: CardInputs, chart_name: str | None) -> str:
    metadata, evaluation, schema = inputs.metadata, inputs.evaluation, inputs.schema
    importance, registry_package, project_info = inputs.importance, inputs.registry_package, inputs.project_info
    config = project_info.get("card") or load_card_config(None)
    _, quality = _quality(evaluation)
    gates = evaluation.get("gates", [])
    failed = [g for g in gates if g["status"] == "failed"]
    data_report = project_info.get("data_report") or {}
    name = project_info.get("name", "model")
    out = [
        f"# Model card: {name}",
        "",
        f"Model version `{metadata.get('model_version', 'unknown')}`, trained {metadata.get('created_at', 'n/a')}. "
        + (
            "All gates of model/config/baseline.json passed."
            if not failed
            else f"**{len(failed)} gate(s) FAILED**: " + ", ".join(_gate_name(g) for g in failed) + "."
        ),
        "",
        "## Model overview",
        "",
        config["model_description"],
        "",
        *_table(
            ("item", "value"),
            [
                ("problem type", schema.problem_type),
                ("target", schema.target),
                *([("classes", ", ".join(schema.classes))] if schema.classes else []),
                ("positive outcome (bias metrics)", ", ".join(map(str, schema.label_values_or_threshold))),
                ("algorithm", metadata.get("hyperparameters", {}).get("estimator", "unknown")),
                ("model format", metadata.get("model_format", "unknown")),
                ("owner", config["model_owner"]),
            ],
        ),
        "",
        "## Intended use",
        "",
        f"**Purpose.** {config['purpose_of_model']}",
        "",
        f"**Intended uses.** {config['intended_uses']}",
        "",
        f"**Factors affecting efficiency.** {config['factors_affecting_model_efficiency']}",
        "",
        f"**Risk rating.** {config['risk_rating']}: {config['explanations_for_risk_rating']}",
        "",
        f"**Business problem.** {config['business_problem']} Stakeholders: {config['business_stakeholders']} "
        f"Line of business: {config['line_of_business']}",
        "",
        "## Data",
        "",
    ]
    splits = data_report.get("splits", {})
    out += _table(
        ("item", "value"),
        [
            ("rows (all splits)", sum(splits.values()) if splits else "not recorded"),
            ("splits", ", ".join(f"{k} {v}" for k, v in splits.items()) or "not recorded"),
            ("source data SHA-256", f"`{data_report.get('data_sha256', 'not recorded')}`"),
            ("training rows", metadata.get("training_rows", "n/a")),
            ("training data SHA-256", f"`{metadata.get('training_data_sha256', 'n/a')}`"),
        ],
    )
    out += ["", "Features (model/config/schema.json):", ""]
    out += _table(
        ("feature", "type", "nullable", "allowed values", "description"),
        [(f.name, f.type, "yes" if f.nullable else "no", _feature_rule(f), f.description) for f in schema.features],
    )
    out += ["", "Sensitive features (used to measure bias; a facet may also be a model input):", ""]
    if schema.sensitive_features:
        out += _table(
            ("feature", "facet d (disadvantaged group)", "categories"),
            [
                (s.name, ", ".join(map(str, s.facet_values_or_threshold)), ", ".join(s.categories) or "-")
                for s in schema.sensitive_features
            ],
        )
    else:
        out += ["None declared: bias is not measured. Declare them in schema.json under sensitive_features."]
    quality_gates = {g["metric"]: g for g in gates if g["group"] == "quality"}
    out += ["", "## Metrics", "", f"Held-out test split ({evaluation.get('test_rows', 'n/a')} rows, never trained on):"]
    out.append("")
    out += _table(
        ("metric", "value", "gate", "status"),
        [
            (
                metric,
                _number(value),
                quality_gates.get(metric, {}).get("bound", "-"),
                quality_gates.get(metric, {}).get("status", "-"),
            )
            for metric, value in quality.items()
        ],
    )
    out += ["", "## Bias", ""]
    bias = evaluation.get("bias_metrics", {})
    if not bias:
        out += ["No bias metrics were computed (no sensitive features)."]
    bias_gates = {(g["facet"], g["metric"]): g for g in gates if g["group"] == "bias"}
    failed_bias = [g for g in failed if g["group"] == "bias"]
    if failed_bias:
        out += [
            "**Bias gates FAILED**: "
            + "; ".join(f"{_gate_name(g)} = {_number(g['value'])} (gate {g['bound']})" for g in failed_bias),
            "",
        ]
    for facet, values in bias.items():
        out += [f"Facet `{facet}` (SageMaker Clarify metric names; facet d = the declared group, a = the rest):", ""]
        out += _table(
            ("metric", "meaning", "value", "gate", "status"),
            [
                (
                    metric,
                    CLARIFY_NAMES.get(metric, COUNT_NAMES.get(metric, "")),
                    str(int(value)) if metric in COUNT_NAMES else _number(value),
                    bias_gates.get((facet, metric), {}).get("bound", "-"),
                    bias_gates.get((facet, metric), {}).get("status", "-"),
                )
                for metric, value in values.items()
            ],
        )
        out.append("")
    out += ["## Explanations", ""]
    rows = _importance_rows(importance)
    if rows:
        metric = importance.get("metric", "the main metric") if isinstance(importance, Mapping) else "the main metric"
        out += [
            f"Global permutation importance on the validation split: the drop in {metric} when one raw feature is "
            "shuffled (mean ± std over repeated shuffles). Per-record SHAP attributions: `make explain`; "
            "see docs/explainability.md.",
            "",
        ]
        out += _table(
            ("rank", "feature", f"drop in {metric}"),
            [
                (i, r["feature"], f"{r['importance_mean']:.4f} ± {r.get('importance_std') or 0.0:.4f}")
                for i, r in enumerate(rows, start=1)
            ],
        )
        if chart_name:
            out += ["", f"![global feature importance]({chart_name})"]
    else:
        out += ["Global importance was not computed for this run (see docs/explainability.md)."]
    out += ["", "## Limitations", ""]
    out += [f"- {item}" for item in config["limitations"]]
    out += [
        "- Valid only for inputs inside the data contract (model/config/schema.json); serving rejects the rest.",
        f"- Ethical considerations: {config['ethical_considerations']}",
        f"- Caveats and recommendations: {config['caveats_and_recommendations']}",
        "",
        "## Lineage",
        "",
    ]
    package = (
        f"{registry_package['ModelPackageGroupName']} v{registry_package['ModelPackageVersion']} "
        f"({registry_package['ModelApprovalStatus']}), model.tar.gz SHA-256 `{registry_package.get('ModelDataSha256')}`"
        if registry_package
        else "not registered (gates failed, or the card was written before registration)"
    )
    out += _table(
        ("item", "value"),
        [
            ("model version", f"`{metadata.get('model_version', 'unknown')}`"),
            ("artifact SHA-256", f"`{metadata.get('model_sha256', 'unknown')}` ({metadata.get('model_file', '')})"),
            ("git commit", f"`{metadata.get('git_commit', 'unknown')}`"),
            ("pipeline run", project_info.get("pipeline_run", "unknown")),
            ("training job", metadata.get("training_job", "unknown")),
            ("registry", package),
            *[(f"hyperparameter {k}", v) for k, v in sorted(metadata.get("hyperparameters", {}).items())],
            *[(f"library {k}", v) for k, v in sorted(metadata.get("versions", {}).items())],
        ],
    )
    return "\n".join(out) + "\n"


def write_model_card(
    metadata: Mapping,
    evaluation: Mapping,
    schema: Schema,
    importance,
    registry_package: Mapping | None,
    out_dir: str | Path,
    project_info: Mapping,
) -> dict[str, Path]:
    """Write model_card.md, model_card.json (checked first) and the importance chart into out_dir.

    importance: explain.importance_report(...) output, its "features" list, or None. registry_package: the
    registry's package.json or None. project_info: name, pipeline_run, data_report (prepare's data_report.json) and
    card (load_card_config(...)); every key is optional.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = CardInputs(metadata, evaluation, schema, importance, registry_package, project_info)
    content = card_content(inputs)
    check_card_content(content)
    written = {}
    rows = _importance_rows(importance)
    if rows:
        from model.train import explain

        metric = importance.get("metric", "main metric") if isinstance(importance, Mapping) else "main metric"
        written["chart"] = explain.plot_importance(
            rows, out_dir / CHART_FILE, title="Global feature importance", xlabel=f"drop in {metric} when shuffled"
        )
    markdown = card_markdown(inputs, CHART_FILE if rows else None)
    written["markdown"] = out_dir / MARKDOWN_FILE
    written["markdown"].write_text(markdown, encoding="utf-8")
    written["json"] = out_dir / JSON_FILE
    written["json"].write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return written


# ------------------------------------------------------------------------------------------------------ CLI
def _read_json(path: Path | None, what: str):
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelCardError(f"{what} {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"{what} {path} is not valid JSON: {exc}") from None


def project_name(root: Path = ROOT) -> str:
    try:
        return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="artifact folder or model.tar.gz")
    parser.add_argument("--evaluation", type=Path, required=True, help="evaluation.json from evaluate.py")
    parser.add_argument("--importance", type=Path, help="importance.json from explain.py --importance")
    parser.add_argument("--registry-package", type=Path, help="package.json of the registered version")
    parser.add_argument("--data-report", type=Path, help="data_report.json from prepare.py")
    parser.add_argument("--pipeline-run", default="unknown", help="the pipeline run id")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="people-written fields (%(default)s)")
    parser.add_argument("--name", default=None, help="model name (default: the project name in pyproject.toml)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            model_dir = evaluate.resolve_model_dir(args.model, Path(scratch))
            metadata = model_artifact.verify_artifact(model_dir)
            schema = Schema.load(model_dir / model_artifact.SCHEMA_FILE)
        project_info = {
            "name": args.name or project_name(),
            "pipeline_run": args.pipeline_run,
            "data_report": _read_json(args.data_report, "data report"),
            "card": load_card_config(args.config),
        }
        written = write_model_card(
            metadata,
            _read_json(args.evaluation, "evaluation"),
            schema,
            _read_json(args.importance, "importance"),
            _read_json(args.registry_package, "registry package"),
            args.out_dir,
            project_info,
        )
    except (ModelCardError, SchemaError, FileNotFoundError, model_artifact.ArtifactError) as exc:
        print(f"model_card failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {written['markdown']} and {written['json']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
