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


def test_spike_row_updates_add_the_spiking_samples_of_a_task_in_pairs(bounds):
    s = np.zeros((3, 2, 2))  # (samples, states, neurons); tasks of 2: {0, 1}, {2}
    s[:, 0, 0] = 1  # task {0, 1}: 2 samples, one pair; task {2}: one
    s[1, 0, 1] = 1  # one
    s[[0, 2], 1, 1] = 1  # one in each task
    assert bounds.spike_row_updates(s, group=2) == 5
    # the kernel's own task size: 8 samples spiking together are 4 pairs
    assert bounds.spike_row_updates(np.ones((8, 1, 1))) == 4
    assert bounds.spike_row_updates(np.zeros((5, 3, 4))) == 0


def test_quick_case_counts_its_events_and_prices_every_part(bounds, capsys):
    r = bounds.measure(QUICK, threads=1, repeats=1)
    p, x, _ = make_problem(QUICK)
    spikes = refsnn.forward(p, x, "paper").spikes
    K = spikes.shape[1] - 1
    c = r["counts"]
    # paper conventions: the spikes of states 0 .. K - 1 drive an update
    assert c["spikes"] == int(np.count_nonzero(spikes[:, :K]))
    assert c["input_events"] == int(np.count_nonzero(x[:, :K]))
    assert c["spikes"] / 2 <= c["spike_updates"] <= c["spikes"]
    assert c["input_updates"] == c["input_events"]  # B12: one row update per event
    assert set(r["parts"]) == {"gather w_spk", "gather w_in", "update dw_spk",
                               "update dw_in", "adjoint", "scan"}
    assert all(part["ms"] > 0 for part in r["parts"].values())
    assert r["bound_ms"] == pytest.approx(sum(part["ms"] for part in r["parts"].values()))
    assert r["floor_ms"] > 0 and r["refsnn_ms"] > 0 and r["matmul_gflops"] > 0
    assert bounds.main(["--quick", "--json", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["counts"] == c
