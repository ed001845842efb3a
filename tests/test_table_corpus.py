"""A corpus of tables through one generated repository: validate -> train -> register -> serve, with parity.

The sample data set is one case among many. Each table of tests/tables.py (hostile column names, nulls
everywhere, one feature, 300 features, 150 rows, a 1% minority class, numeric / boolean / spaced labels,
unicode categories, facets of every kind, integer-coded and high-cardinality categoricals, extra and ID
columns, every problem type) goes through the local pipeline of ONE bake, each table with its own config,
build, registry, card and baselines folders; it is then exported from the registry and served by serve.py from
an environment holding only model/inference/requirements.txt (the ``inference_venv`` fixture). Then:

- the served predictions, for JSON records keyed by the exact original names (in reverse schema order) and
  for headerless CSV rows, equal scikit-learn's on held-out rows: every label, probabilities within
  PROBABILITY_TOLERANCE absolute, regression values within VALUE_TOLERANCE relative to max(1, |value|);
- the artifact is ONNX; the model card, the drift baselines, the permutation importance, the bias metrics and
  the capture of served requests name the exact original columns.

Where scikit-learn's predictions come from: one process in the model environment refits, per table, exactly
what model/train/train.py run() fits: ``preprocessing.build_pipeline(schema, hyperparameters.parse(raw))``
fitted on ``schema.to_frame(train.columns)`` and ``train.target``, where ``train = dataset.load(schema, <the
train channel the run gave train.py>, require_sensitive=False)``. Every estimator is seeded (random_state), so
the refit is the same model; the test proves it by recomputing train.py's own validation metrics (recorded in
metadata.json) from the refit.

Bad inputs (an entirely-null feature, rows without a target, a schema that disagrees with the data in several
columns) must be refused at the validate step by one error naming every exact column; with "missing_target":
"drop" (the nulls_everywhere table) the rows without a target are left out.

The pipelines run two at a time (this machine has two cores); the corpus aims at under three minutes.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import math
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests import tables
from tests.baking import bake_cookiecutter

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ANSWERS = {
    "python_version": "3.11",
    "license": "MIT",
    "problem_type": "binary_classification",
    "include_monitoring": True,
    "ci_provider": "codepipeline",
}
GROUP = "corpus"
PROBABILITY_TOLERANCE = 1e-5  # absolute, on probabilities in [0, 1]
VALUE_TOLERANCE = 1e-5  # regression: |served - expected| <= VALUE_TOLERANCE * max(1, |expected|)
PARALLEL = 2
PIPELINE_TIMEOUT = 600
SERVER_START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0
CORPUS = tables.corpus()
BAD = tables.bad_inputs()

REFIT = r"""
import json, sys, traceback
from pathlib import Path

from model.common import metrics
from model.common.data_contract import Schema
from model.train import dataset
from model.train import hyperparameters as hp
from model.train.preprocessing import build_pipeline

out = {}
for job in json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")):
    try:
        schema = Schema.load(job["schema"])
        params = hp.parse(json.loads(Path(job["hyperparameters"]).read_text(encoding="utf-8")))
        train = dataset.load(schema, job["train"], require_sensitive=False)
        pipeline = build_pipeline(schema, params)
        pipeline.fit(schema.to_frame(train.columns), train.target)
        result = {}
        for key in ("validation", "holdout"):
            data = dataset.load(schema, job[key], require_sensitive=False)
            frame = schema.to_frame(data.columns)
            if schema.is_classification:
                probabilities = pipeline.predict_proba(frame)
                values = probabilities.argmax(axis=1)
                result[key] = {
                    "labels": [schema.classes[i] for i in values.tolist()],
                    "probabilities": probabilities.tolist(),
                }
            else:
                probabilities, values = None, pipeline.predict(frame)
                result[key] = {"values": [float(v) for v in values]}
            if key == "validation":
                result["validation_metrics"] = metrics.quality_metrics(
                    schema, data.target, values, probabilities
                )
        out[job["name"]] = result
    except Exception:
        out[job["name"]] = {"error": traceback.format_exc()}
print(json.dumps(out))
"""


# --------------------------------------------------------------------------------------------------- helpers
def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "OPT_ML_ROOT"}}
    env.update(extra)
    return env


@dataclass
class Run:
    table: tables.Table
    folder: Path
    data: Path
    holdout: Path
    config: Path
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    refit: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The run's own folders for the local pipeline (the model card goes to docs/, as in a repository).
        self.build, self.registry = self.folder / "build", self.folder / "registry"
        self.card_dir, self.baselines = self.folder / "docs", self.folder / "baselines"

    @property
    def run_dir(self) -> Path:
        runs = sorted((self.build / "runs").glob("*"))
        assert len(runs) == 1, (
            f"{self.table.name}: expected one run folder under {self.build / 'runs'}, got {runs}"
        )
        return runs[0]

    def output(self, limit: int = 4000) -> str:
        return f"--- stdout ---\n{self.stdout[-limit:]}\n--- stderr ---\n{self.stderr[-limit:]}"

    def failed_step(self) -> str | None:
        found = re.findall(r"^\[\d+/\d+\] (.+): FAILED", self.stdout, flags=re.MULTILINE)
        return found[0] if found else None


def run_pipeline(project: Path, python: Path, run: Run) -> Run:
    command = [
        str(python),
        "-m",
        "pipeline.local_pipeline",
        *("--data", str(run.data), "--config-dir", str(run.config)),
        *("--build-dir", str(run.build), "--registry", str(run.registry), "--group", GROUP),
        *("--card-dir", str(run.card_dir), "--baselines-dir", str(run.baselines)),
    ]
    started = time.monotonic()
    try:
        env = clean_env(GIT_COMMIT="0" * 40)
        result = subprocess.run(
            command, cwd=project, capture_output=True, text=True, timeout=PIPELINE_TIMEOUT, env=env
        )
        run.code, run.stdout, run.stderr = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as exc:  # one table's hang fails that table, not the whole corpus
        run.code = -1
        run.stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        run.stderr = f"the pipeline did not finish within {PIPELINE_TIMEOUT} s"
    run.seconds = time.monotonic() - started
    return run


def refit(project: Path, python: Path, runs: list[Run], scratch: Path) -> None:
    """scikit-learn's predictions: the pipeline train.py fits, refitted on the same train channel."""
    jobs = []
    for run in runs:
        data = run.run_dir / "opt_ml" / "input" / "data"
        jobs.append(
            {
                "name": run.table.name,
                "schema": str(run.config / "schema.json"),
                "hyperparameters": str(run.config / "hyperparameters.json"),
                "train": str(data / "train"),
                "validation": str(data / "validation"),
                "holdout": str(run.holdout),
            }
        )
    if not jobs:
        return
    (scratch / "refit.json").write_text(json.dumps(jobs), encoding="utf-8")
    result = subprocess.run(
        [str(python), "-c", REFIT, str(scratch / "refit.json")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=PIPELINE_TIMEOUT,
        env=clean_env(),
    )
    assert result.returncode == 0, f"the refit process failed:\n{result.stderr[-4000:]}"
    results = json.loads(result.stdout)
    for run in runs:
        run.refit = results[run.table.name]


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def corpus_project(template_repo, e2e_venv, tmp_path_factory) -> Path:
    """One bake shared by every table; its `make setup` (a no-op once installed) fills the model venv."""
    project = bake_cookiecutter(template_repo, ANSWERS, tmp_path_factory.mktemp("corpus-bake"))
    result = subprocess.run(
        ["make", "-C", str(project), "setup", f"VENV={e2e_venv}"],
        capture_output=True,
        text=True,
        timeout=1800,
        env=clean_env(),
    )
    assert result.returncode == 0, f"`make setup` failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return project


@pytest.fixture(scope="module")
def corpus_runs(corpus_project, e2e_venv, tmp_path_factory) -> dict[str, Run]:
    """Every table's pipeline run (two at a time), then one refit process for the tables that registered."""
    root = tmp_path_factory.mktemp("corpus")
    python = e2e_venv / "bin" / "python"
    runs = []
    for table in [*CORPUS, *BAD]:
        paths = table.write(root / table.name)
        runs.append(Run(table, root / table.name, paths["data"], paths["holdout"], paths["config"]))
    # The biggest tables first, so the two lanes finish together.
    ordered = sorted(runs, key=lambda r: -len(r.table.rows) * len(r.table.header))
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        list(pool.map(lambda run: run_pipeline(corpus_project, python, run), ordered))
    served = [r for r in runs if r.code == 0 and r.table.expect == "register"]
    refit(corpus_project, python, served, root)
    return {r.table.name: r for r in runs}


@pytest.fixture(scope="module")
def parity_report(tmp_path_factory):
    """Per-table parity figures, written to <basetemp>/table-corpus-report.json at the end of the module."""
    report: dict[str, dict] = {}
    yield report
    path = tmp_path_factory.getbasetemp() / "table-corpus-report.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\ntable corpus report: {path}")


@dataclass
class Server:
    process: subprocess.Popen
    log: Path
    port: int | None = None

    def records(self) -> list[dict]:
        lines = (
            self.log.read_text(encoding="utf-8", errors="replace").splitlines() if self.log.exists() else []
        )
        out = []
        for line in lines:
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture(scope="module")
def start_server(corpus_project, inference_venv):
    """Start serve.py (inference requirements only, 127.0.0.1, one worker); teardown stops every server."""
    started: list[Server] = []

    def start(model_dir: Path, folder: Path, capture: Path) -> Server:
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "serve.log"
        env = clean_env(
            SM_MODEL_DIR=str(model_dir),
            SAGEMAKER_BIND_TO_PORT="0",
            SAGEMAKER_MODEL_SERVER_WORKERS="1",
            MODEL_SERVER_TIMEOUT_GRACEFUL="2",
            DATA_CAPTURE_DIR=str(capture),
        )
        with open(log, "wb") as handle, open(folder / "serve.err", "wb") as errors:
            process = subprocess.Popen(
                [
                    str(inference_venv / "bin" / "python"),
                    "-m",
                    "model.inference.serve",
                    "serve",
                    "--host",
                    "127.0.0.1",
                ],
                cwd=corpus_project,
                stdout=handle,
                stderr=errors,
                env=env,
            )
        server = Server(process, log)
        started.append(server)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"serve.py exited with {process.returncode}: "
                    f"{(folder / 'serve.err').read_text(encoding='utf-8', errors='replace')[-3000:]}"
                    f"{log.read_text(encoding='utf-8', errors='replace')[-2000:]}"
                )
            if server.port is None:
                serving = [r for r in server.records() if r.get("event") == "serving"]
                server.port = serving[0]["port"] if serving else None
            if server.port is not None:
                assert serving[0]["host"] == "127.0.0.1", serving[0]
                try:
                    if request(server.port, "GET", "/ping")[0] == 200:
                        return server
                except OSError:
                    pass
            time.sleep(0.05)
        server.stop()
        raise AssertionError(f"serve.py did not answer /ping within {SERVER_START_TIMEOUT} s")

    yield start
    for server in started:
        server.stop()


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("content-type") or ""
    finally:
        connection.close()


# -------------------------------------------------------------------------------------------------- parity
def parity(table: tables.Table, expected: dict, labels: list | None, numbers: list[list[float]]) -> dict:
    """Served vs scikit-learn: the worst difference and the label agreement (numbers: rows of outputs)."""
    if table.problem_type == "regression":
        wanted = expected["values"]
        got = [row[0] for row in numbers]
        assert len(got) == len(wanted), f"{len(got)} predictions for {len(wanted)} rows"
        worst = max(abs(g - w) for g, w in zip(got, wanted, strict=True))
        relative = max(abs(g - w) / max(1.0, abs(w)) for g, w in zip(got, wanted, strict=True))
        return {"max_abs_diff": worst, "max_rel_diff": relative, "label_agreement": None, "rows": len(got)}
    wanted_p, wanted_l = expected["probabilities"], expected["labels"]
    assert len(numbers) == len(wanted_p), f"{len(numbers)} predictions for {len(wanted_p)} rows"
    worst = max(
        abs(g - w)
        for got, want in zip(numbers, wanted_p, strict=True)
        for g, w in zip(got, want, strict=True)
    )
    shapes = {len(row) for row in numbers}
    assert shapes == {len(table.classes)}, (
        f"probability rows of lengths {shapes}, expected {len(table.classes)}"
    )
    agreement = sum(a == b for a, b in zip(labels, wanted_l, strict=True)) / len(wanted_l)
    return {"max_abs_diff": worst, "label_agreement": agreement, "rows": len(numbers)}


def within_tolerance(table: tables.Table, figures: dict) -> bool:
    if table.problem_type == "regression":
        return figures["max_rel_diff"] <= VALUE_TOLERANCE
    return figures["max_abs_diff"] <= PROBABILITY_TOLERANCE and figures["label_agreement"] == 1.0


def served_json(table: tables.Table, body: bytes) -> tuple[list | None, list[list[float]], list]:
    predictions = json.loads(body)["predictions"]
    if table.problem_type == "regression":
        return None, [[p["score"]] for p in predictions], []
    labels = [p["predicted_label"] for p in predictions]
    return labels, [p["probabilities"] for p in predictions], [p["labels"] for p in predictions]


def served_csv(table: tables.Table, body: bytes) -> tuple[list | None, list[list[float]]]:
    rows = list(csv.reader(body.decode("utf-8").splitlines()))
    if table.problem_type == "regression":
        return None, [[float(r[0])] for r in rows]
    return [r[0] for r in rows], [[float(v) for v in r[1:]] for r in rows]


# --------------------------------------------------------------------------------------------------- tests
def test_corpus_is_deterministic_and_covers_the_shapes():
    """Same seed, same tables; and the corpus holds the shapes it promises (checked on the contracts)."""
    again = tables.corpus()
    for first, second in zip(CORPUS, again, strict=True):
        assert first.rows == second.rows and first.holdout == second.holdout and first.schema == second.schema
    assert len(CORPUS) >= 10
    kinds = {t.problem_type for t in CORPUS}
    assert kinds == {"binary_classification", "multiclass_classification", "regression"}
    widths = sorted(len(t.feature_names) for t in CORPUS)
    assert widths[0] == 1 and widths[-1] == 300
    assert min(len(t.rows) for t in CORPUS) == 150
    hostile = tables.by_name()["hostile_names"]
    names = [*hostile.feature_names, hostile.target, *hostile.sensitive_names]
    assert any(len(n) == 200 for n in names)
    long = tables.by_name()["long_names"]
    assert all(len(n) == 200 for n in [long.target, *long.sensitive_names])
    assert {"a b", "a_b", "a-b", "Speed", "speed", "mean radius", "od280/od315_of_diluted_wines"} <= set(
        names
    )
    nulls = tables.by_name()["nulls_everywhere"]
    for feature in nulls.feature_names:
        share = sum(r[feature] is None for r in nulls.rows) / len(nulls.rows)
        assert 0.05 <= share <= 0.35, (feature, share)
    assert sum(r[nulls.target] is None for r in nulls.rows) == nulls.dropped > 0
    minority = tables.by_name()["minority_1pct"]
    rare = sum(r[minority.target] == "fraud" for r in minority.rows) / len(minority.rows)
    assert 0.005 <= rare <= 0.015, rare
    wide = tables.by_name()["high_cardinality"]
    product = next(f for f in wide.schema["features"] if f["name"] == "product")
    assert len(product["categories"]) == 500 and product["unknown_categories"] == "accept"
    assert any(r["product"] not in product["categories"] for r in wide.holdout), "no unseen value to serve"
    facets = tables.by_name()["facets_labels_bool"].schema["sensitive_features"]
    features = set(tables.by_name()["facets_labels_bool"].feature_names)
    assert {f["name"] in features for f in facets} == {True, False}
    assert any(f.get("type") == "numeric" for f in facets)
    extra = tables.by_name()["extra_columns_and_id"]
    assert {"customer_id", "notes", "Amount"} <= set(extra.header) - set(extra.feature_names)


@pytest.mark.parametrize("name", [t.name for t in CORPUS])
def test_table_trains_registers_and_serves_like_scikit_learn(
    name, corpus_runs, corpus_project, e2e_venv, start_server, parity_report
):
    run = corpus_runs[name]
    table = run.table
    figures: dict = {"shape": table.shape, "pipeline_seconds": round(run.seconds, 1)}
    parity_report[name] = figures
    assert run.code == 0, (
        f"{name} ({table.shape}): the local pipeline failed at step {run.failed_step()!r}\n{run.output()}"
    )
    problems: list[str] = []

    # The registered artifact, exported as `make serve` does.
    serving = run.folder / "serving" / "model"
    export = subprocess.run(
        [
            str(e2e_venv / "bin" / "python"),
            "-m",
            "pipeline.local_registry",
            *("--root", str(run.registry), "--group", GROUP),
            *("export", "--dest", str(serving), "--version", "1"),
        ],
        cwd=corpus_project,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert export.returncode == 0, export.stderr
    metadata = json.loads((serving / "metadata.json").read_text(encoding="utf-8"))
    if metadata.get("model_format") != "onnx":
        problems.append(f"metadata.json model_format is {metadata.get('model_format')!r}, not 'onnx'")

    # Exact original names in the card, the drift baselines, the importance and the bias metrics.
    names = [*table.feature_names, table.target, *table.sensitive_names]
    card = (run.card_dir / "model_card.md").read_text(encoding="utf-8")
    absent = [n for n in names if n not in card]
    if absent:
        problems.append(f"docs/model_card.md does not show the columns {absent}")
    for document in ("statistics.json", "constraints.json"):
        path = run.baselines / document
        if not path.is_file():
            problems.append(f"no {document} in the baselines dir")
            continue
        listed = [f["name"] for f in json.loads(path.read_text(encoding="utf-8"))["features"]]
        if sorted(listed) != sorted(table.feature_names):
            problems.append(
                f"baselines {document} names {sorted(set(listed) - set(table.feature_names))} that are not "
                f"features and misses {sorted(set(table.feature_names) - set(listed))}"
            )
    importance = json.loads((run.run_dir / "explainability" / "importance.json").read_text(encoding="utf-8"))
    ranked = [f["feature"] for f in importance["features"]]
    if sorted(ranked) != sorted(table.feature_names):
        problems.append(
            f"importance.json ranks {sorted(set(ranked) - set(table.feature_names))} (not features) and "
            f"misses {sorted(set(table.feature_names) - set(ranked))}"
        )
    if table.dropped:  # "missing_target": "drop": the rows without a target are left out, the rest split
        report = json.loads((run.run_dir / "processing" / "report" / "data_report.json").read_text("utf-8"))
        kept = sum(report["splits"].values())
        if kept != len(table.rows) - table.dropped:
            problems.append(
                f"{kept} rows were split, expected {len(table.rows)} - {table.dropped} without a target"
            )
    evaluation = json.loads((run.run_dir / "evaluation" / "evaluation.json").read_text(encoding="utf-8"))
    facets = sorted(evaluation.get("bias_metrics", {}))
    if facets != sorted(table.sensitive_names):
        problems.append(
            f"evaluation.json bias_metrics facets are {facets}, expected {sorted(table.sensitive_names)}"
        )
    # Facet d, counted on the test split: the listed values, or every value above a numeric facet's threshold.
    with open(run.run_dir / "processing" / "test" / "test.csv", encoding="utf-8", newline="") as handle:
        test_rows = list(csv.DictReader(handle))
    for facet in table.schema.get("sensitive_features", []):
        values, group = [r[facet["name"]] for r in test_rows], facet["facet_values_or_threshold"]
        if facet.get("type") == "numeric":
            n_d = sum(v != "" and float(v) > float(group[0]) for v in values)
        else:
            n_d = sum(v in {str(g) for g in group} for v in values)
        measured = evaluation.get("bias_metrics", {}).get(facet["name"], {}).get("n_d")
        if measured != n_d:
            problems.append(
                f"facet {facet['name']!r}: evaluation.json n_d = {measured}, the test split has {n_d}"
            )

    # The refit is train.py's model: it reproduces the validation metrics train.py wrote into metadata.json.
    assert "error" not in run.refit, f"refitting {name} with scikit-learn failed:\n{run.refit.get('error')}"
    recorded = {k: v for k, v in metadata["metrics"].items() if k != "dataset"}
    refit_metrics = run.refit["validation_metrics"]
    differing = {
        k: (v, refit_metrics.get(k))
        for k, v in recorded.items()
        if refit_metrics.get(k) is None or not math.isclose(v, refit_metrics[k], rel_tol=1e-9, abs_tol=1e-12)
    }
    if differing:
        problems.append(f"the refit is not train.py's model: validation metrics differ {differing}")

    # Serve from the inference requirements alone; JSON records by exact name, then headerless CSV rows.
    capture = run.folder / "capture"
    server = start_server(serving, run.folder / "serve", capture)
    try:
        # Keyed by name, not position: each record lists the features in reverse schema order.
        records = [dict(reversed(record.items())) for record in table.json_records()]
        status, body, _ = request(
            server.port,
            "POST",
            "/invocations",
            json.dumps({"instances": records}).encode("utf-8"),
            {"Content-Type": "application/json", "Accept": "application/json"},
        )
        if status != 200:
            problems.append(f"JSON records: HTTP {status}: {body[:2000]!r}")
        else:
            labels, numbers, label_lists = served_json(table, body)
            figures["json"] = parity(table, run.refit["holdout"], labels, numbers)
            if not within_tolerance(table, figures["json"]):
                problems.append(f"JSON predictions differ from scikit-learn's: {figures['json']}")
            if table.classes and any(lst != list(table.classes) for lst in label_lists):
                problems.append(f"JSON 'labels' are {label_lists[0]}, expected {list(table.classes)}")
        status, body, _ = request(
            server.port,
            "POST",
            "/invocations",
            table.csv_body().encode("utf-8"),
            {"Content-Type": "text/csv; charset=utf-8", "Accept": "text/csv"},
        )
        if status != 200:
            problems.append(f"CSV rows: HTTP {status}: {body[:2000]!r}")
        else:
            labels, numbers = served_csv(table, body)
            figures["csv"] = parity(table, run.refit["holdout"], labels, numbers)
            if not within_tolerance(table, figures["csv"]):
                problems.append(f"CSV predictions differ from scikit-learn's: {figures['csv']}")
    finally:
        server.stop()

    # The capture of the JSON request holds the records under the exact original names.
    captured = [
        json.loads(line)
        for path in sorted(capture.rglob("*.jsonl"))
        for line in path.read_text("utf-8").splitlines()
    ]
    inputs = [c["captureData"]["endpointInput"] for c in captured]
    json_inputs = [i for i in inputs if i["observedContentType"].startswith("application/json")]
    if len(inputs) != 2 or len(json_inputs) != 1:
        problems.append(
            f"expected 2 captured requests (1 JSON), found {len(inputs)} ({len(json_inputs)} JSON)"
        )
    elif json_inputs[0]["encoding"] != "JSON":
        problems.append(f"the JSON request was captured as {json_inputs[0]['encoding']}")
    else:
        keys = list(json.loads(json_inputs[0]["data"])["instances"][0])
        if keys != table.feature_names[::-1]:
            problems.append(f"the captured JSON request names {keys}, expected {table.feature_names[::-1]}")

    figures["problems"] = problems
    assert not problems, f"{name} ({table.shape}):\n- " + "\n- ".join(problems)


@pytest.mark.parametrize("name", [t.name for t in BAD])
def test_bad_input_is_refused_naming_the_columns(name, corpus_runs, parity_report):
    run = corpus_runs[name]
    table = run.table
    parity_report[name] = {"shape": table.shape, "pipeline_seconds": round(run.seconds, 1), "exit": run.code}
    assert run.code != 0, f"{name}: {table.shape}: the pipeline did not refuse the data\n{run.output()}"
    assert run.failed_step() == "validate data", (
        f"{name}: refused at step {run.failed_step()!r}, not at 'validate data'\n{run.output()}"
    )
    unnamed = [n for n in table.must_name if n not in run.stderr]
    assert not unnamed, f"{name}: the error does not name the columns {unnamed}:\n{run.stderr[-4000:]}"
    unsaid = [s for s in table.must_say if not re.search(rf"(?<!\d){re.escape(s)}(?!\d)", run.stderr)]
    assert not unsaid, f"{name}: the error does not say {unsaid}:\n{run.stderr[-4000:]}"
    assert not list(run.registry.rglob("package.json")), f"{name}: a refused run registered a model"
