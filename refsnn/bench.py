"""``refsnn bench``: refsnn against PyTorch, snnTorch and Norse on the CPU, side by side.

What is measured
----------------
One call of forward + backward (the loss and the gradient of every parameter) on the
same problem for each implementation:

``refsnn``
    ``refsnn.loss_and_grad`` with the "paper" conventions (also in float64, as
    ``refsnn-f64``).
``torch``
    The same model in plain PyTorch autograd, written as the authors wrote theirs
    (``validation.paper_model``, here in the benchmark's dtype): the input projected
    for all steps at once, a Python loop over the updates appending to record lists,
    the records stacked, the readout layer, max over time, softmax cross-entropy,
    ``torch.autograd.grad`` for all ten parameters. ``tests/test_bench.py`` checks it
    against refsnn in float64.
``snntorch``, ``norse`` (when importable)
    The same layer sizes, per-neuron decays and thresholds, and readout in each
    framework's own recurrent LIF cell (snnTorch ``RSynaptic`` with the fast-sigmoid
    surrogate of scale 100 and the subtractive reset; Norse ``LIFRecurrentCell`` with
    SuperSpike), followed by the torch readout above. Their conventions differ in
    detail from the paper's (see ``validation/adapters`` for exact mappings); here
    they are timed, not compared.

Protocol
--------
- Every implementation is built and called twice before timing (Numba compiles, torch
  warms its allocator); then the implementations are called in turn, the order
  rotated every round, for ``--repeats`` rounds, so that a slow period of a shared
  machine hits all of them alike. Reported: the minimum and the median wall time.
- Threads: ``--threads`` for Numba and for torch (intra-op); the matrix-product rate
  is measured with the same number (``torch.mm`` of 2048 x 2048 when torch is
  installed, else NumPy), timed in the same rounds as the implementations.
- Peak additional memory of one call, in a fresh process per implementation, after
  two warm-up calls: the peak resident set size during the call minus the resident
  size before it (Linux ``/proc/self/clear_refs`` resets the peak), with
  ``MALLOC_MMAP_THRESHOLD_=4096`` so that every allocation of 4 KiB or more is mapped
  on demand and returned on free (otherwise memory kept by the allocator from the
  warm-up calls hides the call's allocations). For refsnn the ``tracemalloc`` peak
  (NumPy allocations; the kernels allocate nothing) is reported too.
- The floor: the arithmetic of the event-driven algorithm, counted as in
  ``flop_count`` (each input event and each spike of the forward pass once forward and
  once for its weight gradient; the adjoint product dense), divided by this machine's
  measured matrix-product rate. The ratio to it is given for the best rounds (refsnn's
  and the product's) and for the medians; so is the ratio to the arithmetic of a dense
  implementation (every recurrent and readout product dense: forward, adjoint, weight
  gradient), which is larger by the products' share of neurons that do not spike.
- Sweeps over the number of steps, the hidden size and the batch size give the plot
  (``time_vs_steps_and_hidden.png`` in ``--out``) and the linearity check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from validation.adapters.base import peer_warnings

__all__ = ["Case", "IMPLEMENTATIONS", "add_parser", "flop_count", "make_problem",
           "build_step", "run_bench"]

#: every implementation the command knows, in report order
IMPLEMENTATIONS = ("refsnn", "refsnn-f64", "torch", "snntorch", "norse")
#: the surrogate scale of the paper (fast sigmoid)
SCALE = 100.0


@dataclass(frozen=True)
class Case:
    """One problem size, and the network that runs on it.

    Batch, input steps, inputs, hidden neurons, classes, input density, dtype, and the
    network: ``"random"`` is ``refsnn.random_params`` (a network that fires, about a
    third of the neurons per step: the costly case for event-driven code), ``"paper"``
    the paper's initialisation (weights U(-1/sqrt(N), 1/sqrt(N)), gamma-distributed time
    constants of mean 10 and 20 steps), which barely fires.
    """

    batch: int = 32
    steps: int = 250
    n_in: int = 700
    hidden: int = 128
    classes: int = 20
    density: float = 0.02
    dtype: str = "float32"
    network: str = "random"

    def label(self) -> str:
        """Sizes in words."""
        return (f"batch {self.batch}, {self.steps} steps, {self.n_in} inputs at "
                f"{100 * self.density:g} %, {self.hidden} hidden, {self.classes} classes, "
                f"{self.dtype}, {self.network} network")


#: the issue's target case and the other cases of ``benchmarks/``
TARGET = Case()
SHD = Case(steps=2000)
FASHION = Case(batch=64, steps=100, n_in=784, classes=10, density=0.004)
WIDE = Case(hidden=512)
QUICK = Case(batch=4, steps=30, n_in=40, hidden=16, classes=5, density=0.05)


# ============================================================================ problems
def make_problem(case: Case, seed: int = 0):
    """``(params, x, labels)`` for ``case``, drawn from ``numpy.random.default_rng(seed)``."""
    import refsnn

    rng = np.random.default_rng(seed)
    dtype = np.dtype(case.dtype)
    if case.network == "random":
        p = refsnn.random_params(case.n_in, case.hidden, case.classes, rng, dtype=dtype)
    elif case.network == "paper":
        b = 1 / np.sqrt(case.hidden)
        tau_syn = rng.gamma(3.0, 10 / 3, case.hidden)  # in steps
        tau_mem = rng.gamma(3.0, 20 / 3, case.hidden)
        clamp = (2 / np.e, 0.995)
        p = refsnn.Params(
            w_in=rng.uniform(-b, b, (case.n_in, case.hidden)),
            w_rec=rng.uniform(-b, b, (case.hidden, case.hidden)),
            w_out=rng.uniform(-1 / np.sqrt(case.classes), 1 / np.sqrt(case.classes),
                              (case.hidden, case.classes)),
            decay_syn=np.clip(np.exp(-1 / tau_syn), *clamp),
            decay_mem=np.clip(np.exp(-1 / tau_mem), *clamp),
            threshold=np.ones(case.hidden), v_reset=np.zeros(case.hidden),
            v_rest=np.zeros(case.hidden),
            decay_syn_out=np.clip(np.exp(-1 / rng.gamma(3.0, 10 / 3, case.classes)), *clamp),
            decay_mem_out=np.clip(np.exp(-1 / rng.gamma(3.0, 20 / 3, case.classes)), *clamp),
        ).astype(dtype)
    else:
        raise ValueError(f"network must be 'random' or 'paper', got {case.network!r}")
    x = (rng.random((case.batch, case.steps, case.n_in)) < case.density).astype(dtype)
    labels = rng.integers(0, case.classes, case.batch)
    return p, x, labels


def state_widths(case: Case) -> np.ndarray:
    """Return the columns of ``[w_rec | w_out]`` a spike of each state k = 0 .. K reaches.

    "paper" conventions: N when state k drives a hidden update (k + d <= K), plus C
    when it drives a readout update (1 <= k + r <= K); 0 for a state that drives none.
    """
    from .conventions import Conventions

    conv = Conventions.preset("paper")
    K = case.steps - 1 if conv.skip_last_input else case.steps
    k = np.arange(K + 1)
    to_out = (1 <= k + conv.readout_delay) & (k + conv.readout_delay <= K)
    return case.hidden * (k + conv.recurrent_delay <= K) + case.classes * to_out


def flop_count(case: Case, n_events: int, spikes=None) -> float:
    """Count the arithmetic of one forward + backward call, "paper" conventions.

    Each of the ``n_events`` input events costs a row of ``w_in`` forward (Eq. (2)) and
    a row of its gradient (B12): 2 x 2 N flops. A spike of state k reaches ``width(k)``
    columns of ``[w_rec | w_out]``: N when it drives a hidden update (k + d <= K), C
    when it drives a readout update (1 <= k + r <= K). It costs 2 width(k) flops
    forward (Eq. (2), (7)) and as many for its weight gradient (B13). The adjoint
    product (B6) + (B11) is dense (the surrogate derivative is nowhere zero): 2 N
    width(k) flops per sample and state. Elementwise work is left out.

    ``spikes``: the number of spikes of each state k = 0 .. K, summed over the batch;
    the count is then that of the event-driven algorithm (the floor). ``None`` counts
    every neuron as spiking at every state: the count of a dense implementation, whose
    recurrent and readout products are all dense (about 1 GFLOP for the target case).
    """
    width = state_widths(case)
    K, N = len(width) - 1, case.hidden
    if spikes is None:
        delivered = float(case.batch * N * width.sum())
    else:
        spikes = np.asarray(spikes, dtype=float)
        if spikes.shape != (K + 1,):
            raise ValueError(f"spikes must hold one count per state, shape ({K + 1},), "
                             f"got shape {spikes.shape}")
        delivered = float(spikes @ width)
    adjoint = 2.0 * case.batch * N * float(width.sum())
    return 4.0 * n_events * N + 2 * 2.0 * delivered + adjoint


# ============================================================================ implementations
def _torch_readout(torch, spk_rec, w, alpha, beta):
    """Run the authors' ``MembraneLayer``: a leaky-integrator readout of the spikes."""
    h = torch.einsum("abc,cd->abd", spk_rec, w)
    batch_size, nb_steps, output_size = h.shape
    syn = torch.zeros((batch_size, output_size), dtype=h.dtype)
    mem = torch.zeros((batch_size, output_size), dtype=h.dtype)
    syn_rec, mem_rec = [syn], [mem]
    for t in range(nb_steps - 1):
        new_syn = alpha * syn + h[:, t]
        new_mem = beta * mem + (1 - beta.detach()) * syn
        mem, syn = new_mem, new_syn
        syn_rec.append(syn)
        mem_rec.append(mem)
    return torch.stack(syn_rec, dim=1), torch.stack(mem_rec, dim=1)


def _torch_step(p, x, y, scale=SCALE):
    """Plain PyTorch autograd, written as the authors wrote their model (module doc)."""
    import torch

    class SuSpike(torch.autograd.Function):
        """Step forward, fast-sigmoid derivative backward (the authors' ``SuSpike``)."""

        @staticmethod
        def forward(ctx, inp):  # noqa: D102
            ctx.save_for_backward(inp)
            return (inp > 0).to(inp.dtype)

        @staticmethod
        def backward(ctx, grad_output):  # noqa: D102
            (inp,) = ctx.saved_tensors
            return grad_output / (scale * torch.abs(inp) + 1.0) ** 2

    from .params import PARAM_NAMES

    P = {name: torch.tensor(getattr(p, name), requires_grad=True) for name in PARAM_NAMES}
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    leaves = [P[name] for name in PARAM_NAMES]

    def step():
        h = torch.einsum("abc,cd->abd", xt, P["w_in"])
        batch_size, nb_steps, n = h.shape
        syn = torch.zeros((batch_size, n), dtype=h.dtype)
        mem = torch.zeros((batch_size, n), dtype=h.dtype)
        syn_rec, mem_rec, spk_rec = [syn], [mem], [mem]
        th, beta = P["threshold"], P["decay_mem"]
        for t in range(nb_steps - 1):
            mthr = mem - th
            out = SuSpike.apply(mthr)
            rst = torch.zeros_like(mem)
            rst[mthr.detach() > 0] = 1.0
            new_syn = P["decay_syn"] * syn + h[:, t] + torch.mm(out, P["w_rec"])
            new_mem = (beta * (mem - P["v_rest"]) + P["v_rest"] + (1 - beta.detach()) * syn
                       - rst * (th.detach() - P["v_reset"]))
            mem, syn = new_mem, new_syn
            syn_rec.append(syn)
            mem_rec.append(mem)
            spk_rec.append(out)
        torch.stack(syn_rec, dim=1), torch.stack(mem_rec, dim=1)  # the authors keep these
        spk = torch.stack(spk_rec, dim=1)
        _, mem_out = _torch_readout(torch, spk, P["w_out"], P["decay_syn_out"],
                                    P["decay_mem_out"])
        m, _ = torch.max(mem_out, 1)
        loss = torch.nn.functional.cross_entropy(m, yt)
        return loss, torch.autograd.grad(loss, leaves)

    return step


def _snntorch_step(p, x, y, scale=SCALE):
    """Time snnTorch's ``RSynaptic``, then the torch readout on its spikes.

    Per-neuron alpha, beta and threshold, all learnable.
    """
    import snntorch
    import torch
    from snntorch import surrogate

    dt = torch.float64 if p.dtype == np.float64 else torch.float32
    cell = snntorch.RSynaptic(
        alpha=torch.tensor(p.decay_syn), beta=torch.tensor(p.decay_mem),
        linear_features=p.n_hidden, threshold=torch.tensor(p.threshold),
        spike_grad=surrogate.fast_sigmoid(slope=scale), learn_alpha=True, learn_beta=True,
        learn_threshold=True, reset_mechanism="subtract",
    )
    cell.recurrent.bias = None
    with torch.no_grad():
        cell.recurrent.weight = torch.nn.Parameter(torch.tensor(p.w_rec.T.copy()))
    cell = cell.to(dtype=dt)
    w_in = torch.tensor(p.w_in, requires_grad=True)
    out = {k: torch.tensor(getattr(p, k), requires_grad=True)
           for k in ("w_out", "decay_syn_out", "decay_mem_out")}
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    leaves = [w_in, cell.recurrent.weight, cell.alpha, cell.beta, cell.threshold, *out.values()]

    def step():
        feed = torch.einsum("abc,cd->abd", xt, w_in)
        B, T, N = feed.shape
        syn = torch.zeros((B, N), dtype=dt)
        mem = torch.zeros((B, N), dtype=dt)
        spk = torch.zeros((B, N), dtype=dt)
        spikes = [spk]
        for t in range(T - 1):
            spk, syn, mem = cell(feed[:, t], spk.to(dt), syn, mem)
            spikes.append(spk.to(dt))
        _, mem_out = _torch_readout(torch, torch.stack(spikes, 1), out["w_out"],
                                    out["decay_syn_out"], out["decay_mem_out"])
        loss = torch.nn.functional.cross_entropy(torch.max(mem_out, 1)[0], yt)
        return loss, torch.autograd.grad(loss, leaves)

    return step


def _norse_step(p, x, y, scale=SCALE):
    """Time Norse's ``LIFRecurrentCell``, then the torch readout on its spikes.

    Per-neuron time constants, threshold, reset and rest potentials as leaf tensors;
    SuperSpike.
    """
    import torch

    with peer_warnings():
        from norse.torch import LIFParameters, LIFRecurrentCell, LIFState
    dt_s = 1e-3
    leaf = {
        "tau_syn_inv": (1.0 - p.decay_syn) / dt_s, "tau_mem_inv": (1.0 - p.decay_mem) / dt_s,
        "v_leak": p.v_rest, "v_th": p.threshold, "v_reset": p.v_reset,
    }
    leaf = {k: torch.tensor(np.asarray(v, dtype=p.dtype), requires_grad=True)
            for k, v in leaf.items()}
    params = LIFParameters(tau_syn_inv=leaf["tau_syn_inv"], tau_mem_inv=leaf["tau_mem_inv"],
                           v_leak=leaf["v_leak"], v_th=leaf["v_th"], v_reset=leaf["v_reset"],
                           method="super", alpha=torch.as_tensor(scale))
    with peer_warnings():
        cell = LIFRecurrentCell(
            p.n_in, p.n_hidden, p=params,
            input_weights=torch.nn.Parameter(torch.tensor(p.w_in.T.copy())),
            recurrent_weights=torch.nn.Parameter(torch.tensor(p.w_rec.T.copy())),
            autapses=True, dt=dt_s,
        )
    out = {k: torch.tensor(getattr(p, k), requires_grad=True)
           for k in ("w_out", "decay_syn_out", "decay_mem_out")}
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    leaves = [cell.input_weights, cell.recurrent_weights, *leaf.values(), *out.values()]

    def step():
        B, T, _ = xt.shape
        zeros = torch.zeros((B, p.n_hidden), dtype=xt.dtype)
        state = LIFState(z=zeros, v=zeros, i=zeros)
        spikes = [zeros]
        with peer_warnings():
            for t in range(T - 1):
                z, state = cell(xt[:, t], state)
                spikes.append(z)
        _, mem_out = _torch_readout(torch, torch.stack(spikes, 1), out["w_out"],
                                    out["decay_syn_out"], out["decay_mem_out"])
        loss = torch.nn.functional.cross_entropy(torch.max(mem_out, 1)[0], yt)
        return loss, torch.autograd.grad(loss, leaves)

    return step


def build_step(impl: str, case: Case, seed: int = 0):
    """Return a function of no arguments that runs one forward + backward call of ``impl``."""
    import refsnn

    if impl == "refsnn-f64":
        case = replace(case, dtype="float64")
    p, x, y = make_problem(case, seed)
    if impl in ("refsnn", "refsnn-f64"):
        conv = refsnn.Conventions.preset("paper")
        return lambda: refsnn.loss_and_grad(p, x, y, conv)
    builders = {"torch": _torch_step, "snntorch": _snntorch_step, "norse": _norse_step}
    if impl not in builders:
        raise ValueError(f"unknown implementation {impl!r}; choose from {list(IMPLEMENTATIONS)}")
    return builders[impl](p, x, y)


def available(impl: str) -> str | None:
    """Why ``impl`` cannot run here (a module missing), or None."""
    needs = {"torch": ("torch",), "snntorch": ("torch", "snntorch"),
             "norse": ("torch", "norse")}.get(impl, ())
    import importlib.util

    for module in needs:
        if importlib.util.find_spec(module) is None:
            return "not installed"
    return None


def _set_threads(threads: int) -> None:
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if available("torch") is None:
        import torch

        torch.set_num_threads(threads)


# ============================================================================ measurements
def matmul_step(dtype: str, size: int = 2048):
    """Return a (size x size) matrix product of ``dtype`` to time, and its engine.

    ``torch.mm`` (whose threads ``--threads`` sets) when torch is installed, else NumPy.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    if available("torch") is None:
        import torch

        ta = torch.from_numpy(a)
        return (lambda: torch.mm(ta, ta)), "torch.mm"
    return (lambda: a @ a), "numpy matmul"


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def time_interleaved(steps: dict, repeats: int, progress=None) -> dict:
    """Wall times (s) of each step function, called in turn, the order rotated per round."""
    for f in steps.values():  # compile and warm up
        f()
        f()
    names = list(steps)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(_timed(steps[name]))
            if progress is not None:
                progress.update(1)
    return times


def _rss_kib() -> dict:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def _memory_child(spec: str) -> None:
    """Entry of the measuring process: print the peak additional memory of one call."""
    import tracemalloc

    spec = json.loads(spec)
    _set_threads(spec["threads"])
    step = build_step(spec["impl"], Case(**spec["case"]), spec["seed"])
    step()
    step()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets the peak resident size to the current one
    before = _rss_kib()["VmRSS"]
    tracemalloc.start()
    step()
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _rss_kib()["VmHWM"]
    print(json.dumps(dict(rss_mib=(peak - before) / 1024, tracemalloc_mib=traced / 2**20)))


def measure_memory(impl: str, case: Case, threads: int, seed: int = 0) -> dict:
    """Peak additional memory (MiB) of one call of ``impl``, in a fresh process."""
    if not os.path.exists("/proc/self/clear_refs"):
        return dict(error="needs Linux /proc/self/clear_refs")
    spec = json.dumps(dict(impl=impl, case=asdict(case), threads=threads, seed=seed))
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="4096")
    proc = subprocess.run(
        [sys.executable, "-c", f"from refsnn.bench import _memory_child; _memory_child({spec!r})"],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        return dict(error=(proc.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
    """CPU model, cores and versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba

    versions = dict(python=platform.python_version(), numpy=np.__version__,
                    numba=numba.__version__)
    for module in ("torch", "snntorch", "norse"):
        if available(module) is None:
            try:
                from importlib.metadata import version

                versions[module] = version(module)
            except Exception:  # noqa: BLE001 - a module without metadata
                versions[module] = "?"
    return dict(cpu=cpu, cores=os.cpu_count(), platform=platform.platform(),
                numba_threading_layer=numba.config.THREADING_LAYER, versions=versions)


def _stats(ts) -> dict:
    ts = np.asarray(ts) * 1e3
    return dict(min_ms=float(ts.min()), median_ms=float(np.median(ts)), runs=int(ts.size))


def _firing_rate(case: Case, seed: int) -> tuple:
    import refsnn

    p, x, _ = make_problem(case, seed)
    tr = refsnn.forward(p, x, "paper")
    spikes = tr.spikes.sum(axis=(0, 2))  # per state, over the batch and the neurons
    K = len(spikes) - 1  # the input steps t < K drive an update
    return float(tr.spikes.mean()), int(np.count_nonzero(x[:, :K])), spikes


# ============================================================================ the command
def run_bench(args, progress: bool = True) -> dict:
    """Run the benchmark described by the parsed ``args``; return the summary."""
    from tqdm import tqdm

    threads = args.threads
    _set_threads(threads)
    if args.quick:
        case = replace(QUICK, network=args.network)
        repeats, sweep_repeats, mm_size = 3, 1, 256
        steps_sweep, hidden_sweep, batch_sweep = (10, 20, 40), (8, 16, 32), (2, 4, 8)
    else:
        case = Case(batch=args.batch, steps=args.steps, n_in=args.inputs, hidden=args.hidden,
                    classes=args.classes, density=args.density, network=args.network)
        repeats, sweep_repeats, mm_size = args.repeats, max(3, args.repeats // 4), 2048
        steps_sweep = (63, 125, 250, 500, 1000)
        hidden_sweep = (32, 64, 128, 256, 512)
        batch_sweep = (8, 16, 32, 64)
    impls = [i.strip() for i in args.impl.split(",") if i.strip()]
    for impl in impls:
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"unknown implementation {impl!r}; choose from "
                             f"{', '.join(IMPLEMENTATIONS)}")
    status = {impl: available(impl) for impl in impls}
    runnable = [impl for impl in impls if status[impl] is None]
    summary = dict(machine=machine(), threads=threads, case=asdict(case), quick=args.quick)
    rate, n_events, spikes = _firing_rate(case, args.seed)
    summary["firing_rate"] = rate
    summary["input_events"] = n_events

    steps, failed = {}, {}
    for impl in runnable:
        try:
            steps[impl] = build_step(impl, case, args.seed)
            steps[impl]()
        except Exception as exc:  # noqa: BLE001 - a peer that breaks is reported, not fatal
            failed[impl] = f"{type(exc).__name__}: {exc}"
            steps.pop(impl, None)
    sweep_impls = [i for i in ("refsnn", "torch") if i in steps]
    n_calls = repeats * len(steps) + sweep_repeats * (
        len(sweep_impls) * (len(steps_sweep) + len(hidden_sweep)) + len(batch_sweep))
    bar = tqdm(total=n_calls + 2 * repeats, desc="refsnn bench", disable=not progress,
               leave=False)
    # the matrix products are timed in the same rounds, so the floor and refsnn's time
    # are measured under the same conditions of a shared machine
    engines = {}
    for dt in ("float32", "float64"):
        steps[f"matmul-{dt}"], engines[dt] = matmul_step(dt, mm_size)
    times = time_interleaved(steps, repeats, bar)
    import numba

    with contextlib.suppress(ValueError):  # the layer is known once a parallel kernel ran
        summary["machine"]["numba_threading_layer"] = numba.threading_layer()
    summary["matmul"] = {}
    for dt in ("float32", "float64"):
        st = _stats(times.pop(f"matmul-{dt}"))
        steps.pop(f"matmul-{dt}")
        summary["matmul"][dt] = dict(
            gflops=2.0 * mm_size**3 / st["min_ms"] / 1e6, engine=engines[dt], size=mm_size,
            gflops_median=2.0 * mm_size**3 / st["median_ms"] / 1e6)

    results = {}
    for impl in impls:
        if status[impl] is not None:
            results[impl] = dict(status=status[impl])
        elif impl in failed:
            results[impl] = dict(status="failed", error=failed[impl])
        else:
            results[impl] = dict(status="ok", **_stats(times[impl]))
    if not (args.no_memory or args.quick):
        for impl in steps:
            results[impl]["memory"] = measure_memory(impl, case, threads, args.seed)

    def ratio(a, b, key="min_ms"):
        ra, rb = results.get(a, {}), results.get(b, {})
        if ra.get("status") == "ok" and rb.get("status") == "ok":
            return ra[key] / rb[key]
        return None

    def mem_ratio(a, b):
        ma = results.get(a, {}).get("memory", {}).get("rss_mib")
        mb = results.get(b, {}).get("memory", {}).get("rss_mib")
        return ma / mb if ma and mb else None

    summary["results"] = results
    summary["ratios"] = {
        f"{impl}/refsnn": ratio(impl, "refsnn") for impl in ("torch", "snntorch", "norse")
    }
    summary["ratios"]["refsnn-f64/refsnn"] = ratio("refsnn-f64", "refsnn")
    summary["ratios"]["memory refsnn/torch"] = mem_ratio("refsnn", "torch")
    if results.get("refsnn", {}).get("status") == "ok":
        t = results["refsnn"]["min_ms"] / 1e3
        t_med = results["refsnn"]["median_ms"] / 1e3
        mm = summary["matmul"]["float32"]["gflops"]
        mm_med = summary["matmul"]["float32"]["gflops_median"]

        def floor(flops):
            return dict(
                gflop=flops / 1e9, matmul_gflops=mm, floor_ms=flops / mm / 1e6,
                refsnn_gflops=flops / t / 1e9, refsnn_over_floor=t * mm * 1e9 / flops,
                refsnn_over_floor_median=t_med * mm_med * 1e9 / flops)

        # the floor counts the spikes as events; "dense" every product dense, for scale
        summary["floor"] = floor(flop_count(case, n_events, spikes))
        summary["floor"]["dense"] = floor(flop_count(case, n_events))

    # sweeps: time against steps, hidden size (refsnn and torch) and batch (refsnn)
    sweeps = dict(steps={}, hidden={}, batch={})
    for impl in sweep_impls:
        for key, values in (("steps", steps_sweep), ("hidden", hidden_sweep)):
            funcs = {v: build_step(impl, replace(case, **{key: v}), args.seed) for v in values}
            tt = time_interleaved(funcs, sweep_repeats, bar)
            sweeps[key][impl] = {str(v): float(min(tt[v]) * 1e3) for v in values}
    if "refsnn" in steps:
        funcs = {v: build_step("refsnn", replace(case, batch=v), args.seed) for v in batch_sweep}
        tt = time_interleaved(funcs, sweep_repeats, bar)
        sweeps["batch"]["refsnn"] = {str(v): float(min(tt[v]) * 1e3) for v in batch_sweep}
    bar.close()
    summary["sweeps"] = sweeps
    summary["linearity"] = _linearity(sweeps, case)
    summary["plot"] = _plot(sweeps, case, args.out)
    return summary


def _linearity(sweeps: dict, case: Case) -> dict:
    """Return the cost per update and per sample relative to the largest size.

    From the steps and batch sweeps: 1 everywhere means exactly linear.
    """
    out = {}
    st = sweeps["steps"].get("refsnn")
    if st:
        per = {k: v / (int(k) - 1) for k, v in st.items()}
        last = per[max(per, key=int)]
        out["per_update_vs_largest"] = {k: v / last for k, v in per.items()}
    bt = sweeps["batch"].get("refsnn")
    if bt:
        per = {k: v / int(k) for k, v in bt.items()}
        last = per[max(per, key=int)]
        out["per_sample_vs_largest"] = {k: v / last for k, v in per.items()}
    return out


def _plot(sweeps: dict, case: Case, out_dir: str | None) -> str | None:
    """Time against steps, hidden size and batch size, one panel each (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    out_dir = out_dir or os.path.join(tempfile.gettempdir(), "refsnn_bench")
    os.makedirs(out_dir, exist_ok=True)
    panels = [("steps", "input steps T"), ("hidden", "hidden neurons N"),
              ("batch", "batch size B")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (key, xlabel) in zip(axes, panels, strict=True):
        xs = set()
        for impl, series in sweeps[key].items():
            x = [int(k) for k in series]
            xs.update(x)
            ax.plot(x, list(series.values()), "o-", label=impl)
        ax.set_xscale("log")
        ax.set_yscale("log")
        if xs:
            ax.set_xticks(sorted(xs))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.legend()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("forward + backward (ms)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{case.label()}; one size varied at a time", fontsize=10)
    fig.tight_layout()
    path = os.path.join(out_dir, "time_vs_steps_and_hidden.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _print_table(s: dict) -> None:
    m = s["machine"]
    print(f"refsnn bench: {m['cpu']}, {s['threads']} threads "
          f"({', '.join(f'{k} {v}' for k, v in m['versions'].items())})")
    c = Case(**s["case"])
    print(f"case: {c.label()}; paper conventions; firing rate {s['firing_rate']:.3f}, "
          f"{s['input_events']} input events")
    for dt, mm in s["matmul"].items():
        print(f"matrix product ({mm['engine']}, {mm['size']}^2, {dt}): {mm['gflops']:.1f} "
              f"GFLOP/s (best round; median {mm['gflops_median']:.1f})")
    print(f"\n  {'implementation':<12} {'min ms':>9} {'median ms':>10} {'x refsnn':>9} "
          f"{'peak MiB':>9}")
    base = s["results"].get("refsnn", {}).get("min_ms")
    for impl, r in s["results"].items():
        if r.get("status") != "ok":
            print(f"  {impl:<12} {r.get('status')}{': ' + r['error'] if 'error' in r else ''}")
            continue
        mem = r.get("memory", {})
        mib = f"{mem['rss_mib']:.1f}" if "rss_mib" in mem else mem.get("error", "-")
        rel = f"{r['min_ms'] / base:.2f}" if base else "-"
        print(f"  {impl:<12} {r['min_ms']:>9.2f} {r['median_ms']:>10.2f} {rel:>9} {mib:>9}")
    if "floor" in s:
        f = s["floor"]
        print(f"\nfloor: {f['gflop']:.3f} GFLOP of event-driven arithmetic / "
              f"{f['matmul_gflops']:.1f} GFLOP/s = {f['floor_ms']:.2f} ms; refsnn runs at "
              f"{f['refsnn_gflops']:.1f} GFLOP/s, {f['refsnn_over_floor']:.2f} x the floor "
              f"(medians of both: {f['refsnn_over_floor_median']:.2f} x)")
        d = f["dense"]
        print(f"with every product dense: {d['gflop']:.3f} GFLOP = {d['floor_ms']:.2f} ms; "
              f"refsnn {d['refsnn_over_floor']:.2f} x that (medians "
              f"{d['refsnn_over_floor_median']:.2f} x)")
    for key, val in s["ratios"].items():
        if val is not None:
            print(f"ratio {key}: {val:.2f}")
    for key, series in s["linearity"].items():
        print(f"{key}: " + ", ".join(f"{k}: {v:.2f}" for k, v in series.items()))
    if s.get("plot"):
        print(f"plot: {s['plot']}")


def _command(args) -> int:
    summary = run_bench(args, progress=not args.json)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_table(summary)
    return 0


def add_parser(subparsers) -> None:
    """Register ``refsnn bench`` on the ``refsnn`` command's subparsers."""
    from .cli import _positive_int
    b = subparsers.add_parser(
        "bench", help="time and memory of forward + backward against PyTorch, snnTorch, Norse")
    b.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    b.add_argument("--quick", action="store_true",
                   help="tiny sizes (the size options are ignored), no memory measurement: "
                        "a few seconds (for tests)")
    b.add_argument("--out", default=None,
                   help="folder for the plot (default: refsnn_bench in the temp folder)")
    b.add_argument("--threads", type=_positive_int, default=2)
    b.add_argument("--repeats", type=_positive_int, default=20, help="timed rounds (default 20)")
    b.add_argument("--impl", default=",".join(IMPLEMENTATIONS),
                   help=f"comma-separated, from {', '.join(IMPLEMENTATIONS)}")
    b.add_argument("--batch", type=_positive_int, default=TARGET.batch)
    b.add_argument("--steps", type=_positive_int, default=TARGET.steps)
    b.add_argument("--inputs", type=_positive_int, default=TARGET.n_in)
    b.add_argument("--hidden", type=_positive_int, default=TARGET.hidden)
    b.add_argument("--classes", type=_positive_int, default=TARGET.classes)
    b.add_argument("--density", type=_density, default=TARGET.density,
                   help="fraction of input entries that are 1, in [0, 1] (default 0.02)")
    b.add_argument("--network", choices=("random", "paper"), default="random")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    b.set_defaults(func=_command)


def _density(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:  # also false for NaN
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value
