"""What refsnn's data flow costs at best on this machine: the bare primitives, priced.

Run: ``python benchmarks/bounds.py [--threads 2] [--quick] [--json]``.

The floor of ``refsnn bench`` prices every flop of the event-driven arithmetic at the
rate of a large matrix product. This script prices the same work at the measured speed
of the bare operation each part of refsnn reduces to, with none of refsnn's bookkeeping
(no spike lists, masks or elementwise work), one thread each, on the target
case's own shapes and counts (taken from its forward pass):

- ``gather w_spk``: a spike adds its row of ``[w_rec | w_out]`` (N + C floats) to a
  sum, four rows per load and store of the sum, the sum cleared every "spikes per
  sample and state" rows; counted once per spike that drives an update. (refsnn's
  forward now adds the rows by column chunks shared across a group of samples, which
  reads them from the first-level cache after the first sample, so this part is the
  bare cost of a row gather rather than a strict bound of refsnn's delivery.)
- ``gather w_in``: the same for an input event and its row of ``w_in``.
- ``gather g_spk``: in B13 a spike adds the adjoint row its state sees (N + C floats,
  one of the ``GROUP x grad_states`` rows of a task's window of states, ``grad_states``
  from ``kernels.spike_grad_states``: 4 for the target case) to its
  neuron's sum, as ``gather w_spk``; counted once per spike that drives an update.
- ``update dw_spk``: a row of the weight gradient ``dL/d[w_rec | w_out]`` read, added
  to and written back (B13); once per task, window of ``grad_states`` states and
  neuron that spikes in it (refsnn sums the window's spikes of a neuron in registers).
- ``gather g_i``: in B12 an input event adds its sample's adjoint row ``g_i[t + 1]``
  (N floats, one of the sample's K + 1) to its input's sum, the sum cleared every
  "events per sample and input" rows; once per input event (refsnn sorts a sample's
  events by input and sums each input's rows in registers).
- ``update dw_in``: the same as ``update dw_spk`` for ``dL/dw_in`` (B12): once per
  sample and input with an event, rows ascending within a sample.
- ``adjoint``: the dense product (B6) + (B11), ``g_s += w_spk g_spk``, timed as
  refsnn's own ``_matvec_quads`` (four samples per pass of the weights, register
  tiles of fused multiply-adds) in a loop.
- ``scan``: reading the dense input once (refsnn's input check, whose work is
  ``scan_input``, on all threads).

The rows are random rows of matrices of the target's sizes; the parts on one thread
are divided by the thread count (perfect parallel speed-up, no synchronisation). The
sum is a lower bound of a call that keeps refsnn's data flow, elementwise work aside;
the script prints it beside the floor, three times the floor and refsnn's own time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numba
import numpy as np

import refsnn
from refsnn import bench, kernels
from refsnn.cli import _positive_int
from refsnn.network import _check_x, _segment


@numba.njit(error_model="numpy")
def gather_rows(w, rows, per, acc):
    """Add the rows ``w[rows]`` to ``acc``, four at a time, clearing it every ``per``."""
    M = w.shape[1]
    n = rows.shape[0]
    for s0 in range(0, n - per + 1, per):
        for m in range(M):
            acc[m] = 0
        q = s0
        while q + 4 <= s0 + per:
            a, b, c, d = rows[q], rows[q + 1], rows[q + 2], rows[q + 3]
            for m in range(M):
                acc[m] += (w[a, m] + w[b, m]) + (w[c, m] + w[d, m])
            q += 4
        while q < s0 + per:
            a = rows[q]
            for m in range(M):
                acc[m] += w[a, m]
            q += 1
    return acc[0]


@numba.njit(error_model="numpy")
def update_rows(g_w, rows, g):
    """``g_w[rows[q]] += g[q % len(g)]`` for every q: a read, an add and a write per row."""
    M = g_w.shape[1]
    L = g.shape[0]
    for q in range(rows.shape[0]):
        r = rows[q]
        k = q % L
        for m in range(M):
            g_w[r, m] += g[k, m]
    return g_w[0, 0]


@numba.njit(error_model="numpy")
def adjoint_states(w_t, w_p, g_spk, g_s, states):
    """refsnn's dense adjoint product for 4 samples, ``states`` times."""
    for _ in range(states):
        kernels._matvec_quads(w_t, w_p, g_spk, 0, 4, g_s)
    return g_s[0, 0]


def _best(f, *args, repeats: int) -> float:
    """Least wall time (s) of ``repeats`` calls, after one call that compiles."""
    f(*args)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def spike_grad_states(case: bench.Case) -> int:
    """The states per pass of refsnn's B13 for ``case`` (``kernels.spike_grad_states``)."""
    itemsize = np.dtype(case.dtype).itemsize
    _, row = kernels.spike_grad_columns(case.hidden + case.classes, itemsize)
    return int(kernels.spike_grad_states(row * itemsize))


def grad_passes(n_states: int, seg: int, states: int) -> np.ndarray:
    """The pass of refsnn's B13 that takes each of ``n_states`` states: passes of
    ``states`` states within each segment of ``seg`` (the first pass of a segment starts
    with it), numbered in order."""
    k = np.arange(n_states)
    return (k // seg) * -(-seg // states) + (k % seg) // states


def spike_row_updates(spikes: np.ndarray, seg: int, states: int = kernels.SPIKE_GRAD_STATES,
                      group: int = kernels.GROUP) -> int:
    """Row updates of refsnn's B13 for ``spikes`` (B, states, N), nonzero where a neuron spikes.

    The backward pass takes the samples in tasks of ``group`` and the states in windows
    of ``states`` within each segment of ``seg`` states (the first window of a segment
    starts with it); a neuron that spikes in a task's window has its gradient row loaded
    and stored once, its spikes summed in registers.
    """
    s = np.asarray(spikes) != 0
    B, n_states, N = s.shape
    s = np.concatenate([s, np.zeros((-B % group, n_states, N), bool)])
    window = grad_passes(n_states, seg, states)
    hit = np.zeros((s.shape[0] // group, window[-1] + 1, N), bool)
    for state in range(n_states):
        hit[:, window[state]] |= s[:, state].reshape(-1, group, N).any(axis=1)
    return int(hit.sum())


def counts(case: bench.Case, seed: int = 0) -> dict:
    """The case's events: spikes, input events and the row updates of refsnn's B12, B13."""
    p, x, _ = bench.make_problem(case, seed)
    tr = refsnn.forward(p, x, "paper")
    B, K1, N = tr.spikes.shape
    K = K1 - 1
    drive = bench.state_widths(case) > 0  # the states whose spikes drive an update
    s = (tr.spikes != 0) & drive[None, :, None]
    active = x[:, :K] != 0  # the input steps that drive an update
    n_tasks = -(-B // kernels.task_size(B))
    seg = _segment(K)
    states = spike_grad_states(case)
    n_windows = int(grad_passes(K + 1, seg, states)[-1]) + 1
    n_spikes, n_events = int(s.sum()), int(active.sum())
    spike_updates = spike_row_updates(s, seg, states)
    input_updates = int(active.any(axis=1).sum())  # B12: a row per sample and input
    return dict(spikes=n_spikes, input_events=n_events, spike_updates=spike_updates,
                input_updates=input_updates,
                events_per_update=n_events / max(input_updates, 1),
                spikes_per_state=n_spikes / (B * int(drive.sum())),
                events_per_state=n_events / (B * K),
                spike_updates_per_window=spike_updates / (n_tasks * n_windows),
                spikes_per_update=n_spikes / max(spike_updates, 1), grad_states=states, K=K,
                params=p, x=x, spikes_of_state=tr.spikes.sum(axis=(0, 2)))


def measure(case: bench.Case, threads: int, repeats: int, seed: int = 0) -> dict:
    """Price each part of ``case`` at its bare primitive; return the table as a dict."""
    bench._set_threads(threads)
    threads = numba.get_num_threads()  # at most the threads Numba has
    c = counts(case, seed)
    p, x = c.pop("params"), c.pop("x")
    rng = np.random.default_rng(seed)
    dt = np.dtype(case.dtype)
    N, C, n_in = case.hidden, case.classes, case.n_in
    sample = min(2_000_000, 50 * max(c["spikes"], 1))
    parts = {}

    def rows_of(n_rows, count, run):
        """Random rows, ascending within each run of ``run`` (refsnn's visiting order)."""
        rows = rng.integers(0, n_rows, count).astype(np.int64)
        run = max(1, round(run))
        head = count - count % run
        rows[:head] = np.sort(rows[:head].reshape(-1, run), axis=1).ravel()
        return rows

    def price(name, count, per_row_s):
        parts[name] = dict(count=count, ns_each=1e9 * per_row_s,
                           ms=1e3 * count * per_row_s / threads)

    # arrays on cache lines, as refsnn's (kernels.carve)
    w_spk = kernels.aligned(rng.standard_normal((N, N + C)).astype(dt))
    w_in = kernels.aligned(rng.standard_normal((n_in, N)).astype(dt))
    for name, w, per, n in (("gather w_spk", w_spk, c["spikes_per_state"], c["spikes"]),
                            ("gather w_in", w_in, c["events_per_state"], c["input_events"])):
        per = max(1, round(per))
        rows = rows_of(w.shape[0], sample, per)
        acc = kernels.zeros(w.shape[1], dt)
        price(name, n, _best(gather_rows, w, rows, per, acc, repeats=repeats) / sample)
    # B13: a spike adds its adjoint row, one of the window's GROUP x grad_states
    n_rows = kernels.GROUP * c["grad_states"]
    rows = rng.integers(0, n_rows, sample).astype(np.int64)
    g_win = kernels.aligned(rng.standard_normal((n_rows, N + C)).astype(dt))
    per = max(1, round(c["spikes_per_update"]))
    price("gather g_spk", c["spikes"], _best(gather_rows, g_win, rows, per,
                                             kernels.zeros(N + C, dt), repeats=repeats) / sample)
    # B12: an input event adds its sample's adjoint row, ascending within an input
    per = max(1, round(c["events_per_update"]))
    g_i = kernels.aligned(rng.standard_normal((c["K"] + 1, N)).astype(dt))
    rows = rows_of(c["K"] + 1, sample, per)
    price("gather g_i", c["input_events"], _best(gather_rows, g_i, rows, per,
                                                 kernels.zeros(N, dt), repeats=repeats) / sample)
    for name, shape, n, run in (
            ("update dw_spk", (N, N + C), c["spike_updates"], c["spike_updates_per_window"]),
            ("update dw_in", (n_in, N), c["input_updates"], c["input_updates"] / case.batch)):
        g_w = kernels.zeros(shape, dt)
        g = kernels.aligned(rng.standard_normal((kernels.GROUP, shape[1])).astype(dt))
        rows = rows_of(shape[0], sample, run)
        price(name, n, _best(update_rows, g_w, rows, g, repeats=repeats) / sample)
    w_t = kernels.aligned(w_spk.T)  # (N + C, N), as refsnn's backward holds it
    g_spk = kernels.aligned(rng.standard_normal((4, N + C)).astype(dt))
    g_s = kernels.zeros((4, N), dt)
    states = 20_000
    per_quad = _best(adjoint_states, w_t, kernels.panels(w_t), g_spk, g_s, states,
                     repeats=repeats) / states
    quad_flops = 2.0 * N * (N + C) * 4
    # the adjoint's flops (the floor's count with no event), in passes of 4 samples
    quads = bench.flop_count(case, 0, np.zeros(c["K"] + 1)) / quad_flops
    parts["adjoint"] = dict(count=int(round(quads)), ns_each=1e9 * per_quad,
                            ms=1e3 * quads * per_quad / threads,
                            gflops_per_thread=quad_flops / per_quad / 1e9)
    # the dense input read once: refsnn's input check, which is its scan (all threads)
    conv = refsnn.Conventions.preset("paper")
    parts["scan"] = dict(count=int(x.size),
                         ms=1e3 * _best(_check_x, p, x, conv, repeats=repeats))
    # the floor and refsnn's own time, in the same run
    flops = bench.flop_count(case, c["input_events"], c.pop("spikes_of_state"))
    mm, engine = bench.matmul_step(case.dtype, 2048)
    mm_rate = 2.0 * 2048**3 / _best(mm, repeats=max(3, repeats)) / 1e9
    y = np.zeros(case.batch, np.int64)
    t_refsnn = _best(refsnn.loss_and_grad, p, x, y, conv, repeats=repeats)
    bound = sum(part["ms"] for part in parts.values())
    floor = flops / mm_rate / 1e6
    return dict(case=case.label(), threads=threads, counts=c, parts=parts,
                bound_ms=bound, floor_ms=floor, floor_gflop=flops / 1e9,
                matmul_gflops=mm_rate, matmul_engine=engine, refsnn_ms=1e3 * t_refsnn)


def _print(r: dict) -> None:
    print(f"{r['case']}, {r['threads']} threads")
    print(f"{'part':<15} {'count':>10} {'ns each':>9} {'ms':>7}")
    for name, part in r["parts"].items():
        each = f"{part['ns_each']:9.2f}" if "ns_each" in part else f"{'':>9}"
        print(f"{name:<15} {part['count']:>10} {each} {part['ms']:7.2f}")
    print(f"{'sum (bound)':<36} {r['bound_ms']:7.2f}")
    print(f"adjoint product: {r['parts']['adjoint']['gflops_per_thread']:.1f} GFLOP/s per "
          f"thread; {r['matmul_engine']} 2048^2: {r['matmul_gflops']:.0f} GFLOP/s "
          f"on {r['threads']} threads")
    print(f"floor {r['floor_gflop']:.3f} GFLOP = {r['floor_ms']:.2f} ms; 3 x floor "
          f"{3 * r['floor_ms']:.2f} ms; bound / floor {r['bound_ms'] / r['floor_ms']:.2f}; "
          f"refsnn {r['refsnn_ms']:.2f} ms ({r['refsnn_ms'] / r['floor_ms']:.2f} x floor)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=_positive_int, default=2, help="threads (2)")
    ap.add_argument("--repeats", type=_positive_int, default=7,
                    help="timed calls per part, the least is kept (7)")
    ap.add_argument("--quick", action="store_true", help="the small QUICK case, 2 repeats")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    case = bench.QUICK if args.quick else bench.TARGET
    r = measure(case, args.threads, 2 if args.quick else args.repeats)
    if args.json:
        print(json.dumps(r))
    else:
        _print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
