"""The README's "Train on your own table", as written: make schema -> review -> make pipeline -> make serve.

The commands come from the marked block of the baked repository's README.md (docs/own-table.md repeats the
same block), so the walk-through a user follows is the one tested: a step renamed or dropped breaks this test.
The table is not the sample: its headers hold spaces, slashes, quotes, commas, unicode, a 200-character name
and names differing only in case, it has an ID column and a yes/no label whose name is a question.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.baking import ROOT, TEMPLATE_DIR_NAME, bake_cookiecutter
from tests.test_generated_project import make

MARKER = "<!-- walkthrough:commands"
TARGET = "Will churn? (yes/no)"
LONG_NAME = "very long column name " + "x" * 178
FEATURES = ["monthly charges ($)", "km/h", 'say "hi"', "a, b", "größe ✓", LONG_NAME, "Plan", "plan", "Sex"]
HEADER = ["customer id", *FEATURES, TARGET]


def walkthrough_commands(doc: str) -> list[list[str]]:
    """The `make` lines of the fenced block that follows the marker comment, split as a shell would."""
    start = doc.index(MARKER)
    block = re.search(r"```[a-z]*\n(.*?)```", doc[start:], re.DOTALL)
    assert block, f"no fenced block after {MARKER!r} in docs/own-table.md"
    return [
        shlex.split(line.split("  #")[0]) for line in block.group(1).splitlines() if line.startswith("make ")
    ]


def write_table(path: Path, rows: int = 800, seed: int = 11) -> Path:
    """A learnable churn table: the label follows charges, speed and plan, with noise. One draw per row; each
    column of HEADER is a function of the row number and the draw (Plan and plan: one value in two cases)."""
    rng = random.Random(seed)
    columns = {
        "customer id": lambda i, d: f"C{i:05d}",
        "monthly charges ($)": lambda i, d: d["charges"] if rng.random() > 0.05 else "",
        "km/h": lambda i, d: d["speed"],
        'say "hi"': lambda i, d: rng.choice(["hello", "bonjour"]),
        "a, b": lambda i, d: rng.choice(["x", "y"]),
        "größe ✓": lambda i, d: round(rng.gauss(170, 10), 1),
        LONG_NAME: lambda i, d: rng.randint(1, 3),
        "Plan": lambda i, d: d["plan"],
        "plan": lambda i, d: d["plan"].upper(),
        "Sex": lambda i, d: rng.choice(["F", "M"]),
        TARGET: lambda i, d: "yes" if d["score"] > 0.4 else "no",
    }
    assert list(columns) == HEADER
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            draw = {"charges": round(rng.uniform(5, 150), 2), "speed": rng.randint(0, 130)}
            draw["plan"] = rng.choice(["basic", "pro", "team plan"])
            draw["score"] = (
                0.05 * (draw["charges"] - 80)
                - 0.03 * (draw["speed"] - 65)
                + (draw["plan"] == "basic")
                + rng.gauss(0, 0.8)
            )
            writer.writerow([make_cell(i, draw) for make_cell in columns.values()])
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_readme_and_the_guide_mark_the_same_walkthrough_commands():
    template = ROOT / TEMPLATE_DIR_NAME
    readme = walkthrough_commands((template / "README.md").read_text(encoding="utf-8"))
    guide = walkthrough_commands((template / "docs" / "own-table.md").read_text(encoding="utf-8"))
    assert [command[1] for command in readme] == ["schema", "pipeline", "serve"]
    assert readme == guide


def test_the_sample_contract_copy_matches_the_shipped_contract():
    """data/sample_schema.json is how `make schema` recognises the untouched sample contract: same source."""
    template = ROOT / TEMPLATE_DIR_NAME
    shipped = (template / "model" / "config" / "schema.json").read_bytes()
    assert (template / "data" / "sample_schema.json").read_bytes() == shipped


@pytest.mark.slow
def test_the_own_table_walkthrough_ends_with_a_registered_and_served_model(
    template_repo, tmp_path, e2e_venv, inference_venv
):
    answers = {"python_version": "3.11", "license": "MIT", "problem_type": "binary_classification"}
    project = bake_cookiecutter(template_repo, answers, tmp_path / "bake")
    table = write_table(tmp_path / "my table (v2).csv")
    commands = walkthrough_commands((project / "README.md").read_text(encoding="utf-8"))
    values = {"DATA": str(table), "TARGET": TARGET}
    port = free_port()
    make(project, "setup", e2e_venv, timeout=1800)
    for command in commands:
        target = command[1]
        variables = dict(arg.split("=", 1) for arg in command[2:])
        assert set(variables) <= set(values), f"unexpected variables in the doc's `{shlex.join(command)}`"
        variables = {key: values[key] for key in variables}
        if target == "schema":
            out = make(project, target, e2e_venv, timeout=300, **variables).stdout
            schema = json.loads((project / "model" / "config" / "schema.json").read_text(encoding="utf-8"))
            assert schema["target"] == TARGET and schema["sensitive_features"] == []
            assert [f["name"] for f in schema["features"]] == FEATURES, "every name kept, the ID excluded"
            assert "positive class 'yes' is a guess" in out and "'Sex'" in out
        elif target == "pipeline":
            out = make(project, target, e2e_venv, timeout=1200, **variables).stdout
            assert "pipeline finished" in out, out[-3000:]
            gates = re.search(r"gates passed\D*(\d+)/(\d+)", out)
            assert gates and gates.group(1) == gates.group(2), out[-3000:]
            assert re.search(r"registered\s*\|.*v1", out), out[-3000:]
        else:
            assert target == "serve", f"the walk-through runs `make {target}`, which this test does not know"
            answer = serve_one_request(project, e2e_venv, inference_venv, port, schema, table)
            assert answer["predictions"][0]["labels"] == ["no", "yes"]
    registry = make(project, "registry", e2e_venv, timeout=120).stdout
    assert re.search(r"(?m)^1\s+PendingManualApproval", registry), registry


def serve_one_request(
    project: Path, venv: Path, inference_venv: Path, port: int, schema: dict, table: Path
) -> dict:
    """`make serve` in the background, one JSON request keyed by the hostile feature names, then SIGTERM."""
    env = {key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    command = ["make", "-C", str(project), "serve", f"VENV={venv}", f"INFERENCE_VENV={inference_venv}"]
    server = subprocess.Popen(
        [*command, f"PORT={port}", "CAPTURE_PERCENT=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"`make serve` exited {server.returncode}:\n{server.stdout.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "`make serve` did not answer /ping within 120 s"
            time.sleep(0.5)
        with open(table, newline="", encoding="utf-8") as handle:
            row = next(csv.DictReader(handle))
        record = {f["name"]: row[f["name"]] for f in schema["features"]}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"instances": [record]}).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
