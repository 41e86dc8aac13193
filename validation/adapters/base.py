"""What every adapter provides, and the pieces the peer adapters share.

An adapter runs one other implementation of the network on a refsnn problem
(``Params``, input ``x``, labels, ``Conventions``) and returns what that implementation
computed, in refsnn's layout, so ``validation.check`` can compare it quantity by
quantity with refsnn:

- ``traces``: arrays over the states ``k = 0 .. K`` (state 0 is the zero initial state),
  shaped ``(B, K + 1, N)`` or ``(B, K + 1, C)``, under refsnn's names (``i_syn``, ``v``,
  ``spikes``, ``i_syn_out``, ``v_out``) plus ``logits`` ``(B, C)``. A peer that records a
  different variable (Norse keeps the membrane after its reset and the current after its
  decay) says so in ``expected_traces``, which maps refsnn's states to the peer's
  variables; the comparison is made on those;
- ``loss``: a float;
- ``grads``: ``{field: array}`` for every refsnn parameter whose gradient the peer
  exposes (mapped to refsnn's parameterisation by the chain rule where the peer's
  parameter is a function of refsnn's, e.g. Norse's ``tau_mem_inv = (1 - decay)/dt``).

The shared readout ``readout_loss`` (refsnn's Eq. (5)-(10) written in PyTorch) is put on
top of a peer's hidden spikes when the peer has no equivalent readout (snnTorch, Norse,
SpikingJelly): their hidden layer is then compared trace by trace, and the readout,
loss and every gradient check the peer's spikes and its backward pass through them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from refsnn.conventions import Conventions
from refsnn.params import PARAM_NAMES, Params

__all__ = [
    "Adapter",
    "PeerRun",
    "Tolerance",
    "autograd",
    "input_scale",
    "readout_loss",
    "prescaled",
    "torch_device",
    "unscale_grads",
]

#: quantities compared between refsnn and a peer, in report order
TRACE_NAMES = ("i_syn", "v", "spikes", "i_syn_out", "v_out", "logits")


@dataclass(frozen=True)
class Tolerance:
    """Relative tolerances of one framework, and why.

    ``traces`` covers currents, membranes and the logits, ``loss`` the loss, ``grads``
    every gradient except those in ``grads_by_field``. Spikes must be equal (a spike
    flipped by rounding, where refsnn's membrane is within ``tie`` of the threshold,
    makes the case inconclusive instead). Errors are ``max |a - b| / max(|a|, |b|,
    floor)`` with the floors of ``validation.check`` (cancellation-aware for gradients).
    """

    traces: float
    loss: float
    grads: float
    grads_by_field: dict = field(default_factory=dict)
    tie: float = 1e-9
    why: str = ""

    def for_quantity(self, quantity: str) -> float:
        """Tolerance of ``quantity`` (``"v"``, ``"loss"``, ``"grad.w_in"`` ...)."""
        if quantity == "loss":
            return self.loss
        if quantity.startswith("grad."):
            return self.grads_by_field.get(quantity[5:], self.grads)
        if quantity == "spikes":
            return 0.0
        return self.traces


@dataclass
class PeerRun:
    """What a peer computed on one problem (see the module docstring)."""

    traces: dict
    loss: float
    grads: dict
    #: first state the traces cover (0: states 0 .. K; 1: states 1 .. K)
    first: int = 0


class Adapter:
    """Base class: one framework's implementation of the network, and its mapping.

    Subclasses set the class attributes and implement ``conventions``, ``run`` and,
    where the peer cannot express every parameter, ``prepare``.
    """

    #: name on the command line
    name: str = ""
    #: what runs, in words ("snnTorch RSynaptic", ...)
    engine: str = ""
    #: modules that must import (the first one's distribution gives the version)
    requires: tuple = ()
    #: the line that installs it without pulling a CUDA build of torch
    install: str = ""
    tolerance: Tolerance = Tolerance(1e-10, 1e-10, 1e-10)
    #: refsnn parameters whose gradient the peer exposes (compared)
    grad_fields: tuple = PARAM_NAMES
    #: traces compared
    trace_fields: tuple = TRACE_NAMES
    #: whether ``--device cuda`` moves this adapter to the GPU
    uses_device: bool = True
    #: one-line summary of the conventions it expresses, for reports
    supported: str = ""
    #: fewest input steps of the problems drawn for it
    min_steps: int = 2

    # ------------------------------------------------------------ availability
    def missing(self) -> str | None:
        """None when every required module imports, else the reason."""
        for mod in self.requires:
            try:
                with peer_warnings():
                    importlib.import_module(mod)
            except Exception as exc:  # ImportError, or a broken install
                return f"{mod} does not import ({type(exc).__name__}: {exc})"
        return None

    def version(self) -> str:
        """Versions of the required distributions, e.g. ``"torch 2.13.0, norse 1.1.0"``."""
        versions = []
        for dist in self.requires:  # the module names are the distribution names
            try:
                versions.append(f"{dist} {importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                versions.append(f"{dist} ?")
        return ", ".join(versions)

    # ------------------------------------------------------------- the mapping
    def conventions(self):
        """Hypothesis strategy of the ``Conventions`` this framework expresses."""
        raise NotImplementedError

    def supports(self, conv: Conventions) -> str | None:
        """None when ``conv`` is expressible, else the reason."""
        raise NotImplementedError

    def prepare(self, params: Params, conv: Conventions) -> Params:
        """Return the parameters with what the peer cannot express set to its fixed values.

        E.g. ``v_rest = 0`` where the peer has no rest potential.
        """
        return params

    def expected_traces(self, states: dict, params: Params, conv: Conventions) -> dict:
        """Map refsnn's states ``0 .. K`` mapped to the variables the peer records."""
        return states

    def run(self, params: Params, x: np.ndarray, labels: np.ndarray, conv: Conventions,
            device: str = "cpu") -> PeerRun:
        """Run the peer on one problem (float64 where it allows)."""
        raise NotImplementedError

    def findings(self, device: str = "cpu") -> list:
        """Facts about the framework found by running it (probes), in words."""
        return []


# ---------------------------------------------------------------------- helpers
@contextlib.contextmanager
def peer_warnings():
    """Ignore the deprecation warnings that the peers raise on import and use.

    Norse 1.1.0 calls ``torch.jit.script``, deprecated in torch 2.13; these warnings
    are not about the computation compared. Nothing else is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.", category=DeprecationWarning)
        yield


def torch_device(device: str):
    """``torch.device`` for ``"cpu"`` / ``"cuda"``; ``ValueError`` when CUDA is absent."""
    import torch

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device on this machine")
    return torch.device(device)


def input_scale(decay, conv: Conventions, xp=np):
    """g(decay) and g'(decay), refsnn's Eq. (5) factor on the driving current.

    Written here again (not imported from refsnn) so the adapters stay independent:
    "none" -> 1; "one_minus_decay", or "dt_over_tau" with Euler decays -> ``1 - d``;
    "dt_over_tau" with exponential decays -> ``-log d``. g' is 0 when detached.
    ``xp`` is numpy or torch.
    """
    if conv.input_scale == "none":
        g, dg = decay * 0 + 1, decay * 0
    elif conv.input_scale == "one_minus_decay" or conv.decay_form == "euler":
        g, dg = 1 - decay, decay * 0 - 1
    else:
        g, dg = -xp.log(decay), -1 / decay
    if conv.input_scale_detached:
        dg = decay * 0
    return g, dg


def to_tensors(params: Params, names, device, requires_grad=True) -> dict:
    """float64 leaf tensors of the named fields."""
    import torch

    return {n: torch.tensor(np.asarray(getattr(params, n), dtype=np.float64), device=device,
                            requires_grad=requires_grad) for n in names}


def readout_loss(spikes: list, p: dict, labels, conv: Conventions, n_steps: int) -> dict:
    """Compute refsnn's readout, reduction and loss (Eq. (5)-(10)) in PyTorch, on given spikes.

    Parameters
    ----------
    spikes : list of K + 1 tensors (B, N)
        Hidden spikes of states 0 .. K (state 0 first), in the peer's autograd graph.
    p : dict of tensors
        ``w_out`` (N, C), ``decay_syn_out``, ``decay_mem_out`` (C,).
    labels : (B,) int tensor
    conv : Conventions
        Uses ``readout_delay``, ``membrane_current``, ``input_scale*``, ``decay_form``,
        ``record_initial_state``, ``reduction``; regularisers must be off.
    n_steps : int
        T (unused unless regularisers were on; kept for the signature).

    Returns
    -------
    dict with ``i_out``, ``v_out`` (lists of K + 1 tensors (B, C)), ``logits`` (B, C),
    ``loss`` (scalar tensor).
    """
    import torch

    from ..torch_twin import cross_entropy

    if conv.reg_rate_strength or conv.reg_pop_strength:
        raise ValueError("the shared readout has no spike-count regularisers")
    n_updates = len(spikes) - 1
    zero_c = spikes[0].new_zeros((spikes[0].shape[0], p["w_out"].shape[1]))
    g_out, _ = input_scale(p["decay_mem_out"], conv, xp=torch)
    if conv.input_scale_detached:
        g_out = g_out.detach()
    i_out, v_out, drives = [zero_c], [zero_c], []
    for t in range(n_updates):
        k = t + 1 - conv.readout_delay
        s_k = spikes[k] if k >= 0 else torch.zeros_like(spikes[0])
        d = s_k @ p["w_out"]
        drives.append(d)
        i_new = p["decay_syn_out"] * i_out[t] + d
        j = i_new if conv.membrane_current == "new" else i_out[t]
        v_out.append(p["decay_mem_out"] * v_out[t] + g_out * j)
        i_out.append(i_new)
    first = 0 if conv.record_initial_state else 1
    if conv.reduction == "count":
        logits = torch.stack(drives, dim=1).sum(dim=1)
    else:
        window = torch.stack(v_out[first:], dim=1)
        if conv.reduction == "max":
            logits = window.max(dim=1).values
        elif conv.reduction == "mean":
            logits = window.mean(dim=1)
        else:
            logits = v_out[-1]
    loss = cross_entropy(logits, labels)
    return dict(i_out=i_out, v_out=v_out, logits=logits, loss=loss)


#: the readout's parameters, which every peer adapter runs in refsnn's PyTorch readout
READOUT_FIELDS = ("w_out", "decay_syn_out", "decay_mem_out")


def peer_run(i_syn: list, v: list, spikes: list, ro: dict, grads: dict) -> PeerRun:
    """Build the ``PeerRun`` of a peer from its states, readout and gradients.

    The hidden states are lists of K + 1 tensors (B, N); ``ro`` is the readout of
    ``readout_loss``.
    """
    traces = dict(i_syn=stack_states(i_syn), v=stack_states(v), spikes=stack_states(spikes),
                  i_syn_out=stack_states(ro["i_out"]), v_out=stack_states(ro["v_out"]),
                  logits=ro["logits"].detach().cpu().double().numpy())
    return PeerRun(traces=traces, loss=float(ro["loss"].detach()), grads=grads, first=0)


def stack_states(states: list) -> np.ndarray:
    """(B, K + 1, .) float64 numpy array from a list of K + 1 tensors (B, .)."""
    import torch

    return torch.stack([s.detach() for s in states], dim=1).to("cpu", torch.float64).numpy()


def grads_to_numpy(grads) -> np.ndarray:
    """Convert a gradient tensor to float64 numpy."""
    return grads.detach().to("cpu").double().numpy()


def autograd(loss, leaves: list) -> list:
    """``dloss/dleaf`` for each leaf as float64 numpy.

    Zeros where the loss does not depend on a leaf (e.g. the readout decays under the
    "count" reduction).
    """
    import torch

    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [np.zeros(tuple(leaf.shape)) if g is None else grads_to_numpy(g)
            for leaf, g in zip(leaves, grads, strict=True)]


def finite_or_nan(value: float) -> float:
    """``value`` as a float, NaN when not finite (reports print it as such)."""
    value = float(value)
    return value if math.isfinite(value) else float("nan")


def prescaled(params: Params, conv: Conventions):
    """Input and recurrent weights pre-scaled by g(decay_mem), for peers without g.

    A peer whose membrane adds its synaptic current unscaled (snnTorch, SpikingJelly)
    computes refsnn's ``g(decay_mem) * I`` when every weight into a neuron is multiplied
    by that neuron's g: its current is then ``g * I`` (Eq. (2) is linear). Returns
    ``(w_in * g, w_rec * g, g, g')`` as numpy (g' = 0 when the scale is detached); the
    gradients come back through ``unscale_grads``.
    """
    g, dg = input_scale(np.asarray(params.decay_mem, dtype=np.float64), conv)
    return params.w_in * g, params.w_rec * g, g, dg


def unscale_grads(params: Params, g, dg, g_w_in_s, g_w_rec_s, g_decay_mem_leak):
    """Chain rule back from the pre-scaled weights to refsnn's parameters.

    With ``W' = W * g(d)`` (per post-neuron column): ``dL/dW = dL/dW' * g`` and
    ``dL/dd = dL/dd|leak + g'(d) * sum_rows(dL/dW' * W)`` over both weight matrices.
    """
    w_in = g_w_in_s * g
    w_rec = g_w_rec_s * g
    through_g = (g_w_in_s * params.w_in).sum(axis=0) + (g_w_rec_s * params.w_rec).sum(axis=0)
    return w_in, w_rec, g_decay_mem_leak + dg * through_g
