"""Initialisation: time constants (HomInit, HetInit) and weights, each from a Generator.

Time constants are in seconds and mapped to decays with ``exp(-dt / tau)`` (or the
``decay_form`` of given conventions). Following the paper (Perez-Nieves et al. 2021,
Methods), decays are clamped to ``[2/e, 0.995]`` (tau in [3.26 dt, 199.5 dt]) once
before training; readout decays are drawn and clamped like the hidden ones but never
trained.
"""

from __future__ import annotations

import math

import numpy as np

from .conventions import Conventions
from .params import Params, aligned_copy

__all__ = [
    "DECAY_MIN",
    "DECAY_MAX",
    "THRESHOLD_MIN",
    "THRESHOLD_MAX",
    "TAU_DISTRIBUTIONS",
    "WEIGHT_INITS",
    "sample_tau",
    "init_params",
]

#: the paper's clamp of trained decays: tau in [3.26 dt, 199.5 dt]
DECAY_MIN = 2.0 / math.e
DECAY_MAX = 0.995
#: the paper's clamp of trained thresholds
THRESHOLD_MIN, THRESHOLD_MAX = 0.5, 1.5
TAU_DISTRIBUTIONS = ("hom", "gamma", "uniform", "normal", "lognormal")
WEIGHT_INITS = ("paper", "fan_in")


def sample_tau(dist: str, mean: float, size: int, rng: np.random.Generator,
               shape: float = 3.0) -> np.ndarray:
    """Time constants (seconds) with the given mean.

    Parameters
    ----------
    dist : {"hom", "gamma", "uniform", "normal", "lognormal"}
        "hom": every tau equal to ``mean`` (HomInit). "gamma": shape ``shape`` (3 in
        the paper), scale ``mean / shape`` (HetInit). "uniform": U(0, 2 mean).
        "normal": N(mean, mean / sqrt(shape)) (the gamma's standard deviation, as in
        the paper's code). "lognormal": the log-normal with the gamma's mean and
        standard deviation.
    mean : float
        Mean time constant in seconds (> 0).
    size : int
    rng : numpy.random.Generator
    shape : float
        Gamma shape k; also sets the spread of "normal" and "lognormal".
    """
    if dist not in TAU_DISTRIBUTIONS:
        raise ValueError(f"tau distribution must be one of {list(TAU_DISTRIBUTIONS)}, got {dist!r}")
    if not (mean > 0 and math.isfinite(mean)):
        raise ValueError(f"mean time constant must be a finite number > 0 (seconds), got {mean!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if dist == "hom":
        return np.full(size, float(mean))
    if dist == "gamma":
        return rng.gamma(shape, mean / shape, size)
    if dist == "uniform":
        return rng.uniform(0.0, 2.0 * mean, size)
    if dist == "normal":
        return rng.normal(mean, mean / math.sqrt(shape), size)
    sigma2 = math.log1p(1.0 / shape)
    return rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), size)


def _decays(tau: np.ndarray, dt: float, conv: Conventions) -> np.ndarray:
    """Decays of time constants, clamped to [DECAY_MIN, DECAY_MAX].

    A non-positive tau (possible with the normal distribution) maps to the slowest
    allowed decay, as the paper's clamp does with its ``exp(-dt/tau) > 1``.
    """
    safe = np.where(tau > 0, tau, np.inf)
    form = conv if conv.decay_form != "raw" else conv.replace(decay_form="exp")
    with np.errstate(divide="ignore"):
        d = form.tau_to_decay(safe, dt)
    return np.clip(d, DECAY_MIN, DECAY_MAX)


def init_params(
    n_in: int,
    n_hidden: int,
    n_out: int,
    rng: np.random.Generator,
    *,
    dt: float = 1e-3,
    tau_syn: float = 10e-3,
    tau_mem: float = 20e-3,
    dist: str = "gamma",
    shape: float = 3.0,
    het_threshold: bool = False,
    het_reset: bool = False,
    het_rest: bool = False,
    weight_init: str = "paper",
    weight_scale: float = 1.0,
    conventions: Conventions | None = None,
    dtype=np.float32,
) -> Params:
    """Initialise a network as in the paper.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
    rng : numpy.random.Generator
        The only source of randomness; draws in a fixed order (weights, then time
        constants, then thresholds, resets, rests).
    dt : float
        Time step in seconds.
    tau_syn, tau_mem : float
        Mean synaptic and membrane time constants in seconds (paper: 10 ms, 20 ms).
    dist : str
        ``"hom"`` for HomInit, ``"gamma"`` for the paper's HetInit, or another of
        ``TAU_DISTRIBUTIONS``; applies to hidden and readout time constants.
    het_threshold, het_reset, het_rest : bool
        Per-neuron threshold U(0.5, 1.5), reset U(-0.5, 0.5), rest U(-0.5, 0.5)
        (paper options) instead of 1, 0, 0.
    weight_init : {"paper", "fan_in"}
        "paper": U(-b, b) with b = 1/sqrt(fan_out) (the authors store weights
        (in, out), so PyTorch's fan-in is the output size: 1/sqrt(N) for input and
        recurrent weights, 1/sqrt(C) for the readout). "fan_in": b = 1/sqrt(n_in),
        1/sqrt(N), 1/sqrt(N).
    weight_scale : float
        Multiplies the input weights: sparse inputs (one spike per input, as in the
        procedural tasks) need a larger drive for the layer to fire at all, since the
        paper's membrane sees the current scaled by ``1 - decay_mem``.
    conventions : Conventions, optional
        Its ``decay_form`` maps tau to decay (default exp).
    dtype : float32 or float64
    """
    for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a finite number of seconds > 0, got {dt!r}")
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {list(WEIGHT_INITS)}, got {weight_init!r}")
    conv = Conventions() if conventions is None else conventions
    if weight_init == "paper":
        b_in, b_rec, b_out = (1 / math.sqrt(n_hidden), 1 / math.sqrt(n_hidden),
                              1 / math.sqrt(n_out))
    else:
        b_in, b_rec, b_out = 1 / math.sqrt(n_in), 1 / math.sqrt(n_hidden), 1 / math.sqrt(n_hidden)
    if not (weight_scale > 0 and math.isfinite(weight_scale)):
        raise ValueError(f"weight_scale must be a finite number > 0, got {weight_scale!r}")
    w_in = weight_scale * rng.uniform(-b_in, b_in, (n_in, n_hidden))
    w_rec = rng.uniform(-b_rec, b_rec, (n_hidden, n_hidden))
    w_out = rng.uniform(-b_out, b_out, (n_hidden, n_out))
    decay_syn = _decays(sample_tau(dist, tau_syn, n_hidden, rng, shape), dt, conv)
    decay_mem = _decays(sample_tau(dist, tau_mem, n_hidden, rng, shape), dt, conv)
    decay_syn_out = _decays(sample_tau(dist, tau_syn, n_out, rng, shape), dt, conv)
    decay_mem_out = _decays(sample_tau(dist, tau_mem, n_out, rng, shape), dt, conv)
    threshold = rng.uniform(0.5, 1.5, n_hidden) if het_threshold else np.ones(n_hidden)
    v_reset = rng.uniform(-0.5, 0.5, n_hidden) if het_reset else np.zeros(n_hidden)
    v_rest = rng.uniform(-0.5, 0.5, n_hidden) if het_rest else np.zeros(n_hidden)
    fields = dict(
        w_in=w_in, w_rec=w_rec, w_out=w_out, decay_syn=decay_syn, decay_mem=decay_mem,
        threshold=threshold, v_reset=v_reset, v_rest=v_rest,
        decay_syn_out=decay_syn_out, decay_mem_out=decay_mem_out,
    )
    return Params(**{k: aligned_copy(v, dtype) for k, v in fields.items()})
