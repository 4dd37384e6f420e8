"""The hands-on scripts' parser: a usage mistake is one line naming the script, exit 2."""

from __future__ import annotations

import pytest

from meshflow_nb import ScriptParser


def test_a_usage_error_is_one_line_naming_the_script_and_help(capsys) -> None:
    parser = ScriptParser(prog="07_budgets.py")
    parser.add_argument("--runs", type=int)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--runs", "many"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err == "07_budgets.py: error: argument --runs: invalid int value: 'many' (see --help)\n"


def test_help_still_prints_the_usage(capsys) -> None:
    parser = ScriptParser(prog="07_budgets.py", description="Run the capstone under a budget.")
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--help"])
    assert stop.value.code == 0
    assert "usage: 07_budgets.py" in capsys.readouterr().out
