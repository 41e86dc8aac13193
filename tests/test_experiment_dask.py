"""refsnn experiment on a Dask LocalCluster: a tiny grid, resumption, failures and retries."""

import json
import os

import pytest

distributed = pytest.importorskip("distributed")

from refsnn.cli import main  # noqa: E402
from refsnn.experiment import RunSpec, expand_grid, load_result, run_grid, run_task  # noqa: E402
from refsnn.train import TrainConfig  # noqa: E402

TINY = TrainConfig(dataset="yinyang", epochs=1, train_size=128, test_size=64, hidden=12,
                   batch_size=32)
TINY_ARGS = ["--dataset", "yinyang", "--epochs", "1", "--train-size", "128", "--test-size", "64",
             "--hidden", "12", "--batch-size", "32", "--no-progress"]
CONFIGS = ("hominit-stdtr", "hetinit-hettr")


@pytest.fixture(scope="module")
def client():
    """An in-process cluster (threads, no process start-up), shared by the tests."""
    import logging

    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                       dashboard_address=":0", silence_logs=logging.CRITICAL)
    with cluster, distributed.Client(cluster) as c:
        yield c


def quiet(_line):
    pass


def untimed(metrics):
    timing = {"seconds", "train_seconds", "samples_per_second"}
    return [{k: v for k, v in m.items() if k not in timing} for m in metrics]


def test_tiny_grid_runs_resumes_and_aggregates_identically(tmp_path, client):
    specs = expand_grid("table", TINY, configs=CONFIGS, seeds=(0, 1))
    lines = []
    first = run_grid(specs, tmp_path, client=client, progress=False, log=lines.append)
    assert (first["ran"], first["skipped"], first["retried"], first["failures"]) == (4, 0, 0, [])
    assert len(lines) == 4 and all("test accuracy" in line for line in lines)
    records = first["records"]
    for spec, rec in zip(specs, records, strict=True):
        assert rec == load_result(spec, tmp_path)
        assert rec["spec"] == spec.as_dict() and len(rec["metrics"]) == 1
        assert rec["test_accuracy"] == rec["metrics"][-1]["test_accuracy"]
        assert rec["spike_cost"]["accuracy"] == rec["test_accuracy"]  # the same test pass
        assert rec["spike_cost"]["fan_out"] == 12 + 3
        assert len(rec["learned_taus"]["tau_mem_ms"]) == 12
        assert (tmp_path / "runs" / spec.name / "checkpoint.npz").exists()
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*")}
    # a rerun skips every finished run, without a cluster, and reads the same records
    again = run_grid(specs, tmp_path, client=None, scheduler="tcp://127.0.0.1:9", progress=False,
                     log=quiet)
    assert (again["ran"], again["skipped"]) == (0, 4) and again["records"] == records
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*")} == stamps
    # a lost result file: its finished checkpoint is read back, not retrained
    lost = specs[1]
    lost.result_path(tmp_path).unlink()
    ck = tmp_path / "runs" / lost.name / "checkpoint.npz"
    before = ck.stat().st_mtime_ns
    third = run_grid(specs, tmp_path, client=client, progress=False, log=quiet)
    assert third["ran"] == 1 and ck.stat().st_mtime_ns == before
    # a lost training: retrained from scratch, bitwise the same network
    gone = specs[2]
    for p in (tmp_path / "runs" / gone.name).iterdir():
        p.unlink()
    fourth = run_grid(specs, tmp_path, client=client, progress=False, log=quiet)
    assert fourth["ran"] == 1
    for a, b in zip(records, fourth["records"], strict=True):
        assert a["params_sha256"] == b["params_sha256"]
        assert untimed(a["metrics"]) == untimed(b["metrics"])
        assert a["test_accuracy"] == b["test_accuracy"] and a["spike_cost"] == b["spike_cost"]


def test_timescale_factor_one_reuses_training_and_matches(tmp_path, client):
    table = expand_grid("table", TINY, configs=("hetinit-hettr",), seeds=(0,))
    ts = expand_grid("timescale", TINY, configs=("hetinit-hettr",), seeds=(0,),
                     train_factors=(0.5, 1), test_factors=(0.5, 1, 2))
    t = run_grid(table, tmp_path, client=client, progress=False, log=quiet)["records"][0]
    recs = run_grid(ts, tmp_path, client=client, progress=False, log=quiet)["records"]
    one = next(r for r in recs if r["spec"]["train_factor"] == 1)
    half = next(r for r in recs if r["spec"]["train_factor"] == 0.5)
    assert one["params_sha256"] == t["params_sha256"]  # the table's training, reused
    at = {s["factor"]: s for s in one["timescale"]}
    assert at[1.0]["accuracy"] == t["test_accuracy"] and at[2.0]["n_steps"] == 2 * 60
    assert half["train_config"]["time_scale"] == 0.5 and half["train_config"]["n_steps"] == 30
    assert {s["factor"]: s["n_steps"] for s in half["timescale"]} == {0.5: 30, 1.0: 60, 2.0: 120}


def flaky_task(spec, out):
    """Fail on the first attempt of every run, then work."""
    marker = os.path.join(out, RunSpec.from_dict(spec).name + ".tried")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("transient failure (first attempt)")
    return run_task(spec, out)


def broken_task(spec, out):
    """Fail every time for seed 1."""
    if spec["config"]["seed"] == 1:
        raise OSError("disk on fire")
    return run_task(spec, out)


def test_failed_run_is_reported_and_retried_once(tmp_path, client):
    specs = expand_grid("table", TINY, configs=("hominit-stdtr",), seeds=(0, 1))
    lines = []
    res = run_grid(specs, tmp_path, client=client, progress=False, task=flaky_task,
                   log=lines.append)
    assert res["retried"] == 2 and res["failures"] == [] and all(res["records"])
    retries = [line for line in lines if "retrying" in line]
    assert len(retries) == 2 and all("RuntimeError: transient failure" in line for line in retries)
    for spec in specs:
        tb = (tmp_path / "runs" / spec.name / "error-attempt1.txt").read_text()
        assert "Traceback" in tb and "transient failure" in tb

    out2 = tmp_path / "broken"
    lines = []
    res = run_grid(specs, out2, client=client, progress=False, task=broken_task, log=lines.append)
    assert res["retried"] == 1 and res["records"][0] is not None and res["records"][1] is None
    assert res["failures"] == [dict(run=specs[1].name, errors=["OSError: disk on fire"] * 2)]
    assert any("failed 2 times" in line and "left out of the aggregates" in line for line in lines)
    assert (out2 / "runs" / specs[1].name / "error-attempt2.txt").exists()


def test_cli_on_a_running_scheduler_json_rows_and_rerun(tmp_path, client, capsys):
    args = ["experiment", "table", *TINY_ARGS, "--configs", ",".join(CONFIGS), "--seeds", "2",
            "--scheduler", client.scheduler.address, "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["config"] for r in out["rows"]] == list(CONFIGS)
    assert all(set(r) == {"config", "mean", "sem", "n"} and r["n"] == 2 for r in out["rows"])
    assert out["ran"] == 4 and out["failed"] == [] and len(out["spike_cost"]) == 2
    for name in ("table.md", "table.csv", "table-spike-cost.csv", "table.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["rows"] == out["rows"] and again["spike_cost"] == out["spike_cost"]
    assert (again["ran"], again["skipped"]) == (0, 4)
    # a run that cannot succeed: reported, retried once, exit status 1
    bad = ["experiment", "table", *TINY_ARGS, "--dataset", "fmnist", "--data-root",
           str(tmp_path / "nowhere"), "--configs", "hominit-stdtr", "--seeds", "1",
           "--scheduler", client.scheduler.address, "--out", str(tmp_path / "bad"), "--json"]
    assert main(bad) == 1
    captured = capsys.readouterr()
    failed = json.loads(captured.out.strip().splitlines()[-1])["failed"]
    assert len(failed) == 1 and failed[0]["errors"][0].startswith("FileNotFoundError")
    assert "retrying" in captured.err and "failed 2 times" in captured.err
    assert "Runs that failed twice" in (tmp_path / "bad" / "table.md").read_text()


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("refsnn.experiment.CONNECT_TIMEOUT", "1s")
    args = ["experiment", "table", *TINY_ARGS, "--configs", "hominit-stdtr", "--seeds", "1",
            "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
