"""Autograd twin of refsnn: the same network written plainly in PyTorch.

An independent implementation of the refsnn model (it imports only the records
``refsnn.params.Params`` and ``refsnn.conventions.Conventions``), whose gradients come
from ``torch.autograd`` instead of a hand-derived BPTT. It serves as a cross-check of
refsnn's forward pass and gradients under every convention.

Equations
---------
States k = 0 .. K, with K = T - 1 if ``skip_last_input`` else T (T = ``x.shape[1]``).
U[0] = I[0] = 0 and U_o[0] = I_o[0] = 0 (zero, not ``v_rest``). For t = 0 .. K-1:

(1) ``S[k] = spike(U[k] - threshold)`` for k = 0 .. K.
(2) ``I[t+1] = decay_syn * I[t] + x[t] @ w_in + S[t+1-d] @ w_rec``, S[j] = 0 for j < 0.
(3) ``J = I[t+1]`` ("new") or ``I[t]`` ("previous").
(4)-(6) ``R = S[t]``; ``thh = threshold``;
    ``V = U[t] - R (thh - v_reset)`` ("subtract_decayed"), ``U[t] - R (U[t] - v_reset)``
    ("to_reset_leak"), else ``U[t]``;
    ``P = decay_mem (V - v_rest) + v_rest + g(decay_mem) J - [R (thh - v_reset)]``,
    the bracket only for "subtract";
    ``U[t+1] = (1 - R) P + R v_reset`` ("to_reset"), else ``P``.
(7)-(8) ``I_o[t+1] = decay_syn_out * I_o[t] + S[t+1-r] @ w_out``;
    ``U_o[t+1] = decay_mem_out * U_o[t] + g(decay_mem_out) J_o``, ``J_o`` = ``I_o[t+1]``
    ("new") or ``I_o[t]`` ("previous").
(9) Recorded window W: states 0 .. K or 1 .. K; logits m = reduction of U_o over W
    ("max", "mean", "last" = U_o[K]) or ``sum_{t<K} S[t+1-r] @ w_out`` ("count").
(10)-(11) ``loss = mean_b CE(m[b], label[b]) + reg_rate + reg_pop`` (CE written as in
    ``cross_entropy``) with
    ``count[b, n] = sum_{k<K} S[b, k, n]``, ``rate = count / T``,
    ``reg_rate = s_l / (B + N) * sum relu(rate - theta_l)^2``,
    ``reg_pop = s_u / B * sum_b relu(sum_n count[b, n] / N - theta_u)^2``.

Where each ``Conventions`` field acts (function ``_simulate`` unless named)
---------------------------------------------------------------------------
- ``skip_last_input``: ``n_updates = T - 1 if ... else T`` (K).
- ``record_initial_state``: ``first = 0 if ... else 1`` (window start).
- ``membrane_current``: ``j = i_new if ... == "new" else i_prev`` (hidden and readout).
- ``input_scale``, ``decay_form``, ``input_scale_detached``: ``_input_scale``.
- ``reset``: ``_membrane_update`` (the three ``if conv.reset`` branches).
- ``reset_detached``: ``r = s_t.detach() if conv.reset_detached else s_t``.
- ``reset_threshold_detached``: ``thh = threshold.detach() if ... else threshold``.
- ``recurrent_delay``: ``_delayed(s, t + 1 - conv.recurrent_delay)`` in Eq. (2).
- ``readout_delay``: ``_delayed(s, t + 1 - conv.readout_delay)`` in Eq. (7).
- ``spike_test``, ``spike_fn``, ``surrogate``, ``surrogate_scale``: ``_spike``
  (``HeavisideSpike`` forward / backward, or ``torch.sigmoid``).
- ``reduction``: ``_logits``.
- ``reg_*``: ``_regularisers``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from refsnn.conventions import Conventions
from refsnn.params import PARAM_NAMES, Params

__all__ = [
    "HeavisideSpike",
    "cross_entropy",
    "surrogate_derivative",
    "torch_forward",
    "torch_loss_and_grad",
]


# ------------------------------------------------------------------ spike, Eq. (1)
def surrogate_derivative(x: torch.Tensor, name: str, scale: float) -> torch.Tensor:
    """Surrogate derivative dS/dx of the spike at ``x = v - threshold``.

    fast_sigmoid ``1/(s|x|+1)^2``; arctan ``(s/2)/(1+(pi s x/2)^2)``; sigmoid
    ``s sig(sx)(1-sig(sx))``; triangle ``s max(0, 1-s|x|)``; exponential
    ``(s/2) exp(-s|x|)``.
    """
    s = scale
    if name == "fast_sigmoid":
        return 1.0 / (s * x.abs() + 1.0) ** 2
    if name == "arctan":
        return (s / 2.0) / (1.0 + (math.pi * s * x / 2.0) ** 2)
    if name == "sigmoid":
        # sig(z) sig(-z), not sig(z) (1 - sig(z)): the latter cancels for large z
        return s * torch.sigmoid(s * x) * torch.sigmoid(-s * x)
    if name == "triangle":
        return s * torch.clamp(1.0 - s * x.abs(), min=0.0)
    if name == "exponential":
        return (s / 2.0) * torch.exp(-s * x.abs())
    raise ValueError(f"unknown surrogate {name!r}")


class HeavisideSpike(torch.autograd.Function):
    """Heaviside spike of ``x = v - threshold`` with a surrogate derivative.

    ``apply(x, surrogate, scale, ge)``: forward ``1.0`` where ``x > 0`` (``x >= 0``
    if ``ge``), else ``0.0``; backward ``grad * surrogate_derivative(x)``.
    """

    @staticmethod
    def forward(ctx, x, surrogate, scale, ge):  # noqa: D102
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        ctx.scale = scale
        fired = x >= 0 if ge else x > 0
        return fired.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_derivative(x, ctx.surrogate, ctx.scale), None, None, None


class SmoothSpike(torch.autograd.Function):
    """``sigmoid(scale x)`` with the derivative ``scale sig(scale x) sig(-scale x)``.

    torch.sigmoid's own backward, ``y (1 - y)``, loses all relative precision where
    y is near 1; this form keeps it on both sides.
    """

    @staticmethod
    def forward(ctx, x, scale):  # noqa: D102
        ctx.save_for_backward(x)
        ctx.scale = scale
        return torch.sigmoid(scale * x)

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_derivative(x, "sigmoid", ctx.scale), None


def _spike(u: torch.Tensor, threshold: torch.Tensor, conv: Conventions) -> torch.Tensor:
    """Eq. (1): S = spike(U - threshold)."""
    x = u - threshold
    if conv.spike_fn == "sigmoid":
        return SmoothSpike.apply(x, float(conv.surrogate_scale))
    return HeavisideSpike.apply(x, conv.surrogate, float(conv.surrogate_scale),
                                conv.spike_test == "ge")


# ------------------------------------------------------------- input scale g(decay)
def _input_scale(decay: torch.Tensor, conv: Conventions) -> torch.Tensor | float:
    """Factor g(decay) on the current driving a membrane, Eq. (5) and (8)."""
    if conv.input_scale == "none":
        return 1.0
    d = decay.detach() if conv.input_scale_detached else decay
    if conv.input_scale == "one_minus_decay":
        return 1.0 - d
    # "dt_over_tau": dt/tau recovered from the decay
    if conv.decay_form == "exp":
        return -torch.log(d)
    return 1.0 - d  # "euler"


# ------------------------------------------------------- membrane, Eq. (4)-(6)
def _membrane_update(u, j, s_t, p, g_mem, conv: Conventions):
    """Eq. (4)-(6): U[t+1] from U[t], the driving current J and the spike S[t]."""
    r = s_t.detach() if conv.reset_detached else s_t
    thh = p["threshold"].detach() if conv.reset_threshold_detached else p["threshold"]
    v_reset, v_rest, decay_mem = p["v_reset"], p["v_rest"], p["decay_mem"]
    if conv.reset == "subtract_decayed":
        v = u - r * (thh - v_reset)
    elif conv.reset == "to_reset_leak":
        v = u - r * (u - v_reset)
    else:
        v = u
    new = decay_mem * (v - v_rest) + v_rest + g_mem * j
    if conv.reset == "subtract":
        new = new - r * (thh - v_reset)
    if conv.reset == "to_reset":
        new = (1.0 - r) * new + r * v_reset
    return new


def _delayed(s: list, j: int, zero: torch.Tensor) -> torch.Tensor:
    """S[j], with S[j] = 0 for j < 0."""
    return s[j] if j >= 0 else zero


# ------------------------------------------------------------------ simulation
def _simulate(p: dict, x: torch.Tensor, conv: Conventions) -> dict:
    """Run Eq. (1)-(8) and return every state as lists of (B, .) tensors, k = 0 .. K."""
    batch, n_steps, _ = x.shape
    n = p["w_in"].shape[1]
    c = p["w_out"].shape[1]
    n_updates = n_steps - 1 if conv.skip_last_input else n_steps  # K
    zero_h = x.new_zeros((batch, n))
    zero_o = x.new_zeros((batch, c))
    g_mem = _input_scale(p["decay_mem"], conv)
    g_out = _input_scale(p["decay_mem_out"], conv)
    feed = torch.einsum("bti,in->btn", x, p["w_in"])  # x[t] @ w_in for every t

    i_syn, v, i_out, v_out = [zero_h], [zero_h], [zero_o], [zero_o]
    s = [_spike(v[0], p["threshold"], conv)]
    drive = []  # S[t+1-r] @ w_out, t = 0 .. K-1
    for t in range(n_updates):
        # Eq. (2)
        i_prev = i_syn[t]
        s_rec = _delayed(s, t + 1 - conv.recurrent_delay, zero_h)
        i_new = p["decay_syn"] * i_prev + feed[:, t] + s_rec @ p["w_rec"]
        # Eq. (3)-(6)
        j = i_new if conv.membrane_current == "new" else i_prev
        v_new = _membrane_update(v[t], j, s[t], p, g_mem, conv)
        i_syn.append(i_new)
        v.append(v_new)
        s.append(_spike(v_new, p["threshold"], conv))  # Eq. (1) for k = t + 1
        # Eq. (7)-(8)
        d_out = _delayed(s, t + 1 - conv.readout_delay, zero_h) @ p["w_out"]
        drive.append(d_out)
        io_new = p["decay_syn_out"] * i_out[t] + d_out
        jo = io_new if conv.membrane_current == "new" else i_out[t]
        i_out.append(io_new)
        v_out.append(p["decay_mem_out"] * v_out[t] + g_out * jo)
    return dict(i_syn=i_syn, v=v, s=s, i_out=i_out, v_out=v_out, drive=drive,
                n_updates=n_updates)


def _logits(sim: dict, first: int, conv: Conventions) -> torch.Tensor:
    """Eq. (9): readout reduction over the recorded window."""
    if conv.reduction == "count":
        return torch.stack(sim["drive"], dim=1).sum(dim=1)
    window = torch.stack(sim["v_out"][first:], dim=1)  # (B, W, C)
    if conv.reduction == "max":
        return torch.max(window, dim=1).values
    if conv.reduction == "mean":
        return window.mean(dim=1)
    return sim["v_out"][-1]  # "last": U_o[K]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy, Eq. (10), written so that autograd's gradient is exact.

    ``-log p_y = softplus(u)`` with ``u = logsumexp_{j != y} (m_j - m_y)``: the same
    number as ``torch.nn.functional.cross_entropy``, but its gradient on the label's
    logit comes out as ``-sigmoid(u)`` (minus the other classes' probability) instead of
    ``p_y - 1``. When ``p_y`` is near 1 the latter cancels: at a loss of 2.5e-7 PyTorch's
    gradient is off by 1.7e-10 relative (from ``exp(log p_y)`` rounded to 1e-16), and so
    is every parameter gradient behind it, while refsnn's (B1) is exact to rounding.
    """
    batch, n_classes = logits.shape
    if n_classes == 1:  # p_y = 1: zero loss, zero gradient
        return (logits * 0.0).sum() / batch
    others = torch.ones_like(logits, dtype=torch.bool)
    others[torch.arange(batch), labels] = False
    diff = logits - logits.gather(1, labels[:, None])
    u = torch.logsumexp(diff[others].view(batch, n_classes - 1), dim=1)
    # threshold 40: above it softplus(u) = u to within exp(-40) = 4e-18 relative
    return torch.nn.functional.softplus(u, threshold=40.0).mean()


def _regularisers(sim: dict, n_steps: int, conv: Conventions) -> torch.Tensor | float:
    """Eq. (11): spike-count regularisers (0.0 when both strengths are 0)."""
    reg = 0.0
    if conv.reg_rate_strength == 0 and conv.reg_pop_strength == 0:
        return reg
    count = torch.stack(sim["s"][: sim["n_updates"]], dim=1).sum(dim=1)  # (B, N)
    batch, n = count.shape
    if conv.reg_rate_strength != 0:
        rate = count / n_steps
        excess = torch.relu(rate - conv.reg_rate_target)
        reg = reg + conv.reg_rate_strength / (batch + n) * (excess**2).sum()
    if conv.reg_pop_strength != 0:
        excess = torch.relu(count.sum(dim=1) / n - conv.reg_pop_target)
        reg = reg + conv.reg_pop_strength / batch * (excess**2).sum()
    return reg


def _run(params: Params, x, labels, conv: Conventions, requires_grad: bool):
    """Forward pass (and loss if ``labels`` is given) on leaf tensors built from params."""
    if not isinstance(conv, Conventions):
        raise TypeError(f"conventions must be a Conventions, got {type(conv).__name__}")
    params.validate()
    dtype = torch.float64 if params.dtype == np.float64 else torch.float32
    p = {name: torch.tensor(np.asarray(getattr(params, name)), dtype=dtype,
                            requires_grad=requires_grad) for name in PARAM_NAMES}
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != params.n_in or x.shape[1] < 1:
        raise ValueError(f"x must have shape (B, T, n_in={params.n_in}), got {x.shape}")
    xt = torch.tensor(x, dtype=dtype)
    sim = _simulate(p, xt, conv)
    first = 0 if conv.record_initial_state else 1
    logits = _logits(sim, first, conv)
    out = dict(p=p, sim=sim, first=first, logits=logits)
    if labels is not None:
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        out["loss"] = cross_entropy(logits, labels) + _regularisers(sim, x.shape[1], conv)
    return out


def _traces(out: dict) -> dict:
    sim, first = out["sim"], out["first"]

    def rec(name):
        return torch.stack(sim[name][first:], dim=1).detach().numpy()

    traces = dict(i_syn=rec("i_syn"), v=rec("v"), spikes=rec("s"), i_syn_out=rec("i_out"),
                  v_out=rec("v_out"), logits=out["logits"].detach().numpy())
    if "loss" in out:
        traces["loss"] = float(out["loss"].detach())
    return traces


def torch_forward(params: Params, x: np.ndarray, conventions: Conventions) -> dict:
    """Forward pass of the twin.

    Parameters
    ----------
    params : Params
        Network parameters (float32 or float64; the computation uses that dtype).
    x : (B, T, n_in) array
        Input spikes (or any real input).
    conventions : Conventions

    Returns
    -------
    dict of numpy arrays over the recorded window (W = K + 1 or K states):
    ``i_syn`` (B, W, N), ``v`` (B, W, N), ``spikes`` (B, W, N) (``spikes[:, k]`` is
    the spike of state ``v[:, k]``), ``i_syn_out`` (B, W, C), ``v_out`` (B, W, C),
    ``logits`` (B, C).
    """
    with torch.no_grad():
        out = _run(params, x, None, conventions, requires_grad=False)
    return _traces(out)


def torch_loss_and_grad(params: Params, x: np.ndarray, labels: np.ndarray,
                        conventions: Conventions) -> tuple[float, Params, dict]:
    """Loss of Eq. (10)-(11) and its autograd gradient with respect to all ten parameters.

    Parameters
    ----------
    params : Params
    x : (B, T, n_in) array
    labels : (B,) int array of classes in [0, C)
    conventions : Conventions

    Returns
    -------
    loss : float
    grads : Params
        Gradients, same dtype as ``params`` (zeros where no gradient reaches a field).
    traces : dict
        As ``torch_forward``, plus ``loss``.
    """
    out = _run(params, x, labels, conventions, requires_grad=True)
    tensors = [out["p"][name] for name in PARAM_NAMES]
    grads = torch.autograd.grad(out["loss"], tensors, allow_unused=True)
    grad_arrays = {
        name: (np.zeros_like(getattr(params, name)) if g is None
               else g.detach().numpy().astype(params.dtype, copy=False))
        for name, g in zip(PARAM_NAMES, grads, strict=True)
    }
    return float(out["loss"].detach()), Params(**grad_arrays), _traces(out)
