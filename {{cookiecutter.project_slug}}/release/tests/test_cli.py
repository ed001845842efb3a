"""release.py's command line: exit status and messages for the user."""

from __future__ import annotations

import pytest

from release import release


def test_bad_input_exits_2_with_the_problem_and_the_fix(toolchain, capsys):
    assert release.main(["approve", "--package", "42"]) == 2
    out = capsys.readouterr().out
    assert "error: model package group" in out and "what to do:" in out


def test_status_prints_every_environment(toolchain, capsys):
    assert release.main(["status"]) == 0
    out = capsys.readouterr().out
    assert all(env in out for env in ("dev", "staging", "prod")) and "model package group" in out


def test_dry_run_flag_reaches_the_command(toolchain, capsys):
    assert release.main(["deploy", "--env", "staging", "--dry-run"]) == 2  # nothing approved yet
    assert "has no Approved model package" in capsys.readouterr().out


def test_unknown_environment_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        release.main(["deploy", "--env", "qa"])
    assert exit_info.value.code == 2
