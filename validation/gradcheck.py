"""Finite-difference checks of BPTT gradients.

One helper for every gradient check in refsnn: float64 central differences with a
named step ``eps`` and with ``2 eps``, combined by Richardson extrapolation, per
coordinate for tiny networks or along random unit directions for larger ones; max and
mean error per parameter; a guard that the spike raster does not change within
``+-2 eps`` (through a hard threshold a finite difference is a
gradient only where the raster stays put); and a check that the loss returned with
the gradient equals the plain forward loss. Tolerances live in one table keyed by
dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import refsnn
from refsnn.params import PARAM_NAMES, READOUT_FIELDS, Params

__all__ = [
    "TOLERANCES",
    "FieldError",
    "GradcheckReport",
    "check_gradients",
    "exact_twin",
    "relative_error",
]

#: Tolerances by dtype. float64: a central difference with eps = 1e-6 has a
#: truncation error ~ eps**2 * f''' / 6, which is not always small: a strongly driven
#: network gave f''' ~ 5e7 along decay_mem, a relative error of 1.7e-6 (a Hypothesis
#: example). The differences with eps and 2 eps, combined as (4 D(eps) - D(2 eps)) / 3
#: (Richardson), cancel that term and leave one of order eps**4 (that example: 4e-8,
#: the rounding). The rounding error of one difference is ~ 2e-16 S / eps ~ 2e-10 S
#: (about 1.4 times that for the combination), where S = max(1, |L|, max |logits|):
#: L = logsumexp(m) - m_y is computed from logits of size max |m|, and its rounding is
#: a fraction of their last digit, not of L's (logits of 18 gave L = 1.67 a rounding
#: noise of 1.1e-15, 5 ulps of L). Agreement to 1e-6 relative leaves a wide margin
#: while catching any wrong term (a missing term is typically 1e-2 relative or more).
#: A component smaller than ``fd_atol / rtol`` (1e-3 S) is below what a finite
#: difference resolves to 1e-6 relative, so it is compared absolutely, to
#: ``fd_atol * S`` (five times the rounding error of one difference, 3.5 times that of
#: the combination). float32 runs are never finite-differenced; they are compared with
#: float64 (``rtol`` ~ 1e3 * eps32).
TOLERANCES = {
    np.dtype(np.float64): dict(eps=1e-6, rtol=1e-6, fd_atol=1e-9, loss_rtol=1e-12),
    np.dtype(np.float32): dict(eps=None, rtol=5e-4, fd_atol=None, loss_rtol=1e-5),
}

#: readout fields whose finite difference never changes the hidden spike raster
READOUT_ONLY = ("w_out",) + READOUT_FIELDS


def relative_error(a: np.ndarray, b: np.ndarray, floor: float = 0.0) -> float:
    """``max |a - b| / max(max |a|, max |b|, floor)`` (0 when the denominator is 0).

    ``floor`` guards against cancellation: a gradient that is a sum of terms of
    opposite signs can be many orders of magnitude smaller than its terms, and then
    its relative rounding error is large without anything being wrong. Comparisons
    of two implementations pass the size of one sample's contribution; finite
    differences pass their resolution (see ``TOLERANCES``).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), floor)
    if scale == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / scale)


@dataclass
class FieldError:
    """Comparison of one parameter's BPTT gradient with finite differences."""

    name: str
    max_rel: float
    max_abs: float
    mean_abs: float
    checked: int
    raster_changed: int

    @property
    def ok(self) -> bool:
        """Whether at least one coordinate/direction was checked."""
        return self.checked > 0


@dataclass
class GradcheckReport:
    """Result of ``check_gradients``."""

    conventions: refsnn.Conventions
    mode: str
    eps: float
    loss: float
    loss_forward: float
    fields: dict = field(default_factory=dict)

    def worst(self) -> float:
        """Largest relative error over the checked fields."""
        return max((f.max_rel for f in self.fields.values() if f.ok), default=0.0)

    def passed(self, rtol: float | None = None) -> bool:
        """Every checked field within ``rtol`` and the loss consistent."""
        tol = TOLERANCES[np.dtype(np.float64)]
        rtol = tol["rtol"] if rtol is None else rtol
        loss_ok = abs(self.loss - self.loss_forward) <= tol["loss_rtol"] * max(1.0, abs(self.loss))
        return loss_ok and all(f.max_rel <= rtol for f in self.fields.values() if f.ok)

    def as_dict(self) -> dict:
        """JSON-friendly summary."""
        return {
            "mode": self.mode,
            "eps": self.eps,
            "loss": self.loss,
            "loss_forward": self.loss_forward,
            "worst_relative_error": self.worst(),
            "fields": {
                n: dict(max_rel=f.max_rel, max_abs=f.max_abs, mean_abs=f.mean_abs,
                        checked=f.checked, raster_changed=f.raster_changed)
                for n, f in self.fields.items()
            },
        }


def exact_twin(conv: refsnn.Conventions, scale: float | None = None) -> refsnn.Conventions:
    """Return the same conventions with a smooth spike and no stop-gradient anywhere.

    Its BPTT gradient is the exact gradient of its loss, so every code path of the
    conventions (reset form, delays, input scale, reduction) can be checked by finite
    differences.
    """
    return conv.replace(
        spike_fn="sigmoid",
        surrogate="sigmoid",
        surrogate_scale=conv.surrogate_scale if scale is None else scale,
        reset_detached=False,
        reset_threshold_detached=False,
        input_scale_detached=False,
    )


def check_gradients(
    params: Params,
    x: np.ndarray,
    labels: np.ndarray,
    conventions: refsnn.Conventions,
    *,
    fields=PARAM_NAMES,
    mode: str = "coordinate",
    n_directions: int = 4,
    eps: float | None = None,
    rng: np.random.Generator | None = None,
    loss_and_grad=None,
) -> GradcheckReport:
    """Compare a BPTT gradient with float64 central differences of ``refsnn.loss``.

    Parameters
    ----------
    params, x, labels, conventions
        As for ``refsnn.loss_and_grad``; cast to float64.
    fields : sequence of str
        Parameters to check.
    mode : {"coordinate", "directions"}
        Every coordinate (tiny networks), or ``n_directions`` random unit directions
        per field (the directional derivative ``g . u`` against ``(4 D(eps) - D(2 eps))
        / 3``, with ``D(h) = (L(p + h u) - L(p - h u)) / (2 h)``: Richardson extrapolation
        of central differences, whose truncation error is then of order eps**4).
    eps : float
        Step; default from ``TOLERANCES``.
    rng : numpy.random.Generator
        For the directions.
    loss_and_grad : callable, optional
        The gradient under test, ``(params, x, labels, conventions) -> (loss, grads)``;
        default ``refsnn.loss_and_grad``.

    Coordinates whose perturbation (up to ``2 eps``) changes the spike raster (hard
    spikes only) are skipped and counted in ``raster_changed``.
    """
    if mode not in ("coordinate", "directions"):
        raise ValueError(f"mode must be 'coordinate' or 'directions', got {mode!r}")
    unknown = set(fields) - set(PARAM_NAMES)
    if unknown:
        raise ValueError(f"fields {sorted(unknown)} are not parameters; choose from {PARAM_NAMES}")
    p = params.astype(np.float64)
    x = np.asarray(x, dtype=np.float64)
    eps = TOLERANCES[np.dtype(np.float64)]["eps"] if eps is None else eps
    rng = np.random.default_rng(0) if rng is None else rng
    lg = refsnn.loss_and_grad if loss_and_grad is None else loss_and_grad
    value, grads = lg(p, x, labels, conventions)
    tol = TOLERANCES[np.dtype(np.float64)]
    base = refsnn.forward(p, x, conventions)
    size = max(1.0, abs(value), float(np.max(np.abs(base.logits))))  # S of ``TOLERANCES``
    floor = tol["fd_atol"] * size / tol["rtol"]
    hard = conventions.spike_fn == "heaviside"
    base_raster = base.spikes if hard else None

    def loss_at(name, delta):
        q = p.replace(**{name: getattr(p, name) + delta})
        if hard and not np.array_equal(refsnn.forward(q, x, conventions).spikes, base_raster):
            return None
        return refsnn.loss(q, x, labels, conventions)

    report = GradcheckReport(conventions, mode, eps, value, refsnn.loss(p, x, labels, conventions))
    for name in fields:
        a = getattr(p, name)
        g = np.asarray(getattr(grads, name), dtype=np.float64)
        fds, bps = [], []
        changed = 0
        if mode == "coordinate":
            perturbations = []
            for idx in np.ndindex(a.shape):
                u = np.zeros_like(a)
                u[idx] = 1.0
                perturbations.append(u)
        else:
            perturbations = []
            for _ in range(n_directions):
                u = rng.standard_normal(a.shape)
                perturbations.append(u / np.linalg.norm(u))
        for u in perturbations:
            # central differences with steps eps and 2 eps, combined (Richardson) so
            # that their eps**2 truncation terms cancel
            losses = [loss_at(name, k * eps * u) for k in (1, -1, 2, -2)]
            if any(v is None for v in losses):
                changed += 1
                continue
            lp, lm, lp2, lm2 = losses
            d1, d2 = (lp - lm) / (2 * eps), (lp2 - lm2) / (4 * eps)
            fds.append((4 * d1 - d2) / 3)
            bps.append(float(np.sum(g * u)))
        fds_a, bps_a = np.array(fds), np.array(bps)
        diff = np.abs(fds_a - bps_a)
        report.fields[name] = FieldError(
            name=name,
            max_rel=relative_error(bps_a, fds_a, floor) if fds else 0.0,
            max_abs=float(diff.max()) if fds else 0.0,
            mean_abs=float(diff.mean()) if fds else 0.0,
            checked=len(fds),
            raster_changed=changed,
        )
    return report
