"""The authors' model, transcribed: recurrent LIF layer, membrane readout, max over time.

A float64 PyTorch transcription of ``RecurrentSpikingLayer`` followed by
``MembraneLayer`` from the code of Perez-Nieves et al. (2021), "Neural heterogeneity
promotes robust learning" (GitHub ``npvoid/neural_heterogeneity``, ``SuGD_code/``),
written from the facts of that code (it is GPL-3.0; nothing is copied). It keeps their
structure, so it can be read side by side with their layers:

- the input is projected for all steps at once (einsum), then ``nb_steps - 1`` updates
  run, each appending to record lists that start with the zero state;
- the spike record starts with the zero membrane, so it is shifted one step:
  ``spk_rec[k + 1] = S[k]``;
- the readout projects ``spk_rec`` through its own einsum;
- stop-gradients sit exactly where theirs do: ``(1 - beta.detach())`` on the current,
  ``th.detach()`` in the reset, and the reset mask a constant built from
  ``(mem - th) > 0``;
- the surrogate is their ``SuSpike``: forward ``input > 0``, backward
  ``grad / (scale |input| + 1)^2``.

Differences from their training setup, on purpose: every parameter is a trainable leaf
(their readout decays never are), and the loss is the mean cross-entropy over the
batch (they divide the batch sum by the number of training samples). Their names map
to refsnn's as: ``w`` -> ``w_in``, ``v`` -> ``w_rec``, ``alpha`` -> ``decay_syn``,
``beta`` -> ``decay_mem``, ``th`` -> ``threshold``, ``reset`` -> ``v_reset``,
``rest`` -> ``v_rest``; readout ``w``, ``alpha``, ``beta`` -> ``w_out``,
``decay_syn_out``, ``decay_mem_out``.
"""

from __future__ import annotations

import numpy as np
import torch

from refsnn.params import PARAM_NAMES, Params

__all__ = ["paper_loss_and_grad"]


class _SuSpike(torch.autograd.Function):
    """Their spike nonlinearity: step forward, fast-sigmoid derivative backward."""

    @staticmethod
    def forward(ctx, inp, scale):  # noqa: D102
        ctx.save_for_backward(inp)
        ctx.scale = scale
        return (inp > 0).to(inp.dtype)

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        (inp,) = ctx.saved_tensors
        return grad_output / (ctx.scale * torch.abs(inp) + 1.0) ** 2, None


def _recurrent_spiking_layer(x, w, v, alpha, beta, th, reset, rest, scale):
    """Their ``RecurrentSpikingLayer.forward``: returns (syn_rec, mem_rec, spk_rec)."""
    h = torch.einsum("abc,cd->abd", x, w)
    batch_size, nb_steps, output_size = h.shape
    syn = torch.zeros((batch_size, output_size), dtype=h.dtype)
    mem = torch.zeros((batch_size, output_size), dtype=h.dtype)
    syn_rec = [syn]
    mem_rec = [mem]
    spk_rec = [mem]
    for t in range(nb_steps - 1):
        mthr = mem - th
        out = _SuSpike.apply(mthr, scale)
        rst = torch.zeros_like(mem)
        rst[mthr.detach() > 0] = 1.0  # constant reset mask
        new_syn = alpha * syn + h[:, t] + torch.mm(out, v)
        new_mem = (beta * (mem - rest) + rest + (1 - beta.detach()) * syn
                   - rst * (th.detach() - reset))
        mem = new_mem
        syn = new_syn
        syn_rec.append(syn)
        mem_rec.append(mem)
        spk_rec.append(out)
    return torch.stack(syn_rec, dim=1), torch.stack(mem_rec, dim=1), torch.stack(spk_rec, dim=1)


def _membrane_layer(spk_rec, w, alpha, beta):
    """Their ``MembraneLayer.forward``: returns (syn_rec, mem_rec)."""
    h = torch.einsum("abc,cd->abd", spk_rec, w)
    batch_size, nb_steps, output_size = h.shape
    syn = torch.zeros((batch_size, output_size), dtype=h.dtype)
    mem = torch.zeros((batch_size, output_size), dtype=h.dtype)
    syn_rec = [syn]
    mem_rec = [mem]
    for t in range(nb_steps - 1):
        new_syn = alpha * syn + h[:, t]
        new_mem = beta * mem + (1 - beta.detach()) * syn
        mem = new_mem
        syn = new_syn
        syn_rec.append(syn)
        mem_rec.append(mem)
    return torch.stack(syn_rec, dim=1), torch.stack(mem_rec, dim=1)


def paper_loss_and_grad(params: Params, x: np.ndarray, labels: np.ndarray,
                        scale: float = 100.0) -> tuple[float, Params, dict]:
    """Loss, gradients and records of the authors' model, in float64.

    Parameters
    ----------
    params : Params
        Any dtype; cast to float64.
    x : (B, T, n_in) array
        Input spikes; ``T`` is their ``nb_steps`` (T - 1 updates, last bin unused).
    labels : (B,) int array
    scale : float
        ``SuSpike.scale`` of the surrogate.

    Returns
    -------
    loss : float
        Mean over the batch of the softmax cross-entropy of ``m = max_t mem_out[t]``.
    grads : Params
        float64 gradients of all ten fields.
    traces : dict
        ``syn_rec``, ``mem_rec``, ``spk_rec`` (B, T, N); ``syn_out_rec``,
        ``mem_out_rec`` (B, T, C); ``logits`` (B, C): numpy float64.
    """
    params.validate()
    p = {name: torch.tensor(np.asarray(getattr(params, name), dtype=np.float64),
                            requires_grad=True) for name in PARAM_NAMES}
    xt = torch.tensor(np.asarray(x), dtype=torch.float64)
    if xt.ndim != 3 or xt.shape[2] != params.n_in:
        raise ValueError(f"x must have shape (B, T, n_in={params.n_in}), got {tuple(xt.shape)}")
    syn_rec, mem_rec, spk_rec = _recurrent_spiking_layer(
        xt, p["w_in"], p["w_rec"], p["decay_syn"], p["decay_mem"], p["threshold"],
        p["v_reset"], p["v_rest"], scale)
    syn_out_rec, mem_out_rec = _membrane_layer(
        spk_rec, p["w_out"], p["decay_syn_out"], p["decay_mem_out"])
    m, _ = torch.max(mem_out_rec, 1)  # max over time
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_p_y = torch.nn.functional.log_softmax(m, dim=1)
    loss = torch.nn.functional.nll_loss(log_p_y, y, reduction="sum") / m.shape[0]
    leaves = [p[name] for name in PARAM_NAMES]
    # with very few steps some parameters do not reach the loss: their gradient is zero
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    grads = Params(**{
        name: (torch.zeros_like(leaf) if g is None else g).numpy()
        for name, g, leaf in zip(PARAM_NAMES, grads, leaves, strict=True)
    })
    traces = dict(syn_rec=syn_rec, mem_rec=mem_rec, spk_rec=spk_rec,
                  syn_out_rec=syn_out_rec, mem_out_rec=mem_out_rec, logits=m)
    traces = {k: t.detach().numpy() for k, t in traces.items()}
    return float(loss.detach()), grads, traces
