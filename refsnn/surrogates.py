"""Surrogate derivatives of the spike, as NumPy functions and as Numba scalar functions.

With ``x = v - threshold`` and ``s`` the scale (larger is narrower):

=============== ======================================== =======================
name            derivative                               integral over x
=============== ======================================== =======================
fast_sigmoid    ``1 / (s |x| + 1)**2`` (SuperSpike)       ``2 / s``
arctan          ``(s / 2) / (1 + (pi s x / 2)**2)``       1
sigmoid         ``s sig(s x) (1 - sig(s x))``             1
triangle        ``s max(0, 1 - s |x|)``                   1
exponential     ``(s / 2) exp(-s |x|)``                   1
=============== ======================================== =======================

The fast sigmoid is the paper's (scale 100) and SpyTorch's; it is not normalised,
as in every code that uses it. ``arctan`` with ``s = a`` is snnTorch's ``atan(alpha=a)``;
``sigmoid`` with ``s = 4`` is SpikingJelly's default; ``triangle`` is a piecewise
linear surrogate of half-width ``1 / s``; ``exponential`` is a Laplace kernel of
width ``1 / s``. The smooth spike ``sigmoid(s x)`` (``Conventions.spike_fn =
"sigmoid"``) has ``sigmoid`` above as its exact derivative.
"""

from __future__ import annotations

import math

import numpy as np

from ._numba import jit, like

__all__ = ["surrogate", "smooth_spike", "SURROGATE_CODES"]

SURROGATE_CODES = {
    "fast_sigmoid": 0,
    "arctan": 1,
    "sigmoid": 2,
    "triangle": 3,
    "exponential": 4,
}


def surrogate(name: str, x, scale: float) -> np.ndarray:
    """Evaluate the surrogate derivative ``name`` at ``x = v - threshold`` (NumPy)."""
    x = np.asarray(x)
    s = scale
    if name == "fast_sigmoid":
        return 1.0 / (s * np.abs(x) + 1.0) ** 2
    if name == "arctan":
        return (s / 2.0) / (1.0 + (np.pi * s * x / 2.0) ** 2)
    if name == "sigmoid":
        e = np.exp(-np.abs(s * x))
        return s * e / (1.0 + e) ** 2
    if name == "triangle":
        return s * np.maximum(0.0, 1.0 - s * np.abs(x))
    if name == "exponential":
        return (s / 2.0) * np.exp(-s * np.abs(x))
    raise ValueError(f"unknown surrogate {name!r}; choose one of {sorted(SURROGATE_CODES)}")


def smooth_spike(x, scale: float) -> np.ndarray:
    """Smooth forward spike ``sigmoid(scale * x)``, computed without overflow (NumPy)."""
    z = scale * np.asarray(x)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@jit
def surrogate_scalar(code, x, s):
    """Numba scalar twin of ``surrogate``; ``code`` from ``SURROGATE_CODES``.

    Computed in the float type of ``x`` (constants and scale cast by ``like``).
    """
    one, two = like(x, 1.0), like(x, 2.0)
    s = like(x, s)
    if code == 0:
        d = s * abs(x) + one
        return one / (d * d)
    if code == 1:
        z = like(x, math.pi) * s * x / two
        return (s / two) / (one + z * z)
    if code == 2:
        e = math.exp(-abs(s * x))
        return s * e / ((one + e) * (one + e))
    if code == 3:
        return s * max(like(x, 0.0), one - s * abs(x))
    return (s / two) * math.exp(-s * abs(x))


@jit
def smooth_spike_scalar(x, s):
    """Numba scalar twin of ``smooth_spike``, in the float type of ``x``."""
    one = like(x, 1.0)
    z = like(x, s) * x
    e = math.exp(-abs(z))
    if z >= 0:
        return one / (one + e)
    return e / (one + e)
