"""k shards profiled apart and merged give what one pass over all the data gives."""

from __future__ import annotations

import pytest

from monitoring import drift_job
from monitoring.tests.conftest import read_json, run_job, traffic, write_captures


@pytest.fixture(scope="module")
def shards(tmp_path_factory, schema, baseline_dir):
    tmp = tmp_path_factory.mktemp("shards")
    rows = traffic(schema, 3000, seed=31, drift={"usage_gb": 25.0})
    everything = tmp / "all"
    for k in range(3):
        write_captures(tmp / f"shard{k}", schema, rows[k * 1000 : (k + 1) * 1000], name=f"part{k}.jsonl")
        write_captures(everything, schema, rows[k * 1000 : (k + 1) * 1000], name=f"part{k}.jsonl")
    single = run_job(baseline_dir, tmp / "single", everything)
    for k in range(3):
        run_job(baseline_dir, tmp / f"out{k}", tmp / f"shard{k}")
    merged = drift_job.main(
        [
            "merge",
            "--baseline-dir",
            str(baseline_dir),
            "--input",
            *(str(tmp / f"out{k}") for k in range(3)),
            "--output-dir",
            str(tmp / "merged"),
        ]
    )
    return tmp, single, merged


def test_merged_shards_give_the_single_pass_verdict(shards):
    tmp, single, merged = shards
    assert single == merged == 2
    assert read_json(tmp / "merged" / "constraint_violations.json") == read_json(
        tmp / "single" / "constraint_violations.json"
    )


def test_merged_counts_and_histograms_equal_the_single_pass_exactly(shards):
    tmp, _, _ = shards
    one = read_json(tmp / "single" / "statistics.json")
    merged = read_json(tmp / "merged" / "statistics.json")
    assert one["dataset"] == merged["dataset"]
    for a, b in zip(one["features"], merged["features"], strict=True):
        stats_a = a.get("numerical_statistics") or a["string_statistics"]
        stats_b = b.get("numerical_statistics") or b["string_statistics"]
        assert stats_a["common"] == stats_b["common"]
        if "numerical_statistics" in a:
            assert stats_a["distribution"]["kll"]["buckets"] == stats_b["distribution"]["kll"]["buckets"]
            assert (stats_a["min"], stats_a["max"]) == (stats_b["min"], stats_b["max"])
            assert stats_b["mean"] == pytest.approx(stats_a["mean"], rel=1e-12)
            assert stats_b["std_dev"] == pytest.approx(stats_a["std_dev"], rel=1e-9)
        else:
            assert stats_a["distribution"] == stats_b["distribution"]


def test_merged_quantiles_are_within_the_sketch_rank_error(shards, schema, baseline_dir):
    import numpy as np

    from monitoring.drift_statistics import Profile
    from monitoring.violations import Baseline

    tmp, _, _ = shards
    rows = traffic(schema, 3000, seed=31, drift={"usage_gb": 25.0})
    edges = Baseline.edges(read_json(baseline_dir / "statistics.json"))
    merged = Profile(schema.features, edges=edges)
    for k in range(3):
        merged.merge(Profile.from_state(schema.features, read_json(tmp / f"out{k}" / "state.json")["features"]))
    for j, feature in enumerate(schema.features):
        if not feature.is_numeric:
            continue
        exact = np.array([float(r[j]) for r in rows if r[j] != ""])
        column = merged.columns[feature.name]
        epsilon = 2 * column.sketch.normalized_rank_error(False)
        for level in (0.1, 0.25, 0.5, 0.75, 0.9):
            value = column.quantiles([level])[0]
            below, at_or_below = (exact < value).mean(), (exact <= value).mean()
            assert below - epsilon <= level <= at_or_below + epsilon, (feature.name, level)


def test_merging_a_state_from_another_baseline_is_refused(tmp_path, shards, baseline_dir):
    tmp, _, _ = shards
    state = read_json(tmp / "out0" / "state.json")
    state["features"]["features"][1]["edges"] = [1.0, 2.0]
    state["features"]["features"][1]["histogram"] = [0, 0, 0]
    bad = tmp_path / "state.json"
    bad.write_text(__import__("json").dumps(state), encoding="utf-8")
    code = drift_job.main(
        [
            "merge",
            "--baseline-dir",
            str(baseline_dir),
            "--input",
            str(tmp / "out1"),
            str(bad),
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
