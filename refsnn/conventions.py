"""Conventions: every choice on which implementations of the heterogeneous LIF network differ.

One frozen record names each choice explicitly; a preset fixes all of them. The
equations each field switches are in ``docs/derivation.md`` (equation numbers are
cited below as "Eq. (n)").

Presets
-------
``"paper"``
    Bit for bit the update of the authors' code (Perez-Nieves et al. 2021,
    ``SuGD_code/layers.py``): T-1 updates (the last input bin is unused), the membrane
    driven by the previous current, ``(1 - decay)`` detached inside the input scale,
    subtractive reset of ``threshold - v_reset``, undecayed, with the spike mask and
    the threshold detached (``v_reset`` keeps its gradient), hidden spikes reaching
    the readout one step later than the recurrence sees them, traces that include the
    initial zero state, max over time, fast-sigmoid surrogate with scale 100.
``"smooth"``
    No stop-gradient anywhere and a smooth forward spike ``sigmoid(scale * (v -
    threshold))``; its BPTT gradient is the exact gradient of its loss, so finite
    differences must match it.
``"default"``
    A clean model: T updates, every input bin used, the membrane driven by the new
    current, ``(1 - decay)`` input scale with its full gradient, subtractive
    detached reset, one step of recurrent delay, the readout driven by the spikes of
    the same step, traces of the states after each update, max over time,
    fast-sigmoid surrogate with scale 10.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

__all__ = ["Conventions", "SURROGATES", "RESETS", "INPUT_SCALES", "REDUCTIONS"]

SURROGATES = ("fast_sigmoid", "arctan", "sigmoid", "triangle", "exponential")
RESETS = ("subtract", "subtract_decayed", "to_reset_leak", "to_reset", "none")
INPUT_SCALES = ("none", "one_minus_decay", "dt_over_tau")
REDUCTIONS = ("max", "mean", "last", "count")
DECAY_FORMS = ("exp", "euler", "raw")
MEMBRANE_CURRENTS = ("new", "previous")
SPIKE_TESTS = ("gt", "ge")
SPIKE_FNS = ("heaviside", "sigmoid")


@dataclass(frozen=True)
class Conventions:
    """Every convention of the network, as one frozen record.

    Fields
    ------
    skip_last_input : bool
        True: K = T - 1 updates and the last input bin is never used (paper).
        False: K = T updates. Eq. (2)-(8) run for t = 0 .. K-1.
    record_initial_state : bool
        True: traces and the readout reduction cover states 0 .. K, the initial zero
        state included (paper). False: states 1 .. K.
    membrane_current : {"new", "previous"}
        Current that drives the membrane update, Eq. (3): ``I[t+1]`` ("new") or
        ``I[t]`` ("previous", paper; an input spike in bin t then reaches the
        membrane at state t + 2).
    input_scale : {"none", "one_minus_decay", "dt_over_tau"}
        Factor g(decay_mem) on the current in Eq. (5) and Eq. (8): 1, ``1 - decay``,
        or ``dt/tau`` recovered from the decay through ``decay_form``
        (``-log(decay)`` for "exp", ``1 - decay`` for "euler").
    input_scale_detached : bool
        True: g(decay) is a constant for the gradient (paper); decays then get
        gradient only through the leak.
    reset : {"subtract", "subtract_decayed", "to_reset_leak", "to_reset", "none"}
        Eq. (4)-(6). "subtract": ``- s (threshold - v_reset)`` added after the leak
        (paper, snnTorch). "subtract_decayed": subtracted before the leak (Spyx).
        "to_reset_leak": the leak starts from ``v_reset`` instead of v after a spike
        (Norse, SpikingJelly). "to_reset": the whole new membrane is set to
        ``v_reset`` after a spike. "none": no reset.
    reset_detached : bool
        True: the spike that triggers the reset is a constant for the gradient.
    reset_threshold_detached : bool
        True: the threshold inside a subtractive reset is a constant for the
        gradient (paper); ``v_reset`` keeps its gradient either way.
    recurrent_delay : int
        d >= 1: the spikes of state t - d + 1 enter the current ``I[t+1]`` (Eq. (2)).
        1 is the usual delay; 2 adds the extra step of the SpyTorch tutorial.
    readout_delay : int
        r >= 0: the readout update t is driven by the hidden spikes of state
        t + 1 - r (Eq. (7)). 0: the spikes of the new state; 1: the spikes the
        recurrence sees; 2: the paper (its recorded spikes are shifted one step).
    spike_test : {"gt", "ge"}
        Heaviside spike ``v > threshold`` or ``v >= threshold`` (Eq. (1)).
    spike_fn : {"heaviside", "sigmoid"}
        Forward spike: a hard threshold with a surrogate derivative, or the smooth
        ``sigmoid(surrogate_scale * (v - threshold))`` with its exact derivative
        (then ``surrogate`` must be "sigmoid").
    surrogate : {"fast_sigmoid", "arctan", "sigmoid", "triangle", "exponential"}
        Surrogate derivative of the spike in BPTT (see ``refsnn.surrogates``).
    surrogate_scale : float
        Its scale (steepness; larger is narrower).
    decay_form : {"exp", "euler", "raw"}
        How a time constant maps to a decay: ``exp(-dt/tau)``, ``1 - dt/tau``, or
        the decay itself is the parameter (no time constant). Used by
        ``tau_to_decay`` / ``decay_to_tau`` and by ``input_scale="dt_over_tau"``.
    reduction : {"max", "mean", "last", "count"}
        Readout reduction over the recorded states before the softmax (Eq. (9)):
        max over time (paper), mean over time, last state, or "count": the total
        charge delivered to each readout unit, ``sum_t s[t + 1 - r] @ w_out`` (spike counts
        weighted by the readout weights; readout decays get no gradient).
    reg_rate_strength, reg_rate_target : float
        Per-neuron spike-rate regulariser of the paper's code (strength ``s_l``,
        target ``theta_l``): ``s_l / (B + N) * sum_{b,n} relu(rate[b,n] -
        theta_l)**2`` with ``rate = count / T``. As written by the authors it
        penalises rates ABOVE the target although their name says "lower bound".
        Off when the strength is 0 (default).
    reg_pop_strength, reg_pop_target : float
        Population regulariser: ``s_u / B * sum_b relu(count[b] / N - theta_u)**2``
        with ``count[b]`` the sample's total spikes. Off when the strength is 0.
    """

    skip_last_input: bool = False
    record_initial_state: bool = False
    membrane_current: str = "new"
    input_scale: str = "one_minus_decay"
    input_scale_detached: bool = False
    reset: str = "subtract"
    reset_detached: bool = True
    reset_threshold_detached: bool = False
    recurrent_delay: int = 1
    readout_delay: int = 0
    spike_test: str = "gt"
    spike_fn: str = "heaviside"
    surrogate: str = "fast_sigmoid"
    surrogate_scale: float = 10.0
    decay_form: str = "exp"
    reduction: str = "max"
    reg_rate_strength: float = 0.0
    reg_rate_target: float = 0.0
    reg_pop_strength: float = 0.0
    reg_pop_target: float = 0.0

    def __post_init__(self) -> None:
        _choice("membrane_current", self.membrane_current, MEMBRANE_CURRENTS)
        _choice("input_scale", self.input_scale, INPUT_SCALES)
        _choice("reset", self.reset, RESETS)
        _choice("spike_test", self.spike_test, SPIKE_TESTS)
        _choice("spike_fn", self.spike_fn, SPIKE_FNS)
        _choice("surrogate", self.surrogate, SURROGATES)
        _choice("decay_form", self.decay_form, DECAY_FORMS)
        _choice("reduction", self.reduction, REDUCTIONS)
        for name in (
            "skip_last_input",
            "record_initial_state",
            "input_scale_detached",
            "reset_detached",
            "reset_threshold_detached",
        ):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"Conventions.{name} must be a bool, got {value!r}")
        for name, low in (("recurrent_delay", 1), ("readout_delay", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"Conventions.{name} must be an int >= {low}, got {value!r}")
        scale = self.surrogate_scale
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError("Conventions.surrogate_scale must be a finite float > 0, "
                             f"got {scale!r}")
        for name in ("reg_rate_strength", "reg_rate_target", "reg_pop_strength", "reg_pop_target"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"Conventions.{name} must be a finite float, got {value!r}")
        for name in ("reg_rate_strength", "reg_pop_strength"):
            if getattr(self, name) < 0:
                raise ValueError(f"Conventions.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.spike_fn == "sigmoid" and self.surrogate != "sigmoid":
            raise ValueError(
                "Conventions.spike_fn='sigmoid' uses the exact derivative of the sigmoid: "
                f"set surrogate='sigmoid' (got surrogate={self.surrogate!r})"
            )
        if self.input_scale == "dt_over_tau" and self.decay_form == "raw":
            raise ValueError(
                "Conventions.input_scale='dt_over_tau' needs decay_form 'exp' or 'euler' "
                "to recover dt/tau from a decay; got decay_form='raw'"
            )

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str) -> "Conventions":
        """Return the named preset: one of ``Conventions.PRESETS``."""
        try:
            fields = _PRESETS[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown conventions preset {name!r}; choose one of {sorted(_PRESETS)}"
            ) from None
        return cls(**fields)

    def replace(self, **changes) -> "Conventions":
        """Return a copy with the given fields changed (validated like the constructor)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(
                f"Conventions has no field(s) {sorted(unknown)}; fields are "
                f"{[f.name for f in dataclasses.fields(self)]}"
            )
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """Return the fields as a plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    # --------------------------------------------------- time constants, decays
    def tau_to_decay(self, tau, dt):
        """Map time constants ``tau`` (same unit as ``dt``) to decays with ``decay_form``."""
        import numpy as np

        tau = np.asarray(tau, dtype=np.float64)
        if self.decay_form == "exp":
            return np.exp(-dt / tau)
        if self.decay_form == "euler":
            return 1.0 - dt / tau
        raise ValueError("decay_form='raw' has no time constant; decays are the parameters")

    def decay_to_tau(self, decay, dt):
        """Map decays back to time constants (in the unit of ``dt``) with ``decay_form``."""
        import numpy as np

        decay = np.asarray(decay, dtype=np.float64)
        if self.decay_form == "exp":
            return -dt / np.log(decay)
        if self.decay_form == "euler":
            return dt / (1.0 - decay)
        raise ValueError("decay_form='raw' has no time constant; decays are the parameters")


PRESET_NAMES = ("default", "paper", "smooth")

_PRESETS = {
    "default": {},
    "paper": dict(
        skip_last_input=True,
        record_initial_state=True,
        membrane_current="previous",
        input_scale="one_minus_decay",
        input_scale_detached=True,
        reset="subtract",
        reset_detached=True,
        reset_threshold_detached=True,
        recurrent_delay=1,
        readout_delay=2,
        spike_test="gt",
        spike_fn="heaviside",
        surrogate="fast_sigmoid",
        surrogate_scale=100.0,
        decay_form="exp",
        reduction="max",
    ),
    "smooth": dict(
        input_scale_detached=False,
        reset="subtract",
        reset_detached=False,
        reset_threshold_detached=False,
        spike_fn="sigmoid",
        surrogate="sigmoid",
        surrogate_scale=5.0,
        reduction="mean",
    ),
}
Conventions.PRESETS = PRESET_NAMES


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"Conventions.{name} must be one of {list(allowed)}, got {value!r}")
