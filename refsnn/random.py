"""Random networks for tests, examples and gradient checks."""

from __future__ import annotations

import numpy as np

from .params import Params, aligned_copy

__all__ = ["random_params", "random_spikes"]


def random_params(
    n_in: int,
    n_hidden: int,
    n_out: int,
    rng: np.random.Generator,
    *,
    dtype=np.float64,
    weight_scale: float = 1.0,
    heterogeneous: bool = True,
) -> Params:
    """Draw a random network whose neurons fire for sparse random input.

    Weights ~ U(-b, b) times ``weight_scale`` with ``b = 1/sqrt(n_in)`` (input, biased
    positive so the layer fires), ``1/sqrt(N)`` (recurrent, readout); decays in
    (0.6, 0.98); when ``heterogeneous``, thresholds in (0.5, 1.5) and reset / rest
    potentials in (-0.3, 0.3), else 1, 0, 0.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")

    def u(lo, hi, shape):
        return rng.uniform(lo, hi, size=shape)

    b_in = weight_scale * 3.0 / np.sqrt(n_in)
    b_h = weight_scale / np.sqrt(n_hidden)
    fields = dict(
        w_in=u(-0.3 * b_in, b_in, (n_in, n_hidden)),
        w_rec=u(-b_h, b_h, (n_hidden, n_hidden)),
        w_out=u(-b_h, b_h, (n_hidden, n_out)),
        decay_syn=u(0.6, 0.98, n_hidden),
        decay_mem=u(0.6, 0.98, n_hidden),
        threshold=u(0.5, 1.5, n_hidden) if heterogeneous else np.ones(n_hidden),
        v_reset=u(-0.3, 0.3, n_hidden) if heterogeneous else np.zeros(n_hidden),
        v_rest=u(-0.3, 0.3, n_hidden) if heterogeneous else np.zeros(n_hidden),
        decay_syn_out=u(0.6, 0.98, n_out),
        decay_mem_out=u(0.6, 0.98, n_out),
    )
    return Params(**{k: aligned_copy(v, dtype) for k, v in fields.items()})


def random_spikes(shape, density: float, rng: np.random.Generator, dtype=np.float64):
    """Bernoulli(``density``) 0/1 spikes of the given shape (batch, time, n_in)."""
    return (rng.random(shape) < density).astype(dtype)
