"""Self-checks of the two PyTorch references (validation/torch_twin.py, paper_model.py).

They hold without refsnn's kernels: the twin under the "paper" preset equals the
transcription of the authors' model; the twin's autograd gradient of the smooth
model equals central finite differences; surrogate formulas equal the derivatives of
their antiderivatives.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from refsnn.conventions import Conventions  # noqa: E402
from refsnn.params import PARAM_NAMES, Params  # noqa: E402
from validation.paper_model import paper_loss_and_grad  # noqa: E402
from validation.torch_twin import (  # noqa: E402
    HeavisideSpike,
    surrogate_derivative,
    torch_forward,
    torch_loss_and_grad,
)

B, T, N_IN, N, C = 3, 20, 5, 6, 3


def random_params(rng, n_in=N_IN, n=N, c=C):
    """Heterogeneous per-neuron parameters; weights scaled so the neurons fire."""
    return Params(
        w_in=rng.normal(0.5, 1.0, (n_in, n)),
        w_rec=rng.normal(0.0, 0.5, (n, n)),
        w_out=rng.normal(0.0, 1.0, (n, c)),
        decay_syn=rng.uniform(0.5, 0.99, n),
        decay_mem=rng.uniform(0.5, 0.99, n),
        threshold=rng.uniform(0.5, 1.5, n),
        v_reset=rng.uniform(-0.5, 0.5, n),
        v_rest=rng.uniform(-0.5, 0.5, n),
        decay_syn_out=rng.uniform(0.5, 0.99, c),
        decay_mem_out=rng.uniform(0.5, 0.99, c),
    )


def random_problem(seed, t=T):
    rng = np.random.default_rng(seed)
    params = random_params(rng)
    x = (rng.random((B, t, N_IN)) < 0.3).astype(np.float64)
    labels = rng.integers(0, C, B)
    return params, x, labels


def assert_fields_close(got: Params, want: Params, rtol):
    """Each field equal to ``rtol`` relative to the field's largest entry."""
    for name in PARAM_NAMES:
        g, w = getattr(got, name), getattr(want, name)
        scale = np.abs(w).max()
        assert scale > 0, f"{name}: zero gradient, the check would be empty"
        err = np.abs(g - w).max() / scale
        assert err <= rtol, f"{name}: relative error {err:.3e} > {rtol:g}"


# ------------------------------------------------ (a) twin == authors' model
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_twin_paper_preset_equals_paper_model(seed):
    params, x, labels = random_problem(seed)
    loss_p, grads_p, tr_p = paper_loss_and_grad(params, x, labels)
    loss_t, grads_t, tr_t = torch_loss_and_grad(params, x, labels, Conventions.preset("paper"))

    spk = tr_p["spk_rec"]
    assert 0.05 < spk.mean() < 0.8, "the random net should fire, but not saturate"
    assert loss_t == pytest.approx(loss_p, rel=1e-12, abs=0)
    assert_fields_close(grads_t, grads_p, rtol=1e-12)

    # windows: states 0 .. T-1, the zero state included
    assert tr_t["v"].shape == (B, T, N)
    np.testing.assert_allclose(tr_t["v"], tr_p["mem_rec"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tr_t["i_syn"], tr_p["syn_rec"], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(tr_t["spikes"][:, : T - 1], spk[:, 1:])
    np.testing.assert_array_equal(spk[:, 0], 0.0)
    np.testing.assert_allclose(tr_t["v_out"], tr_p["mem_out_rec"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tr_t["i_syn_out"], tr_p["syn_out_rec"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tr_t["logits"], tr_p["logits"], rtol=1e-12, atol=1e-14)


def test_twin_regularisers_match_authors_formula():
    params, x, labels = random_problem(3)
    conv = Conventions.preset("paper")
    s_l, th_l, s_u, th_u = 0.7, 0.05, 0.3, 0.5
    loss0, _, tr = torch_loss_and_grad(params, x, labels, conv)
    loss1, _, _ = torch_loss_and_grad(
        params, x, labels,
        conv.replace(reg_rate_strength=s_l, reg_rate_target=th_l,
                     reg_pop_strength=s_u, reg_pop_target=th_u))
    # the authors sum their spike record over all T entries (spk_rec[0] = 0)
    spk_rec = paper_loss_and_grad(params, x, labels)[2]["spk_rec"]
    count = spk_rec.sum(axis=1)
    reg_rate = s_l / (B + N) * np.sum(np.maximum(count / T - th_l, 0.0) ** 2)
    reg_pop = s_u / B * np.sum(np.maximum(count.sum(axis=1) / N - th_u, 0.0) ** 2)
    assert reg_rate > 0 and reg_pop > 0
    assert loss1 - loss0 == pytest.approx(reg_rate + reg_pop, rel=1e-12)
    assert tr["loss"] == loss0


def test_count_reduction_and_forward_agree_with_traces():
    params, x, labels = random_problem(4)
    conv = Conventions.preset("default").replace(reduction="count", readout_delay=1)
    loss, grads, tr = torch_loss_and_grad(params, x, labels, conv)
    fwd = torch_forward(params, x, conv)
    for key in ("i_syn", "v", "spikes", "i_syn_out", "v_out", "logits"):
        np.testing.assert_array_equal(fwd[key], tr[key])
    # window 1..T; readout_delay 1: step t reads S[t], t = 0 .. T-1 -> S[0] = 0 plus S[1..T-1]
    spikes = tr["spikes"]
    np.testing.assert_allclose(tr["logits"], spikes[:, :-1].sum(axis=1) @ params.w_out,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(grads.decay_syn_out, 0.0)
    np.testing.assert_array_equal(grads.decay_mem_out, 0.0)


# ------------------------------------------- (b) smooth model: autograd == FD
def central_difference_grad(params, x, labels, conv, eps=1e-6):
    def loss_at(p):
        return torch_loss_and_grad(p, x, labels, conv)[0]

    out = {}
    for name in PARAM_NAMES:
        base = getattr(params, name)
        g = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            plus, minus = base.copy(), base.copy()
            plus[idx] += eps
            minus[idx] -= eps
            g[idx] = (loss_at(params.replace(**{name: plus}))
                      - loss_at(params.replace(**{name: minus}))) / (2 * eps)
        out[name] = g
    return Params(**out)


def test_smooth_gradient_equals_finite_differences():
    params, x, labels = random_problem(5)
    conv = Conventions.preset("smooth").replace(
        reg_rate_strength=0.5, reg_rate_target=0.05, reg_pop_strength=0.2, reg_pop_target=0.1)
    _, grads, _ = torch_loss_and_grad(params, x, labels, conv)
    assert_fields_close(grads, central_difference_grad(params, x, labels, conv), rtol=1e-6)


SMOOTH = Conventions.preset("smooth")
SMOOTH_VARIANTS = [
    dict(reset="subtract_decayed"),
    dict(reset="to_reset_leak"),
    dict(reset="to_reset"),
    dict(reset="none"),
    dict(input_scale="none"),
    dict(input_scale="dt_over_tau", decay_form="exp"),
    dict(input_scale="dt_over_tau", decay_form="euler"),
    dict(membrane_current="previous", skip_last_input=True, record_initial_state=True),
    dict(recurrent_delay=2, readout_delay=2),
    dict(readout_delay=1, reduction="max"),
    dict(reduction="last"),
    dict(reduction="count"),
]


@pytest.mark.parametrize("changes", SMOOTH_VARIANTS, ids=lambda d: ",".join(map(str, d.values())))
def test_smooth_variants_directional_finite_differences(changes):
    conv = SMOOTH.replace(**changes)
    params, x, labels = random_problem(6, t=12)
    _, grads, _ = torch_loss_and_grad(params, x, labels, conv)
    g = grads.flat()
    rng = np.random.default_rng(7)
    eps = 1e-6
    shapes = {n: getattr(params, n).shape for n in PARAM_NAMES}
    sizes = [int(np.prod(s)) for s in shapes.values()]
    for _ in range(3):
        direction = rng.normal(size=g.size)
        parts = np.split(direction, np.cumsum(sizes)[:-1])
        step = {n: p.reshape(shapes[n]) * eps for n, p in zip(PARAM_NAMES, parts, strict=True)}
        plus = Params(**{n: getattr(params, n) + step[n] for n in PARAM_NAMES})
        minus = Params(**{n: getattr(params, n) - step[n] for n in PARAM_NAMES})
        fd = (torch_loss_and_grad(plus, x, labels, conv)[0]
              - torch_loss_and_grad(minus, x, labels, conv)[0]) / (2 * eps)
        ad = float(g @ direction)
        assert abs(fd - ad) <= 1e-6 * np.linalg.norm(g) * np.linalg.norm(direction), (fd, ad)


# ---------------------------------------------------------- (c) surrogates
def _antiderivative(name, x, s):
    if name == "fast_sigmoid":
        return x / (s * np.abs(x) + 1.0)
    if name == "arctan":
        return np.arctan(math.pi * s * x / 2.0) / math.pi
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-s * x))
    if name == "triangle":
        z = np.clip(s * x, -1.0, 1.0)
        return z - z * np.abs(z) / 2.0
    if name == "exponential":
        return np.sign(x) * (1.0 - np.exp(-s * np.abs(x))) / 2.0
    raise AssertionError(name)


def _closed_form(name, x, s):
    if name == "fast_sigmoid":
        return (1.0 + s * np.abs(x)) ** -2
    if name == "arctan":
        return s / (2.0 + 2.0 * (math.pi * s * x / 2.0) ** 2)
    if name == "sigmoid":
        return s * np.exp(-s * x) / (1.0 + np.exp(-s * x)) ** 2
    if name == "triangle":
        return np.where(np.abs(x) < 1.0 / s, s - s * s * np.abs(x), 0.0)
    if name == "exponential":
        return s / 2.0 * np.exp(-s * np.abs(x))
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["fast_sigmoid", "arctan", "sigmoid", "triangle", "exponential"])
@pytest.mark.parametrize("scale", [0.7, 5.0, 100.0])
def test_surrogate_formulas(name, scale):
    rng = np.random.default_rng(8)
    x = rng.uniform(-3.0, 3.0, 200) / scale
    x = x[np.abs(np.abs(x) - 1.0 / scale) > 1e-3 / scale]  # off the triangle's kinks
    x = x[np.abs(x) > 1e-3 / scale]  # off the kink at 0
    h = 1e-6 / scale
    fd = (_antiderivative(name, x + h, scale) - _antiderivative(name, x - h, scale)) / (2 * h)
    got = surrogate_derivative(torch.tensor(x), name, scale).numpy()
    peak = _closed_form(name, np.zeros(1), scale)[0]
    np.testing.assert_allclose(got, fd, rtol=0, atol=1e-6 * peak)
    np.testing.assert_allclose(got, _closed_form(name, x, scale), rtol=1e-13, atol=1e-15 * peak)

    # the heaviside spike: step forward, the surrogate backward
    xt = torch.tensor(np.concatenate([x, [0.0]]), requires_grad=True)
    for ge in (False, True):
        out = HeavisideSpike.apply(xt, name, scale, ge)
        np.testing.assert_array_equal(out.detach().numpy(), (xt >= 0 if ge else xt > 0).numpy())
        (grad,) = torch.autograd.grad(out.sum(), xt)
        np.testing.assert_array_equal(
            grad.numpy(), surrogate_derivative(xt.detach(), name, scale).numpy())
