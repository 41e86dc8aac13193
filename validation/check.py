"""Search for disagreement with refsnn, and shrink it to the smallest network.

Two entry points share one engine:

- ``check(candidate, conventions, examples=N)``: a user's implementation, called as
  ``candidate(params, x, labels) -> (loss, grads)`` (``refsnn.loss_and_grad`` without
  the conventions), is compared with refsnn on the loss and the gradient of all ten
  parameters;
- ``validate(name, examples=N, device="cpu")``: a framework's adapter
  (``validation.adapters``) is compared on hidden currents, membranes, spikes, the
  readout, logits, loss and every gradient it exposes, within the conventions it
  expresses.

The engine draws problems with Hypothesis (``validation.strategies.cases``: sizes,
conventions, input density and weight scale are drawn, the arrays come from a drawn
seed), compares each, and, when one disagrees, lets Hypothesis shrink it: sizes
(neurons, steps, batch, inputs, classes), conventions and the seed shrink towards the
smallest problem that still disagrees. Runs are deterministic (a fixed Hypothesis
seed, no example database).

Errors are relative, ``max |a - b| / max(|a|, |b|, floor)``: for traces and the loss
the floor is ``TRACE_FLOOR``; for a gradient it is one sample's largest contribution
``max_b |grad_b| / B`` (a gradient summed over the batch can cancel to far below its
terms, and then its rounding error is large relative to it without anything being
wrong), and at least ``GRAD_FLOOR``. Spike rasters must be equal; a raster that first
differs where refsnn's membrane is within ``tie`` of the threshold makes the case
inconclusive.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed

import refsnn
from refsnn.conventions import Conventions
from refsnn.params import PARAM_NAMES, Params
from refsnn.surrogates import smooth_spike

from .report import CheckReport, Comparison, Counterexample, FrameworkReport, QuantityError
from .strategies import Case, cases

__all__ = ["check", "compare_peer", "probe", "reference", "search", "validate", "validate_adapter"]

#: floor of the denominator of relative errors of traces and the loss (state units)
TRACE_FLOOR = 1e-3
#: absolute floor of gradient denominators. A gradient is a sum over steps and samples of
#: terms up to about 1 (the loss is a cross-entropy of order 1), so its rounding error is
#: some 1e-15 whatever its size; one far smaller than its terms (cancellation within a
#: sample) is therefore compared absolutely, to ``tolerance * GRAD_FLOOR``
GRAD_FLOOR = 1e-4
#: Hypothesis seed of every search (reproducible reports)
SEARCH_SEED = 20210923
#: default sizes of the problems of ``validate`` and ``check``
VALIDATE_SIZES = dict(max_hidden=6, max_steps=15, max_batch=3)
CHECK_SIZES = dict(max_hidden=6, max_steps=40, max_batch=3)

_FORWARD = ("i_syn", "v", "spikes", "i_syn_out", "v_out", "logits")


# ------------------------------------------------------------------ reference
def reference(params: Params, x: np.ndarray, labels: np.ndarray, conv: Conventions,
              traces: bool = True) -> dict:
    """Run refsnn on one problem: states ``0 .. K``, logits, loss, gradients.

    Returns a dict with ``states`` (``i_syn``, ``v``, ``spikes``, ``i_syn_out``, ``v_out``
    over states 0 .. K), ``logits``, ``loss``, ``grads`` (``Params``) and ``floors``, a
    function giving per field the gradient floor ``max(GRAD_FLOOR, max_b |grad_b| / B)``
    (computed on first use: it costs one call per sample). ``traces=False``: loss,
    gradients and floors only.
    """
    loss, grads = refsnn.loss_and_grad(params, x, labels, conv)
    cache = {}

    def floors() -> dict:
        if not cache:
            cache.update(dict.fromkeys(PARAM_NAMES, GRAD_FLOOR))
            B = x.shape[0]
            for b in range(B if B > 1 else 0):
                _, g_b = refsnn.loss_and_grad(params, x[b : b + 1], labels[b : b + 1], conv)
                for name in PARAM_NAMES:
                    size = float(np.max(np.abs(getattr(g_b, name)))) / B
                    cache[name] = max(cache[name], size)
        return cache

    if not traces:
        return dict(loss=loss, grads=grads, floors=floors)
    tr = refsnn.forward(params, x, conv)
    states = dict(i_syn=tr.i_syn, v=tr.v, spikes=tr.spikes, i_syn_out=tr.i_syn_out,
                  v_out=tr.v_out)
    if tr.first_state == 1:  # prepend the zero initial state, Eq. (1) for its spike
        gap = -np.asarray(params.threshold, dtype=np.float64)
        if conv.spike_fn == "sigmoid":
            s0 = smooth_spike(gap, conv.surrogate_scale)
        else:
            s0 = (gap >= 0 if conv.spike_test == "ge" else gap > 0).astype(np.float64)
        s0 = np.broadcast_to(s0, tr.spikes[:, :1].shape)
        states = {k: np.concatenate([s0 if k == "spikes" else np.zeros_like(a[:, :1]), a],
                                    axis=1) for k, a in states.items()}
    return dict(states=states, logits=tr.logits, loss=loss, grads=grads, floors=floors)


def _rel(a, b, floor: float) -> tuple[float, float]:
    """(max abs difference, relative error) with the denominator floored; NaN-aware."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf, math.inf
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.nan, math.nan
    if a.size == 0:
        return 0.0, 0.0
    diff = float(np.max(np.abs(a - b)))
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), floor)
    return diff, (diff / scale if scale > 0 else 0.0)


def _compare_grads(ref: dict, grads: Mapping, fields, tol_of, none_skips=False) -> dict:
    """Errors of ``grads[name]``: a missing one fails; None is skipped if ``none_skips``.

    None is an adapter's way to say the peer has no such parameter in this configuration.
    A gradient that fails against ``GRAD_FLOOR`` alone is compared again with the
    per-sample floor (cancellation across the batch), which costs a call per sample.
    """
    out = {}
    for name in fields:
        q = f"grad.{name}"
        if none_skips and name in grads and grads[name] is None:
            continue
        if name not in grads or grads[name] is None:
            out[q] = QuantityError(q, math.inf, math.inf, tol_of(q))
            continue
        mine = getattr(ref["grads"], name)
        a, r = _rel(mine, grads[name], GRAD_FLOOR)
        if not r <= tol_of(q) and math.isfinite(r):
            a, r = _rel(mine, grads[name], ref["floors"]()[name])
        out[q] = QuantityError(q, a, r, tol_of(q))
    return out


def _loss_error(ref: dict, loss, tol: float) -> QuantityError:
    try:
        loss = float(loss)
    except (TypeError, ValueError):
        return QuantityError("loss", math.inf, math.inf, tol)
    a, r = _rel(ref["loss"], loss, TRACE_FLOOR)
    return QuantityError("loss", a, r, tol)


# ------------------------------------------------------------- peer compare
def compare_peer(adapter, case: Case, device: str = "cpu") -> tuple[Comparison, dict]:
    """Run ``adapter`` and refsnn on ``case`` (its params prepared for the adapter).

    Returns the ``Comparison`` and the problem actually run (``params``, ``x``,
    ``labels``, ``conventions``).
    """
    conv = case.conventions
    reason = adapter.supports(conv)
    if reason is not None:
        raise ValueError(f"{adapter.name} cannot express these conventions: {reason}")
    p = adapter.prepare(case.params.astype(np.float64), conv)
    x = case.x.astype(np.float64)
    y = np.asarray(case.labels)
    problem = dict(params=p, x=x, labels=y, conventions=conv)
    ref = reference(p, x, y, conv)
    comp = Comparison()
    try:
        run = adapter.run(p, x, y, conv, device)
    except Exception as exc:  # a crash of the other side is a disagreement
        comp.error = f"{type(exc).__name__}: {exc}"
        return comp, problem
    expected = adapter.expected_traces(ref["states"], p, conv)
    tol = adapter.tolerance
    first = run.first
    for name in _FORWARD:
        if name not in adapter.trace_fields:
            continue
        if name == "logits":
            a, r = _rel(ref["logits"], run.traces.get("logits"), TRACE_FLOOR)
            comp.errors[name] = QuantityError(name, a, r, tol.traces)
            continue
        mine = expected[name][:, first:]
        theirs = run.traces.get(name)
        if name == "spikes" and conv.spike_fn == "heaviside":
            comp.errors[name] = _spike_error(mine, theirs)
            if not comp.errors[name].ok:
                comp.inconclusive = _tie(ref["states"], p, first, mine, theirs, tol.tie)
            continue
        a, r = _rel(mine, theirs, TRACE_FLOOR)
        comp.errors[name] = QuantityError(name, a, r, tol.traces)
    comp.errors["loss"] = _loss_error(ref, run.loss, tol.loss)
    comp.errors.update(_compare_grads(ref, run.grads, adapter.grad_fields, tol.for_quantity,
                                      none_skips=True))
    if conv.spike_fn == "heaviside":
        comp.details["spikes"] = _spike_detail(ref, first, expected, run.traces)
    return comp, problem


def _spike_error(mine, theirs) -> QuantityError:
    theirs = np.asarray(theirs)
    if theirs.shape != mine.shape:
        return QuantityError("spikes", math.inf, math.inf, 0.0)
    n = int(np.sum(mine != theirs))
    return QuantityError("spikes", float(n), n / max(mine.size, 1), 0.0)


def _first_difference(mine, theirs):
    idx = np.argwhere(np.asarray(mine) != np.asarray(theirs))
    if idx.size == 0:
        return None
    return tuple(int(i) for i in idx[np.argmin(idx[:, 1])])  # earliest state


def _tie(states, p: Params, first: int, mine, theirs, tie: float) -> str:
    """Non-empty when the rasters first differ within rounding of the threshold."""
    at = _first_difference(mine, theirs)
    if at is None or np.asarray(theirs).shape != mine.shape:
        return ""
    b, k, n = at
    # the spike of a state is decided by that state's membrane; find it in refsnn
    for kk in (k + first, k + first - 1, k + first + 1):
        if 0 <= kk < states["v"].shape[1]:
            gap = abs(states["v"][b, kk, n] - p.threshold[n])
            if gap <= tie * max(1.0, abs(float(p.threshold[n]))):
                return (f"spike of sample {b}, state {kk}, neuron {n}: membrane {gap:.1e} from "
                        "the threshold (rounding decides)")
    return ""


def _spike_detail(ref, first, expected, traces) -> str:
    theirs = traces.get("spikes")
    mine = expected["spikes"][:, first:]
    if theirs is None or np.asarray(theirs).shape != mine.shape:
        return "spike rasters of different shapes"
    at = _first_difference(mine, theirs)
    if at is None:
        return ""
    b, k, n = at
    return (f"{int(np.sum(mine != theirs))} of {mine.size} spikes differ; first at sample {b}, "
            f"state {k + first}, neuron {n} (refsnn {mine[b, k, n]:g}, other {theirs[b, k, n]:g})")


# ------------------------------------------------------------ candidate
def compare_candidate(candidate: Callable, case: Case, rtol: float) -> tuple[Comparison, dict]:
    """Compare ``candidate(params, x, labels)`` with refsnn on the loss and every gradient."""
    p = case.params.astype(np.float64)
    x = case.x.astype(np.float64)
    y = np.asarray(case.labels)
    problem = dict(params=p, x=x, labels=y, conventions=case.conventions)
    ref = reference(p, x, y, case.conventions, traces=False)
    comp = Comparison()
    try:
        out = candidate(p.copy(), x.copy(), y.copy())
        loss, grads = out
    except Exception as exc:
        comp.error = f"{type(exc).__name__}: {exc}"
        return comp, problem
    if isinstance(grads, Params):
        grads = grads.as_dict()
    elif not isinstance(grads, Mapping):
        comp.error = (f"the candidate returned grads of type {type(grads).__name__}; expected "
                      "a refsnn.Params or a dict of arrays keyed by parameter name")
        return comp, problem
    comp.errors["loss"] = _loss_error(ref, loss, rtol)
    comp.errors.update(_compare_grads(ref, grads, PARAM_NAMES, lambda q: rtol))
    return comp, problem


# --------------------------------------------------------------- search
class _Disagreement(Exception):
    def __init__(self, case, comparison, problem):
        super().__init__("disagreement")
        self.case, self.comparison, self.problem = case, comparison, problem


def _settings(examples: int, phases):
    return settings(
        max_examples=examples, phases=phases, database=None, deadline=None,
        verbosity=Verbosity.quiet, report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


def search(strategy, evaluate: Callable, examples: int, seed: int = SEARCH_SEED) -> dict:
    """Run ``evaluate(case) -> (Comparison, problem)`` on ``examples`` drawn cases.

    Returns ``records`` (every (case, comparison) of the generation phase) and
    ``minimal`` (the shrunk failing (case, comparison, problem), or None).
    """
    if not (isinstance(examples, int) and examples >= 1):
        raise ValueError(f"examples must be an int >= 1, got {examples!r}")
    with _one_numba_thread():
        return _search(strategy, evaluate, examples, seed)


@contextlib.contextmanager
def _one_numba_thread():
    """Run refsnn's kernels on one thread (the calling thread's setting), then restore.

    The problems are tiny: the parallel kernels would spend their time starting threads.
    """
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _search(strategy, evaluate: Callable, examples: int, seed: int) -> dict:
    records = []

    @_settings(examples, [Phase.generate])
    @hypothesis_seed(seed)
    @given(strategy)
    def generate(case):
        comp, problem = evaluate(case)
        records.append((case, comp, problem))

    generate()
    failures = [r for r in records if not r[1].passed and not r[1].inconclusive]
    minimal = None
    if failures:

        @_settings(examples, [Phase.generate, Phase.shrink])
        @hypothesis_seed(seed)
        @given(strategy)
        def shrink(case):
            comp, problem = evaluate(case)
            if not comp.passed and not comp.inconclusive:
                raise _Disagreement(case, comp, problem)

        try:
            shrink()
        except _Disagreement as found:
            minimal = (found.case, found.comparison, found.problem)
        if minimal is None:  # the generation did not repeat: report the first failure
            minimal = failures[0]
    return dict(records=records, minimal=minimal)


def _worst(records) -> dict:
    worst = {}
    for _, comp, _ in records:
        if comp.inconclusive:
            continue
        for q, e in comp.errors.items():
            w = worst.get(q)
            if w is None or _worse(e.rel, w.rel):
                worst[q] = QuantityError(q, e.abs, e.rel, e.tol)
            elif e.abs > w.abs:
                worst[q] = QuantityError(q, e.abs, w.rel, e.tol)
    return worst


def _worse(a: float, b: float) -> bool:
    if math.isnan(a):
        return not math.isnan(b)
    return a > b


def probe(adapter, conv: Conventions, device: str = "cpu", seed: int = 0,
          sizes=(2, 12, 4, 5, 3), **run_kwargs) -> Comparison:
    """Compare ``adapter.run(..., **run_kwargs)`` with refsnn on one fixed problem.

    For findings: the same problem with a documented setting of the peer changed shows
    whether (and by how much) it disagrees. ``sizes``: (batch, steps, n_in, hidden,
    classes).
    """
    B, T, n_in, N, C = sizes
    rng = np.random.default_rng(seed)
    p = adapter.prepare(refsnn.random_params(n_in, N, C, rng), conv)
    x = (rng.random((B, T, n_in)) < 0.3).astype(np.float64)
    y = rng.integers(0, C, B)

    class _Fixed:
        def __getattr__(self, name):
            return getattr(adapter, name)

        def supports(self, conv):
            return None

        def prepare(self, params, conv):
            return params

        def run(self, params, x, labels, conv, device="cpu"):
            return adapter.run(params, x, labels, conv, device, **run_kwargs)

    with _one_numba_thread():
        return compare_peer(_Fixed(), Case(p, x, y, conv, seed), device)[0]


def _counterexample(minimal) -> Counterexample | None:
    if minimal is None:
        return None
    case, comp, problem = minimal
    B, T, n_in = problem["x"].shape
    p = problem["params"]
    sizes = dict(batch=B, steps=T, n_in=n_in, hidden=p.n_hidden, classes=p.n_out)
    if comp.error:
        quantity, detail = "exception", comp.error
    else:
        e = comp.culprit()
        quantity = e.quantity
        if quantity == "spikes":
            detail = comp.details.get("spikes", "") or "spike rasters differ"
        else:
            detail = (f"relative error {e.rel:.2e} > tolerance {e.tol:.0e} "
                      f"(max abs difference {e.abs:.2e})")
            others = [q for q, err in comp.errors.items() if not err.ok and q != quantity]
            if others:
                detail += f"; also differ: {', '.join(others)}"
    return Counterexample(sizes=sizes, conventions=problem["conventions"], quantity=quantity,
                          detail=detail, seed=case.seed, errors=dict(comp.errors),
                          arrays=dict(params=p, x=problem["x"], labels=problem["labels"]))


# ------------------------------------------------------------ public
def _conventions(conventions) -> Conventions:
    if conventions is None:
        return Conventions()
    if isinstance(conventions, str):
        return Conventions.preset(conventions)
    if not isinstance(conventions, Conventions):
        raise ValueError("conventions must be a refsnn.Conventions, a preset name or None, got "
                         f"{type(conventions).__name__}")
    return conventions


def check(candidate: Callable, conventions: Conventions | str | None = None, examples: int = 30,
          *, rtol: float = 1e-6, max_hidden: int = CHECK_SIZES["max_hidden"],
          max_steps: int = CHECK_SIZES["max_steps"], max_batch: int = CHECK_SIZES["max_batch"],
          seed: int = SEARCH_SEED) -> CheckReport:
    """Check an implementation of the network against refsnn, and shrink a disagreement.

    Parameters
    ----------
    candidate : callable
        ``candidate(params, x, labels) -> (loss, grads)`` with the signature of
        ``refsnn.loss_and_grad`` without the conventions: ``params`` a float64
        ``refsnn.Params``, ``x`` (batch, time, n_in) float64 0/1 spikes, ``labels``
        (batch,) ints; ``grads`` a ``refsnn.Params`` or a dict of the ten arrays.
    conventions : Conventions, preset name or None (refsnn's defaults)
        What the candidate implements.
    examples : int
        Problems drawn by Hypothesis (random heterogeneous networks, sparse inputs; up
        to ``max_hidden`` neurons, ``max_steps`` steps, ``max_batch`` samples).
    rtol : float
        Relative tolerance on the loss and each gradient (cancellation-aware floors).
        1e-6 suits a float64 implementation; a float32 one needs about 1e-3 and then
        cannot reveal errors smaller than that.
    seed : int
        Hypothesis seed (the same seed draws the same problems).

    Returns
    -------
    CheckReport
        ``.passed``; ``.counterexample``: the smallest disagreeing problem found (sizes,
        conventions, the quantity that differs, and its arrays); ``str()`` reads well.
    """
    if not callable(candidate):
        raise ValueError(f"candidate must be callable, got {type(candidate).__name__}")
    conv = _conventions(conventions)
    if not (isinstance(rtol, (int, float)) and rtol > 0):
        raise ValueError(f"rtol must be a positive float, got {rtol!r}")
    strategy = cases(conv=conv, max_hidden=max_hidden, max_steps=max_steps, max_batch=max_batch)
    found = search(strategy, lambda case: compare_candidate(candidate, case, rtol), examples, seed)
    records = found["records"]
    failed = sum(1 for _, c, _ in records if not c.passed)
    return CheckReport(conventions=conv, cases=len(records), failed=failed,
                       worst=_worst(records), counterexample=_counterexample(found["minimal"]),
                       rtol=rtol)


def validate(name: str, examples: int = 20, device: str = "cpu", *,
             seed: int = SEARCH_SEED, findings: bool = True, sizes: dict | None = None
             ) -> FrameworkReport:
    """``refsnn validate`` for one framework: search, shrink, findings.

    Parameters
    ----------
    name : str
        One of ``validation.adapters.ADAPTER_NAMES``.
    examples : int
        Problems drawn within the conventions the framework expresses.
    device : {"cpu", "cuda"}
        Where the peer frameworks run (the ``torch`` and ``paper`` engines run on the CPU).
    findings : bool
        Also run the framework's probes (its known defects, measured here).
    sizes : dict, optional
        ``max_hidden``, ``max_steps``, ``max_batch`` of the problems.
    """
    from .adapters import get_adapter

    return validate_adapter(get_adapter(name), examples, device, seed=seed, findings=findings,
                            sizes=sizes)


def validate_adapter(adapter, examples: int = 20, device: str = "cpu", *,
                     seed: int = SEARCH_SEED, findings: bool = True,
                     sizes: dict | None = None) -> FrameworkReport:
    """``validate`` for an adapter object (a ``validation.adapters.Adapter``)."""
    name = adapter.name
    report = FrameworkReport(name=name, engine=adapter.engine, installed=False,
                             install=adapter.install, supported=adapter.supported)
    missing = adapter.missing()
    if missing is not None:
        report.reason = missing
        return report
    if device == "cuda":
        from .adapters.base import torch_device

        torch_device("cuda")  # raises ValueError without a GPU
    report.installed = True
    report.version = adapter.version()
    report.device = device if adapter.uses_device else "cpu"
    t = adapter.tolerance
    by_field = "".join(f", {k} {v:g}" for k, v in t.grads_by_field.items())
    report.tolerance = (f"traces {t.traces:g}, loss {t.loss:g}, gradients {t.grads:g}{by_field} "
                        f"relative; spikes equal. Why: {t.why}")
    sizes = dict(VALIDATE_SIZES, **(sizes or {}))
    strategy = cases(conv=adapter.conventions(), min_steps=adapter.min_steps, **sizes)
    found = search(strategy, lambda case: compare_peer(adapter, case, report.device),
                   examples, seed)
    records = found["records"]
    report.cases = sum(1 for _, c, _ in records if not c.inconclusive)
    report.inconclusive = len(records) - report.cases
    report.failed = sum(1 for _, c, _ in records if not c.passed and not c.inconclusive)
    report.passed = report.cases - report.failed
    report.worst = _worst(records)
    report.counterexample = _counterexample(found["minimal"])
    if findings:
        report.findings = adapter.findings(report.device)
    return report
