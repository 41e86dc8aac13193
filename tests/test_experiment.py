"""refsnn experiment without a cluster: grid expansion, aggregation, fits, measurements."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import data_loaders as dl
from refsnn.cli import main
from refsnn.compare import summarise
from refsnn.conventions import Conventions
from refsnn.experiment import (
    RunSpec,
    _rescaled,
    aggregate,
    expand_grid,
    fit_distribution,
    load_result,
    mean_sem,
    measure,
    scaled_steps,
    write_report,
)
from refsnn.init import init_params
from refsnn.train import PAPER_CONFIGS, TrainConfig, evaluate
from tests.helpers import usage_error

BASE = TrainConfig(dataset="yinyang", epochs=1, train_size=128, test_size=64, hidden=12,
                   batch_size=32)


# ------------------------------------------------------------------ grid expansion
def test_table_grid_is_config_x_seed():
    specs = expand_grid("table", BASE, configs=PAPER_CONFIGS, seeds=range(3))
    assert len(specs) == 12
    assert {(s.cfg.config, s.cfg.seed) for s in specs} == {
        (c, k) for c in PAPER_CONFIGS for k in range(3)}
    assert all(s.train_factor == 1 and s.test_factors == () for s in specs)
    assert [s.cfg.config for s in specs[:4]] == list(PAPER_CONFIGS)  # seeds outermost
    assert len({s.name for s in specs}) == 12  # one training folder each
    # every other field comes from the base config
    assert all(s.cfg.replace(config=BASE.config, seed=BASE.seed) == BASE for s in specs)
    # distributions trains the same grid: same runs, same result files
    assert expand_grid("distributions", BASE, configs=PAPER_CONFIGS, seeds=range(3)) == specs


def test_timescale_and_neurons_axes():
    ts = expand_grid("timescale", BASE, configs=("hominit-stdtr", "hetinit-hettr"), seeds=(0, 1),
                     train_factors=(0.5, 1), test_factors=(0.25, 1, 4, 1))
    assert len(ts) == 2 * 2 * 2
    assert {s.train_factor for s in ts} == {0.5, 1.0}
    assert all(s.test_factors == (0.25, 1.0, 4.0) for s in ts)  # duplicates removed
    table = expand_grid("table", BASE, configs=("hominit-stdtr", "hetinit-hettr"), seeds=(0, 1))
    # the factor-1 runs train exactly the table's runs (same folder, another result file)
    for t in table:
        twin = next(s for s in ts if s.cfg == t.cfg and s.train_factor == 1)
        assert twin.name == t.name and twin.result_name != t.result_name
    assert all(s.name not in {t.name for t in table} for s in ts if s.train_factor == 0.5)
    nn = expand_grid("neurons", BASE, configs=("hetinit-hettr",), seeds=(0,),
                     hidden_sizes=(16, 64, 256))
    assert [s.cfg.hidden for s in nn] == [16, 64, 256]


@pytest.mark.parametrize("kwargs, message", [
    (dict(experiment="nope"), "experiment must be one of"),
    (dict(configs=("hetinit-hettr", "bogus")), "unknown configuration(s) ['bogus']"),
    (dict(experiment="timescale", base=BASE.replace(time_scale=2.0)), "leave --time-scale at 1"),
    (dict(experiment="timescale", test_factors=(1, -2)), "--test-factors must be positive"),
    (dict(experiment="neurons", hidden_sizes=(16, 0)), "--hidden-sizes must be positive"),
])
def test_grid_errors(kwargs, message):
    args = dict(experiment="table", base=BASE, configs=PAPER_CONFIGS, seeds=(0,))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        expand_grid(args.pop("experiment"), args.pop("base"), **args)


def test_spec_round_trip_and_result_validation(tmp_path):
    spec = RunSpec(BASE.replace(config="hetinit-hettr", seed=4), 0.5, (0.25, 2.0))
    assert RunSpec.from_dict(json.loads(json.dumps(spec.as_dict()))) == spec
    assert "hetinit-hettr-seed4-h12-x0.5-" in spec.name
    path = spec.result_path(tmp_path)
    assert load_result(spec, tmp_path) is None  # missing
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert load_result(spec, tmp_path) is None  # corrupt
    record = dict(format="refsnn-experiment-run-1", spec=spec.as_dict(), test_accuracy=0.5)
    path.write_text(json.dumps(record))
    assert load_result(spec, tmp_path) == record
    other = RunSpec(spec.cfg.replace(epochs=2), 0.5, (0.25, 2.0))
    assert other.name != spec.name and load_result(other, tmp_path) is None
    path.write_text(json.dumps({**record, "spec": other.as_dict()}))  # a stale spec
    assert load_result(spec, tmp_path) is None


def test_scaled_steps():
    assert [scaled_steps(75, f) for f in (0.25, 0.5, 1, 4)] == [19, 38, 75, 300]
    assert scaled_steps(3, 0.01) == 1


# ------------------------------------------------------------------ aggregation
def _record(config, seed, acc, *, hidden=12, train_factor=1.0, spikes=10.0, timescale=(),
            taus=None):
    cfg = BASE.replace(config=config, seed=seed, hidden=hidden)
    fan_out = hidden + 3
    return dict(
        spec=RunSpec(cfg, train_factor, tuple(f for f, _ in timescale)).as_dict(),
        test_accuracy=acc,
        spike_cost=dict(spikes_per_sample=spikes, synops_per_sample=spikes * fan_out,
                        fan_out=fan_out),
        timescale=[dict(factor=f, accuracy=a) for f, a in timescale],
        initial_taus=taus, learned_taus=taus, dt_ms=1.0,
    )


def test_mean_sem_by_hand():
    assert mean_sem([0.5, 0.7, 0.9]) == pytest.approx((0.7, 0.2 / math.sqrt(3), 3))
    assert mean_sem([0.25]) == (0.25, 0.0, 1)
    m, s, n = mean_sem([])
    assert math.isnan(m) and math.isnan(s) and n == 0


def test_table_aggregation_by_hand():
    records = [_record("hominit-stdtr", 0, 0.5, spikes=100),
               _record("hominit-stdtr", 1, 0.7, spikes=200),
               _record("hominit-stdtr", 2, 0.9, spikes=600),
               _record("hetinit-hettr", 0, 0.8, spikes=10),
               _record("hetinit-hettr", 1, 0.6, spikes=30),
               None]  # a failed run
    agg = aggregate("table", records, ("hominit-stdtr", "hetinit-hettr"))
    assert agg["rows"] == [
        dict(config="hominit-stdtr", mean=pytest.approx(0.7),
             sem=pytest.approx(0.2 / math.sqrt(3)), n=3),
        # two values: std(ddof=1) / sqrt(2) = |a - b| / 2
        dict(config="hetinit-hettr", mean=pytest.approx(0.7), sem=pytest.approx(0.1), n=2),
    ]
    assert all(set(r) == {"config", "mean", "sem", "n"} for r in agg["rows"])
    assert agg["detail"][0]["accuracies"] == [0.5, 0.7, 0.9]
    cost = {r["config"]: r for r in agg["spike_cost"]}
    # spikes 100, 200, 600: mean 300, std(ddof=1) sqrt((200^2 + 100^2 + 300^2) / 2) = sqrt(70000)
    assert cost["hominit-stdtr"]["spikes_per_sample"] == pytest.approx(300)
    assert cost["hominit-stdtr"]["spikes_sem"] == pytest.approx(math.sqrt(70000) / math.sqrt(3))
    assert cost["hominit-stdtr"]["synops_per_sample"] == pytest.approx(300 * 15)
    assert cost["hetinit-hettr"]["spikes_per_sample"] == pytest.approx(20)
    assert cost["hetinit-hettr"]["synops_sem"] == pytest.approx(10 * 15)
    # the table's rows are compare.summarise's
    from types import SimpleNamespace as NS
    ref = summarise({"hominit-stdtr": [NS(test_accuracy=a) for a in (0.5, 0.7, 0.9)]})[0]
    assert (ref["mean"], ref["sem"]) == (agg["rows"][0]["mean"], agg["rows"][0]["sem"])


def test_timescale_and_neurons_aggregation_by_hand():
    records = [
        _record("hetinit-hettr", 0, 0.9, train_factor=0.5, timescale=[(0.5, 0.9), (2, 0.4)]),
        _record("hetinit-hettr", 1, 0.7, train_factor=0.5, timescale=[(0.5, 0.7), (2, 0.6)]),
        _record("hetinit-hettr", 0, 0.8, train_factor=1.0, timescale=[(0.5, 0.3), (2, 0.5)]),
    ]
    rows = aggregate("timescale", records, ("hetinit-hettr",))["rows"]
    got = {(r["train_factor"], r["test_factor"]): (r["mean"], r["sem"], r["n"]) for r in rows}
    assert got == {(0.5, 0.5): pytest.approx((0.8, 0.1, 2)),
                   (0.5, 2.0): pytest.approx((0.5, 0.1, 2)),
                   (1.0, 0.5): pytest.approx((0.3, 0.0, 1)),
                   (1.0, 2.0): pytest.approx((0.5, 0.0, 1))}
    records = [_record("hominit-stdtr", k, a, hidden=h)
               for k, (h, a) in enumerate([(16, 0.4), (16, 0.6), (64, 0.8)])]
    agg = aggregate("neurons", records, ("hominit-stdtr",))
    assert [(r["hidden"], r["mean"], r["n"]) for r in agg["rows"]] == [
        (16, pytest.approx(0.5), 2), (64, pytest.approx(0.8), 1)]
    assert [r["synops_per_sample"] for r in agg["spike_cost"]] == [10 * 19, 10 * 67]


def test_fit_distribution_recovers_gamma_and_lognormal():
    rng = np.random.default_rng(0)
    g = rng.gamma(3.0, 20 / 3, size=2000)
    fg, fl = fit_distribution(g, "gamma"), fit_distribution(g, "lognorm")
    assert fg["shape"] == pytest.approx(3.0, rel=0.08)
    assert fg["scale"] == pytest.approx(20 / 3, rel=0.08)
    assert fg["bins"] == 20 and fg["p"] > 1e-3 and fl["chi2"] > fg["chi2"]
    ln = rng.lognormal(math.log(10), 0.5, size=2000)
    fl = fit_distribution(ln, "lognorm")
    assert fl["shape"] == pytest.approx(0.5, rel=0.05)
    assert fl["scale"] == pytest.approx(10, rel=0.05)
    assert fl["p"] > 1e-3 and fit_distribution(ln, "gamma")["chi2"] > fl["chi2"]
    # chi-square by hand: equal-probability bins under the fit, 2 fitted parameters
    from scipy import stats
    edges = stats.gamma.ppf(np.linspace(0, 1, 21), fg["shape"], scale=fg["scale"])
    obs = np.histogram(g, bins=np.r_[-np.inf, edges[1:-1], np.inf])[0]
    chi2 = float(np.sum((obs - 100.0) ** 2 / 100.0))
    assert fg["chi2"] == pytest.approx(chi2) and fg["p"] == pytest.approx(stats.chi2.sf(chi2, 17))
    for degenerate in (np.full(100, 20.0), g[:10]):  # all equal; too few for 4 bins
        assert math.isnan(fit_distribution(degenerate, "gamma")["chi2"])


def test_distributions_aggregation_pools_seeds():
    rng = np.random.default_rng(1)
    taus = [dict(tau_mem_ms=rng.gamma(3, 20 / 3, 64).tolist(), tau_syn_ms=[10.0] * 64)
            for _ in range(2)]
    records = [_record("hetinit-hettr", k, 0.5, taus=t) for k, t in enumerate(taus)]
    agg = aggregate("distributions", records, ("hetinit-hettr",))
    mem = next(r for r in agg["rows"] if r["quantity"] == "tau_mem_ms" and r["which"] == "learned")
    pooled = np.concatenate([t["tau_mem_ms"] for t in taus])
    assert mem["n"] == 128 and mem["seeds"] == 2 and mem["mean"] == pytest.approx(pooled.mean())
    assert mem["gamma_shape"] == fit_distribution(pooled, "gamma")["shape"]
    syn = next(r for r in agg["rows"] if r["quantity"] == "tau_syn_ms")
    assert syn["gamma_bins"] == 0  # all equal: no fit
    # the share of time constants stuck at the clamps [3.26 dt, 199.5 dt]
    lo, hi = -1 / math.log(2 / math.e), -1 / math.log(0.995)
    clamped = dict(tau_mem_ms=[lo] * 3 + [20.0] * 5 + [hi] * 2, tau_syn_ms=[10.0] * 10)
    row = aggregate("distributions", [_record("hominit-hettr", 0, 0.5, taus=clamped)],
                    ("hominit-hettr",))["rows"][0]
    assert (row["at_lower_clamp"], row["at_upper_clamp"]) == (0.3, 0.2)
    assert agg["accuracy"][0]["n"] == 2


def test_reports_written(tmp_path):
    rng = np.random.default_rng(2)
    taus = dict(tau_mem_ms=rng.gamma(3, 20 / 3, 64).tolist(),
                tau_syn_ms=rng.gamma(3, 10 / 3, 64).tolist())
    records = [_record(c, k, 0.5 + 0.1 * k, train_factor=f, timescale=[(0.5, 0.6), (1, 0.7)],
                       taus=taus)
               for c in ("hominit-stdtr", "hetinit-hettr") for k in range(2) for f in (0.5, 1.0)]
    for experiment in ("table", "timescale", "distributions"):
        agg = aggregate(experiment, records, ("hominit-stdtr", "hetinit-hettr"))
        files = write_report(experiment, tmp_path, agg, header="budget line",
                             configs=("hominit-stdtr", "hetinit-hettr"), records=records,
                             failures=[dict(run="x", errors=["OSError: boom"])])
        assert all(f.stat().st_size > 0 for f in files)
        md = (tmp_path / f"{experiment}.md").read_text()
        assert "budget line" in md and "synaptic ops" in md and "x: OSError: boom" in md
        saved = json.loads((tmp_path / f"{experiment}.json").read_text())
        assert saved["rows"] == json.loads(json.dumps(agg["rows"]))
    assert (tmp_path / "timescale.png").exists() and (tmp_path / "distributions.png").exists()
    assert (tmp_path / "table.csv").read_text().splitlines()[0] == "config,mean,sem,n,accuracies"


# ------------------------------------------------------------------ measurements
def test_measure_matches_evaluate_and_counts_spikes():
    ds = dl.load_dataset("yinyang", "test")
    idx = np.arange(50)
    p = init_params(ds.n_inputs, 12, ds.n_classes, np.random.default_rng(0), dt=ds.dt,
                    dist="gamma", weight_init="fan_in", weight_scale=10.0)
    conv = Conventions.preset("paper")
    m = measure(p, ds, idx, conv, batch_size=16)
    acc, loss = evaluate(p, ds, idx, conv, batch_size=16)
    assert m["accuracy"] == acc and m["loss"] == pytest.approx(loss, rel=1e-12)
    from refsnn import forward
    x = ds.dense(idx)
    spikes = forward(p, x, conv).spikes.sum() / 50
    assert m["spikes_per_sample"] == pytest.approx(spikes) and spikes > 0
    assert m["synops_per_sample"] == pytest.approx(spikes * (12 + 3))
    assert m["input_spikes_per_sample"] == pytest.approx(x.sum() / 50) and m["n_samples"] == 50


def test_rescaled_dataset_scales_times_and_steps():
    ds = dl.load_dataset("delay", "test")
    fast = _rescaled(ds, 0.5, scaled_steps(ds.n_steps, 0.5))
    assert fast.n_steps == 38 and len(fast) == len(ds)
    t, u = ds.events(3)
    tf, uf = fast.events(3)
    assert np.allclose(tf, 0.5 * t) and np.array_equal(u, uf)
    assert fast.dense([3]).sum() <= ds.dense([3]).sum()  # bins merge, nothing is cut
    slow = _rescaled(ds, 2.0, scaled_steps(ds.n_steps, 2.0))
    assert slow.dense([3]).sum() == ds.dense([3]).sum()


# ------------------------------------------------------------------ the command line
def test_cli_does_not_import_dask():
    code = ("import sys; from refsnn.cli import build_parser; build_parser(); "
            "assert 'distributed' not in sys.modules and 'dask' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("args, message", [
    (["--test-factors", "1,x"], "expected comma-separated numbers, got '1,x'"),
    (["--hidden-sizes", "16,-4"], "expected positive numbers, got '16,-4'"),
    (["--seeds", "0"], "expected a positive integer, got 0"),
])
def test_cli_rejects_bad_options_in_one_line(args, message, capsys):
    assert message in usage_error(capsys, "experiment", "timescale", *args)


def test_cli_rejects_unknown_config(capsys):
    assert main(["experiment", "table", "--configs", "hetinit-hettr,nope"]) == 2
    assert "unknown configuration(s) ['nope']" in capsys.readouterr().err
