"""``refsnn validate``: text and JSON reports, missing frameworks, errors."""

import json
import subprocess
import sys

import pytest

from refsnn.cli import main
from tests.helpers import usage_error


def run_json(capsys, *argv):
    code = main(["validate", *argv, "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(lines[-1])


def test_json_last_line(capsys):
    pytest.importorskip("torch")
    code, out = run_json(capsys, "--against", "torch,paper", "--examples", "3")
    assert code == 0
    assert set(out) == {"frameworks"} and list(out["frameworks"]) == ["torch", "paper"]
    for rec in out["frameworks"].values():
        assert rec["cases"] == 3 and rec["passed"] == 3 and rec["failed"] == 0
        assert isinstance(rec["findings"], list) and rec["status"] == "pass"
        assert rec["worst"]["grad.w_in"]["rel"] <= rec["worst"]["grad.w_in"]["tol"]
        assert rec["counterexample"] is None


def test_text_report(capsys):
    pytest.importorskip("torch")
    assert main(["validate", "--against", "paper", "--examples", "2"]) == 0
    text = capsys.readouterr().out
    for piece in ("paper: PASS", "conventions supported:", "cases run 2, passed 2, failed 0",
                  "worst abs", "grad.threshold", "minimal counterexample: none",
                  "| framework |", "all agree with refsnn"):
        assert piece in text, piece


def test_all_names_every_framework_and_missing_ones_are_reported(capsys, monkeypatch):
    pytest.importorskip("torch")
    from validation.adapters import norse_lif

    monkeypatch.setattr(norse_lif.NorseAdapter, "requires", ("torch", "norse_is_not_here"))
    code, out = run_json(capsys, "--against", "all", "--examples", "2")
    fw = out["frameworks"]
    assert list(fw) == ["torch", "paper", "snntorch", "norse", "spikingjelly"]
    assert fw["norse"]["status"] == "not installed" and fw["norse"]["cases"] == 0
    assert "pip install --no-deps norse==1.1.0" in fw["norse"]["install"]
    assert code == 1  # a missing framework is never a pass
    main(["validate", "--against", "norse", "--examples", "2"])
    text = capsys.readouterr().out
    assert "NOT INSTALLED" in text and "not installed (not checked): norse" in text


def one_line_error(*argv):
    proc = subprocess.run([sys.executable, "-m", "refsnn.cli", "validate", *argv],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    return proc.stderr


def test_usage_errors_exit_2_with_one_line(capsys):
    assert "unknown framework 'nope'" in one_line_error("--against", "torch,nope")
    assert "--against" in usage_error(capsys, "validate", "--examples", "3")
    assert "positive integer" in usage_error(capsys, "validate", "--against", "torch",
                                             "--examples", "0")
    assert "invalid choice" in usage_error(capsys, "validate", "--against", "torch",
                                           "--device", "tpu")


def test_cuda_without_a_gpu_is_an_error(capsys):
    torch = pytest.importorskip("torch")

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["validate", "--against", "norse", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_registering_validate_does_not_import_torch():
    code = ("import sys; from refsnn.cli import build_parser; build_parser(); "
            "import validation.gradcheck; print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
