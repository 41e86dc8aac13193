"""``benchmarks/bounds.py``: its event counts, by hand, and a run of its quick case.

No timing is asserted: the script reports what the bare primitives cost.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import refsnn
from refsnn.bench import QUICK, make_problem

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bounds.py"


@pytest.fixture(scope="module")
def bounds():
    spec = importlib.util.spec_from_file_location("refsnn_bounds", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spike_row_updates_count_a_neuron_once_per_task_and_window(bounds):
    s = np.zeros((3, 6, 2))  # (samples, states, neurons); tasks of 2: {0, 1}, {2}
    s[0, 0, 0] = s[1, 1, 0] = 1  # task {0, 1}, states 0 and 1: one window
    s[2, 0, 0] = 1  # task {2}: one
    s[1, 2, 1] = s[1, 3, 1] = 1  # states 2 and 3
    # segments of 4 states, windows of 2: {0, 1}, {2, 3} | {4, 5}
    assert bounds.spike_row_updates(s, seg=4, states=2, group=2) == 3
    # segments of 3: {0, 1}, {2} | {3, 4}, {5}: states 2 and 3 now in two windows
    assert bounds.spike_row_updates(s, seg=3, states=2, group=2) == 4
    assert bounds.spike_row_updates(np.zeros((5, 3, 4)), seg=2) == 0


def test_quick_case_counts_its_events_and_prices_every_part(bounds, capsys):
    r = bounds.measure(QUICK, threads=1, repeats=1)
    p, x, _ = make_problem(QUICK)
    spikes = refsnn.forward(p, x, "paper").spikes
    K = spikes.shape[1] - 1
    c = r["counts"]
    # paper conventions: the spikes of states 0 .. K - 1 drive an update
    assert c["spikes"] == int(np.count_nonzero(spikes[:, :K]))
    assert c["input_events"] == int(np.count_nonzero(x[:, :K]))
    assert 0 < c["spike_updates"] <= c["spikes"]
    # B12: one row update per sample and input with an event
    assert c["input_updates"] == int(np.count_nonzero(x[:, :K].any(axis=1)))
    assert c["input_updates"] < c["input_events"]
    assert set(r["parts"]) == {"gather w_spk", "gather w_in", "gather g_spk", "gather g_i",
                               "update dw_spk", "update dw_in", "adjoint", "scan"}
    assert all(part["ms"] > 0 for part in r["parts"].values())
    assert r["bound_ms"] == pytest.approx(sum(part["ms"] for part in r["parts"].values()))
    assert r["floor_ms"] > 0 and r["refsnn_ms"] > 0 and r["matmul_gflops"] > 0
    assert bounds.main(["--quick", "--json", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["counts"] == c


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "argument --threads: expected a positive integer, got 0"),
    (["--repeats", "x"], "argument --repeats: expected a positive integer, got 'x'"),
])
def test_bad_options_are_usage_errors(bounds, args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bounds.main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err
