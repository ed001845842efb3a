"""Plain CSV and Parquet batches: the column and value checks of constraints.json, and bounded chunks."""

from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.parquet as pq

from monitoring.tests.conftest import read_json, run_job, traffic


def write_csv(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def checks(output_dir) -> set[tuple[str, str]]:
    violations = read_json(output_dir / "constraint_violations.json")["violations"]
    return {(v["feature_name"], v["constraint_check_type"]) for v in violations}


def test_a_headered_csv_with_the_target_and_an_unknown_column(tmp_path, schema, baseline_dir):
    rows = [[*r, "no", "x"] for r in traffic(schema, 500, seed=51)]
    write_csv(tmp_path / "batch.csv", [*schema.feature_names, schema.target, "debug_flag"], rows)
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "batch.csv") == 2
    assert checks(tmp_path / "out") == {("debug_flag", "extra_column_check")}


def test_a_headerless_csv_in_schema_order_passes(tmp_path, schema, baseline_dir):
    write_csv(tmp_path / "batch.csv", None, traffic(schema, 500, seed=52))
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "batch.csv") == 0


def test_wrong_types_unknown_categories_and_gaps_raise_their_checks(tmp_path, schema, baseline_dir):
    rows = traffic(schema, 500, seed=53)
    for i, row in enumerate(rows):
        if i % 10 == 0:
            row[schema.feature_names.index("usage_gb")] = "n/a"
        if i % 10 == 1:
            row[schema.feature_names.index("payment_method")] = "crypto"
        if i % 2 == 0:
            row[schema.feature_names.index("monthly_charges")] = ""
    write_csv(tmp_path / "batch.csv", schema.feature_names, rows)
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "batch.csv") == 2
    found = checks(tmp_path / "out")
    assert {
        ("usage_gb", "data_type_check"),
        ("payment_method", "categorical_values_check"),
        ("monthly_charges", "completeness_check"),
    } <= found


def test_a_parquet_batch_without_a_feature_raises_missing_column_check(tmp_path, schema, baseline_dir):
    rows = traffic(schema, 500, seed=54)
    columns = {}
    for j, name in enumerate(schema.feature_names):
        values = [r[j] if r[j] != "" else None for r in rows]
        columns[name] = pa.array(
            values if not schema.feature(name).is_numeric else [None if v is None else float(v) for v in values]
        )
    del columns["support_calls"]
    pq.write_table(pa.table(columns), tmp_path / "batch.parquet")
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "batch.parquet") == 2
    assert checks(tmp_path / "out") == {("support_calls", "missing_column_check")}


def test_small_chunks_give_the_same_statistics_as_one_chunk(tmp_path, schema, baseline_dir):
    write_csv(tmp_path / "batch.csv", schema.feature_names, traffic(schema, 3000, seed=55))
    run_job(baseline_dir, tmp_path / "big", tmp_path / "batch.csv")
    run_job(baseline_dir, tmp_path / "small", tmp_path / "batch.csv", extra=("--chunk-rows", "100"))
    big, small = read_json(tmp_path / "big" / "statistics.json"), read_json(tmp_path / "small" / "statistics.json")
    for a, b in zip(big["features"], small["features"], strict=True):
        if "numerical_statistics" in a:
            assert (
                a["numerical_statistics"]["distribution"]["kll"]["buckets"]
                == b["numerical_statistics"]["distribution"]["kll"]["buckets"]
            )


def test_a_missing_baseline_exits_1(tmp_path, schema):
    write_csv(tmp_path / "batch.csv", None, traffic(schema, 10, seed=56))
    assert run_job(tmp_path / "no-baseline", tmp_path / "out", tmp_path / "batch.csv") == 1


def test_a_missing_input_exits_1(tmp_path, baseline_dir):
    assert run_job(baseline_dir, tmp_path / "out", tmp_path / "nothing-here") == 1
