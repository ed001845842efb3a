"""`make bench` (python -m model.inference.bench) end to end: a short load on the project's own model."""

from __future__ import annotations

import json

import pytest

from model.inference import bench
from model.tests.serving import run_benchmark

pytestmark = pytest.mark.slow


def test_bench_measures_the_server_and_says_where_its_cpu_goes(trained, tmp_path):
    figures_path = tmp_path / "figures.json"
    stdout = run_benchmark(
        "model.inference.bench",
        *("--model-dir", str(trained.model_dir), "--no-wrk", "--requests", "400", "--connections", "4"),
        *("--skip-install-size", "--json", str(figures_path)),
    )
    figures = json.loads(figures_path.read_text())
    loads = ("single_row", "single_row_one_connection", "rows_1000")
    assert all(figures[load]["errors"] == 0 and figures[load]["requests"] > 0 for load in loads)
    assert 0 < figures["cold_start_s"] < 30 and figures["peak_rss_mb"] > figures["peak_pss_mb"] > 0
    handlers = figures["handlers_ms"]
    assert all(set(handlers[load]) == set(bench.HANDLERS) for load, _ in bench.LOADS)
    assert all(ms > 0 for load, _ in bench.LOADS for ms in handlers[load].values())
    # Parsing and scoring 1000 rows costs more than one row: the timings measure the work, not a constant.
    assert handlers["rows_1000"]["input_fn"] > handlers["single_row"]["input_fn"]
    assert handlers["rows_1000"]["predict_fn"] > handlers["single_row"]["predict_fn"]
    breakdown = bench.cpu_breakdown(figures)
    for load, label in bench.LOADS:
        row = breakdown[load]
        assert row["rest"] >= 0 and row["server_cpu"] == figures[load]["server_cpu_ms_per_request"]
        assert any(line.split()[:1] == [label] for line in stdout.splitlines()), stdout
    assert "where the server CPU per request goes" in stdout


def test_the_breakdown_never_reports_a_negative_rest():
    """Handler timings from a quiet moment can exceed a noisy CPU-per-request figure: the rest is then 0."""
    figures = {
        "single_row": {"server_cpu_ms_per_request": 0.05},
        "rows_1000": {"server_cpu_ms_per_request": 5.0},
        "handlers_ms": {
            "single_row": {"input_fn": 0.02, "predict_fn": 0.03, "output_fn": 0.01},
            "rows_1000": {"input_fn": 1.0, "predict_fn": 2.5, "output_fn": 0.5},
        },
    }
    breakdown = bench.cpu_breakdown(figures)
    assert breakdown["single_row"]["rest"] == 0.0
    assert breakdown["rows_1000"]["rest"] == pytest.approx(1.0)
