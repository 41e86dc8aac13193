"""Adapter ``paper``: the authors' model (Perez-Nieves et al. 2021) as they wrote it.

Engine: ``validation.paper_model`` (``RecurrentSpikingLayer`` + ``MembraneLayer`` of
their ``SuGD_code/layers.py``, transcribed in float64 PyTorch).

Mapping onto refsnn's ``"paper"`` preset:

- decays: the raw factors (their ``alpha`` = ``decay_syn``, ``beta`` = ``decay_mem``);
  no time constant, no clamp inside the model (they clamp between optimiser steps);
- input scale: ``(1 - beta.detach())`` on the PREVIOUS current (``membrane_current =
  "previous"``, ``input_scale_detached``);
- reset: ``- rst * (th.detach() - reset)`` after the leak, with a constant mask
  (``reset="subtract"``, ``reset_detached``, ``reset_threshold_detached``);
- delays: recurrent 1; their spike record starts with the zero state, so the readout
  sees ``[0, S[0], ..., S[K-1]]`` (``readout_delay=2``); the trace compared as
  ``spikes`` is that record, and refsnn's spikes are shifted the same way for it;
- T - 1 updates, records that include the zero state, max over time of the readout
  membrane, spike test ``>``, fast-sigmoid surrogate of scale ``SuSpike.scale``;
- layout: weights (in, out) as refsnn's. The loss is the batch mean (they divide the
  batch sum by the number of training samples: a constant factor, left out).

Conventions expressed: the ``"paper"`` preset with any surrogate scale.
Runs on the CPU in float64 (``--device`` does not apply).

Tolerance: 1e-12 on traces and loss, 1e-9 on gradients (the bar of
``tests/test_against_torch.py``; observed about 1e-14).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refsnn.conventions import Conventions
from refsnn.params import PARAM_NAMES, Params

from .base import Adapter, PeerRun, Tolerance

__all__ = ["PaperAdapter"]

SCALES = (100.0, 25.0, 10.0, 1.0)


class PaperAdapter(Adapter):
    """The authors' model (see the module docstring)."""

    name = "paper"
    engine = "the authors' model, transcribed in PyTorch (validation.paper_model)"
    requires = ("torch",)
    install = "pip install torch==2.13.0"
    tolerance = Tolerance(
        traces=1e-12, loss=1e-12, grads=1e-9,
        why="float64 on both sides, the same operations in the same order for the forward",
    )
    grad_fields = PARAM_NAMES
    uses_device = False
    supported = "the 'paper' preset, any surrogate scale"
    #: below 4 steps w_in cannot reach the loss (an input reaches the membrane two
    #: updates later and the last membrane's spike is never computed), and the
    #: transcription's autograd call, which does not allow unused inputs, raises
    min_steps = 4

    def conventions(self):
        """Strategy of the paper preset with a surrogate scale from ``SCALES``."""
        paper = Conventions.preset("paper")
        return st.sampled_from(SCALES).map(lambda s: paper.replace(surrogate_scale=s))

    def supports(self, conv: Conventions) -> str | None:
        """Only the paper preset (any surrogate scale)."""
        if conv.replace(surrogate_scale=100.0) != Conventions.preset("paper"):
            return "the authors' model is the 'paper' preset (only the surrogate scale may vary)"
        return None

    def expected_traces(self, states: dict, params: Params, conv: Conventions) -> dict:
        """Their spike record is shifted one step: ``spk_rec[k] = S[k - 1]``, 0 at k = 0."""
        out = dict(states)
        s = states["spikes"]
        out["spikes"] = np.concatenate([np.zeros_like(s[:, :1]), s[:, :-1]], axis=1)
        return out

    def run(self, params: Params, x: np.ndarray, labels: np.ndarray, conv: Conventions,
            device: str = "cpu") -> PeerRun:
        """Their forward and autograd gradients (float64, CPU)."""
        from validation.paper_model import paper_loss_and_grad

        loss, grads, tr = paper_loss_and_grad(params, x, labels, scale=float(conv.surrogate_scale))
        traces = dict(i_syn=tr["syn_rec"], v=tr["mem_rec"], spikes=tr["spk_rec"],
                      i_syn_out=tr["syn_out_rec"], v_out=tr["mem_out_rec"], logits=tr["logits"])
        return PeerRun(traces=traces, loss=loss, grads=grads.as_dict(), first=0)
