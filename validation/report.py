"""Reports of ``validation.check`` and ``refsnn validate``: records, text and JSON.

- ``Comparison``: one problem, every quantity's error against refsnn;
- ``Counterexample``: the smallest failing problem found (sizes, conventions, the
  quantity that differs, and the arrays to reproduce it);
- ``CheckReport``: ``validation.check`` of a user's implementation;
- ``FrameworkReport``: ``refsnn validate`` of one framework; ``conformance_table`` puts
  several in one Markdown table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from refsnn.conventions import Conventions

__all__ = [
    "CheckReport",
    "Comparison",
    "Counterexample",
    "FrameworkReport",
    "QuantityError",
    "conformance_table",
]


@dataclass
class QuantityError:
    """Error of one quantity (``"v"``, ``"loss"``, ``"grad.w_in"`` ...) against refsnn.

    ``abs``: max absolute difference; ``rel``: ``abs / max(|refsnn|, |other|, floor)``
    (for ``spikes``: number of differing entries, and their fraction); ``tol``: the
    relative tolerance applied.
    """

    quantity: str
    abs: float
    rel: float
    tol: float

    @property
    def ok(self) -> bool:
        """Within tolerance (NaN is never within)."""
        return bool(self.rel <= self.tol)

    def as_dict(self) -> dict:
        """JSON-friendly (NaN and infinities as strings)."""
        return dict(abs=_num(self.abs), rel=_num(self.rel), tol=self.tol)


@dataclass
class Comparison:
    """Every compared quantity of one problem.

    ``inconclusive`` is set when the spike rasters differ only where refsnn's membrane
    lies within rounding of the threshold (then neither side is wrong); ``error`` holds
    an exception raised by the other implementation.
    """

    errors: dict = field(default_factory=dict)
    inconclusive: str = ""
    error: str = ""
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No exception and every quantity within tolerance."""
        return not self.error and all(e.ok for e in self.errors.values())

    def culprit(self) -> QuantityError | None:
        """Return the quantity to blame for a failure (None when passed).

        The first failing one of the forward pass in causal order (currents, membranes,
        spikes, readout, logits, loss), else the gradient with the largest ratio of
        error to tolerance.
        """
        bad = [e for e in self.errors.values() if not e.ok]
        if not bad:
            return None
        forward = [e for e in bad if not e.quantity.startswith("grad.")]
        if forward:
            return forward[0]

        def ratio(e):
            if not math.isfinite(e.rel) or e.tol == 0:
                return math.inf
            return e.rel / e.tol

        return max(bad, key=ratio)


@dataclass
class Counterexample:
    """The smallest failing problem found, with what differs.

    ``arrays`` holds ``params`` (a ``refsnn.Params``), ``x`` and ``labels`` to reproduce it.
    """

    sizes: dict
    conventions: Conventions
    quantity: str
    detail: str
    seed: int
    errors: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict, repr=False)

    def conventions_diff(self, base: Conventions | None = None) -> dict:
        """Fields of ``conventions`` that differ from ``base`` (default ``Conventions()``)."""
        base = Conventions() if base is None else base
        mine, ref = self.conventions.as_dict(), base.as_dict()
        return {k: v for k, v in mine.items() if ref[k] != v}

    def sizes_text(self) -> str:
        """Sizes in words."""
        s = self.sizes
        return (f"batch {s['batch']}, steps {s['steps']}, inputs {s['n_in']}, "
                f"hidden {s['hidden']}, classes {s['classes']}")

    def conventions_text(self) -> str:
        """Describe the conventions as the nearest preset plus the fields that differ from it."""
        best = None
        for name in Conventions.PRESETS:
            diff = self.conventions_diff(Conventions.preset(name))
            if best is None or len(diff) < len(best[1]):
                best = (name, diff)
        name, diff = best
        changes = ", ".join(f"{k}={v!r}" for k, v in diff.items())
        return f"preset {name!r}" + (f" with {changes}" if changes else "")

    def __str__(self) -> str:
        return (f"{self.sizes_text()} (seed {self.seed}); conventions: "
                f"{self.conventions_text()}; {self.quantity} differs: {self.detail}")

    def as_dict(self) -> dict:
        """JSON-friendly, without the arrays."""
        return dict(sizes=self.sizes, seed=self.seed, quantity=self.quantity,
                    detail=self.detail, conventions=self.conventions_text(),
                    errors={k: e.as_dict() for k, e in self.errors.items()})


@dataclass
class CheckReport:
    """Result of ``validation.check(candidate, conventions, examples=N)``.

    Attributes
    ----------
    passed : bool
        Every generated problem agreed with refsnn within tolerance.
    counterexample : Counterexample or None
        The smallest failing problem (after shrinking), when not passed.
    cases, failed : int
        Problems compared and how many disagreed (before shrinking).
    worst : dict
        Per quantity, the largest error seen (``QuantityError``).
    """

    conventions: Conventions
    cases: int
    failed: int
    worst: dict
    counterexample: Counterexample | None
    rtol: float

    @property
    def passed(self) -> bool:
        """No case failed."""
        return self.failed == 0 and self.counterexample is None

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [
            f"validation.check: {'PASSED' if self.passed else 'FAILED'}: {self.cases} cases "
            f"against refsnn.loss_and_grad, {self.failed} failed (relative tolerance "
            f"{self.rtol:g}, cancellation-aware)",
        ]
        lines += _worst_lines(self.worst)
        if self.counterexample is not None:
            lines.append(f"smallest counterexample: {self.counterexample}")
            lines.append("reproduce: report.counterexample.arrays holds params, x and labels")
        return "\n".join(lines)


@dataclass
class FrameworkReport:
    """``refsnn validate`` for one framework."""

    name: str
    engine: str
    installed: bool
    install: str = ""
    version: str = ""
    supported: str = ""
    device: str = "cpu"
    cases: int = 0
    passed: int = 0
    failed: int = 0
    inconclusive: int = 0
    worst: dict = field(default_factory=dict)
    counterexample: Counterexample | None = None
    findings: list = field(default_factory=list)
    tolerance: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Installed, at least one case, and none failed."""
        return self.installed and self.cases > 0 and self.failed == 0

    @property
    def status(self) -> str:
        """``pass``, ``FAIL`` or ``not installed``."""
        if not self.installed:
            return "not installed"
        return "pass" if self.ok else "FAIL"

    def __str__(self) -> str:
        if not self.installed:
            return (f"{self.name}: NOT INSTALLED ({self.reason}); not checked. Install with:\n"
                    f"  {self.install}")
        lines = [
            f"{self.name}: {self.status.upper()} - {self.engine} ({self.version}; {self.device})",
            f"  conventions supported: {self.supported}",
            f"  cases run {self.cases}, passed {self.passed}, failed {self.failed}"
            + (f", inconclusive {self.inconclusive} (spike at rounding distance of threshold)"
               if self.inconclusive else ""),
            f"  tolerance: {self.tolerance}",
        ]
        lines += ["  " + line for line in _worst_lines(self.worst)]
        if self.counterexample is not None:
            lines.append(f"  minimal counterexample: {self.counterexample}")
        else:
            lines.append("  minimal counterexample: none (no disagreement found)")
        if self.findings:
            lines.append("  findings:")
            lines += [f"  - {f}" for f in self.findings]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """Return the JSON record of ``refsnn validate --json``."""
        out = dict(cases=self.cases, passed=self.passed, failed=self.failed,
                   findings=list(self.findings), status=self.status, installed=self.installed,
                   engine=self.engine)
        if not self.installed:
            out.update(install=self.install, reason=self.reason)
            return out
        out.update(
            version=self.version, device=self.device, conventions=self.supported,
            inconclusive=self.inconclusive, tolerance=self.tolerance,
            worst={k: e.as_dict() for k, e in self.worst.items()},
            counterexample=None if self.counterexample is None else self.counterexample.as_dict(),
        )
        return out


def conformance_table(reports: list) -> str:
    """Build a Markdown table of ``FrameworkReport``s (the one in docs/validation.md)."""
    head = ("| framework | version | status | cases | passed | failed | worst trace rel. | "
            "worst gradient rel. | gradient tolerance |")
    lines = [head, "|" + "---|" * 9]
    for r in reports:
        if not r.installed:
            lines.append(f"| {r.name} | - | not installed | 0 | 0 | 0 | - | - | - |")
            continue
        traces = [e.rel for k, e in r.worst.items() if not k.startswith("grad.")
                  and k not in ("spikes", "loss")]
        grads = [e for k, e in r.worst.items() if k.startswith("grad.")]
        g_rel = max((e.rel for e in grads), default=0.0)
        g_tol = sorted({e.tol for e in grads})
        tol = " / ".join(f"{t:g}" for t in g_tol) if g_tol else "-"
        lines.append(f"| {r.name} | {r.version} | {r.status} | {r.cases} | {r.passed} | "
                     f"{r.failed} | {max(traces, default=0.0):.1e} | {g_rel:.1e} | {tol} |")
    return "\n".join(lines)


def _worst_lines(worst: dict) -> list:
    if not worst:
        return []
    lines = [f"{'quantity':<20} {'worst abs':>10} {'worst rel':>10} {'tolerance':>10}"]
    for name, e in worst.items():
        if name == "spikes":
            lines.append(f"{name:<20} {int(e.abs):>10d} {e.rel:>10.1e} {'equal':>10}"
                         "   (differing entries, fraction)")
        else:
            lines.append(f"{name:<20} {e.abs:>10.1e} {e.rel:>10.1e} {e.tol:>10.0e}"
                         + ("" if e.ok else "   FAIL"))
    return lines


def _num(value: float):
    value = float(value)
    if math.isfinite(value):
        return value
    return str(value)


def dumps(obj) -> str:
    """``json.dumps`` that writes numpy scalars as numbers."""
    return json.dumps(obj, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
