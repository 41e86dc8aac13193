"""Initialisation, optimiser, training loop, checkpoints and resumption."""

import json
import math

import numpy as np
import pytest

import refsnn
from refsnn.init import DECAY_MAX, DECAY_MIN, init_params, sample_tau
from refsnn.train import (
    CheckpointError,
    TrainConfig,
    _adam_step,
    _to_params,
    _to_variables,
    _variable_grads,
    load_checkpoint,
    params_sha256,
    train,
)

FMNIST = "/usr/share/datasets/fashion-mnist"


def tiny(**changes):
    base = dict(dataset="yinyang", epochs=2, train_size=256, test_size=128, hidden=16,
                batch_size=32, seed=3)
    base.update(changes)
    return TrainConfig(**base)


# ------------------------------------------------------------------ initialisation
def test_hominit_and_hetinit_time_constants():
    rng = np.random.default_rng(0)
    assert np.all(sample_tau("hom", 0.02, 50, rng) == 0.02)
    tau = sample_tau("gamma", 0.02, 200_000, rng)
    assert tau.mean() == pytest.approx(0.02, rel=0.01)
    assert tau.var() == pytest.approx(0.02**2 / 3, rel=0.02)  # shape 3: var = mean^2 / 3
    for dist in ("uniform", "normal", "lognormal"):
        assert sample_tau(dist, 0.02, 200_000, rng).mean() == pytest.approx(0.02, rel=0.01)
    logn = sample_tau("lognormal", 0.02, 200_000, rng)
    assert logn.std() == pytest.approx(0.02 / math.sqrt(3), rel=0.03)
    with pytest.raises(ValueError, match="tau distribution must be one of"):
        sample_tau("cauchy", 0.02, 3, rng)


def test_init_params_paper():
    p = init_params(784, 128, 10, np.random.default_rng(1), dt=1e-3, dist="hom")
    assert p.dtype == np.float32
    assert np.abs(p.w_in).max() <= 1 / math.sqrt(128) and np.abs(p.w_out).max() <= 1 / math.sqrt(10)
    assert (np.allclose(p.decay_syn, math.exp(-1 / 10))
            and np.allclose(p.decay_mem, math.exp(-1 / 20)))
    het = init_params(784, 128, 10, np.random.default_rng(1), dt=1e-3, dist="gamma",
                      het_threshold=True, dtype=np.float64)
    assert het.decay_mem.std() > 0.01 and het.decay_mem_out.std() > 0
    for d in (het.decay_syn, het.decay_mem, het.decay_syn_out, het.decay_mem_out):
        assert d.min() >= DECAY_MIN and d.max() <= DECAY_MAX
    assert 0.5 <= het.threshold.min() and het.threshold.max() <= 1.5
    het.validate()
    # the same generator state gives the same network
    again = init_params(784, 128, 10, np.random.default_rng(1), dt=1e-3, dist="gamma",
                        het_threshold=True, dtype=np.float64)
    assert params_sha256(het) == params_sha256(again)


# ------------------------------------------------------------------ optimiser
def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    cfg = tiny(config="hetinit-hettr")
    rng = np.random.default_rng(0)
    variables = {"w_in": rng.standard_normal((3, 4)), "decay_mem": rng.uniform(0.5, 0.9, 4)}
    tv = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in variables.items()}
    opt = torch.optim.Adam([{"params": [tv["w_in"]], "lr": cfg.lr},
                            {"params": [tv["decay_mem"]], "lr": cfg.lr_decays}],
                           betas=(0.9, 0.999), eps=1e-8)
    state = dict(step=0, m={k: np.zeros_like(v) for k, v in variables.items()},
                 v={k: np.zeros_like(v) for k, v in variables.items()})
    for _ in range(5):
        g = {k: rng.standard_normal(v.shape) for k, v in variables.items()}
        _adam_step(variables, g, state, cfg)
        for k in tv:
            tv[k].grad = torch.tensor(g[k])
        opt.step()
    for k in variables:
        np.testing.assert_allclose(variables[k], tv[k].detach().numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("config", ["hetinit-hettr", "hominit-homtr"])
@pytest.mark.parametrize("tau_param", ["decay", "log_tau"])
def test_variable_gradients_are_the_chain_rule(config, tau_param):
    """The optimiser's variables (per-neuron or shared decays, raw or log tau) get the
    gradient of the loss: checked by central differences through the mapping."""
    cfg = tiny(config=config, tau_param=tau_param, dtype="float64")
    rng = np.random.default_rng(2)
    p = init_params(5, 6, 3, rng, dist="hom" if config.startswith("hom") else "gamma",
                    weight_scale=10, dtype=np.float64)
    x = (rng.random((4, 20, 5)) < 0.3).astype(float)
    y = rng.integers(0, 3, 4)
    conv = refsnn.Conventions.preset("smooth")
    variables = _to_variables(p, cfg)
    _, grads = refsnn.loss_and_grad(_to_params(variables, p, cfg), x, y, conv)
    vg = _variable_grads(grads, variables, cfg)
    for name in ("decay_syn", "decay_mem"):
        a = variables[name]
        assert a.shape == ((1,) if config == "hominit-homtr" else (6,))
        for idx in np.ndindex(a.shape):
            h = 1e-6
            up = {**variables, name: a.copy()}
            dn = {**variables, name: a.copy()}
            up[name][idx] += h
            dn[name][idx] -= h
            fd = (refsnn.loss(_to_params(up, p, cfg), x, y, conv)
                  - refsnn.loss(_to_params(dn, p, cfg), x, y, conv)) / (2 * h)
            assert vg[name][idx] == pytest.approx(fd, rel=1e-6, abs=1e-10)


# ------------------------------------------------------------------ the loop
def test_same_config_same_params_and_resume_is_bit_identical(tmp_path):
    cfg = tiny()
    a = train(cfg, tmp_path / "a", progress=False)
    b = train(cfg, tmp_path / "b", progress=False)
    assert params_sha256(a.params) == params_sha256(b.params)
    assert a.summary()["params_sha256"] == params_sha256(a.params)
    # stop after epoch 1, then resume to epoch 2
    train(cfg.replace(epochs=1), tmp_path / "c", progress=False)
    c = train(cfg, tmp_path / "c", resume=True, progress=False)
    assert params_sha256(c.params) == params_sha256(a.params)
    lines = (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert [m["test_accuracy"] for m in c.metrics] == [m["test_accuracy"] for m in a.metrics]
    ck = load_checkpoint(tmp_path / "c" / "checkpoint.npz")
    assert ck["meta"]["epoch"] == 1 and ck["adam"]["step"] == 2 * (256 // 32)
    # nothing left behind by the atomic writes
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["checkpoint.npz", "metrics.jsonl"]


def test_trained_decays_move_and_stay_clamped(tmp_path):
    res = train(tiny(config="hetinit-hettr", epochs=1), None, progress=False)
    assert not np.array_equal(res.params.decay_mem, res.initial_params.decay_mem)
    assert np.array_equal(res.params.decay_mem_out, res.initial_params.decay_mem_out)
    assert res.params.decay_mem.min() >= np.float32(DECAY_MIN)
    assert res.params.decay_mem.max() <= np.float32(DECAY_MAX)
    std = train(tiny(config="hetinit-stdtr", epochs=1), None, progress=False)
    assert np.array_equal(std.params.decay_mem, std.initial_params.decay_mem)
    hom = train(tiny(config="hominit-homtr", epochs=1), None, progress=False)
    assert np.unique(hom.params.decay_mem).size == 1
    assert hom.params.decay_mem[0] != hom.initial_params.decay_mem[0]


def test_interrupt_keeps_last_checkpoint(tmp_path, monkeypatch):
    cfg = tiny(epochs=3)
    import refsnn.train as tr

    calls = {"n": 0}
    real = tr.loss_grad_and_logits

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 256 // 32 + 3:  # during epoch 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "loss_grad_and_logits", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, progress=False)
    monkeypatch.setattr(tr, "loss_grad_and_logits", real)
    ck = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ck["meta"]["epoch"] == 0  # epoch 1 survived, epoch 2 is lost
    resumed = train(cfg, tmp_path, resume=True, progress=False)
    assert params_sha256(resumed.params) == params_sha256(train(cfg, None, progress=False).params)


def test_corrupt_or_foreign_checkpoint(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or not a refsnn checkpoint"):
        train(tiny(), tmp_path, resume=True, progress=False)
    train(tiny(epochs=1), tmp_path / "x", progress=False)
    with pytest.raises(CheckpointError, match="belongs to another run .*hidden"):
        train(tiny(hidden=8), tmp_path / "x", resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny(), tmp_path / "empty", resume=True, progress=False)


def test_bad_config_values():
    with pytest.raises(ValueError, match="config must be one of"):
        TrainConfig(config="het")
    with pytest.raises(ValueError, match="train_size must be an integer >= 1"):
        TrainConfig(train_size=-5)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="smaller than batch_size"):
        train(tiny(train_size=16), None, progress=False)


@pytest.mark.skipif(not __import__("os").path.isdir(FMNIST),
                    reason="dataset-fashion-mnist not installed")
def test_fmnist_hetinit_hettr_learns():
    """Acceptance (issue 4): HetInit-HetTr, 5000 training samples, 3 epochs, 1000 test
    samples: >= 70 % test accuracy, and the time constants move."""
    res = train(TrainConfig(config="hetinit-hettr", epochs=3, train_size=5000, test_size=1000),
                None, progress=False)
    assert res.test_accuracy >= 0.70, res.metrics
    dt = 1e-3
    tau0 = -dt / np.log(res.initial_params.decay_mem.astype(float))
    tau1 = -dt / np.log(res.params.decay_mem.astype(float))
    assert np.median(np.abs(tau1 - tau0) / tau0) > 0.2  # moved visibly
