"""Command-line interface: ``refsnn <command> ...``.

Commands
--------
gradcheck
    Finite differences against BPTT on a small random network.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .conventions import PRESET_NAMES, Conventions
from .params import PARAM_NAMES


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message):  # noqa: D102
        self.exit(2, f"refsnn: error: {message} (see 'refsnn {self.prog.split()[-1]} --help')\n")


def _exact_fields(conv: Conventions) -> tuple:
    """Fields whose BPTT gradient is the true gradient under ``conv``."""
    if conv.spike_fn == "sigmoid" and not (
        conv.reset_detached or conv.reset_threshold_detached or conv.input_scale_detached
    ):
        return PARAM_NAMES
    exact = ["w_out", "decay_syn_out"] if conv.reduction != "count" else ["w_out"]
    if not conv.input_scale_detached and conv.reduction != "count":
        exact.append("decay_mem_out")
    # a hard spike, or a smooth one with a stop-gradient: only the readout is exact
    return tuple(exact)


def _gradcheck(args) -> int:
    import refsnn
    from validation.gradcheck import TOLERANCES, check_gradients, exact_twin

    rtol = TOLERANCES[np.dtype(np.float64)]["rtol"]
    rng = np.random.default_rng(args.seed)
    B, T, n_in, N, C = 3, 20, 6, 5, 3
    p = refsnn.random_params(n_in, N, C, rng)
    x = (rng.random((B, T, n_in)) < 0.25).astype(np.float64)
    y = rng.integers(0, C, B)
    conv = Conventions.preset(args.preset)
    twin = exact_twin(conv, scale=min(conv.surrogate_scale, 5.0))
    sections = []
    ok = True
    for title, c, exact in (
        (f"preset {args.preset!r}", conv, _exact_fields(conv)),
        (f"exact twin of {args.preset!r} (smooth spike, no stop-gradient)", twin, PARAM_NAMES),
    ):
        report = check_gradients(p, x, y, c)
        rows = {}
        for name in PARAM_NAMES:
            f = report.fields[name]
            is_exact = name in exact
            passed = (f.max_rel <= rtol) if is_exact else None
            ok &= passed is not False
            rows[name] = dict(
                max_rel=f.max_rel, checked=f.checked, raster_changed=f.raster_changed,
                exact=is_exact, passed=passed,
            )
        sections.append(dict(title=title, conventions=c.as_dict(), loss=report.loss, fields=rows))
    if not args.json:
        print(f"refsnn gradcheck: batch {B}, steps {T}, inputs {n_in}, hidden {N}, classes {C}, "
              f"seed {args.seed}; central differences, eps 1e-6, float64; tolerance {rtol:g}")
        for sec in sections:
            print(f"\n{sec['title']}: loss {sec['loss']:.6f}")
            print(f"  {'parameter':<14} {'worst rel. error':>17}  {'checked':>7}  status")
            for name, r in sec["fields"].items():
                if r["exact"]:
                    status = "ok" if r["passed"] else "FAIL"
                else:
                    status = "surrogate/stop-gradient: not a true gradient, shown for reference"
                skipped = f" ({r['raster_changed']} skipped: raster changed)" if r["raster_changed"] else ""
                print(f"  {name:<14} {r['max_rel']:>17.3e}  {r['checked']:>7}  {status}{skipped}")
        print("\nall exact gradients agree" if ok else "\nMISMATCH in an exact gradient")
    else:
        print(json.dumps(dict(ok=ok, preset=args.preset, seed=args.seed, sections=sections)))
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The ``refsnn`` argument parser."""
    parser = _Parser(prog="refsnn", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    g = sub.add_parser("gradcheck", help="finite differences against BPTT on a small random network")
    g.add_argument("--preset", default="smooth", choices=PRESET_NAMES)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    g.set_defaults(func=_gradcheck)
    # Each further command lives in its own module with ``add_parser(subparsers)``,
    # which registers the command and sets ``func``; one line each below.
    # --- commands ---
    # --- end commands ---
    return parser


def main(argv=None) -> int:
    """Entry point of the ``refsnn`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"refsnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("refsnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
