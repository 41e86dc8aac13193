"""Adapter ``torch``: the independent PyTorch autograd twin of refsnn.

Engine: ``validation.torch_twin`` (refsnn's equations written plainly in PyTorch,
gradients from ``torch.autograd``; it imports only refsnn's records).

Mapping: none; the twin takes refsnn's ``Params`` and ``Conventions`` as they are.
Decay form, input scale (and its detach), reset (all five), reset detach, threshold
detach in the reset, recurrent and readout delays, spike test, smooth spike,
surrogates, reductions and the spike-count regularisers are the same fields. Layout:
refsnn's. Clamps: none. Traces over refsnn's recorded window.

Conventions expressed: every ``Conventions`` (``validation.strategies.conventions()``).
Runs on the CPU in float64 (``--device`` does not apply).

Tolerance: 1e-11 relative on traces, loss and every gradient (cancellation-aware
floors): the same arithmetic in a different summation order.
"""

from __future__ import annotations

import numpy as np

from refsnn.conventions import Conventions
from refsnn.params import PARAM_NAMES, Params

from .base import Adapter, PeerRun, Tolerance

__all__ = ["TorchTwinAdapter"]


class TorchTwinAdapter(Adapter):
    """The autograd twin (see the module docstring)."""

    name = "torch"
    engine = "PyTorch autograd twin (validation.torch_twin)"
    requires = ("torch",)
    install = "pip install torch==2.13.0"
    tolerance = Tolerance(
        traces=1e-11, loss=1e-11, grads=1e-11,
        why="float64 on both sides; only the summation order differs",
    )
    grad_fields = PARAM_NAMES
    uses_device = False
    supported = "every refsnn convention (all fields, smooth and hard spikes, regularisers)"

    def conventions(self):
        """Every convention: ``validation.strategies.conventions()``."""
        from validation.strategies import conventions

        return conventions()

    def supports(self, conv: Conventions) -> str | None:
        """Everything."""
        return None

    def run(self, params: Params, x: np.ndarray, labels: np.ndarray, conv: Conventions,
            device: str = "cpu") -> PeerRun:
        """Loss, gradients and window traces of the twin (float64, CPU)."""
        from validation.torch_twin import torch_loss_and_grad

        loss, grads, tr = torch_loss_and_grad(params.astype(np.float64), x.astype(np.float64),
                                              labels, conv)
        traces = {k: tr[k] for k in ("i_syn", "v", "spikes", "i_syn_out", "v_out", "logits")}
        return PeerRun(traces=traces, loss=loss, grads=grads.as_dict(),
                       first=0 if conv.record_initial_state else 1)
