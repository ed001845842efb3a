"""Batch scoring with Batch Transform's semantics (batch.run), against the real inference server on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import pytest

from batch import run as batch_run
from batch.transform import (
    ExecutionParameters,
    FilterError,
    JsonPath,
    SettingsError,
    TransformSettings,
)
from model.tests.fixtures_inference import feature_records, feature_rows
from model.tests.serving import PYTHON, Server, run_benchmark

pytest_plugins = ("model.tests.fixtures_inference",)
pytestmark = pytest.mark.slow

ID = "customer id/#"  # an ID column with an awkward name, kept out of the model's input


@pytest.fixture(scope="module")
def model_dir(artifacts) -> Path:
    return artifacts["binary_classification"]


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    started = Server(model_dir, tmp_path_factory.mktemp("batch-serve") / "server.log")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def names(model_dir) -> list[str]:
    return [f["name"] for f in json.loads((model_dir / "schema.json").read_text())["features"]]


def write_csv(path: Path, names: list[str], rows: list[list[str]], header: bool = True, ids: bool = True) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(([ID] if ids else []) + names)
    for i, row in enumerate(rows):
        writer.writerow(([f"id-{i}"] if ids else []) + row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def transform(model_dir, server, source, output, **settings):
    options = {k: settings.pop(k) for k in ("max_failed", "header") if k in settings}
    return batch_run.transform(
        model_dir=model_dir,
        input_location=str(source),
        output=output,
        settings=TransformSettings(**settings),
        url=f"http://127.0.0.1:{server.port}",
        progress_stream=io.StringIO(),
        **options,
    )


def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text(encoding="utf-8").splitlines()))


# ---------------------------------------------------------------------------------------------- JSONPath
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$", ["a", "b", "c", "d"]),
        ("$[1:]", ["b", "c", "d"]),
        ("$[0,2]", ["a", "c"]),
        ("$[0,2:]", ["a", "c", "d"]),
        ("$[:-1]", ["a", "b", "c"]),
        ("$[-1]", "d"),
        ("$[*]", ["a", "b", "c", "d"]),
    ],
)
def test_index_filters_select_csv_fields(expression, expected):
    assert JsonPath.parse(expression).apply(["a", "b", "c", "d"]) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$.features", {"x": 1, "y": [1, 2]}),
        ("$['id','features']", {"id": 7, "features": {"x": 1, "y": [1, 2]}}),
        ("$.features.y[1:]", [2]),
        ("$.features.['x']", 1),
        ('$["id"]', 7),
    ],
)
def test_name_filters_select_json_members(expression, expected):
    assert JsonPath.parse(expression).apply({"id": 7, "features": {"x": 1, "y": [1, 2]}}) == expected


@pytest.mark.parametrize("expression", ["features", "$..x", "$[a]", "$[1:2:3]", "$[0", "$." + "x" * 70])
def test_filters_outside_the_supported_subset_are_refused_with_the_forms_listed(expression):
    with pytest.raises(SettingsError, match=r"InputFilter = .*\$\[1:\]"):
        TransformSettings(input_filter=expression)


def test_an_index_outside_the_record_is_an_error_as_in_batch_transform():
    with pytest.raises(FilterError, match="index 5 is outside the record's 2 values"):
        JsonPath.parse("$[5]").apply(["a", "b"])


def test_settings_refuse_a_budget_over_100_mb_naming_both_settings():
    with pytest.raises(SettingsError, match="MaxConcurrentTransforms x MaxPayloadInMB = '20 x 6'"):
        TransformSettings(max_concurrent_transforms=20, max_payload_in_mb=6)


def test_settings_round_trip_through_create_transform_job_fields():
    settings = TransformSettings(
        max_concurrent_transforms=4, max_payload_in_mb=2, batch_strategy="SingleRecord", input_filter="$[1:]",
        output_filter="$[0,-1]", join_source="Input", accept="text/csv",
    )  # fmt: skip
    api = settings.to_api()
    assert api["DataProcessing"] == {"InputFilter": "$[1:]", "OutputFilter": "$[0,-1]", "JoinSource": "Input"}
    assert TransformSettings.from_api(api) == settings


def test_unset_settings_come_from_the_containers_execution_parameters():
    container = {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 4}
    resolved = ExecutionParameters.resolve(TransformSettings(max_payload_in_mb=1), container)
    assert (resolved.max_concurrent_transforms, resolved.max_payload_in_mb, resolved.batch_strategy) == (
        3,
        1,
        "SingleRecord",
    )
    assert ExecutionParameters.resolve(TransformSettings(), None) == ExecutionParameters(1, 6, "MultiRecord")


# ------------------------------------------------------------------------------ against the real server
def test_small_max_payload_splits_into_many_requests_none_over_the_limit(model_dir, names, tmp_path):
    rows = list(itertools.islice(itertools.cycle(feature_rows(200)), 40_000))
    source = write_csv(tmp_path / "big.csv", names, rows)
    assert source.stat().st_size > 1.5 * 1024 * 1024
    log = tmp_path / "server.log"
    result = batch_run.transform(
        model_dir=model_dir,
        input_location=str(source),
        output=tmp_path / "out.csv",
        settings=TransformSettings(max_payload_in_mb=1, input_filter="$[1:]", join_source="Input"),
        python=PYTHON,
        server_log=log,
        progress_stream=io.StringIO(),
    )
    invocations = [json.loads(line) for line in log.read_text().splitlines() if '"/invocations"' in line]
    assert len(invocations) >= 2  # about 1.3 MB of features in requests of at most 1 MB
    assert max(r["bytes"] for r in invocations) <= 1024 * 1024
    assert sum(r["rows"] for r in invocations) == len(rows)
    assert result.stats.max_request_bytes <= 1024 * 1024
    out = read_rows(tmp_path / "out.csv")
    assert [r[0] for r in out[1:]] == [f"id-{i}" for i in range(len(rows))]  # input order kept across batches


def test_max_concurrent_transforms_requests_are_in_flight(model_dir, server, names, tmp_path):
    source = write_csv(tmp_path / "rows.csv", names, feature_rows(120))
    result = transform(
        model_dir, server, source, tmp_path / "out.csv", input_filter="$[1:]",
        batch_strategy="SingleRecord", max_concurrent_transforms=3,
    )  # fmt: skip
    assert result.stats.requests == 120
    assert result.stats.peak_in_flight == 3
    assert result.parameters.max_concurrent_transforms == 3


def test_output_matches_direct_invocations_and_keeps_the_id_joined(model_dir, server, names, tmp_path):
    rows = feature_rows(30)
    source = write_csv(tmp_path / "rows.csv", names, rows)
    transform(model_dir, server, source, tmp_path / "out.csv", input_filter="$[1:]", join_source="Input")
    out = read_rows(tmp_path / "out.csv")
    assert out[0] == [ID, *names, "predicted_label", "probability_no", "probability_yes"]
    from model.tests.fixtures_inference import csv_body
    from model.tests.serving import invoke

    _, _, direct = invoke(server.port, csv_body(rows), accept="text/csv")
    expected = list(csv.reader(direct.decode().splitlines()))
    assert [r[0] for r in out[1:]] == [f"id-{i}" for i in range(30)]
    assert [r[1:-3] for r in out[1:]] == rows
    assert [r[-3:] for r in out[1:]] == expected


def test_output_filter_cuts_the_joined_record(model_dir, server, names, tmp_path):
    source = write_csv(tmp_path / "rows.csv", names, feature_rows(5))
    transform(
        model_dir, server, source, tmp_path / "out.csv", input_filter="$[1:]", join_source="Input",
        output_filter="$[0,-1]",
    )  # fmt: skip
    out = read_rows(tmp_path / "out.csv")
    assert out[0] == [ID, "probability_yes"]
    assert all(len(r) == 2 and 0.0 <= float(r[1]) <= 1.0 for r in out[1:])


def test_json_lines_join_under_sagemaker_output(model_dir, server, tmp_path):
    records = [{"id": i, "features": record} for i, record in enumerate(feature_records(12))]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    transform(
        model_dir, server, source, tmp_path / "out.jsonl", input_filter="$.features", join_source="Input",
        output_filter="$['id','SageMakerOutput']",
    )  # fmt: skip
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == list(range(12))
    assert all(set(r) == {"id", "SageMakerOutput"} for r in out)
    assert all(r["SageMakerOutput"]["predicted_label"] in ("no", "yes") for r in out)


def test_a_folder_gives_one_out_file_per_input_in_its_format(model_dir, server, names, tmp_path):
    folder = tmp_path / "in"
    write_csv(folder / "a.csv", names, feature_rows(4), ids=False)
    (folder / "sub").mkdir()
    (folder / "sub" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in feature_records(3)))
    (folder / "_SUCCESS").write_text("")
    result = transform(model_dir, server, folder, tmp_path / "out")
    assert result.files == 2
    assert len(read_rows(tmp_path / "out" / "a.csv.out")) == 5  # header + 4
    lines = (tmp_path / "out" / "sub" / "b.jsonl.out").read_text().splitlines()
    assert [json.loads(line)["labels"] for line in lines] == [["no", "yes"]] * 3


def test_headerless_csv_is_scored_as_batch_transform_sends_it(model_dir, server, names, tmp_path):
    source = write_csv(tmp_path / "plain.csv", names, feature_rows(6), header=False, ids=False)
    result = transform(model_dir, server, source, tmp_path / "out.csv")
    out = read_rows(tmp_path / "out.csv")
    assert len(out) == 6 and out[0][0] in ("no", "yes")
    assert result.stats.records == 6


def bad_table(tmp_path, names, n: int = 40) -> tuple[Path, dict[int, str]]:
    rows = feature_rows(n)
    column = names.index("tenure_months")
    broken = {3: "-5", 7: "not a number", n - 1: "1e9"}  # line number (header = line 1) -> bad value
    for line, value in broken.items():
        rows[line - 2][column] = value
    return write_csv(tmp_path / "bad.csv", names, rows), broken


def test_bad_records_are_reported_with_line_numbers_and_nothing_is_written(model_dir, server, names, tmp_path):
    source, broken = bad_table(tmp_path, names)
    output = tmp_path / "out.csv"
    output.write_text("previous run\n")
    result = transform(model_dir, server, source, output, input_filter="$[1:]")
    assert result.output is None
    assert output.read_text() == "previous run\n"  # untouched: no partial output
    assert not list(tmp_path.glob(".out.csv*"))
    failures = [json.loads(line) for line in (tmp_path / "out.csv.failures.jsonl").read_text().splitlines()]
    assert [f["line"] for f in failures] == sorted(broken)
    assert all(f["kind"] == "invalid_data" and "tenure_months" in f["message"] for f in failures)
    assert all(broken[f["line"]] in f["record"] for f in failures)
    assert result.stats.failures == {"invalid_data": 3}


def test_max_failed_lets_output_through_with_a_blank_line_per_failed_record(model_dir, server, names, tmp_path):
    source, broken = bad_table(tmp_path, names)
    result = transform(model_dir, server, source, tmp_path / "out.csv", input_filter="$[1:]", max_failed=0.1)
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert result.output == tmp_path / "out.csv"
    assert len(lines) == 41
    assert [i + 1 for i, line in enumerate(lines) if not line] == sorted(broken)  # output line n = input line n


def test_cli_exit_status_follows_max_failed(model_dir, server, names, tmp_path, capsys):
    source, _ = bad_table(tmp_path, names)
    common = ["--model-dir", str(model_dir), "--input", str(source), "--url", f"http://127.0.0.1:{server.port}"]
    common += ["--input-filter", "$[1:]", "--output", str(tmp_path / "out.csv")]
    assert batch_run.main(common) == 1
    assert "no output written" in capsys.readouterr().err
    assert batch_run.main([*common, "--max-failed", "0.1"]) == 0
    assert "invalid_data" in capsys.readouterr().out  # the failures-by-kind table


def test_a_mismatched_header_is_refused_before_scoring_naming_every_column(model_dir, names, tmp_path, capsys):
    renamed = [names[0] + "_typo", *names[1:-1], "extra column"]
    source = write_csv(tmp_path / "wrong.csv", renamed, feature_rows(3))
    argv = ["--model-dir", str(model_dir), "--input", str(source), "--output", str(tmp_path / "out.csv")]
    argv += ["--url", "http://127.0.0.1:9", "--input-filter", "$[1:]"]  # nothing listens: scoring never starts
    assert batch_run.main(argv) == 2
    message = capsys.readouterr().err
    for column in (names[0], names[-1], names[0] + "_typo", "extra column"):
        assert repr(column) in message
    assert not (tmp_path / "out.csv").exists()


def test_a_header_with_extra_columns_gets_the_filter_that_selects_the_features(model_dir, names, tmp_path):
    source = write_csv(tmp_path / "table.csv", [*names, "label"], [[*r, "no"] for r in feature_rows(2)], ids=False)
    with pytest.raises(batch_run.UsageError, match=r"INPUT_FILTER='\$\[0:6\]'"):
        batch_run.transform(
            model_dir=model_dir, input_location=str(source), output=tmp_path / "o.csv",
            settings=TransformSettings(), url="http://127.0.0.1:9",
        )  # fmt: skip


def test_s3_prefix_input(model_dir, server, names, tmp_path, aws_env):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="batch-in")
    body = write_csv(tmp_path / "x.csv", names, feature_rows(5)).read_bytes()
    s3.put_object(Bucket="batch-in", Key="jobs/day1/part-0.csv", Body=body)
    s3.put_object(Bucket="batch-in", Key="jobs/day1/part-1.csv", Body=body)
    result = transform(model_dir, server, "s3://batch-in/jobs/day1/", tmp_path / "out", input_filter="$[1:]")
    assert result.stats.records == 10
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-0.csv.out", "part-1.csv.out"]


def test_explain_adds_attributions_keyed_by_line_that_add_up(model_dir, server, names, tmp_path, sample_data):
    from batch import explain

    source, broken = bad_table(tmp_path, names, n=10)
    settings = TransformSettings(input_filter="$[1:]")
    explainer = explain.BatchExplainer.prepare(model_dir, str(source), settings, "auto", sample_data, 100)
    result = transform(model_dir, server, source, tmp_path / "out.csv", input_filter="$[1:]", max_failed=0.5)
    written = explainer.run(result, settings, stream=io.StringIO())
    rows = list(csv.DictReader(written.open()))
    assert [int(r["line"]) for r in rows] == [n for n in range(2, 12) if n not in broken]
    for row in rows:
        total = float(row["base_value"]) + sum(float(row[f"shap_{n}"]) for n in names)
        assert total == pytest.approx(float(row["explained_output"]), abs=1e-6)
    with pytest.raises(batch_run.UsageError, match="explain-max-rows 5"):
        explain.BatchExplainer.prepare(model_dir, str(source), settings, "auto", sample_data, 5)


def test_the_batch_benchmark_runs_on_a_small_table(tmp_path):
    """`python -m batch.bench` (the 1M-row comparison in the README) end to end on 3,000 rows and a small artifact."""
    stdout = run_benchmark(
        "batch.bench", "--rows", "3000", "--train-rows", "800", "--python", PYTHON, "--work", str(tmp_path)
    )
    assert "in-process scikit-learn" in stdout and "rows/s" in stdout
