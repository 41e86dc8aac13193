"""Adapter ``snntorch``: snnTorch 1.0.0 ``RSynaptic``, refsnn's readout on its spikes.

Engine: ``snntorch.RSynaptic(alpha, beta, linear_features=N, threshold,
spike_grad, learn_alpha=True, learn_beta=True, learn_threshold=True,
reset_mechanism)`` in float64, stepped by hand with explicit states ``(spk, syn, mem)``.
Its update (``rsynaptic.py``, ``_base_state_function``), with ``R = H(mem[t] - th)``
detached (``mem_reset``)::

    syn[t+1] = clamp(alpha, 0, 1) syn[t] + input[t] + recurrent(spk[t])
    mem[t+1] = clamp(beta, 0, 1) mem[t] + syn[t+1] - R th          ("subtract")
             = (1 - R) (beta mem[t] + syn[t+1])                    ("zero")
    spk[t+1] = H(mem[t+1] - th)   (forward ``x > 0``, float32 output)

Mapping onto refsnn:

- decays: the raw factors (``alpha`` = ``decay_syn``, ``beta`` = ``decay_mem``, per
  neuron, learnable); the forward clamp to [0, 1] is inactive inside (0, 1);
- input scale: none natively. refsnn's ``g(decay_mem)`` (any ``input_scale``,
  ``decay_form``, detached or not) is obtained by pre-scaling the input and
  recurrent weights by g per post-neuron (``base.prescaled``); snnTorch's ``syn`` is then
  ``g * I``; the gradients of the scaled weights map back by the chain rule
  (``base.unscale_grads``);
- current: the new one (``membrane_current="new"``); recurrent delay 1
  (``recurrent(spk[t])``); the recurrent ``nn.Linear``'s bias removed (``None``);
  weights transposed into its ``(out, in)`` layout;
- reset: ``"subtract"`` = refsnn ``"subtract"`` with ``v_reset = 0`` (undecayed,
  spike detached, threshold NOT detached: it is learnable and gets the reset's
  gradient); ``"zero"`` = refsnn ``"to_reset"`` with ``v_reset = 0``; ``"none"``;
- no rest potential: ``v_rest = 0``; spike test ``>``;
- surrogates: ``fast_sigmoid(slope=s)`` = refsnn fast_sigmoid (s), ``atan(alpha=s)``
  = arctan (s), ``sigmoid(slope=s)`` = sigmoid (s); snnTorch's ``triangular`` is a
  different function (+-threshold steps) and is not used;
- initial state: ``syn = mem = 0`` and ``spk = fire(0)``, RSynaptic's own spike of the
  zero membrane: 0 in value, but its surrogate reaches the threshold through the
  recurrence as refsnn's S[0] does (``reset_mem()`` starts from a constant zero);
- spikes come out as float32 (``(x > 0).float()``); the adapter casts them to float64
  before feeding them back (the float32 spike itself is exact, 0 or 1) - so every
  gradient that flows back through a spike is rounded to float32 on its way;
- readout, reduction and loss: refsnn's, in PyTorch, on RSynaptic's spikes
  (``base.readout_loss``): snnTorch has no leaky-integrator readout with refsnn's
  reductions. Any ``readout_delay``, ``reduction``, ``record_initial_state`` and
  ``skip_last_input`` are therefore expressible.

Gradients compared: ``w_in`` (the scaled input weights), ``w_rec``
(``recurrent.weight``), ``decay_syn`` (``alpha``), ``decay_mem`` (``beta``),
``threshold``, and the readout's ``w_out``, ``decay_syn_out``, ``decay_mem_out``.

Conventions expressed (``conventions()``): refsnn defaults with ``reset`` in
{subtract, to_reset, none}, ``reset_detached=True``, ``reset_threshold_detached=False``,
``membrane_current="new"``, ``recurrent_delay=1``, ``spike_test="gt"``, heaviside spike
with surrogate fast_sigmoid / arctan / sigmoid; any input scale, decay form, readout
delay, reduction, window; no regularisers.

Tolerance: 1e-12 on traces and loss (float64 forward, the spikes exact); 1e-10 on the
readout's gradients (no spike backward in them); 1e-6 on gradients through spikes,
because snnTorch returns float32 spikes and so rounds every gradient that passes a
spike to float32 (about 6e-8 each step; up to about 1e-7 observed).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refsnn.conventions import REDUCTIONS, Conventions
from refsnn.params import Params

from .base import (
    READOUT_FIELDS,
    Adapter,
    PeerRun,
    Tolerance,
    autograd,
    peer_run,
    peer_warnings,
    prescaled,
    readout_loss,
    to_tensors,
    torch_device,
    unscale_grads,
)

__all__ = ["SnnTorchAdapter"]

SURROGATES = {"fast_sigmoid": "fast_sigmoid", "arctan": "atan", "sigmoid": "sigmoid"}
RESETS = {"subtract": "subtract", "to_reset": "zero", "none": "none"}
SURROGATE_CHOICES = (
    [("fast_sigmoid", s) for s in (25.0, 1.0, 5.0, 100.0)]
    + [("arctan", s) for s in (2.0, 1.0, 5.0)]
    + [("sigmoid", s) for s in (4.0, 1.0, 25.0)]
)


class SnnTorchAdapter(Adapter):
    """snnTorch RSynaptic (see the module docstring)."""

    name = "snntorch"
    engine = "snnTorch RSynaptic + refsnn's readout in PyTorch"
    requires = ("torch", "snntorch")
    install = "pip install torch==2.13.0 && pip install snntorch==1.0.0"
    tolerance = Tolerance(
        traces=1e-12, loss=1e-12, grads=1e-6,
        grads_by_field={f: 1e-10 for f in READOUT_FIELDS},
        why="float64 forward with exact 0/1 spikes; snnTorch's spikes are float32, so every "
            "gradient through a spike is rounded to float32 (readout gradients are not)",
    )
    grad_fields = ("w_in", "w_rec", "w_out", "decay_syn", "decay_mem", "threshold",
                   "decay_syn_out", "decay_mem_out")
    supported = ("reset subtract (v_reset=0) / to_reset ('zero', v_reset=0) / none, detached; "
                 "new current, delay 1, spike >, v_rest=0; surrogates fast_sigmoid, arctan, "
                 "sigmoid (any scale); any input scale via pre-scaled weights; refsnn's readout")

    def conventions(self):
        """Strategy of the expressible conventions (shrinks towards refsnn's defaults)."""

        @st.composite
        def strategy(draw):
            surrogate, scale = draw(st.sampled_from(SURROGATE_CHOICES))
            return Conventions().replace(
                reset=draw(st.sampled_from(tuple(RESETS))),
                surrogate=surrogate,
                surrogate_scale=scale,
                input_scale=draw(st.sampled_from(["one_minus_decay", "none", "dt_over_tau"])),
                input_scale_detached=draw(st.booleans()),
                decay_form=draw(st.sampled_from(["exp", "euler"])),
                skip_last_input=draw(st.booleans()),
                record_initial_state=draw(st.booleans()),
                readout_delay=draw(st.integers(0, 2)),
                reduction=draw(st.sampled_from(REDUCTIONS)),
            )

        return strategy()

    def supports(self, conv: Conventions) -> str | None:
        """Why ``conv`` is not expressible, or None."""
        return _first_reason(
            (conv.reset not in RESETS, f"reset {conv.reset!r}: RSynaptic has subtract, zero, none"),
            (not conv.reset_detached, "RSynaptic always detaches the reset"),
            (conv.reset_threshold_detached, "RSynaptic's reset keeps the threshold's gradient"),
            (conv.membrane_current != "new", "RSynaptic drives the membrane with the new current"),
            (conv.recurrent_delay != 1, "RSynaptic's recurrent delay is one step"),
            (conv.spike_test != "gt", "RSynaptic fires on mem > threshold"),
            (conv.spike_fn != "heaviside", "RSynaptic's spike is a hard threshold"),
            (conv.surrogate not in SURROGATES, f"no snnTorch surrogate equals {conv.surrogate!r}"),
            (conv.reg_rate_strength or conv.reg_pop_strength, "no spike-count regularisers"),
        )

    def prepare(self, params: Params, conv: Conventions) -> Params:
        """No reset or rest potential in RSynaptic: ``v_reset = v_rest = 0``."""
        return params.replace(v_reset=np.zeros_like(params.v_reset),
                              v_rest=np.zeros_like(params.v_rest))

    def expected_traces(self, states: dict, params: Params, conv: Conventions) -> dict:
        """RSynaptic's ``syn`` is the pre-scaled current ``g(decay_mem) * I``."""
        _, _, g, _ = prescaled(params, conv)
        return dict(states, i_syn=states["i_syn"] * g)

    def run(self, params: Params, x: np.ndarray, labels: np.ndarray, conv: Conventions,
            device: str = "cpu", initial_spike_gradient: bool = True) -> PeerRun:
        """Step RSynaptic over the input; refsnn's readout and loss on its spikes.

        ``initial_spike_gradient``: start from ``fire(0)`` (True, refsnn's S[0]) or from
        a constant zero spike state (False, snnTorch's ``reset_mem``).
        """
        import torch

        with peer_warnings():
            import snntorch
            from snntorch import surrogate as sg

        dev = torch_device(device)
        f64 = torch.float64
        w_in_s, w_rec_s, g, dg = prescaled(params, conv)
        spike_grad = getattr(sg, SURROGATES[conv.surrogate])(float(conv.surrogate_scale))
        cell = snntorch.RSynaptic(
            alpha=torch.tensor(params.decay_syn, dtype=f64),
            beta=torch.tensor(params.decay_mem, dtype=f64),
            linear_features=params.n_hidden,
            threshold=torch.tensor(params.threshold, dtype=f64),
            spike_grad=spike_grad,
            learn_alpha=True, learn_beta=True, learn_threshold=True,
            reset_mechanism=RESETS[conv.reset],
        )
        cell.recurrent.bias = None  # refsnn has no bias
        with torch.no_grad():
            cell.recurrent.weight = torch.nn.Parameter(torch.tensor(w_rec_s.T, dtype=f64))
        cell = cell.to(device=dev, dtype=f64)
        w_in_leaf = torch.tensor(w_in_s, dtype=f64, device=dev, requires_grad=True)
        out = to_tensors(params, READOUT_FIELDS, dev)
        xt = torch.tensor(x, dtype=f64, device=dev)
        n_updates = x.shape[1] - 1 if conv.skip_last_input else x.shape[1]
        feed = xt @ w_in_leaf  # (B, T, N): input current of every step
        B, N = x.shape[0], params.n_hidden
        syn = torch.zeros((B, N), dtype=f64, device=dev)
        mem = torch.zeros((B, N), dtype=f64, device=dev)
        with peer_warnings():
            # the spike of the zero initial membrane, by RSynaptic's own ``fire`` (0 for a
            # positive threshold, but its surrogate reaches the threshold, as in refsnn)
            spk = cell.fire(mem).to(f64) if initial_spike_gradient else torch.zeros_like(mem)
            spikes, syns, mems = [spk], [syn], [mem]
            for t in range(n_updates):
                spk32, syn, mem = cell(feed[:, t], spk, syn, mem)
                spk = spk32.to(f64)  # float32 out; the recurrent Linear is float64
                spikes.append(spk)
                syns.append(syn)
                mems.append(mem)
        labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=dev)
        ro = readout_loss(spikes, out, labels_t, conv, x.shape[1])
        leaves = [w_in_leaf, cell.recurrent.weight, cell.alpha, cell.beta, cell.threshold]
        leaves += [out[f] for f in READOUT_FIELDS]
        grads = autograd(ro["loss"], leaves)
        g_w_in, g_w_rec, g_decay_mem = unscale_grads(params, g, dg, grads[0], grads[1].T, grads[3])
        result = dict(w_in=g_w_in, w_rec=g_w_rec, decay_syn=grads[2], decay_mem=g_decay_mem,
                      threshold=grads[4])
        result.update(zip(READOUT_FIELDS, grads[5:], strict=True))
        return peer_run(syns, mems, spikes, ro, result)

    def findings(self, device: str = "cpu") -> list:
        """Probes of snnTorch 1.0.0's documented defects, each run here."""
        import torch

        with peer_warnings():
            import snntorch
            from snntorch import surrogate as sg
        found = []
        cell = snntorch.RSynaptic(alpha=0.9, beta=0.9, linear_features=2).double()
        spk, _, _ = cell(torch.ones((1, 2), dtype=torch.float64))
        found.append(
            f"RSynaptic returns {str(spk.dtype).replace('torch.', '')} spikes for float64 input, "
            "so gradients through spikes are rounded to float32 (tolerance 1e-6 on those)")
        z = torch.tensor([-4.0, 0.5], requires_grad=True)
        sg.sigmoid(slope=25)(z).sum().backward()
        if not torch.isfinite(z.grad[0]):
            found.append(f"surrogate.sigmoid(slope=25) in float32 returns {float(z.grad[0])} "
                         "as the gradient at x = -4 (exp overflow)")
        try:
            c = snntorch.RSynaptic(alpha=0.9, beta=0.9, linear_features=2, reset_delay=False)
            c(torch.ones((1, 2)))
        except Exception as exc:  # the defect: report what it raises
            found.append(f"RSynaptic(reset_delay=False) fails on its first step: "
                         f"{type(exc).__name__}: {exc}")
        from validation.check import probe

        no_s0 = probe(self, Conventions().replace(surrogate="arctan", surrogate_scale=2.0),
                      device, initial_spike_gradient=False)
        err = no_s0.errors["grad.threshold"]
        if err.rel > 1e-4:
            found.append(
                "started from reset_mem()'s constant zero spike, the threshold gradient lacks "
                "the surrogate of the initial state's spike H(0 - threshold), which refsnn "
                f"(like the authors' code) includes: relative difference {err.rel:.1e}; the "
                "adapter starts from RSynaptic's own fire(0)")
        beta = torch.tensor([1.05, 0.9], dtype=torch.float64)
        c = snntorch.RSynaptic(alpha=0.9, beta=beta, linear_features=2, learn_beta=True).double()
        state = c(torch.ones((1, 2), dtype=torch.float64))
        _, _, mem = c(torch.ones((1, 2), dtype=torch.float64), state[0].double(), *state[1:])
        mem.sum().backward()
        if c.beta.grad[0] == 0:
            found.append("a learnable beta above 1 gets zero gradient (the forward clamps it to "
                         "[0, 1]), so it can never return inside")
        return found


def _first_reason(*checks) -> str | None:
    for failed, reason in checks:
        if failed:
            return reason
    return None
