"""``refsnn bench``: the command runs and reports, and its PyTorch model is the same model.

No timing is asserted here: speed is reported by ``refsnn bench`` and ``benchmarks/``.
"""

import json

import numpy as np
import pytest

import refsnn
from refsnn.bench import QUICK, TARGET, Case, build_step, flop_count, make_problem
from refsnn.cli import build_parser, main
from tests.helpers import assert_grads_close, sample_floors, usage_error


def test_bench_quick_json(capsys, tmp_path):
    assert main(["bench", "--quick", "--json", "--impl", "refsnn,refsnn-f64,torch",
                 "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["quick"] is True and out["case"]["batch"] == QUICK.batch
    res = out["results"]
    assert res["refsnn"]["status"] == "ok" and res["refsnn-f64"]["status"] == "ok"
    assert res["torch"]["status"] in ("ok", "not installed")
    assert 0 < res["refsnn"]["min_ms"] <= res["refsnn"]["median_ms"]
    assert out["matmul"]["float32"]["gflops"] > 0
    floor, dense = out["floor"], out["floor"]["dense"]
    assert floor["gflop"] > 0 and floor["refsnn_over_floor"] > 0
    # a network that does not fire at every state costs less than dense: a lower floor
    assert floor["gflop"] < dense["gflop"] and floor["floor_ms"] < dense["floor_ms"]
    assert floor["refsnn_over_floor"] > dense["refsnn_over_floor"]
    assert set(out["sweeps"]["steps"]["refsnn"]) == {"10", "20", "40"}
    assert set(out["linearity"]) == {"per_update_vs_largest", "per_sample_vs_largest"}
    assert (tmp_path / "time_vs_steps_and_hidden.png").stat().st_size > 0
    assert 0 < out["firing_rate"] < 1 and out["input_events"] > 0


@pytest.mark.parametrize("args, message", [
    (["--density", "1.5"], "argument --density: must be a number in [0, 1], got 1.5"),
    (["--density", "nan"], "argument --density: must be a number in [0, 1], got nan"),
    (["--density", "x"], "argument --density: must be a number in [0, 1], got x"),
    (["--threads", "0"], "argument --threads: expected a positive integer, got 0"),
    (["--hidden", "abc"], "argument --hidden: expected a positive integer, got 'abc'"),
    (["--dtype", "float16"], "unrecognized arguments: --dtype float16"),
])
def test_bench_rejects_bad_options_in_one_line(args, message, capsys):
    err = usage_error(capsys, "bench", "--quick", *args)
    assert message in err and err.rstrip().endswith("(see 'refsnn bench --help')")


def test_bench_is_a_command():
    args = build_parser().parse_args(["bench", "--quick"])
    assert args.func.__module__ == "refsnn.bench" and args.quick


def test_flop_count_of_the_target_case_is_about_one_gflop():
    """The target case holds about 1 GFLOP of dense work at 2 % input density."""
    events = TARGET.batch * (TARGET.steps - 1) * TARGET.n_in * TARGET.density
    assert 0.9e9 < flop_count(TARGET, int(events)) < 1.2e9


def test_flop_count_prices_each_spike_by_the_columns_it_reaches():
    """Paper conventions (d = 1, r = 2, K = T - 1): counted by hand for T = 5, N = 3, C = 2."""
    case = Case(batch=2, steps=5, n_in=4, hidden=3, classes=2)
    K, N, C = 4, 3, 2
    # states 0 .. K-2 reach both targets, K-1 the hidden layer only, K neither
    width = [N + C, N + C, N + C, N, 0]
    adjoint = 2 * case.batch * N * sum(width)
    assert flop_count(case, 0, np.zeros(K + 1)) == adjoint
    assert flop_count(case, 7, np.zeros(K + 1)) == adjoint + 4 * 7 * N
    spikes = np.array([1, 0, 2, 3, 5])
    assert flop_count(case, 0, spikes) == adjoint + 4 * float(np.dot(spikes, width))
    # every neuron of every sample spiking at every state is the dense count
    assert flop_count(case, 7, np.full(K + 1, case.batch * N)) == flop_count(case, 7)
    with pytest.raises(ValueError, match=r"spikes must hold one count per state, shape \(5,\)"):
        flop_count(case, 0, np.zeros(K))


@pytest.mark.parametrize("network", ["random", "paper"])
def test_problems_are_reproducible(network):
    case = Case(batch=2, steps=5, n_in=7, hidden=4, classes=3, network=network)
    a, b = make_problem(case, 3), make_problem(case, 3)
    assert all(np.array_equal(getattr(a[0], k), getattr(b[0], k)) for k in refsnn.PARAM_NAMES)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    a[0].validate()
    assert a[1].dtype == np.float32


def test_torch_model_of_the_bench_is_refsnn_paper_preset():
    """The timed PyTorch model computes refsnn's "paper" loss and gradients (float64)."""
    pytest.importorskip("torch")
    case = Case(batch=4, steps=30, n_in=10, hidden=8, classes=3, density=0.2, dtype="float64")
    p, x, y = make_problem(case, 1)
    loss_t, grads_t = build_step("torch", case, 1)()
    loss, grads = refsnn.loss_and_grad(p, x, y, "paper")
    assert refsnn.forward(p, x, "paper").spikes.sum() > 0
    assert float(loss_t.detach()) == pytest.approx(loss, rel=1e-12)
    torch_grads = refsnn.Params(**{k: g.numpy() for k, g in zip(refsnn.PARAM_NAMES, grads_t,
                                                                 strict=True)})
    floors = sample_floors(p, x, y, refsnn.Conventions.preset("paper"))
    assert_grads_close(torch_grads, grads, 1e-9, floors)


@pytest.mark.parametrize("impl", ["snntorch", "norse"])
def test_peer_models_run(impl):
    pytest.importorskip(impl)
    loss, grads = build_step(impl, QUICK)()
    assert np.isfinite(float(loss.detach())) and all(np.all(np.isfinite(g.numpy())) for g in grads)
