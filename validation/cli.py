"""``refsnn validate``: conformance of other implementations against refsnn.

    refsnn validate --against NAME[,NAME...] [--examples N] [--device cpu|cuda] [--json]

NAME is one of torch, paper, snntorch, norse, spikingjelly, or all. For each framework
it prints the conventions it supports, the cases run, passed and failed, the worst
absolute and relative error per quantity, the minimal counterexample, and findings in
words; then a Markdown conformance table. With ``--json`` it prints one line,
``{"frameworks": {name: {"cases", "passed", "failed", "findings", ...}}}``.

A framework that does not import is reported as not installed, with the line that
installs it, and never counts as a pass. Exit status: 0 when every requested framework
is installed and agrees, 1 otherwise, 2 for a usage error.

Registered by ``refsnn.cli.build_parser`` through ``add_parser(subparsers)``; torch and
the peers are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys

from refsnn.cli import _positive_int

__all__ = ["add_parser"]

NAMES = ("torch", "paper", "snntorch", "norse", "spikingjelly")


def _frameworks(text: str) -> tuple:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected NAME[,NAME...]")
    out = []
    for n in names:
        if n == "all":
            out.extend(NAMES)
        elif n in NAMES:
            out.append(n)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown framework {n!r}; choose from {', '.join(NAMES)}, all")
    return tuple(dict.fromkeys(out))


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``validate`` on ``subparsers`` and set its ``func``."""
    v = subparsers.add_parser(
        "validate", help="check other implementations (PyTorch, snnTorch, Norse, SpikingJelly, "
        "the paper's model) against refsnn")
    v.add_argument("--against", required=True, type=_frameworks, metavar="NAME[,NAME...]",
                   help=f"frameworks: {', '.join(NAMES)}, or all")
    v.add_argument("--examples", type=_positive_int, default=20, metavar="N",
                   help="problems drawn per framework (20)")
    v.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the peer frameworks run (cpu)")
    v.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    v.set_defaults(func=_validate)
    return v


def _validate(args) -> int:
    from .check import validate
    from .report import conformance_table, dumps

    if args.device == "cuda":
        try:
            import torch
        except ImportError:
            raise ValueError("--device cuda needs torch (pip install torch==2.13.0)") from None
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: torch sees no CUDA device on this machine")
    reports = []
    for name in args.against:
        report = validate(name, examples=args.examples, device=args.device)
        reports.append(report)
        if not args.json:
            print(report, end="\n\n", flush=True)
    ok = all(r.ok for r in reports)
    if args.json:
        print(dumps({"frameworks": {r.name: r.as_dict() for r in reports}}))
    else:
        print(conformance_table(reports))
        missing = [r.name for r in reports if not r.installed]
        failed = [r.name for r in reports if r.installed and not r.ok]
        verdict = "all agree with refsnn" if ok else "NOT all agree with refsnn"
        extra = []
        if failed:
            extra.append(f"disagree: {', '.join(failed)}")
        if missing:
            extra.append(f"not installed (not checked): {', '.join(missing)}")
        print(f"\n{verdict}" + (f" ({'; '.join(extra)})" if extra else ""))
    sys.stdout.flush()
    return 0 if ok else 1
