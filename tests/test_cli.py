import json
import subprocess
import sys

import pytest

from refsnn.cli import main
from tests.helpers import usage_error


@pytest.mark.parametrize("preset", ["smooth", "paper", "default"])
def test_gradcheck_json(capsys, preset):
    assert main(["gradcheck", "--preset", preset, "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ok"] is True and out["preset"] == preset
    twin = out["sections"][1]["fields"]
    assert all(r["exact"] and r["passed"] and r["max_rel"] <= 1e-6 for r in twin.values())
    preset_rows = out["sections"][0]["fields"]
    assert preset_rows["w_out"]["exact"] and preset_rows["w_out"]["passed"]


def test_gradcheck_table(capsys):
    assert main(["gradcheck"]) == 0
    text = capsys.readouterr().out
    assert "worst rel. error" in text and "all exact gradients agree" in text
    assert text.count(" ok") >= 20


def test_bad_argument_exits_2_with_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "refsnn.cli", "gradcheck", "--preset", "nope"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "invalid choice: 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.rstrip().endswith("(see 'refsnn gradcheck --help')")


@pytest.mark.parametrize("argv, message, help_of", [
    ([], "the following arguments are required: command", "refsnn"),
    (["gradcheck", "--nope"], "unrecognized arguments: --nope", "refsnn gradcheck"),
    (["train", "--epochs", "2", "extra"], "unrecognized arguments: extra", "refsnn train"),
])
def test_usage_errors_point_to_the_help_that_lists_the_options(argv, message, help_of, capsys):
    """An unknown option of a command is reported with that command's help, not the top's."""
    err = usage_error(capsys, *argv)
    assert err == f"refsnn: error: {message} (see '{help_of} --help')\n"
