"""The ``refsnn train`` and ``refsnn compare`` commands."""

import json
import os
import subprocess
import sys

import pytest

from refsnn.cli import main

TINY = ["--dataset", "yinyang", "--epochs", "1", "--train-size", "128", "--test-size", "64",
        "--hidden", "12", "--batch-size", "32", "--no-progress"]


def run(args, env=None):
    return subprocess.run([sys.executable, "-m", "refsnn.cli", *args], capture_output=True,
                          text=True, env=None if env is None else {**os.environ, **env})


def test_train_json_summary(tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(tmp_path / "r"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("test_accuracy", "train_accuracy", "seconds", "samples_per_second",
                "params_sha256"):
        assert key in summary
    assert 0 <= summary["test_accuracy"] <= 1 and len(summary["params_sha256"]) == 64
    assert (tmp_path / "r" / "checkpoint.npz").exists()
    assert main(["train", *TINY, "--out", str(tmp_path / "s"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["params_sha256"] == summary["params_sha256"]


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["train", "--dataset", "mnist"], None, "invalid choice: 'mnist'"),
        (["train", "--train-size", "-3"], None, "expected a positive integer, got -3"),
        (["train", "--epochs", "0"], None, "expected a positive integer, got 0"),
        (["train", "--no-progress"], {"REFSNN_FMNIST_ROOT": "/nonexistent/fmnist"},
         "apt-get install -y dataset-fashion-mnist"),
        (["compare", "--configs", "hetinit-hettr,nope", *TINY], None,
         "unknown configuration(s) ['nope']"),
    ],
)
def test_bad_arguments_one_line_exit_2(args, env, message):
    proc = run(args, env)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_corrupt_checkpoint_one_line_exit_2(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"\x00garbage")
    proc = run(["train", *TINY, "--out", str(tmp_path), "--resume"])
    assert proc.returncode == 2
    assert "corrupt or not a refsnn checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_compare_table_plots_and_rerun(tmp_path, capsys):
    args = ["compare", *TINY, "--configs", "hominit-stdtr,hetinit-hettr", "--seeds", "2",
            "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {r["config"]: r for r in out["rows"]}
    assert set(rows) == {"hominit-stdtr", "hetinit-hettr"}
    for r in rows.values():
        assert r["n"] == 2 and len(r["accuracies"]) == 2
        mean = sum(r["accuracies"]) / 2
        sem = abs(r["accuracies"][0] - r["accuracies"][1]) / 2  # std(ddof=1)/sqrt(2) for n = 2
        assert r["mean"] == pytest.approx(mean) and r["sem"] == pytest.approx(sem)
    for name in ("results.md", "results.json", "accuracy.png", "time_constants.png", "raster.png"):
        assert (tmp_path / name).stat().st_size > 0
    checkpoints = sorted(tmp_path.glob("*/checkpoint.npz"))
    assert len(checkpoints) == 4
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    assert main(args) == 0  # finished runs are read back, not retrained
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["rows"] == out["rows"]
    assert [p.stat().st_mtime_ns for p in checkpoints] == stamps
