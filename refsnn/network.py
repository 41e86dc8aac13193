"""Public entry points: ``forward``, ``loss``, ``loss_and_grad``, with their input checks.

The model is the recurrent current-based LIF layer and leaky-integrator readout of
``docs/derivation.md``, Eq. (1)-(11); its gradient is the adjoint recursion
Eq. (B1)-(B13). These functions validate their arguments, unpack the records into
the packed arrays of ``refsnn.kernels``, allocate, call the Numba kernels and repack.
The dtype of the parameters (float32 or float64) decides the arithmetic.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np

from . import kernels as kn
from .conventions import Conventions
from .params import Params
from .surrogates import SURROGATE_CODES

__all__ = [
    "Trace", "forward", "loss", "loss_and_grad", "loss_grad_and_logits", "cross_entropy",
]


@dataclass(frozen=True)
class Trace:
    """Recorded states of one forward pass.

    Time runs over the recorded states: ``0 .. K`` when
    ``Conventions.record_initial_state`` else ``1 .. K``, with ``K`` updates (``T``,
    or ``T - 1`` with ``skip_last_input``). ``spikes[:, k]`` is the spike of the
    membrane ``v[:, k]`` (Eq. (1)).

    Attributes
    ----------
    i_syn, v, spikes : (batch, time, N)
        Hidden synaptic currents, membrane potentials, spikes.
    i_syn_out, v_out : (batch, time, C)
        Readout synaptic currents and membrane potentials.
    logits : (batch, C)
        The readout reduced over time (Eq. (9)); the prediction is its argmax.
    first_state : int
        State index of the first recorded time (0 or 1).
    """

    i_syn: np.ndarray
    v: np.ndarray
    spikes: np.ndarray
    i_syn_out: np.ndarray
    v_out: np.ndarray
    logits: np.ndarray
    first_state: int


# --------------------------------------------------------------------- checks
def _check_conventions(conventions) -> Conventions:
    if conventions is None:
        return Conventions()
    if isinstance(conventions, str):
        return Conventions.preset(conventions)
    if not isinstance(conventions, Conventions):
        raise ValueError(
            "conventions must be a refsnn.Conventions, a preset name or None, got "
            f"{type(conventions).__name__}"
        )
    return conventions


def _check_x(params: Params, x, conv: Conventions):
    """Check the input; return it C-contiguous, with ``scan``: where its nonzero entries are.

    ``scan = (ptr, masks, general, most)`` from ``refsnn.kernels.scan_input`` (where
    each step's events will start, the nonzero inputs per step as bits, whether a step
    has values other than 0 and 1, and the most events of a sample), which also finds
    non-finite values; ``_run_forward`` uses it.
    """
    if not isinstance(x, np.ndarray):
        raise ValueError(f"x must be a numpy array (batch, time, n_in), got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (batch, time, n_in), got shape {x.shape}")
    if x.dtype != params.dtype:
        raise ValueError(
            f"x has dtype {x.dtype} but the parameters are {params.dtype}; cast x with "
            f"x.astype(np.{params.dtype})"
        )
    B, T, n_in = x.shape
    if n_in != params.n_in:
        raise ValueError(
            f"x has {n_in} inputs (shape {x.shape}) but params.w_in expects {params.n_in}"
        )
    if B < 1:
        raise ValueError(f"x has an empty batch (shape {x.shape}); batch must be >= 1")
    min_t = 2 if conv.skip_last_input else 1
    if T < min_t:
        raise ValueError(
            f"x has {T} time steps (shape {x.shape}); at least {min_t} needed with "
            f"skip_last_input={conv.skip_last_input}"
        )
    x = np.ascontiguousarray(x)
    K = T - 1 if conv.skip_last_input else T
    # ptr apart: BPTT keeps it, not the masks
    ptr = np.empty(B * K + 1, np.int64)
    masks, general = kn.carve(((B, K, -(-n_in // 32)), np.uint32), ((B * K,), np.uint8))
    n_bad, most = kn.scan_input(x, K, ptr, masks, general)
    if n_bad > 0:
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"x contains a non-finite value {x[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
            "; inputs must be finite"
        )
    return x, (ptr, masks, general, most)


def _check_labels(labels, batch: int, n_classes: int) -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != batch:
        raise ValueError(
            f"labels must have shape ({batch},) to match x, got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    bad = kn.first_outside(labels, n_classes)
    if bad >= 0:
        raise ValueError(
            f"labels contains {int(labels[bad])}; labels must lie in [0, {n_classes}) for "
            f"C={n_classes} readout units"
        )
    return labels.astype(np.int64, copy=False)


def _check_params(params) -> Params:
    if not isinstance(params, Params):
        raise ValueError(f"params must be a refsnn.Params, got {type(params).__name__}")
    params.validate()
    return params


# --------------------------------------------------------------------- packing
def input_scale(decay: np.ndarray, conv: Conventions):
    """Return g(decay) and g'(decay) of Eq. (5) and (8); g' is 0 when detached."""
    if conv.input_scale == "none":
        g, dg = np.ones_like(decay), np.zeros_like(decay)
    elif conv.input_scale == "one_minus_decay" or conv.decay_form == "euler":
        g, dg = 1 - decay, -np.ones_like(decay)
    else:  # dt/tau = -log(decay) for decay = exp(-dt/tau)
        g, dg = -np.log(decay), -1 / decay
    if conv.input_scale_detached:
        dg = np.zeros_like(decay)
    return g, dg


def _pack(p: Params, conv: Conventions):
    """Return ``hid`` (8, N), ``out`` (4, C) and ``flags`` of ``refsnn.kernels``."""
    hid, out = kn.carve(((kn.H_COUNT, p.n_hidden), p.dtype), ((4, p.n_out), p.dtype))
    for row, name in enumerate(("decay_syn", "decay_mem", "threshold", "v_reset", "v_rest")):
        hid[row] = getattr(p, name)
    hid[kn.H_G], hid[kn.H_DG] = input_scale(p.decay_mem, conv)
    np.subtract(1, p.decay_mem, out=hid[kn.H_LEAK])
    out[kn.O_DECAY_SYN], out[kn.O_DECAY_MEM] = p.decay_syn_out, p.decay_mem_out
    out[kn.O_G], out[kn.O_DG] = input_scale(p.decay_mem_out, conv)
    return hid, out, _flags(conv)


@functools.lru_cache(maxsize=64)
def _flags(conv: Conventions) -> np.ndarray:
    """Return the conventions as the integers of ``refsnn.kernels``, made once per record.

    The array is shared by every call with equal conventions: the kernels only read it.
    """
    flags = np.zeros(kn.F_COUNT, np.int64)
    if conv.spike_fn == "sigmoid":
        flags[kn.F_SPIKE] = kn.SPIKE_SIGMOID
    else:
        flags[kn.F_SPIKE] = kn.SPIKE_GE if conv.spike_test == "ge" else kn.SPIKE_GT
    flags[kn.F_SURR] = SURROGATE_CODES[conv.surrogate]
    flags[kn.F_RESET] = kn.RESET_CODES[conv.reset]
    flags[kn.F_NEW] = conv.membrane_current == "new"
    flags[kn.F_REC_DELAY] = conv.recurrent_delay
    flags[kn.F_OUT_DELAY] = conv.readout_delay
    flags[kn.F_DETACH_R] = conv.reset_detached
    flags[kn.F_DETACH_TH] = conv.reset_threshold_detached
    flags[kn.F_REDUCTION] = kn.REDUCTION_CODES[conv.reduction]
    flags[kn.F_WIN_START] = 0 if conv.record_initial_state else 1
    return flags


def _segment(K: int) -> int:
    """Return the states per checkpoint of the hidden membrane kept for BPTT.

    About sqrt(K/2), which minimises checkpoints plus recomputation buffers.
    """
    return max(4, int(np.sqrt((K + 1) / 2)))


def _forward_group_size(batch: int) -> int:
    """Return the samples per group of the forward kernel (the states do not depend on it).

    Up to 8 samples share each delivery of spikes, with a group per thread at least.
    """
    return max(1, min(8, -(-batch // numba.get_num_threads())))


def _run_forward(p: Params, x: np.ndarray, scan: tuple, conv: Conventions,
                 trace: bool = True):
    """Eq. (1)-(9) on the checked input ``x`` with its ``scan`` from ``_check_x``.

    ``trace``: keep v and s of every state (for ``forward``); else keep what BPTT needs:
    every current, the readout membrane and a checkpoint of v every ``_segment(K)``
    states (see ``refsnn.kernels``). The input becomes events (``ptr``, ``ev_idx``,
    ``ev_val``: the layout of ``refsnn.kernels``), written by the forward kernel.
    """
    B, T, _ = x.shape
    K = T - 1 if conv.skip_last_input else T
    N, C = p.n_hidden, p.n_out
    dt = p.dtype
    hid, out, flags = _pack(p, conv)
    ptr, masks, general, most = scan
    n_ev = int(ptr[-1])
    seg = _segment(K)
    names = ("i", "v", "s", "i_out", "v_out", "ckpt", "counts", "k_max", "logits")
    # the layouts of [w_rec | w_out]: chunks for the forward pass, the transpose and its
    # panels for BPTT
    w_ch, w_spk_t, w_spk_p = kn.spike_weights(p.w_rec, p.w_out, transposed=not trace)
    # the states (which ``forward`` returns) apart from the scratch, which it need not keep
    st = dict(zip(names, kn.carve(
        ((B, K + 1, N), dt), ((B, K + 1 if trace else 2, N), dt),
        ((B, K + 1 if trace else 1, N), dt), ((B, K + 1, C), dt), ((B, K + 1, C), dt),
        ((B, 0 if trace else K // seg + 1, N), dt), ((B, 2, N), dt), ((B, C), np.int64),
        ((B, C), dt),
    ), strict=True))
    ev_idx, ev_val = kn.carve(((n_ev,), np.int32), ((n_ev,), dt))  # kept for BPTT
    lst, n_spk, acc, bad = kn.carve(
        ((B, N), np.int32), ((B,), np.int64), ((B, w_ch.shape[0] * w_ch.shape[2]), dt),
        ((B, 4), np.int64),
    )
    n_bad = kn.forward_kernel(
        x, masks, general, ptr, ev_idx, ev_val,
        kn.aligned(p.w_in), w_ch, hid, out, flags, float(conv.surrogate_scale), seg,
        _forward_group_size(B), st["i"], st["v"], st["s"], st["i_out"], st["v_out"],
        st["ckpt"], st["counts"], st["k_max"], lst, n_spk, acc, bad, st["logits"],
    )
    if n_bad:
        for name, count in zip(("i", "v", "i_out", "v_out"), bad.sum(axis=0), strict=True):
            if count:
                raise FloatingPointError(
                    f"the network's states overflowed ({name} is not finite). Reduce the "
                    "weights or the input rate, or use float64 parameters"
                )
    if conv.reduction != "max":  # for "max" the kernel gathered the logits: no sum
        with np.errstate(over="raise", invalid="raise"):
            try:
                st["logits"] = _reduce(st, p, conv, K)
            except FloatingPointError:
                raise FloatingPointError(
                    "the network's readout overflowed. Reduce the weights or the input rate, "
                    "or use float64 parameters"
                ) from None
    st.update(K=K, seg=seg, hid=hid, out=out, flags=flags, w_spk_t=w_spk_t, w_spk_p=w_spk_p,
              events=(ptr, ev_idx, ev_val), most_events=most)
    return st


def _reduce(st, p: Params, conv: Conventions, K: int) -> np.ndarray:
    """Eq. (9) for the reductions but "max" (whose logits the forward kernel gathers)."""
    k0 = 0 if conv.record_initial_state else 1
    v_out = st["v_out"]
    if conv.reduction == "mean":
        return v_out[:, k0:].mean(axis=1)
    if conv.reduction == "last":
        return v_out[:, K].copy()
    # "count": sum over updates of the spikes driving the readout, through w_out (summed
    # over the neurons in order, so that a sample's logits do not depend on its place in
    # the batch, as a BLAS product's may)
    return (st["counts"][:, 1, :, None] * p.w_out).sum(axis=1)


def cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Eq. (10) and (B1): mean softmax cross-entropy over the batch and its logit gradient.

    The NumPy reference (the oracle's); ``loss`` and ``loss_and_grad`` run the same
    formulas compiled (``refsnn.kernels.softmax_cross_entropy``).
    """
    B = logits.shape[0]
    rows = np.arange(B)
    top = logits.argmax(axis=1)
    z = logits - logits[rows, top][:, None]
    e = np.exp(z)
    logsum = np.log(e.sum(axis=1))
    # the value as log1p(sum of the others) - z_y: log(1 + r) rounds 1 + r first, which
    # loses all but log10(1 / r) digits of a small loss (at 2.5e-7, 4e-10 of it)
    e[rows, top] = 0
    value = float(np.mean(np.log1p(e.sum(axis=1)) - z[rows, labels]))
    grad = np.exp(z - logsum[:, None])
    # p_y - 1 as minus the other classes' probabilities: the same number, but without
    # the cancellation of 1 - p_y when p_y is near 1 (float32 would lose ~1e-3 of it at
    # p_y = 1 - 1e-4)
    grad[rows, labels] = 0
    grad[rows, labels] = -grad.sum(axis=1)
    return value, grad / B


def _regularisers(count: np.ndarray, T: int, conv: Conventions):
    """Eq. (11) and (B2): the spike-count regularisers and their adjoint on the spikes.

    ``count`` (B, N) sums the spikes of states 0 .. K-1. Returns the value and the
    adjoint ``g_s[b, k, n]`` they give each of those states (the same for every k), as
    an array (B, N).
    """
    B, N = count.shape
    value = 0.0
    g_s = np.zeros_like(count)
    if conv.reg_rate_strength == 0 and conv.reg_pop_strength == 0:
        return value, g_s
    if conv.reg_rate_strength > 0:
        excess = np.maximum(count / T - conv.reg_rate_target, 0)
        value += conv.reg_rate_strength / (B + N) * float(np.sum(excess**2))
        g_s += conv.reg_rate_strength / (B + N) * 2 * excess / T
    if conv.reg_pop_strength > 0:
        excess = np.maximum(count.sum(axis=1) / N - conv.reg_pop_target, 0)
        value += conv.reg_pop_strength / B * float(np.sum(excess**2))
        g_s += (conv.reg_pop_strength / B * 2 * excess / N)[:, None]
    return value, g_s


def _finite_loss(value: float) -> float:
    if not math.isfinite(value):
        raise FloatingPointError(
            f"the loss is {value}: the network's states overflowed. Reduce the weights or the "
            "input rate, or use float64 parameters"
        )
    return value


# --------------------------------------------------------------------- public
def forward(params: Params, x: np.ndarray, conventions: Conventions | str | None = None) -> Trace:
    """Run the network (Eq. (1)-(9)) and return its recorded states.

    Parameters
    ----------
    params : Params
        float32 or float64; decides the arithmetic.
    x : (batch, time, n_in) array of the same dtype
        Input per time bin (usually 0/1 spikes); mostly zeros is fastest.
    conventions : Conventions, preset name, or None for ``Conventions()``.

    Returns
    -------
    Trace
    """
    conv = _check_conventions(conventions)
    p = _check_params(params)
    x, scan = _check_x(p, x, conv)
    st = _run_forward(p, x, scan, conv)
    k0 = 0 if conv.record_initial_state else 1
    return Trace(
        i_syn=st["i"][:, k0:], v=st["v"][:, k0:], spikes=st["s"][:, k0:],
        i_syn_out=st["i_out"][:, k0:], v_out=st["v_out"][:, k0:], logits=st["logits"],
        first_state=k0,
    )


def loss(params: Params, x: np.ndarray, labels, conventions=None) -> float:
    """Eq. (10)-(11): the loss of a forward pass alone (no gradient)."""
    conv = _check_conventions(conventions)
    p = _check_params(params)
    x, scan = _check_x(p, x, conv)
    y = _check_labels(labels, x.shape[0], p.n_out)
    st = _run_forward(p, x, scan, conv, trace=False)
    ce = kn.softmax_cross_entropy(st["logits"], y, np.empty_like(st["logits"]))
    reg, _ = _regularisers(st["counts"][:, 0], x.shape[1], conv)
    return _finite_loss(ce + reg)


def loss_and_grad(params: Params, x: np.ndarray, labels, conventions=None):
    """Loss (Eq. (10)-(11)) and its gradient by BPTT (Eq. (B1)-(B13)) for every parameter.

    Parameters
    ----------
    params : Params
        float32 or float64; decides the arithmetic.
    x : (batch, time, n_in) array of the dtype of ``params``
    labels : (batch,) integers in [0, C)
    conventions : Conventions, preset name, or None for ``Conventions()``.

    Returns
    -------
    loss : float
        Mean cross-entropy over the batch plus the regularisers (if enabled).
    grads : Params
        Gradient of ``loss`` with respect to each of the ten parameter arrays. With a
        hard spike, it is the surrogate gradient; parts cut by the conventions'
        stop-gradients are not included.

    The same call gives bitwise-identical gradients on every run and thread count.
    """
    value, grads, _ = loss_grad_and_logits(params, x, labels, conventions)
    return value, grads


def loss_grad_and_logits(params: Params, x: np.ndarray, labels, conventions=None):
    """``loss_and_grad`` that also returns the logits (batch, C) of the forward pass.

    For training loops that report the accuracy of the batches they train on.
    """
    conv = _check_conventions(conventions)
    p = _check_params(params)
    x, scan = _check_x(p, x, conv)
    y = _check_labels(labels, x.shape[0], p.n_out)
    st = _run_forward(p, x, scan, conv, trace=False)
    del scan  # the input's bit masks: not needed by BPTT
    B, T, _ = x.shape
    K = st["K"]
    N, C = p.n_hidden, p.n_out
    dt = p.dtype
    g_logits = np.empty_like(st["logits"])
    ce = kn.softmax_cross_entropy(st["logits"], y, g_logits)  # (B1)
    reg, g_seed = _regularisers(st["counts"][:, 0], T, conv)  # (B2)
    value = _finite_loss(ce + reg)
    k_max = st["k_max"]  # (B3): the state of each maximum, read for the "max" reduction only
    g_seed = g_seed.astype(dt, copy=False)
    seg = st["seg"]
    task = kn.task_size(B)
    n_tasks = -(-B // task)
    _, grad_cols = kn.spike_grad_columns(N + C, dt.itemsize)  # (B13)'s padded rows
    # g_s has the columns of the adjoint product's last, padded panel (``_matvec_quads``)
    n_pad = st["w_spk_p"].shape[0] * st["w_spk_p"].shape[2]
    # the returned gradients apart from the work arrays, which are not kept
    g_w_in, g_w_rec, g_w_out, g_hid_sum, g_out_sum = kn.carve(
        ((p.n_in, N), dt), ((N, N), dt), ((N, C), dt), ((5, N), dt), ((2, C), dt))
    ptr, ev_idx, ev_val = st["events"]
    most_events = st["most_events"]  # of a sample: (B12) sorts them by input
    (g_hid, g_out, g_w_in_tasks, g_w_spk_tasks, ring_i, g_io, seg_v, seg_s, v_row,
     g_spk, g_v, g_v_next, g_s, g_vo, bits, first, order) = kn.carve(
        ((B, 5, N), dt), ((B, 2, C), dt), ((n_tasks, p.n_in, N), dt),
        ((n_tasks, N, grad_cols), dt), ((B, conv.recurrent_delay + 2, N), dt),
        ((K + 1, B, C), dt), ((B, seg, N), dt), ((seg, B, N), dt), ((B, N), dt),
        ((seg, B, grad_cols), dt), ((B, N), dt), ((B, N), dt), ((B, n_pad), dt), ((B, C), dt),
        ((n_tasks, N), np.int64), ((n_tasks, p.n_in + 1), np.int64),
        ((n_tasks, most_events), np.int64),
    )
    g_hid.fill(0)
    g_out.fill(0)
    g_spk[:, :, N + C:] = 0  # the kernel writes the first N + C columns of every state
    g_s[:, N:] = 0  # the padded panel's columns: computed, never read
    # the weight gradients (B12)-(B13) summed over the tasks in task order, the per-neuron
    # ones over the batch in sample order: by the kernel, which counts non-finite sums
    n_bad = kn.backward_kernel(
        st["w_spk_t"], st["w_spk_p"], st["hid"], st["out"], st["flags"],
        float(conv.surrogate_scale), seg, task, ptr, ev_idx, ev_val, st["i"], st["i_out"],
        st["v_out"], st["ckpt"], g_logits, k_max, g_seed, g_hid, g_out, g_w_in_tasks,
        g_w_spk_tasks, ring_i, g_io, seg_v, seg_s, v_row, g_spk, g_v, g_v_next, g_s, g_vo,
        bits, first, order, g_w_in, g_w_rec, g_w_out, g_hid_sum, g_out_sum,
    )
    grads = Params(
        w_in=g_w_in, w_rec=g_w_rec, w_out=g_w_out,
        decay_syn=g_hid_sum[0], decay_mem=g_hid_sum[1], threshold=g_hid_sum[2],
        v_reset=g_hid_sum[3], v_rest=g_hid_sum[4],
        decay_syn_out=g_out_sum[0], decay_mem_out=g_out_sum[1],
    )
    if any(n_bad):
        for name, g in grads.as_dict().items():
            if not np.all(np.isfinite(g)):
                raise FloatingPointError(
                    f"the gradient of {name} overflowed. Reduce the weights or the surrogate "
                    "scale, or use float64 parameters"
                )
    return value, grads, st["logits"]
