"""Parameters of the network: one frozen record of ten arrays, and its validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._numba import jit_noinline
from .kernels import aligned_copy

__all__ = ["Params", "PARAM_NAMES", "HIDDEN_FIELDS", "READOUT_FIELDS", "aligned_copy"]

PARAM_NAMES = (
    "w_in",
    "w_rec",
    "w_out",
    "decay_syn",
    "decay_mem",
    "threshold",
    "v_reset",
    "v_rest",
    "decay_syn_out",
    "decay_mem_out",
)
#: per-hidden-neuron fields, shape (N,)
HIDDEN_FIELDS = ("decay_syn", "decay_mem", "threshold", "v_reset", "v_rest")
#: per-readout-unit fields, shape (C,)
READOUT_FIELDS = ("decay_syn_out", "decay_mem_out")
DECAY_FIELDS = ("decay_syn", "decay_mem", "decay_syn_out", "decay_mem_out")


@dataclass(frozen=True)
class Params:
    """Every parameter of the network (numpy arrays, one dtype: float32 or float64).

    Attributes
    ----------
    w_in : (n_in, N)
        Input weights, pre -> post.
    w_rec : (N, N)
        Recurrent weights, ``w_rec[j, i]`` from neuron j to neuron i; dense,
        self-connections allowed.
    w_out : (N, C)
        Readout weights.
    decay_syn, decay_mem : (N,)
        Per-neuron synaptic and membrane decay factors in (0, 1) (the paper's
        ``alpha`` and ``beta``).
    threshold, v_reset, v_rest : (N,)
        Per-neuron firing threshold, reset potential and rest potential.
    decay_syn_out, decay_mem_out : (C,)
        Per-readout-unit synaptic and membrane decay factors in (0, 1).

    The same record carries gradients (``refsnn.loss_and_grad``), which need not
    satisfy the range checks; ``validate()`` is called by the public functions.
    """

    w_in: np.ndarray
    w_rec: np.ndarray
    w_out: np.ndarray
    decay_syn: np.ndarray
    decay_mem: np.ndarray
    threshold: np.ndarray
    v_reset: np.ndarray
    v_rest: np.ndarray
    decay_syn_out: np.ndarray
    decay_mem_out: np.ndarray

    @property
    def n_in(self) -> int:
        """Number of inputs."""
        return self.w_in.shape[0]

    @property
    def n_hidden(self) -> int:
        """Number of hidden neurons N."""
        return self.w_in.shape[1]

    @property
    def n_out(self) -> int:
        """Number of readout units (classes) C."""
        return self.w_out.shape[1]

    @property
    def dtype(self) -> np.dtype:
        """The common dtype of the arrays."""
        return self.w_in.dtype

    def replace(self, **changes) -> "Params":
        """Return a copy with the given fields replaced."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """Return ``{name: array}`` in ``PARAM_NAMES`` order (arrays not copied)."""
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def astype(self, dtype) -> "Params":
        """Return a copy with every array cast to ``dtype`` (``aligned_copy``)."""
        return Params(**{k: aligned_copy(v, dtype) for k, v in self.as_dict().items()})

    def copy(self) -> "Params":
        """Return a deep copy (``aligned_copy``)."""
        return Params(**{k: aligned_copy(v) for k, v in self.as_dict().items()})

    def map(self, fn) -> "Params":
        """Return ``Params`` with ``fn(array)`` applied to every field."""
        return Params(**{k: fn(v) for k, v in self.as_dict().items()})

    @classmethod
    def zeros_like(cls, other: "Params") -> "Params":
        """Return a record of zeros shaped like ``other``."""
        return other.map(np.zeros_like)

    def flat(self) -> np.ndarray:
        """Concatenate every field, in ``PARAM_NAMES`` order, into one vector."""
        return np.concatenate([np.ravel(getattr(self, n)) for n in PARAM_NAMES])

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when shapes, dtypes or values are invalid.

        Checks: every field a numpy array of one floating dtype (float32 or
        float64); shapes consistent with ``w_in (n_in, N)``, ``w_out (N, C)``;
        every value finite; decays strictly inside (0, 1).
        """
        for name in PARAM_NAMES:
            value = getattr(self, name)
            if not isinstance(value, np.ndarray):
                raise ValueError(
                    f"params.{name} must be a numpy array, got {type(value).__name__}"
                )
        dtype = self.w_in.dtype
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"params.w_in has dtype {dtype}; allowed: float32 or float64")
        for name in PARAM_NAMES:
            value = getattr(self, name)
            if value.dtype != dtype:
                raise ValueError(
                    f"params.{name} has dtype {value.dtype} but params.w_in has {dtype}; "
                    "all parameters must share one dtype (use Params.astype)"
                )
        if self.w_in.ndim != 2:
            raise ValueError(f"params.w_in must be 2-D (n_in, N), got shape {self.w_in.shape}")
        if self.w_out.ndim != 2:
            raise ValueError(f"params.w_out must be 2-D (N, C), got shape {self.w_out.shape}")
        n_in, n = self.w_in.shape
        c = self.w_out.shape[1]
        if n < 1 or n_in < 1 or c < 1:
            raise ValueError(
                f"params sizes must be >= 1, got n_in={n_in}, N={n}, C={c}"
            )
        expected = {"w_rec": (n, n), "w_out": (n, c)}
        expected.update({f: (n,) for f in HIDDEN_FIELDS})
        expected.update({f: (c,) for f in READOUT_FIELDS})
        for name, shape in expected.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(
                    f"params.{name} has shape {got}; expected {shape} for "
                    f"w_in of shape {self.w_in.shape} and w_out with C={c} columns"
                )
        if all(_decays_ok(getattr(self, name)) if name in DECAY_FIELDS
               else _finite(getattr(self, name)) for name in PARAM_NAMES):
            return  # one compiled pass per array; the loops below say what is wrong
        for name in PARAM_NAMES:
            value = getattr(self, name)
            if not np.all(np.isfinite(value)):
                bad = np.flatnonzero(~np.isfinite(value.ravel()))[0]
                raise ValueError(
                    f"params.{name} contains a non-finite value ({value.ravel()[bad]} at flat "
                    f"index {bad}); every parameter must be finite"
                )
        for name in DECAY_FIELDS:
            value = getattr(self, name)
            bad = (value <= 0) | (value >= 1)
            if np.any(bad):
                idx = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"params.{name}[{idx}] = {float(value[idx])} is outside (0, 1); decays must "
                    "lie strictly between 0 and 1 (decay = exp(-dt/tau))"
                )


@jit_noinline
def _finite(a):
    bad = False  # a flag, not a count: the loop then runs on whole vectors of floats
    for v in a.flat:
        bad |= v - v != 0  # true for inf and NaN only
    return not bad


@jit_noinline
def _decays_ok(a):
    ok = True
    for v in a.flat:
        ok &= (v > 0) & (v < 1)  # false for NaN too
    return ok
