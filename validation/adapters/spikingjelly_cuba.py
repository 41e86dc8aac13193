"""Adapter ``spikingjelly``: SpikingJelly 2.0.0 ``CUBALIFNode``, refsnn's readout on its spikes.

Engine: ``neuron.CUBALIFNode(surrogate_function=...)`` wrapped in
``layer.LinearRecurrentContainer(node, N, N, bias=False)`` (single-step mode), in
float64, its decays, threshold and reset set as per-neuron ``nn.Parameter``s and
``detach_reset`` as the conventions say. The node's step
(``functional.neuron.cuba_lif_step`` and ``_ops.reset.voltage``)::

    c[t+1]    = c_decay c[t] + input[t]
    v_charged = v_decay v[t] + c[t+1]
    spike     = surrogate(v_charged - v_threshold)         (forward ``x >= 0``)
    v[t+1]    = spike v_reset + (1 - spike) v_charged      (hard reset, v_reset set)
              = v_charged - spike v_threshold              (soft reset, v_reset None)

(``spike`` detached in the reset when ``detach_reset``), and the container feeds
``input[t] = [h[t], y[t-1]] rc.weight^T`` with ``rc.weight = [I, W_rec^T]``, i.e.
``h[t] + S[t] W_rec``.

Mapping onto refsnn:

- decays: the raw factors (``c_decay`` = ``decay_syn``, ``v_decay`` = ``decay_mem``),
  per neuron, no clamp;
- input scale: none natively; refsnn's ``g(decay_mem)`` (any input scale, decay form,
  detached or not) by pre-scaling the input and recurrent weights per post-neuron
  (``base.prescaled``): the node's ``c`` is then ``g * I`` (the trace compared), and the
  gradients map back by the chain rule (``base.unscale_grads``);
- current: the new one (``membrane_current="new"``); recurrent delay 1 (the
  container's ``y[t-1]``);
- reset: hard = refsnn ``"to_reset_leak"`` (the leak starts from ``v_reset``) with
  ``v_rest = 0``; soft = refsnn ``"subtract_decayed"`` (the threshold subtracted
  before the next leak) with ``v_reset = v_rest = 0``; the threshold keeps its
  gradient in the soft reset; ``detach_reset`` = ``reset_detached`` (both values);
  SpikingJelly stores ``v`` after the reset: the trace compared is refsnn's ``(1 - S) U
  + S v_reset`` (hard) or ``U - S threshold`` (soft);
- spike test ``>=`` (``heaviside`` is ``x >= 0``): ``spike_test="ge"``;
- initial state: ``c = 0``; the container's ``y`` set to the node's own spike of the
  zero membrane, ``S0 = surrogate_function(0 - v_threshold)``, and ``v`` to the node's
  own reset of the zero membrane by it, ``voltage_reset(0, S0, ...)``: both 0 in value,
  but their gradients reach the threshold as refsnn's S[0] does through the recurrence
  and (when not detached) the reset (the defaults are constants: ``y = 0``, ``v = 0``);
- surrogates: ``Sigmoid(alpha=s)`` = refsnn sigmoid (s), ``ATan(alpha=s)`` = arctan
  (s), ``PiecewiseExp(alpha=s)`` = exponential (s); ``SuperSpike(alpha)`` is
  ``alpha/(|x|+1)^2`` (alpha scales the height), so it equals refsnn's fast_sigmoid
  at scale 1 only, with ``alpha=1``;
- layout: ``nn.Linear`` ``(out, in)``; the input projection ``x @ (g W_in)`` is a
  plain matrix product before the container;
- readout, reduction and loss: refsnn's, in PyTorch, on the node's spikes
  (``base.readout_loss``).

Gradients compared: ``w_in``, ``w_rec`` (``rc.weight``), ``decay_syn`` (``c_decay``),
``decay_mem`` (``v_decay``), ``threshold`` (``v_threshold``), ``v_reset`` (hard reset
only), and the readout's ``w_out``, ``decay_syn_out``, ``decay_mem_out``.

Conventions expressed (``conventions()``): reset to_reset_leak or subtract_decayed,
detached or not, ``reset_threshold_detached=False``, ``membrane_current="new"``,
``recurrent_delay=1``, ``spike_test="ge"``, heaviside spike with surrogate sigmoid,
arctan, exponential (any scale) or fast_sigmoid (scale 1); any input scale, decay
form, readout delay, reduction, window; no regularisers.

Tolerance: 1e-10 relative on traces, loss and gradients: float64 on both sides.
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

__all__ = ["SpikingJellyAdapter"]

#: refsnn surrogate -> SpikingJelly surrogate class
SURROGATES = {"sigmoid": "Sigmoid", "arctan": "ATan", "exponential": "PiecewiseExp",
              "fast_sigmoid": "SuperSpike"}
SURROGATE_CHOICES = (
    [("sigmoid", s) for s in (4.0, 1.0, 10.0)]
    + [("arctan", s) for s in (2.0, 1.0, 5.0)]
    + [("exponential", s) for s in (1.0, 5.0)]
    + [("fast_sigmoid", 1.0)]
)
RESETS = ("to_reset_leak", "subtract_decayed")


class SpikingJellyAdapter(Adapter):
    """SpikingJelly CUBALIFNode (see the module docstring)."""

    name = "spikingjelly"
    engine = "SpikingJelly CUBALIFNode in a LinearRecurrentContainer + refsnn's readout"
    requires = ("torch", "spikingjelly")
    install = ("pip install torch==2.13.0 && pip install --no-deps spikingjelly==2.0.0 && "
               "pip install 'loguru>=0.7,<1' packaging tqdm scipy")
    tolerance = Tolerance(
        traces=1e-10, loss=1e-10, grads=1e-10,
        why="float64 on both sides; only the order of operations differs",
    )
    grad_fields = ("w_in", "w_rec", "w_out", "decay_syn", "decay_mem", "threshold", "v_reset",
                   "decay_syn_out", "decay_mem_out")
    supported = ("reset hard (to_reset_leak, v_rest=0) / soft (subtract_decayed, v_reset=0), "
                 "detached or not; new current, delay 1, spike >=; surrogates sigmoid, arctan, "
                 "exponential (any scale), fast_sigmoid (scale 1: SuperSpike's alpha scales the "
                 "height); any input scale via pre-scaled weights; refsnn's readout")

    def conventions(self):
        """Strategy of the expressible conventions."""

        @st.composite
        def strategy(draw):
            surrogate, scale = draw(st.sampled_from(SURROGATE_CHOICES))
            return Conventions().replace(
                spike_test="ge",
                reset=draw(st.sampled_from(RESETS)),
                reset_detached=draw(st.booleans()),
                surrogate=surrogate, surrogate_scale=scale,
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
        checks = (
            (conv.reset not in RESETS, "CUBALIFNode resets hard (to_reset_leak) or soft "
                                       "(subtract_decayed)"),
            (conv.reset_threshold_detached, "the soft reset keeps the threshold's gradient"),
            (conv.membrane_current != "new", "CUBALIFNode drives v with the new current"),
            (conv.recurrent_delay != 1, "the container's recurrent delay is one step"),
            (conv.spike_test != "ge", "SpikingJelly fires on v >= threshold"),
            (conv.spike_fn != "heaviside", "SpikingJelly's spike is a hard threshold"),
            (conv.surrogate not in SURROGATES, f"no SpikingJelly surrogate equals "
                                               f"{conv.surrogate!r}"),
            (conv.surrogate == "fast_sigmoid" and conv.surrogate_scale != 1.0,
             "SuperSpike(alpha) scales the height: fast_sigmoid at scale 1 only"),
            (conv.reg_rate_strength or conv.reg_pop_strength, "no spike-count regularisers"),
        )
        return next((reason for failed, reason in checks if failed), None)

    def prepare(self, params: Params, conv: Conventions) -> Params:
        """No rest potential: ``v_rest = 0``; soft reset subtracts the threshold only."""
        p = params.replace(v_rest=np.zeros_like(params.v_rest))
        if conv.reset == "subtract_decayed":
            p = p.replace(v_reset=np.zeros_like(params.v_reset))
        return p

    def expected_traces(self, states: dict, params: Params, conv: Conventions) -> dict:
        """Map refsnn's states to what the node stores: ``g * I``, the membrane after reset."""
        _, _, g, _ = prescaled(params, conv)
        s, v = states["spikes"], states["v"]
        if conv.reset == "to_reset_leak":
            v_after = (1 - s) * v + s * params.v_reset
        else:
            v_after = v - s * params.threshold
        return dict(states, i_syn=states["i_syn"] * g, v=v_after)

    def run(self, params: Params, x: np.ndarray, labels: np.ndarray, conv: Conventions,
            device: str = "cpu", *, surrogate_alpha: float | None = None,
            initial_spike_gradient: bool = True) -> PeerRun:
        """Step the container over the input; refsnn's readout and loss on its spikes.

        ``surrogate_alpha`` overrides the surrogate's ``alpha`` (for the findings);
        ``initial_spike_gradient=False`` keeps the container's constant zero ``y``.
        """
        import torch

        with peer_warnings():
            from spikingjelly.activation_based import layer, neuron, surrogate
            from spikingjelly.activation_based.functional.neuron import voltage_reset

        dev = torch_device(device)
        f64 = torch.float64
        w_in_s, w_rec_s, g, dg = prescaled(params, conv)
        alpha = float(conv.surrogate_scale) if surrogate_alpha is None else surrogate_alpha
        sg = getattr(surrogate, SURROGATES[conv.surrogate])(alpha=alpha)
        hard = conv.reset == "to_reset_leak"
        node = neuron.CUBALIFNode(v_reset=0.0 if hard else None, surrogate_function=sg)

        def param(a):
            return torch.nn.Parameter(torch.tensor(a, dtype=f64))

        node.c_decay = param(params.decay_syn)
        node.v_decay = param(params.decay_mem)
        node.v_threshold = param(params.threshold)
        if hard:
            node.v_reset = param(params.v_reset)
        node.detach_reset = bool(conv.reset_detached)
        N = params.n_hidden
        net = layer.LinearRecurrentContainer(node, in_features=N, out_features=N, bias=False)
        net.rc.weight = param(np.concatenate([np.eye(N), w_rec_s.T], axis=1))
        net = net.to(dev)
        w_in_leaf = torch.tensor(w_in_s, dtype=f64, device=dev, requires_grad=True)
        out = to_tensors(params, READOUT_FIELDS, dev)
        xt = torch.tensor(x, dtype=f64, device=dev)
        n_updates = x.shape[1] - 1 if conv.skip_last_input else x.shape[1]
        feed = xt @ w_in_leaf
        zeros = torch.zeros((x.shape[0], N), dtype=f64, device=dev)
        with peer_warnings():
            s0 = node.surrogate_function(zeros - node.v_threshold)
            if initial_spike_gradient:
                # state 0 as refsnn has it: the zero membrane's spike, and the node's own
                # reset of the zero membrane by it (both 0 in value, not in gradient)
                net.y = s0
                node.v = voltage_reset(zeros, s0, node.v_threshold, node.v_reset,
                                       node.detach_reset)
            spikes, vs, cur = [s0 if initial_spike_gradient else zeros], [zeros], [zeros]
            for t in range(n_updates):
                spikes.append(net(feed[:, t]))
                vs.append(node.v)
                cur.append(node.c)
        labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=dev)
        ro = readout_loss(spikes, out, labels_t, conv, x.shape[1])
        leaves = [w_in_leaf, net.rc.weight, node.c_decay, node.v_decay, node.v_threshold]
        leaves += [node.v_reset] if hard else []
        leaves += [out[f] for f in READOUT_FIELDS]
        gr = autograd(ro["loss"], leaves)
        g_rc = gr[1][:, N:].T  # the recurrent block of [I, W_rec^T], as (pre, post)
        g_w_in, g_w_rec, g_decay_mem = unscale_grads(params, g, dg, gr[0], g_rc, gr[3])
        grads = dict(w_in=g_w_in, w_rec=g_w_rec, decay_syn=gr[2], decay_mem=g_decay_mem,
                     threshold=gr[4])
        if hard:
            grads["v_reset"] = gr[5]
        else:  # v_reset is fixed at 0 in the soft reset: nothing to compare
            grads["v_reset"] = None
        grads.update(zip(READOUT_FIELDS, gr[-3:], strict=True))
        return peer_run(cur, vs, spikes, ro, grads)

    def findings(self, device: str = "cpu") -> list:
        """SuperSpike's height scaling and the defaults, each measured here."""
        import torch

        from validation.check import probe

        with peer_warnings():
            from spikingjelly.activation_based import neuron, surrogate
        found = []
        z = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
        surrogate.SuperSpike(alpha=100.0)(z).sum().backward()
        expected = 1.0 / (100.0 * 0.5 + 1.0) ** 2
        if abs(float(z.grad[0]) - expected) > 1e-3 * expected:
            conv = Conventions().replace(spike_test="ge", reset="to_reset_leak",
                                         surrogate_scale=100.0)
            at100 = probe(self, conv, device)
            worst = max(e.rel for q, e in at100.errors.items() if q.startswith("grad."))
            found.append(
                f"SpikingJelly 2.0.0's SuperSpike(alpha) is alpha/(|x|+1)^2: alpha scales the "
                f"height, not the width (at x = 0.5, alpha=100: {float(z.grad[0]):.4g}, where "
                f"SuperSpike's 1/(100|x|+1)^2 is {expected:.3g}); against refsnn's fast_sigmoid "
                f"at scale 100 a network's gradients differ by {worst:.1e}; compared at alpha=1")
        base = Conventions().replace(spike_test="ge", reset="to_reset_leak", surrogate="sigmoid",
                                     surrogate_scale=4.0)
        no_s0 = probe(self, base, device, initial_spike_gradient=False)
        err = no_s0.errors["grad.threshold"]
        if not err.ok:
            found.append(
                "with the container's constant zero initial output the threshold gradient "
                "lacks the surrogate of the initial state's spike H(0 - v_threshold), which "
                f"refsnn (like the authors' code) includes: relative difference {err.rel:.1e}; "
                "the adapter starts the container from the node's own spike of 0")
        node = neuron.CUBALIFNode()
        found.append(
            f"CUBALIFNode's defaults: detach_reset={node.detach_reset} (the reset is "
            f"differentiated), surrogate {type(node.surrogate_function).__name__}, "
            f"v_threshold={node.v_threshold:g}, c_decay={node.c_decay:g}, "
            f"v_decay={node.v_decay:g}; spikes fire at v >= threshold (refsnn spike_test='ge')")
        return found
