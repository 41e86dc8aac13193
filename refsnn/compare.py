"""Compare training configurations on the same data and seeds: table and plots.

``compare`` trains each configuration for each seed (each run in its own folder, with
its checkpoint, so an interrupted comparison resumes where it stopped and finished
runs are not repeated), then writes:

- ``results.md`` and ``results.json``: last-epoch test accuracy per configuration,
  mean +- standard error over seeds;
- ``accuracy.png``: test accuracy per epoch for each configuration;
- ``time_constants.png``: histograms of the initial and learned membrane and synaptic
  time constants (ms) of the configurations that train them;
- ``raster.png``: input and hidden spikes of one test sample in the trained
  HetInit-HetTr network (or the last configuration).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .train import (
    CHECKPOINT,
    PAPER_CONFIGS,
    TrainConfig,
    TrainResult,
    load_checkpoint,
    open_data,
    train,
)

__all__ = ["compare", "summarise", "format_table"]


def _run_dir(out: Path, config: str, seed: int) -> Path:
    return out / f"{config}-seed{seed}"


def summarise(results: dict) -> list:
    """Rows ``{config, mean, sem, n, accuracies}`` of last-epoch test accuracy.

    ``results`` maps config -> list of TrainResult (one per seed). The standard error
    is ``std(ddof=1) / sqrt(n)`` (0 for a single seed).
    """
    rows = []
    for config, runs in results.items():
        acc = np.array([r.test_accuracy for r in runs], dtype=np.float64)
        sem = float(acc.std(ddof=1) / math.sqrt(len(acc))) if len(acc) > 1 else 0.0
        rows.append(dict(config=config, mean=float(acc.mean()), sem=sem, n=len(acc),
                         accuracies=acc.tolist()))
    return rows


def format_table(rows: list) -> str:
    """Markdown table of ``summarise`` rows."""
    lines = ["| configuration | test accuracy (mean +- s.e.m.) | seeds |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {100 * r['mean']:.2f} +- {100 * r['sem']:.2f} % "
                     f"| {r['n']} |")
    return "\n".join(lines)


def _load_finished(run_dir: Path, cfg: TrainConfig):
    """Return a TrainResult from a finished run's checkpoint, or None."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    ck = load_checkpoint(path)
    if ck["meta"]["config"] != cfg.as_dict() or ck["meta"]["epoch"] + 1 < cfg.epochs:
        return None
    metrics = ck["meta"]["metrics"]
    seconds = sum(m["seconds"] for m in metrics)
    train_secs = sum(m["train_seconds"] for m in metrics)
    return TrainResult(cfg, ck["params"], ck["initial"], metrics, seconds,
                       sum(m["samples_per_second"] * m["train_seconds"] for m in metrics)
                       / max(train_secs, 1e-12))


def compare(base: TrainConfig, out, *, configs=PAPER_CONFIGS, seeds=(0,), progress=True,
            plots=True, log=print) -> dict:
    """Train ``configs`` x ``seeds`` from ``base`` and write the table and plots to ``out``.

    Returns ``{"rows": summarise(...), "results": {config: [TrainResult]}, "files": [...]}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {c: [] for c in configs}
    data_cache = {}
    for seed in seeds:
        for config in configs:
            cfg = base.replace(config=config, seed=seed)
            run_dir = _run_dir(out, config, seed)
            done = _load_finished(run_dir, cfg)
            if done is not None:
                log(f"{config} seed {seed}: finished earlier, "
                    f"test accuracy {done.test_accuracy:.4f}")
                results[config].append(done)
                continue
            if seed not in data_cache:
                data_cache = {seed: open_data(cfg)}
            resume = (run_dir / CHECKPOINT).exists()
            if resume:
                try:
                    meta = load_checkpoint(run_dir / CHECKPOINT)["meta"]
                    resume = meta["config"] == cfg.as_dict()
                except ValueError:
                    resume = False
            res = train(cfg, run_dir, resume=resume, progress=progress, data=data_cache[seed])
            log(f"{config} seed {seed}: test accuracy {res.test_accuracy:.4f} "
                f"({res.seconds:.1f} s, {res.samples_per_second:.0f} samples/s)")
            results[config].append(res)
    rows = summarise(results)
    table = format_table(rows)
    budget = (
        f"dataset {base.dataset}, {base.train_size or 'all'} training / "
        f"{base.test_size or 'all'} test samples, {base.epochs} epochs, {base.hidden} hidden "
        f"neurons, seeds {list(seeds)}, preset {base.preset}, {base.dtype}"
    )
    (out / "results.md").write_text(f"# refsnn compare\n\n{budget}\n\n{table}\n")
    (out / "results.json").write_text(json.dumps(dict(rows=rows, budget=budget), indent=1))
    files = [out / "results.md", out / "results.json"]
    if plots:
        files += _plots(out, results, data_cache, base)
    return dict(rows=rows, results=results, files=files, table=table, budget=budget)


def _plots(out: Path, results: dict, data_cache: dict, base: TrainConfig) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    # accuracy per epoch
    fig, ax = plt.subplots(figsize=(6, 4))
    for config, runs in results.items():
        acc = np.array([[m["test_accuracy"] for m in r.metrics] for r in runs])
        epochs = np.arange(1, acc.shape[1] + 1)
        mean = acc.mean(axis=0)
        ax.plot(epochs, 100 * mean, marker="o", label=config)
        if acc.shape[0] > 1:
            sem = acc.std(axis=0, ddof=1) / math.sqrt(acc.shape[0])
            ax.fill_between(epochs, 100 * (mean - sem), 100 * (mean + sem), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{base.dataset}: test accuracy per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    files.append(out / "accuracy.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)

    # time constants, initial vs learned
    trained = [c for c, runs in results.items()
               if runs and runs[0].config.config.endswith(("hettr", "homtr"))]
    if trained:
        dt = next(iter(data_cache.values()))[0].dt if data_cache else (base.dt_ms or 1.0) * 1e-3
        fig, axes = plt.subplots(2, len(trained), figsize=(4.5 * len(trained), 6), squeeze=False)
        for j, config in enumerate(trained):
            for i, (field, label) in enumerate((("decay_mem", "membrane"),
                                                ("decay_syn", "synaptic"))):
                ax = axes[i, j]
                init = np.concatenate([-dt / np.log(getattr(r.initial_params, field).astype(float))
                                       for r in results[config]]) * 1e3
                learned = np.concatenate([-dt / np.log(getattr(r.params, field).astype(float))
                                          for r in results[config]]) * 1e3
                hi = max(init.max(), learned.max())
                bins = np.linspace(0, hi * 1.05, 40)
                ax.hist(init, bins=bins, alpha=0.5, label="initial")
                ax.hist(learned, bins=bins, alpha=0.5, label="learned")
                ax.set_title(f"{config}: {label}")
                ax.set_xlabel(f"tau_{label[:3]} (ms)")
                ax.legend()
        fig.tight_layout()
        files.append(out / "time_constants.png")
        fig.savefig(files[-1], dpi=120)
        plt.close(fig)

    # spike raster of one test sample
    config = "hetinit-hettr" if results.get("hetinit-hettr") else list(results)[-1]
    if results[config] and data_cache:
        from .conventions import Conventions
        from .network import forward

        run = results[config][0]
        _, test_ds, _, test_idx = next(iter(data_cache.values()))
        x = test_ds.dense(test_idx[:1], dtype=np.dtype(base.dtype))
        tr = forward(run.params, x, Conventions.preset(base.preset))
        fig, (a0, a1, a2) = plt.subplots(3, 1, figsize=(7, 7), sharex=True,
                                         gridspec_kw=dict(height_ratios=[2, 2, 1]))
        t_in, i_in = np.nonzero(x[0])
        a0.scatter(t_in, i_in, s=1, c="k")
        a0.set_ylabel("input")
        first = tr.first_state
        t_h, i_h = np.nonzero(tr.spikes[0] > 0.5)
        a1.scatter(t_h + first, i_h, s=2, c="C3")
        a1.set_ylabel("hidden neuron")
        steps = np.arange(first, first + tr.v_out.shape[1])
        for c in range(tr.v_out.shape[2]):
            a2.plot(steps, tr.v_out[0, :, c],
                    lw=2 if c == int(test_ds.labels[test_idx[0]]) else 0.8)
        a2.set_ylabel("readout v")
        a2.set_xlabel("time step")
        a0.set_title(f"{config}: one test sample (label {int(test_ds.labels[test_idx[0]])}, "
                     "bold readout trace)")
        fig.tight_layout()
        files.append(out / "raster.png")
        fig.savefig(files[-1], dpi=120)
        plt.close(fig)
    return files
