"""Unreadable input is counted by kind and reported; it never crashes the job and is never silently dropped."""

from __future__ import annotations

import json

import pytest

from monitoring.tests.conftest import capture_record, read_json, run_job, traffic, write_captures


def job_with(tmp_path, schema, baseline_dir, lines: list[str], name: str = "bad.jsonl") -> dict:
    """100 good rows plus the given raw capture lines; returns summary.json."""
    folder = tmp_path / "capture"
    write_captures(folder, schema, traffic(schema, 100, seed=41))
    (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    code = run_job(baseline_dir, tmp_path / "out", folder)
    assert code in (0, 2)
    return read_json(tmp_path / "out" / "summary.json")


def record(schema, **changes) -> dict:
    rec = capture_record(schema, traffic(schema, 2, seed=42), "event-x", "inference-x")
    for path, value in changes.items():
        target = rec
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[key]
        if value is None:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return rec


@pytest.mark.parametrize(
    ("kind", "make_line"),
    [
        ("malformed_line", lambda s: "{not json"),
        ("malformed_line", lambda s: json.dumps({"eventVersion": "0"})),
        ("unknown_encoding", lambda s: json.dumps(record(s, captureData__endpointInput__encoding="UTF16"))),
        (
            "undecodable_payload",
            lambda s: json.dumps(
                record(
                    s, captureData__endpointInput__encoding="BASE64", captureData__endpointInput__data="%%%not base64"
                )
            ),
        ),
        (
            "undecodable_payload",
            lambda s: json.dumps(
                record(
                    s,
                    captureData__endpointInput__observedContentType="application/json",
                    captureData__endpointInput__data="[1, 2",
                )
            ),
        ),
        (
            "unsupported_content_type",
            lambda s: json.dumps(record(s, captureData__endpointInput__observedContentType="image/png")),
        ),
        ("empty_capture", lambda s: json.dumps(record(s, captureData__endpointInput__data=""))),
        ("wrong_width_row", lambda s: json.dumps(record(s, captureData__endpointInput__data="1,2,3"))),
        ("missing_output", lambda s: json.dumps(record(s, captureData__endpointOutput=None))),
        ("undecodable_output", lambda s: json.dumps(record(s, captureData__endpointOutput__data='{"x": 1}'))),
    ],
)
def test_each_kind_of_bad_capture_is_counted(tmp_path, schema, baseline_dir, kind, make_line):
    summary = job_with(tmp_path, schema, baseline_dir, [make_line(schema)])
    assert summary["bad_input"]["by_kind"].get(kind) == 1, summary["bad_input"]
    assert summary["records"] >= 100
    assert kind in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_an_empty_capture_file_is_counted(tmp_path, schema, baseline_dir):
    summary = job_with(tmp_path, schema, baseline_dir, [])
    assert summary["bad_input"]["by_kind"] == {"empty_capture": 1}


def test_unknown_record_keys_are_counted_and_raise_extra_column_check(tmp_path, schema, baseline_dir):
    row = dict(zip(schema.feature_names, traffic(schema, 1, seed=43)[0], strict=True)) | {"coupon": "X1"}
    rec = record(schema)
    rec["captureData"]["endpointInput"].update(
        observedContentType="application/jsonlines", data=json.dumps(row), encoding="JSON"
    )
    summary = job_with(tmp_path, schema, baseline_dir, [json.dumps(rec)])
    assert summary["bad_input"]["by_kind"]["unknown_column"] == 1
    assert summary["bad_input"]["extra_columns"] == {"coupon": 1}
    violations = read_json(tmp_path / "out" / "constraint_violations.json")["violations"]
    assert ("coupon", "extra_column_check") in {(v["feature_name"], v["constraint_check_type"]) for v in violations}


def test_a_wrongly_typed_value_is_kept_out_of_the_statistics_but_counted(tmp_path, schema, baseline_dir):
    rows = traffic(schema, 2, seed=44)
    rows[0][1] = "lots"
    rec = record(schema)
    rec["captureData"]["endpointInput"]["data"] = "\n".join(",".join(map(str, r)) for r in rows)
    summary = job_with(tmp_path, schema, baseline_dir, [json.dumps(rec)])
    assert summary["issues_by_feature"]["monthly_charges"] == {"type_error": 1}
    assert summary["records"] == 102


def test_a_corrupt_parquet_file_is_counted_as_unreadable(tmp_path, schema, baseline_dir):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    write_captures(folder, schema, traffic(schema, 100, seed=45))
    assert run_job(baseline_dir, tmp_path / "out", folder) in (0, 2)
    assert read_json(tmp_path / "out" / "summary.json")["bad_input"]["by_kind"] == {"unreadable_file": 1}
