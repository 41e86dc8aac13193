"""Hypothesis strategies for networks, inputs and conventions.

Arrays are generated from a drawn seed with NumPy (fast), while everything a
counterexample should shrink towards is drawn directly: sizes (neurons, steps, batch,
inputs, classes), input density, weight scale and each convention field. A failing
case therefore shrinks to the smallest network and the simplest conventions that
still fail.

Profiles (``settings.load_profile``): ``"default"`` (30 examples), ``"ci"`` (15, and
derandomized: the examples are a function of the test alone, so a failure in CI recurs
on every run and on any machine), ``"thorough"`` (300); all with ``deadline=None``
since the first call compiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import refsnn
from refsnn.conventions import RESETS, SURROGATES
from refsnn.params import Params
from refsnn.random import random_params, random_spikes

__all__ = ["Case", "cases", "conventions", "framework_cases", "framework_conventions",
           "register_profiles", "sizes"]


def register_profiles() -> None:
    """Register the ``default``, ``ci`` and ``thorough`` profiles."""
    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("default", max_examples=30, **common)
    settings.register_profile("ci", max_examples=15, derandomize=True, **common)
    settings.register_profile("thorough", max_examples=300, **common)


@dataclass(frozen=True)
class Case:
    """One generated problem: a network, an input batch, labels and conventions."""

    params: Params
    x: np.ndarray
    labels: np.ndarray
    conventions: refsnn.Conventions
    seed: int

    def describe(self) -> str:
        """Sizes in words, for reports."""
        B, T, n_in = self.x.shape
        return (
            f"batch={B}, steps={T}, n_in={n_in}, hidden={self.params.n_hidden}, "
            f"classes={self.params.n_out}, seed={self.seed}"
        )


@st.composite
def sizes(draw, max_hidden: int = 8, max_steps: int = 20, max_batch: int = 4, min_steps: int = 2):
    """(batch, steps, n_in, hidden, classes), shrinking towards the smallest."""
    return (
        draw(st.integers(1, max_batch)),
        draw(st.integers(min_steps, max(min_steps, max_steps))),
        # inputs: few, or enough for a 32-input block of the input scan and a tail
        draw(st.integers(1, 8) | st.integers(33, 70)),
        draw(st.integers(1, max_hidden)),
        draw(st.integers(2, 4)),
    )


@st.composite
def conventions(draw, base: str = "default", hard: bool | None = None, vary=None):
    """Conventions from the preset ``base`` with drawn fields.

    ``hard``: True for a heaviside spike, False for the smooth one, None either.
    ``vary``: the fields to draw (default: all that any implementation may differ on).
    """
    c = refsnn.Conventions.preset(base)
    fields = {
        "skip_last_input": st.booleans(),
        "record_initial_state": st.booleans(),
        "membrane_current": st.sampled_from(["new", "previous"]),
        "input_scale": st.sampled_from(["one_minus_decay", "none", "dt_over_tau"]),
        "input_scale_detached": st.booleans(),
        "reset": st.sampled_from(RESETS),
        "reset_detached": st.booleans(),
        "reset_threshold_detached": st.booleans(),
        "recurrent_delay": st.integers(1, 3),
        "readout_delay": st.integers(0, 2),
        "spike_test": st.sampled_from(["gt", "ge"]),
        "surrogate": st.sampled_from(SURROGATES),
        "surrogate_scale": st.sampled_from([1.0, 5.0, 25.0, 100.0]),
        "decay_form": st.sampled_from(["exp", "euler"]),
        "reduction": st.sampled_from(["max", "mean", "last", "count"]),
    }
    vary = tuple(fields) if vary is None else vary
    changes = {name: draw(fields[name]) for name in vary}
    spike_hard = draw(st.booleans()) if hard is None else hard
    if spike_hard:
        changes["spike_fn"] = "heaviside"
    else:
        changes["spike_fn"] = "sigmoid"
        changes["surrogate"] = "sigmoid"
        changes["surrogate_scale"] = draw(st.sampled_from([1.0, 3.0, 8.0]))
    if draw(st.booleans()):
        changes["reg_rate_strength"] = draw(st.sampled_from([0.5, 2.0]))
        changes["reg_rate_target"] = draw(st.sampled_from([0.0, 0.05]))
        changes["reg_pop_strength"] = draw(st.sampled_from([0.5, 2.0]))
        changes["reg_pop_target"] = draw(st.sampled_from([0.0, 0.1]))
    return c.replace(**changes)


@st.composite
def cases(draw, conv=None, dtype=np.float64, **size_kwargs):
    """Draw a ``Case``: random heterogeneous network, sparse input, labels.

    The input is binary spikes, or (drawn) spike counts 1 to 3 in part of the steps:
    the kernels read a step of 0/1 input differently from a step with other values.

    ``conv``: a Conventions, or a strategy of them (default ``conventions()``).
    """
    B, T, n_in, N, C = draw(sizes(**size_kwargs))
    if conv is None:
        conv = conventions()
    c = draw(conv) if isinstance(conv, st.SearchStrategy) else conv
    if c.skip_last_input and T < 2:
        T = 2
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([0.05, 0.2, 0.5]))
    scale = draw(st.sampled_from([0.5, 1.0, 2.0]))
    rng = np.random.default_rng(seed)
    p = random_params(n_in, N, C, rng, dtype=dtype, weight_scale=scale)
    x = random_spikes((B, T, n_in), density, rng, dtype=dtype)
    if draw(st.booleans()):  # counts in about half of the steps
        counts = rng.integers(1, 4, size=x.shape) * (rng.random((B, T, 1)) < 0.5)
        x = (x * np.maximum(counts, 1)).astype(dtype)
    labels = rng.integers(0, C, size=B)
    return Case(p, x, labels, c, seed)


def framework_conventions(name: str):
    """Strategy of the ``Conventions`` that framework ``name`` can express.

    ``name`` is one of ``validation.adapters.ADAPTER_NAMES``; each adapter's docstring
    says what its strategy draws and why the rest is out of reach.
    """
    from .adapters import get_adapter

    return get_adapter(name).conventions()


def framework_cases(name: str, **size_kwargs):
    """``cases`` within what framework ``name`` expresses (and its fewest steps)."""
    from .adapters import get_adapter

    adapter = get_adapter(name)
    size_kwargs.setdefault("min_steps", adapter.min_steps)
    return cases(conv=adapter.conventions(), **size_kwargs)
