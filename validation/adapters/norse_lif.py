"""Adapter ``norse``: Norse 1.1.0 ``LIFRecurrentCell``, refsnn's readout on its spikes.

Engine: ``norse.torch.LIFRecurrentCell(n_in, N, p=LIFParameters(...),
input_weights, recurrent_weights, autapses=True, dt=DT)`` in float64, stepped with an
explicit ``LIFState(z, v, i)``. Its step (``functional/lif.py``, ``lif_step``)::

    i_jump    = i + x[t] W_in^T + z W_rec^T
    v_decayed = v + dt tau_mem_inv ((v_leak - v) + i_jump)
    i         = (1 - dt tau_syn_inv) i_jump
    z_new     = threshold(v_decayed - v_th, method, alpha)   (forward ``x > 0``)
    v         = (1 - z_new.detach()) v_decayed + z_new.detach() v_reset

Mapping onto refsnn (``decay = 1 - dt tau_inv``, Euler, exact in both directions):

- decays: ``tau_syn_inv = (1 - decay_syn)/dt``, ``tau_mem_inv = (1 - decay_mem)/dt``
  per neuron (``DT`` = 1e-3, Norse's default); their gradients map back by
  ``dL/d decay = -dL/d tau_inv / dt``;
- input scale: ``dt tau_mem_inv = 1 - decay_mem`` on the current, with its gradient
  (``input_scale="one_minus_decay"``, not detached; equally ``"dt_over_tau"`` with
  ``decay_form="euler"``);
- current: ``i_jump`` is refsnn's new current I[t+1] (``membrane_current="new"``);
  Norse stores ``i`` after its decay, ``decay_syn * I[t+1]``: the trace compared;
- reset: to ``v_reset`` applied to the membrane the next leak starts from
  (``reset="to_reset_leak"``), spike detached (``reset_detached``); Norse stores the
  membrane after that reset, ``(1 - S) U + S v_reset``: the trace compared;
- rest potential ``v_leak`` = ``v_rest``; threshold ``v_th``; per-neuron tensors;
- recurrent delay 1 (``z`` of the previous step); self-connections ON
  (``autapses=True``: Norse's default zeroes the diagonal of ``recurrent_weights``);
- initial state: ``LIFState(z=threshold(0 - v_th), v=0, i=0)`` passed explicitly (the
  cell's default starts ``v`` at ``v_leak``, in float32); ``z`` is Norse's own spike of
  the zero membrane, so its surrogate reaches the threshold as refsnn's S[0] does;
- surrogates: ``method="super"`` is SuperSpike, which in Norse 1.1.0 ignores its
  ``alpha`` and computes ``1/(|x| + 1)^2``: refsnn's fast_sigmoid at scale 1 only;
  ``"triangle"`` with ``alpha=1`` is refsnn's triangle at scale 1 (Norse's alpha scales
  the height, not the width); ``"tanh"`` with ``alpha=2`` gives ``1 - tanh(2x)^2``,
  which is refsnn's sigmoid surrogate at scale 4 exactly;
- layout: Norse's weights are ``(out, in)``: ``W_in^T``, ``W_rec^T``;
- readout, reduction and loss: refsnn's, in PyTorch, on the cell's spikes
  (``base.readout_loss``): Norse's ``LICell`` has no max-over-time reduction, and the
  readout then checks the spikes and the backward pass through them.

Gradients compared: ``w_in`` (``input_weights``), ``w_rec`` (``recurrent_weights``),
``decay_syn`` (``tau_syn_inv``), ``decay_mem`` (``tau_mem_inv``), ``threshold``
(``v_th``), ``v_reset``, ``v_rest`` (``v_leak``) - the ``LIFParameters`` tensors are
not module parameters in Norse, so they are passed as leaf tensors - and the
readout's ``w_out``, ``decay_syn_out``, ``decay_mem_out``.

Conventions expressed (``conventions()``): ``reset="to_reset_leak"``,
``reset_detached=True``, ``membrane_current="new"``, ``input_scale`` one_minus_decay
(or dt_over_tau with euler) not detached, ``recurrent_delay=1``, ``spike_test="gt"``,
heaviside spike with surrogate (fast_sigmoid, 1), (triangle, 1) or (sigmoid, 4); any
readout delay, reduction, window; no regularisers. Everything float64.

Tolerance: 1e-10 relative on traces, loss and gradients: float64 on both sides;
``1 - dt ((1 - d)/dt)`` differs from ``d`` by rounding (about 1e-16 relative).
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
    readout_loss,
    to_tensors,
    torch_device,
)

__all__ = ["NorseAdapter", "DT"]

#: Norse's time step (its default), in seconds
DT = 1e-3
#: refsnn (surrogate, scale) -> Norse (method, alpha)
SURROGATES = {("fast_sigmoid", 1.0): ("super", 1.0), ("triangle", 1.0): ("triangle", 1.0),
              ("sigmoid", 4.0): ("tanh", 2.0)}


class NorseAdapter(Adapter):
    """Norse LIFRecurrentCell (see the module docstring)."""

    name = "norse"
    engine = "Norse LIFRecurrentCell + refsnn's readout in PyTorch"
    requires = ("torch", "norse")
    install = ("pip install torch==2.13.0 && pip install --no-deps norse==1.1.0 nir==1.0.8 "
               "nirtorch==2.6 && pip install h5py")
    tolerance = Tolerance(
        traces=1e-10, loss=1e-10, grads=1e-10,
        why="float64 on both sides; decays go through tau_inv = (1 - d)/dt and back",
    )
    grad_fields = ("w_in", "w_rec", "w_out", "decay_syn", "decay_mem", "threshold", "v_reset",
                   "v_rest", "decay_syn_out", "decay_mem_out")
    supported = ("reset to_reset_leak (detached), new current, input scale 1 - decay (= dt/tau, "
                 "Euler) with its gradient, delay 1, spike >, per-neuron v_th, v_reset, v_leak; "
                 "surrogates fast_sigmoid at scale 1 only (SuperSpike), triangle 1, sigmoid 4 "
                 "(tanh 2); refsnn's readout")

    def conventions(self):
        """Strategy of the expressible conventions."""

        @st.composite
        def strategy(draw):
            surrogate, scale = draw(st.sampled_from(list(SURROGATES)))
            euler = draw(st.booleans())
            return Conventions().replace(
                reset="to_reset_leak",
                surrogate=surrogate, surrogate_scale=scale,
                input_scale="dt_over_tau" if euler else "one_minus_decay",
                decay_form="euler" if euler else "exp",
                skip_last_input=draw(st.booleans()),
                record_initial_state=draw(st.booleans()),
                readout_delay=draw(st.integers(0, 2)),
                reduction=draw(st.sampled_from(REDUCTIONS)),
            )

        return strategy()

    def supports(self, conv: Conventions) -> str | None:
        """Why ``conv`` is not expressible, or None."""
        scale_ok = conv.input_scale == "one_minus_decay" or (
            conv.input_scale == "dt_over_tau" and conv.decay_form == "euler")
        checks = (
            (conv.reset != "to_reset_leak", "Norse resets to v_reset before the next leak"),
            (not conv.reset_detached, "LIFRecurrentCell detaches the reset"),
            (conv.membrane_current != "new", "Norse drives the membrane with the new current"),
            (not scale_ok, "Norse scales the current by dt/tau = 1 - decay (Euler)"),
            (conv.input_scale_detached, "Norse's input scale keeps its gradient"),
            (conv.recurrent_delay != 1, "Norse's recurrent delay is one step"),
            (conv.spike_test != "gt", "Norse fires on v > v_th"),
            (conv.spike_fn != "heaviside", "Norse's spike is a hard threshold"),
            ((conv.surrogate, float(conv.surrogate_scale)) not in SURROGATES,
             f"no Norse surrogate equals {conv.surrogate} at scale {conv.surrogate_scale:g} "
             "(SuperSpike ignores its scale in Norse 1.1.0)"),
            (conv.reg_rate_strength or conv.reg_pop_strength, "no spike-count regularisers"),
        )
        return next((reason for failed, reason in checks if failed), None)

    def expected_traces(self, states: dict, params: Params, conv: Conventions) -> dict:
        """Norse stores ``decay_syn * I`` and the membrane after its reset."""
        s = states["spikes"]
        v_after = (1 - s) * states["v"] + s * params.v_reset
        return dict(states, i_syn=states["i_syn"] * params.decay_syn, v=v_after)

    def run(self, params: Params, x: np.ndarray, labels: np.ndarray, conv: Conventions,
            device: str = "cpu", *, method: str | None = None, alpha: float | None = None,
            initial_spike_gradient: bool = True) -> PeerRun:
        """Step the cell over the input; refsnn's readout and loss on its spikes.

        ``method``, ``alpha``: override Norse's surrogate (for the findings' probes);
        ``initial_spike_gradient=False`` starts from a constant zero spike state.
        """
        import torch

        with peer_warnings():
            from norse.torch import LIFParameters, LIFRecurrentCell, LIFState
            from norse.torch.functional.threshold import threshold

        dev = torch_device(device)
        f64 = torch.float64
        if method is None:
            method, alpha = SURROGATES[(conv.surrogate, float(conv.surrogate_scale))]
        leaf = {
            "tau_syn_inv": (1.0 - params.decay_syn) / DT,
            "tau_mem_inv": (1.0 - params.decay_mem) / DT,
            "v_leak": params.v_rest, "v_th": params.threshold, "v_reset": params.v_reset,
        }
        leaf = {k: torch.tensor(v, dtype=f64, device=dev, requires_grad=True)
                for k, v in leaf.items()}
        p = LIFParameters(tau_syn_inv=leaf["tau_syn_inv"], tau_mem_inv=leaf["tau_mem_inv"],
                          v_leak=leaf["v_leak"], v_th=leaf["v_th"], v_reset=leaf["v_reset"],
                          method=method, alpha=torch.as_tensor(float(alpha)))
        with peer_warnings():
            cell = LIFRecurrentCell(
                params.n_in, params.n_hidden, p=p,
                input_weights=torch.nn.Parameter(torch.tensor(params.w_in.T, dtype=f64)),
                recurrent_weights=torch.nn.Parameter(torch.tensor(params.w_rec.T, dtype=f64)),
                autapses=True, dt=DT,
            ).to(dev)
        out = to_tensors(params, READOUT_FIELDS, dev)
        xt = torch.tensor(x, dtype=f64, device=dev)
        n_updates = x.shape[1] - 1 if conv.skip_last_input else x.shape[1]
        B, N = x.shape[0], params.n_hidden
        zeros = torch.zeros((B, N), dtype=f64, device=dev)
        with peer_warnings():
            z0 = threshold(zeros - leaf["v_th"], method, float(alpha))
            state = LIFState(z=z0 if initial_spike_gradient else zeros, v=zeros, i=zeros)
            spikes, vs, cur = [state.z], [zeros], [zeros]
            for t in range(n_updates):
                z, state = cell(xt[:, t], state)
                spikes.append(z)
                vs.append(state.v)
                cur.append(state.i)
        labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=dev)
        ro = readout_loss(spikes, out, labels_t, conv, x.shape[1])
        leaves = [cell.input_weights, cell.recurrent_weights, leaf["tau_syn_inv"],
                  leaf["tau_mem_inv"], leaf["v_th"], leaf["v_reset"], leaf["v_leak"]]
        leaves += [out[f] for f in READOUT_FIELDS]
        g = autograd(ro["loss"], leaves)
        grads = dict(w_in=g[0].T, w_rec=g[1].T, decay_syn=-g[2] / DT, decay_mem=-g[3] / DT,
                     threshold=g[4], v_reset=g[5], v_rest=g[6])
        grads.update(zip(READOUT_FIELDS, g[7:], strict=True))
        return peer_run(cur, vs, spikes, ro, grads)

    def findings(self, device: str = "cpu") -> list:
        """SuperSpike's scale defect and Norse's defaults, each measured here."""
        import torch

        from validation.check import probe

        with peer_warnings():
            from norse.torch import LIFParameters, LIFRecurrentCell
            from norse.torch.functional.threshold import threshold
        found = []
        z = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
        with peer_warnings():
            threshold(z, "super", 100.0).sum().backward()
        expected = 1.0 / (100.0 * 0.5 + 1.0) ** 2
        conv100 = Conventions().replace(reset="to_reset_leak", surrogate_scale=100.0)
        at100 = probe(self, conv100, device, method="super", alpha=100.0)
        at1 = probe(self, conv100.replace(surrogate_scale=1.0), device, method="super",
                    alpha=100.0)
        worst100 = max(e.rel for q, e in at100.errors.items() if q.startswith("grad."))
        worst1 = max(e.rel for q, e in at1.errors.items() if q.startswith("grad."))
        if abs(float(z.grad[0]) - expected) > 1e-3 * expected:
            found.append(
                f"Norse 1.1.0's SuperSpike ignores its scale: with alpha=100 its surrogate at "
                f"x = 0.5 is {float(z.grad[0]):.4g} = 1/(|x|+1)^2, not 1/(100|x|+1)^2 = "
                f"{expected:.3g}. A network run with alpha=100 disagrees with refsnn's "
                f"fast_sigmoid at scale 100 (worst gradient error {worst100:.1e}) and agrees "
                f"with it at scale 1 ({worst1:.1e}); so Norse is compared at scale 1")
        base = Conventions().replace(reset="to_reset_leak", surrogate="sigmoid",
                                     surrogate_scale=4.0)
        no_s0 = probe(self, base, device, initial_spike_gradient=False)
        err = no_s0.errors["grad.threshold"]
        if not err.ok:
            found.append(
                "started from a constant zero spike state (Norse's default), the threshold "
                f"gradient lacks the surrogate of the initial state's spike H(0 - v_th), which "
                f"refsnn (like the authors' code) includes: relative difference {err.rel:.1e}. "
                "The adapter starts from Norse's own threshold(0 - v_th)")
        with peer_warnings():
            cell = LIFRecurrentCell(2, 3, p=LIFParameters(v_leak=torch.as_tensor(-0.5)))
            state = cell.initial_state(torch.zeros((1, 2), dtype=torch.float64))
        names = [n for n, _ in cell.named_parameters()]
        diagonal = float(cell.recurrent_weights.detach().diagonal().abs().sum())
        found.append(
            f"LIFRecurrentCell's defaults differ from refsnn's: autapses=False zeroes the "
            f"recurrent diagonal (sum of |diagonal| after construction: {diagonal:g}); the "
            f"initial state starts v at v_leak ({float(state.v.detach()[0, 0]):g}) in "
            f"{str(state.v.dtype).replace('torch.', '')} whatever the input's dtype; the "
            f"LIFParameters are not module parameters (parameters: {', '.join(names)}). The "
            "adapter sets autapses=True, passes a float64 zero state and leaf tensors")
        return found
