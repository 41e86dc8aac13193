"""Command-line interface: ``refsnn <command> ...``.

Commands
--------
gradcheck
    Finite differences against BPTT on a small random network.
train
    Train one configuration (checkpoint and metrics every epoch, ``--resume``).
compare
    The paper's four configurations on the same data and seeds: table and plots.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .conventions import PRESET_NAMES, Conventions
from .params import PARAM_NAMES


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2.

    The error names the help of the parser that found it: ``refsnn --help`` for the
    command line as a whole, ``refsnn bench --help`` for a command's options. An
    unknown argument after a command is reported by that command's parser (argparse
    leaves it to the top one), whose help lists the options the user meant.
    """

    _commands = None  # the subparsers action, once ``add_subparsers`` made it

    def error(self, message):  # noqa: D102
        self.exit(2, f"refsnn: error: {message} (see '{self.prog} --help')\n")

    def add_subparsers(self, **kwargs):  # noqa: D102
        self._commands = super().add_subparsers(**kwargs)
        return self._commands

    def parse_args(self, args=None, namespace=None):  # noqa: D102
        namespace, unknown = self.parse_known_args(args, namespace)
        if unknown:
            owner = self
            if self._commands is not None:
                owner = self._commands.choices.get(getattr(namespace, self._commands.dest), self)
            owner.error(f"unrecognized arguments: {' '.join(unknown)}")
        return namespace


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
              f"seed {args.seed}; central differences (eps 1e-6 and 2e-6, Richardson), float64; "
              f"tolerance {rtol:g}")
        for sec in sections:
            print(f"\n{sec['title']}: loss {sec['loss']:.6f}")
            print(f"  {'parameter':<14} {'worst rel. error':>17}  {'checked':>7}  status")
            for name, r in sec["fields"].items():
                if r["exact"]:
                    status = "ok" if r["passed"] else "FAIL"
                else:
                    status = "surrogate/stop-gradient: not a true gradient, shown for reference"
                skipped = (f" ({r['raster_changed']} skipped: raster changed)"
                           if r["raster_changed"] else "")
                print(f"  {name:<14} {r['max_rel']:>17.3e}  {r['checked']:>7}  {status}{skipped}")
        print("\nall exact gradients agree" if ok else "\nMISMATCH in an exact gradient")
    else:
        print(json.dumps(dict(ok=ok, preset=args.preset, seed=args.seed, sections=sections)))
    return 0 if ok else 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _add_training_options(p: argparse.ArgumentParser, *, epochs: int, train_size,
                          test_size) -> None:
    from data_loaders import DATASET_NAMES

    p.add_argument("--dataset", default="fmnist", choices=DATASET_NAMES)
    p.add_argument("--hidden", type=_positive_int, default=128, help="hidden neurons (128)")
    p.add_argument("--epochs", type=_positive_int, default=epochs)
    p.add_argument("--train-size", type=_positive_int, default=train_size,
                   help=f"training samples, a fixed stratified subset ({train_size}; "
                        "--all-data for all)")
    p.add_argument("--test-size", type=_positive_int, default=test_size,
                   help=f"test samples, a fixed stratified subset ({test_size})")
    p.add_argument("--all-data", action="store_true", help="use every training and test sample")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate of weights")
    p.add_argument("--lr-decays", type=_positive_float, default=1e-3,
                   help="Adam learning rate of the trained decays (own group)")
    p.add_argument("--tau-syn", type=_positive_float, default=10.0, help="mean tau_syn in ms (10)")
    p.add_argument("--tau-mem", type=_positive_float, default=20.0, help="mean tau_mem in ms (20)")
    p.add_argument("--het-dist", default="gamma",
                   choices=["gamma", "uniform", "normal", "lognormal"],
                   help="HetInit distribution of time constants (gamma, shape 3)")
    p.add_argument("--tau-param", default="decay", choices=["decay", "log_tau"],
                   help="train the decays themselves (paper) or log(tau/dt)")
    p.add_argument("--train-threshold", action="store_true", help="also train thresholds")
    p.add_argument("--het-threshold", action="store_true", help="thresholds ~ U(0.5, 1.5)")
    p.add_argument("--weight-init", default=None, choices=["paper", "fan_in"],
                   help="weight initialisation (paper's; fan_in for the procedural tasks)")
    p.add_argument("--weight-scale", type=_positive_float, default=None,
                   help="multiply the input weights (1; fmnist 1.5, yinyang and randman 10, "
                        "delay 2)")
    p.add_argument("--preset", default="paper", choices=PRESET_NAMES, help="model conventions")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--steps", type=_positive_int, default=None, help="time steps (dataset default)")
    p.add_argument("--dt", type=_positive_float, default=None,
                   help="time step in ms (dataset default)")
    p.add_argument("--time-scale", type=_positive_float, default=1.0,
                   help="multiply input spike times (robustness experiment)")
    p.add_argument("--data-root", default=None, help="dataset folder (see docs/data.md)")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _train_config(args, **overrides):
    from .train import TrainConfig

    return TrainConfig(
        dataset=args.dataset,
        config=overrides.get("config", getattr(args, "config", "hetinit-hettr")),
        hidden=args.hidden, epochs=args.epochs,
        train_size=None if args.all_data else args.train_size,
        test_size=None if args.all_data else args.test_size,
        batch_size=args.batch_size, seed=overrides.get("seed", getattr(args, "seed", 0)),
        lr=args.lr, lr_decays=args.lr_decays, tau_syn_ms=args.tau_syn, tau_mem_ms=args.tau_mem,
        het_dist=args.het_dist, tau_param=args.tau_param, train_threshold=args.train_threshold,
        het_threshold=args.het_threshold, preset=args.preset, dtype=args.dtype,
        n_steps=args.steps, dt_ms=args.dt, time_scale=args.time_scale, data_root=args.data_root,
        weight_init=args.weight_init, weight_scale=args.weight_scale,
    )


def _train(args) -> int:
    from pathlib import Path

    from .train import train

    cfg = _train_config(args)
    out = (Path(args.out) if args.out
           else Path("runs") / f"{cfg.dataset}-{cfg.config}-seed{cfg.seed}")
    try:
        result = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"refsnn: interrupted; the last finished epoch is in {out}; continue with --resume",
              file=sys.stderr)
        return 130
    summary = result.summary()
    summary["out"] = str(out)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{cfg.config} on {cfg.dataset}: test accuracy {summary['test_accuracy']:.4f}, "
              f"train accuracy {summary['train_accuracy']:.4f}, {summary['seconds']:.1f} s "
              f"({summary['samples_per_second']:.0f} samples/s); params sha256 "
              f"{summary['params_sha256'][:16]}...; checkpoint and metrics in {out}")
    return 0


def _compare(args) -> int:
    from pathlib import Path

    from .compare import compare
    from .train import CONFIGS

    configs = tuple(args.configs.split(","))
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        raise ValueError(f"--configs: unknown configuration(s) {bad}; choose from {list(CONFIGS)}")
    base = _train_config(args, config=configs[0], seed=0)
    out = Path(args.out) if args.out else Path("runs") / f"compare-{base.dataset}"
    log = (lambda *a, **k: None) if args.json else print
    try:
        res = compare(base, out, configs=configs, seeds=range(args.seeds),
                      progress=not args.no_progress, log=log)
    except KeyboardInterrupt:
        print(f"refsnn: interrupted; finished epochs are kept in {out}; rerun the same command "
              "to continue", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(dict(rows=res["rows"], budget=res["budget"], out=str(out),
                              files=[str(f) for f in res["files"]])))
    else:
        print(f"\n{res['budget']}\n\n{res['table']}\n")
        print("written: " + ", ".join(str(f) for f in res["files"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the ``refsnn`` argument parser."""
    parser = _Parser(prog="refsnn", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    g = sub.add_parser("gradcheck",
                       help="finite differences against BPTT on a small random network")
    g.add_argument("--preset", default="smooth", choices=PRESET_NAMES)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    g.set_defaults(func=_gradcheck)

    from .train import CONFIGS, PAPER_CONFIGS

    t = sub.add_parser("train", help="train one configuration")
    t.add_argument("--config", default="hetinit-hettr", choices=list(CONFIGS))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    _add_training_options(t, epochs=3, train_size=5000, test_size=1000)
    t.set_defaults(func=_train)

    c = sub.add_parser("compare", help="the paper's configurations on the same data and seeds")
    c.add_argument("--configs", default=",".join(PAPER_CONFIGS),
                   help="comma-separated configurations (the paper's four)")
    c.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0..K-1 (3)")
    _add_training_options(c, epochs=3, train_size=5000, test_size=1000)
    c.set_defaults(func=_compare)
    # Each further command lives in its own module with ``add_parser(subparsers)``,
    # which registers the command and sets ``func``; an import and a call each below.
    # --- commands ---
    from validation.cli import add_parser as _add_validate
    _add_validate(sub)
    from .experiment import add_parser as _add_experiment
    _add_experiment(sub)
    from .bench import add_parser as _add_bench
    _add_bench(sub)
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
