"""The paper's experiments as grids of training runs on Dask distributed.

``refsnn experiment EXPERIMENT`` expands a grid of runs, configuration x seed x the
experiment's own axis, runs each as one task on a Dask cluster (an in-process
``LocalCluster`` by default, or an existing scheduler), and aggregates:

=============  ===================  =====================================================
experiment     own axis             reports
=============  ===================  =====================================================
table          none                 last-epoch test accuracy, mean +- s.e.m. over seeds
timescale      training factor      accuracy when inputs are played faster or slower:
               (0.5, 1)             trained with spike times x f_train, tested at
                                    f_test = 0.25 .. 4, steps scaled alike
neurons        hidden size          accuracy against the number of hidden neurons
               (16 .. 256)
distributions  none                 learned tau_mem and tau_syn pooled over seeds, against
                                    the initial ones; gamma and log-normal fits (location
                                    0) with a chi-square goodness of fit
=============  ===================  =====================================================

Every experiment also reports the spike cost of each configuration (Perez-Nieves et
al. 2021, the energy argument): hidden spikes per test sample, and synaptic
operations per sample, one operation per spike and outgoing synapse, i.e. spikes x
(N recurrent + C readout), the fan-out of a hidden neuron.

Layout of the output folder ``OUT`` (it must be visible to the workers: a shared
file system, or the loopback)::

    OUT/runs/<run>/checkpoint.npz, metrics.jsonl   refsnn.train's, one folder per training
    OUT/runs/<run>/result.json                      the run's result (atomic: tmp + rename)
    OUT/runs/<run>/result-factors-<hash>.json       ... with tests at other time scales
    OUT/runs/<run>/error-attempt<k>.txt             the traceback of a failed attempt
    OUT/<experiment>.md, .csv, -spike-cost.csv, .json, .png

A run folder is named after its training (``TrainConfig`` and training factor, with a
hash of both), so experiments that share a training share its checkpoint: ``table``
and ``distributions`` run the same grid, and ``timescale``'s factor-1 runs are the
table's runs. A result file holds the run's spec; a rerun skips every run whose result
file matches its spec (without starting a cluster when none is left), resumes an
interrupted training from its checkpoint, and aggregates from the files on disk only,
so the aggregates of a rerun are identical. A failed task is reported with its error
and submitted once more; a run that fails twice is listed in the report and the
command exits with status 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .compare import _load_finished, format_table, summarise
from .conventions import Conventions
from .init import DECAY_MAX, DECAY_MIN
from .train import (
    CHECKPOINT,
    CONFIGS,
    PAPER_CONFIGS,
    CheckpointError,
    TrainConfig,
    _atomic_write_bytes,
    open_data,
    params_sha256,
    train,
)

__all__ = [
    "EXPERIMENTS",
    "RunSpec",
    "expand_grid",
    "run_task",
    "execute",
    "load_result",
    "run_grid",
    "aggregate",
    "write_report",
    "mean_sem",
    "fit_distribution",
    "add_parser",
]

EXPERIMENTS = ("table", "timescale", "neurons", "distributions")
RESULT_FORMAT = "refsnn-experiment-run-1"
DEFAULT_TRAIN_FACTORS = (0.5, 1.0)
DEFAULT_TEST_FACTORS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
DEFAULT_HIDDEN_SIZES = (16, 32, 64, 128, 256)
#: attempts per run: the first, and one retry
ATTEMPTS = 2
#: how long to keep trying to reach a ``--scheduler``
CONNECT_TIMEOUT = "20s"


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def scaled_steps(base_steps: int, factor: float) -> int:
    """Return the steps of a sample played ``factor`` times slower: ``round(steps x factor)``."""
    return max(1, math.floor(base_steps * factor + 0.5))


# ------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: a training and the tests made after it.

    Attributes
    ----------
    cfg : TrainConfig
        The training at time scale 1 (``cfg.time_scale`` and ``cfg.n_steps`` as the
        user set them).
    train_factor : float
        Spike times of training and test data are multiplied by this factor and the
        number of steps scaled alike (the time-scale experiment); 1 for the others.
    test_factors : tuple of float
        Time scales at which the trained network is also tested (steps scaled alike),
        relative to the unscaled data.
    """

    cfg: TrainConfig
    train_factor: float = 1.0
    test_factors: tuple = ()

    def as_dict(self) -> dict:
        """JSON-serialisable form (stored in the result file)."""
        return dict(config=self.cfg.as_dict(), train_factor=float(self.train_factor),
                    test_factors=[float(f) for f in self.test_factors])

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        """Inverse of ``as_dict``."""
        return cls(TrainConfig(**d["config"]), float(d["train_factor"]),
                   tuple(float(f) for f in d["test_factors"]))

    @property
    def name(self) -> str:
        """Folder of the training: readable fields and a hash of the training's spec."""
        c = self.cfg
        key = _sha(dict(config=c.as_dict(), train_factor=float(self.train_factor)))[:10]
        scale = f"-x{self.train_factor:g}" if self.train_factor != 1 else ""
        return f"{c.dataset}-{c.config}-seed{c.seed}-h{c.hidden}{scale}-{key}"

    @property
    def result_name(self) -> str:
        """File name of the result in the run's folder."""
        if not self.test_factors:
            return "result.json"
        return f"result-factors-{_sha([float(f) for f in self.test_factors])[:8]}.json"

    def result_path(self, out) -> Path:
        """Path of the result file under ``out``."""
        return Path(out) / "runs" / self.name / self.result_name


def _unique(values) -> tuple:
    return tuple(dict.fromkeys(values))


def expand_grid(experiment: str, base: TrainConfig, *, configs=PAPER_CONFIGS, seeds=(0, 1, 2),
                hidden_sizes=DEFAULT_HIDDEN_SIZES, train_factors=DEFAULT_TRAIN_FACTORS,
                test_factors=DEFAULT_TEST_FACTORS) -> list:
    """List the runs of an experiment: configuration x seed x the experiment's axis.

    Parameters
    ----------
    experiment : {"table", "timescale", "neurons", "distributions"}
    base : TrainConfig
        Options shared by every run; ``config``, ``seed`` (and ``hidden`` for
        ``neurons``) are replaced per run.
    configs, seeds : sequences
        The configurations (names of ``refsnn.train.CONFIGS``) and seeds.
    hidden_sizes : sequence of int
        The axis of ``neurons``.
    train_factors, test_factors : sequences of float
        The axes of ``timescale``: the training time scales, and the test time scales
        of every run.

    Returns
    -------
    list of RunSpec
        Ordered seed, axis value, configuration (so the first finished runs cover every
        configuration); duplicates removed.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {list(EXPERIMENTS)}, got {experiment!r}")
    configs, seeds = _unique(configs), _unique(seeds)
    bad = [c for c in configs if c not in CONFIGS]
    if bad or not configs:
        raise ValueError(f"--configs: unknown configuration(s) {bad}; choose from {list(CONFIGS)}")
    if not seeds:
        raise ValueError("need at least one seed")
    if experiment == "timescale":
        if base.time_scale != 1:
            raise ValueError("timescale sets the time scale itself (--train-factors, "
                             "--test-factors); leave --time-scale at 1")
        for name, values in (("--train-factors", train_factors), ("--test-factors", test_factors)):
            if not values or not all(math.isfinite(f) and f > 0 for f in values):
                raise ValueError(f"{name} must be positive numbers, got {list(values)}")
        tests = tuple(float(g) for g in _unique(test_factors))
        axis = [dict(train_factor=float(f), test_factors=tests) for f in _unique(train_factors)]
    elif experiment == "neurons":
        if not hidden_sizes or not all(isinstance(h, int) and h >= 1 for h in hidden_sizes):
            raise ValueError(f"--hidden-sizes must be positive integers, got {list(hidden_sizes)}")
        axis = [dict(hidden=int(h)) for h in _unique(hidden_sizes)]
    else:
        axis = [{}]
    specs = []
    for seed in seeds:
        for a in axis:
            for config in configs:
                changes = dict(config=config, seed=int(seed))
                if "hidden" in a:
                    changes["hidden"] = a["hidden"]
                specs.append(RunSpec(base.replace(**changes), a.get("train_factor", 1.0),
                                     a.get("test_factors", ())))
    return list(dict.fromkeys(specs))


# ------------------------------------------------------------------- one run
def _rescaled(ds, factor: float, n_steps: int):
    """``ds`` (at time scale 1) with spike times x ``factor`` and ``n_steps`` steps.

    The events are those of ``ds``, generated once for its own window, so a latency
    code is not cut at the scaled window (``load_dataset(n_steps=...)`` also sets the
    generation window of Fashion-MNIST's code).
    """
    from data_loaders import SpikeDataset

    return SpikeDataset(ds.name, ds.events, ds.labels, n_inputs=ds.n_inputs,
                        n_classes=ds.n_classes, n_steps=n_steps, dt=ds.dt, time_scale=factor,
                        counts=ds.counts, info={**ds.info, "rescaled_from_steps": ds.n_steps})


def measure(params, dataset, indices, conv: Conventions, *, batch_size: int = 256,
            dtype=np.float32) -> dict:
    """Accuracy, mean cross-entropy and spike cost on ``dataset[indices]``.

    ``refsnn.train.evaluate``'s pass, also counting spikes. Every hidden spike of the
    recorded trace counts; a synaptic operation is one spike reaching one synapse, so
    ``synops = spikes x (N + C)`` (dense recurrent weights, self-connections included,
    and the readout).

    Returns
    -------
    dict
        ``accuracy``, ``loss``, ``spikes_per_sample``, ``synops_per_sample``,
        ``input_spikes_per_sample``, ``n_samples``.
    """
    import data_loaders as dl

    from .network import cross_entropy, forward

    correct, total, loss_sum, spikes, inputs = 0, 0, 0.0, 0.0, 0.0
    for x, y in dl.iterate_batches(dataset, batch_size, None, indices=indices, drop_last=False,
                                   dtype=dtype):
        tr = forward(params, x, conv)
        correct += int(np.sum(np.argmax(tr.logits, axis=1) == y))
        loss_sum += cross_entropy(tr.logits.astype(np.float64), y)[0] * len(y)
        spikes += float(np.sum(tr.spikes, dtype=np.float64))
        inputs += float(np.sum(x, dtype=np.float64))
        total += len(y)
    fan_out = params.n_hidden + params.n_out
    return dict(accuracy=correct / total, loss=float(loss_sum / total),
                spikes_per_sample=spikes / total, synops_per_sample=spikes * fan_out / total,
                input_spikes_per_sample=inputs / total, n_samples=total)


def _taus_ms(params, dt: float) -> dict:
    return {f"tau_{k}_ms": (-dt / np.log(getattr(params, f"decay_{k}").astype(np.float64)) * 1e3)
            .tolist() for k in ("mem", "syn")}


#: TrainConfig fields that only shape the network and its training, never the data
_MODEL_FIELDS = frozenset({
    "config", "hidden", "epochs", "lr", "lr_decays", "tau_syn_ms", "tau_mem_ms", "het_dist",
    "tau_param", "train_threshold", "het_threshold", "preset", "dtype", "weight_init",
    "weight_scale",
})
_DATA_CACHE: dict = {}
_DATA_LOCK = threading.Lock()


def _open_data(cfg: TrainConfig):
    """Return ``open_data(cfg)``, shared by the runs of a worker that read the same data.

    The configurations of one seed read the same data: a procedural task is generated,
    Fashion-MNIST decoded, once per worker. The last two are kept.
    """
    key = tuple(sorted((k, v) for k, v in cfg.as_dict().items() if k not in _MODEL_FIELDS))
    with _DATA_LOCK:
        if key not in _DATA_CACHE:
            while len(_DATA_CACHE) >= 2:
                _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
            _DATA_CACHE[key] = open_data(cfg)
        return _DATA_CACHE[key]


def _train_or_load(cfg: TrainConfig, run_dir: Path, data):
    """Load the finished training in ``run_dir``, or train (resuming a partial one)."""
    resume = False
    if (run_dir / CHECKPOINT).exists():
        try:
            done = _load_finished(run_dir, cfg)
        except CheckpointError:
            done = None  # corrupt: train from the start, which overwrites it
        else:
            if done is not None:
                return done
            resume = True  # the folder is named after the config: a partial run of it
    return train(cfg, run_dir, resume=resume, progress=False, data=data)


def execute(spec: RunSpec, out) -> dict:
    """Train (or load) one run, test it, and write its result file atomically.

    Returns the result record (also in ``spec.result_path(out)``).
    """
    t0 = time.perf_counter()
    out = Path(out)
    run_dir = out / "runs" / spec.name
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = spec.cfg
    train_ds, test_ds, train_idx, test_idx = _open_data(cfg)
    base_steps = test_ds.n_steps
    if spec.train_factor != 1:
        steps = scaled_steps(base_steps, spec.train_factor)
        cfg = cfg.replace(time_scale=spec.train_factor, n_steps=steps)
        data = (_rescaled(train_ds, spec.train_factor, steps),
                _rescaled(test_ds, spec.train_factor, steps), train_idx, test_idx)
    else:
        data = (train_ds, test_ds, train_idx, test_idx)
    result = _train_or_load(cfg, run_dir, data)
    conv = Conventions.preset(cfg.preset)
    dtype = np.dtype(cfg.dtype)
    own = measure(result.params, data[1], test_idx, conv, dtype=dtype)
    scales = []
    for g in spec.test_factors:
        steps = scaled_steps(base_steps, g)
        m = measure(result.params, _rescaled(test_ds, g, steps), test_idx, conv, dtype=dtype)
        scales.append(dict(factor=g, n_steps=steps, **m))
    record = dict(
        format=RESULT_FORMAT,
        name=spec.name,
        spec=spec.as_dict(),
        train_config=cfg.as_dict(),
        dt_ms=train_ds.dt * 1e3,
        base_steps=base_steps,
        metrics=result.metrics,
        test_accuracy=result.test_accuracy,
        params_sha256=params_sha256(result.params),
        spike_cost=dict(spikes_per_sample=own["spikes_per_sample"],
                        synops_per_sample=own["synops_per_sample"],
                        input_spikes_per_sample=own["input_spikes_per_sample"],
                        fan_out=result.params.n_hidden + result.params.n_out,
                        n_samples=own["n_samples"], accuracy=own["accuracy"]),
        initial_taus=_taus_ms(result.initial_params, train_ds.dt),
        learned_taus=_taus_ms(result.params, train_ds.dt),
        timescale=scales,
        train_seconds=result.seconds,
        seconds=time.perf_counter() - t0,
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    record = json.loads(json.dumps(record))  # what a reader of the file gets
    _atomic_write_bytes(spec.result_path(out), json.dumps(record, indent=1).encode())
    return record


def run_task(spec: dict, out: str) -> dict:
    """Run the Dask task: ``execute`` one run given as ``RunSpec.as_dict()``.

    Parallelism is across runs: each task's kernels use one thread.
    """
    import numba

    numba.set_num_threads(1)
    return execute(RunSpec.from_dict(spec), out)


def load_result(spec: RunSpec, out):
    """Read the finished run's record, or None (missing, unreadable, or of another spec)."""
    path = spec.result_path(out)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != RESULT_FORMAT:
        return None
    return record if record.get("spec") == json.loads(json.dumps(spec.as_dict())) else None


# ------------------------------------------------------------------- the cluster
@contextlib.contextmanager
def _connect(scheduler=None, workers=None):
    """Yield a Dask client of the scheduler at ``scheduler``, or of a new LocalCluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("refsnn experiment runs on Dask distributed: pip install "
                         "'dask[distributed]' (or the 'dist' extra of refsnn)") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); start "
                             "one with 'dask scheduler' and workers with 'dask worker ADDRESS'"
                             ) from None
        with client:
            yield client
        return
    import logging

    n = workers or min(2, len(os.sched_getaffinity(0)))
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def _describe(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def run_grid(specs, out, *, client=None, scheduler=None, workers=None, progress=True,
             task=run_task, log=None) -> dict:
    """Run every unfinished spec as a Dask task; retry a failed one once.

    Parameters
    ----------
    specs : list of RunSpec
    out : path
        Output folder (made absolute: the workers may run elsewhere).
    client : distributed.Client, optional
        Use this client; otherwise connect to ``scheduler`` or start a LocalCluster of
        ``workers`` single-threaded worker processes (default: up to 2).
    progress : bool
        A tqdm bar over the whole grid (finished runs count as done).
    task : callable
        ``task(spec_dict, out) -> record``; ``run_task`` (tests substitute others).
    log : callable, optional
        Receives one line per finished, failed or retried run (default: stderr).

    Returns
    -------
    dict
        ``records`` (one per spec, in order; None for a run that failed twice, read
        back from the result files), ``failures`` (``{"run", "errors"}`` per run that
        failed twice), ``ran``, ``skipped``, ``retried``, ``seconds``.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if log is None:
        def log(line):
            tqdm.write(line, file=sys.stderr)
    pending = [s for s in specs if load_result(s, out) is None]
    skipped = len(specs) - len(pending)
    failures, retried = [], 0
    if pending:
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(_connect(scheduler, workers))
            from distributed import as_completed

            bar = stack.enter_context(tqdm(total=len(specs), initial=skipped, unit="run",
                                           desc="grid", disable=not progress, file=sys.stderr))
            stamp = f"{os.getpid()}-{time.time_ns()}"

            def submit(spec, attempt):
                return client.submit(task, spec.as_dict(), str(out), pure=False,
                                     key=f"refsnn-{spec.name}-attempt{attempt}-{stamp}")

            futures = {}
            for spec in pending:
                futures[submit(spec, 1)] = (spec, 1, [])
            queue = as_completed(list(futures))
            for fut in queue:
                spec, attempt, errors = futures.pop(fut)
                if fut.status == "finished":
                    record = fut.result()
                    if load_result(spec, out) is None:  # a worker without our file system
                        _atomic_write_bytes(spec.result_path(out),
                                            json.dumps(record, indent=1).encode())
                    log(f"{spec.name}: test accuracy {record['test_accuracy']:.4f}, "
                        f"{record['spike_cost']['spikes_per_sample']:.1f} spikes/sample "
                        f"({record['seconds']:.1f} s)")
                    bar.update()
                else:
                    exc = fut.exception()
                    errors = [*errors, _describe(exc)]
                    tb = "".join(traceback.format_exception(type(exc), exc, fut.traceback()))
                    err_path = out / "runs" / spec.name / f"error-attempt{attempt}.txt"
                    err_path.parent.mkdir(parents=True, exist_ok=True)
                    _atomic_write_bytes(err_path, tb.encode())
                    if attempt < ATTEMPTS:
                        retried += 1
                        log(f"refsnn: run {spec.name} failed (attempt {attempt} of {ATTEMPTS}): "
                            f"{errors[-1]}; retrying (traceback in {err_path})")
                        new = submit(spec, attempt + 1)
                        futures[new] = (spec, attempt + 1, errors)
                        queue.add(new)
                    else:
                        failures.append(dict(run=spec.name, errors=errors))
                        log(f"refsnn: run {spec.name} failed {attempt} times: {errors[-1]} "
                            f"(traceback in {err_path}); left out of the aggregates")
                        bar.update()
                fut.release()
    records = [load_result(s, out) for s in specs]
    return dict(records=records, failures=failures, ran=len(pending), skipped=skipped,
                retried=retried, seconds=time.perf_counter() - t0)


# ------------------------------------------------------------------- aggregation
def mean_sem(values) -> tuple:
    """Return ``(mean, standard error, n)`` of ``values``.

    The standard error is ``std(ddof=1) / sqrt(n)`` (0 for one value), as in
    ``refsnn.compare.summarise``.
    """
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return math.nan, math.nan, 0
    sem = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0
    return float(a.mean()), sem, int(a.size)


def fit_distribution(values, family: str, *, max_bins: int = 20) -> dict:
    """Maximum-likelihood fit with location 0, and a chi-square goodness of fit.

    Parameters
    ----------
    values : array_like of float > 0
        Samples (time constants in ms).
    family : {"gamma", "lognorm"}
        ``scipy.stats.gamma`` (shape ``a``, scale) or ``scipy.stats.lognorm`` (shape
        ``s``, scale = exp(mu)), both with ``floc=0``.
    max_bins : int
        The chi-square uses ``k = min(max_bins, n // 5)`` bins of equal probability
        under the fit (expected count n/k >= 5 each) and ``k - 1 - 2`` degrees of
        freedom (two fitted parameters): ``scipy.stats.chisquare(ddof=2)``.

    Returns
    -------
    dict
        ``shape``, ``scale``, ``chi2``, ``p``, ``bins``; NaN where a fit is undefined
        (fewer than 20 values, or all equal).
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    k = min(max_bins, x.size // 5)
    nan = dict(shape=math.nan, scale=math.nan, chi2=math.nan, p=math.nan, bins=0)
    if k < 4 or np.ptp(x) <= 1e-9 * abs(x.mean()):
        return nan
    dist = {"gamma": stats.gamma, "lognorm": stats.lognorm}[family]
    shape, _, scale = dist.fit(x, floc=0)
    edges = dist.ppf(np.linspace(0, 1, k + 1), shape, scale=scale)
    observed = np.histogram(x, bins=np.concatenate([[-np.inf], edges[1:-1], [np.inf]]))[0]
    expected = np.full(k, x.size / k)
    chi2, p = stats.chisquare(observed, expected, ddof=2)
    return dict(shape=float(shape), scale=float(scale), chi2=float(chi2), p=float(p), bins=int(k))


def _ok(records):
    return [r for r in records if r is not None]


def _cfg(r) -> dict:
    return r["spec"]["config"]


def _order(configs):
    return {c: i for i, c in enumerate(configs)}


def spike_cost_rows(records, configs, axis=None) -> list:
    """Tabulate the spike cost: mean +- s.e.m. over seeds of spikes per test sample.

    One row per configuration (and per value of ``axis``: "hidden" or "train_factor"),
    with hidden spikes and synaptic operations per sample.
    """
    groups = {}
    for r in _ok(records):
        value = None if axis is None else (
            _cfg(r)["hidden"] if axis == "hidden" else r["spec"]["train_factor"])
        groups.setdefault((_cfg(r)["config"], value), []).append(r["spike_cost"])
    rows = []
    order = _order(configs)
    for (config, value), costs in sorted(groups.items(),
                                         key=lambda kv: (order[kv[0][0]], kv[0][1] or 0)):
        s, s_sem, n = mean_sem([c["spikes_per_sample"] for c in costs])
        o, o_sem, _ = mean_sem([c["synops_per_sample"] for c in costs])
        row = dict(config=config)
        if axis is not None:
            row[axis] = value
        row.update(spikes_per_sample=s, spikes_sem=s_sem, synops_per_sample=o, synops_sem=o_sem,
                   fan_out=costs[0]["fan_out"], n=n)
        rows.append(row)
    return rows


def _table_rows(records, configs):
    by_config = {c: [] for c in configs}
    for r in _ok(records):
        by_config[_cfg(r)["config"]].append(SimpleNamespace(test_accuracy=r["test_accuracy"]))
    return summarise({c: runs for c, runs in by_config.items() if runs})


#: the clamps of trained (and sampled) time constants, in steps: tau = -dt / log(decay)
_TAU_MIN, _TAU_MAX = -1 / math.log(DECAY_MIN), -1 / math.log(DECAY_MAX)


def aggregate(experiment: str, records, configs) -> dict:
    """Aggregate an experiment's run records (``run_grid``'s ``records``).

    Returns
    -------
    dict
        ``rows`` (the ``--json`` rows), ``spike_cost`` (``spike_cost_rows``), and per
        experiment: ``table``: rows ``{config, mean, sem, n}`` of last-epoch test
        accuracy (``accuracies`` per seed in ``detail``); ``timescale``: rows
        ``{config, train_factor, test_factor, mean, sem, n, spikes_per_sample}``; ``neurons``: rows
        ``{config, hidden, mean, sem, n}``; ``distributions``: rows
        ``{config, quantity, which, n, mean, std, median, gamma_*, lognorm_*}``, with the
        table's accuracy rows in ``accuracy``.
    """
    configs = tuple(configs)
    ok = _ok(records)
    order = _order(configs)
    if experiment == "table":
        detail = _table_rows(records, configs)
        rows = [{k: r[k] for k in ("config", "mean", "sem", "n")} for r in detail]
        return dict(rows=rows, detail=detail, spike_cost=spike_cost_rows(records, configs))
    if experiment == "timescale":
        groups = {}
        for r in ok:
            for t in r["timescale"]:
                key = (_cfg(r)["config"], r["spec"]["train_factor"], t["factor"])
                groups.setdefault(key, []).append(t)
        rows = []
        for (config, ft, fs), tests in sorted(groups.items(),
                                              key=lambda kv: (order[kv[0][0]], *kv[0][1:])):
            mean, sem, n = mean_sem([t["accuracy"] for t in tests])
            spikes = mean_sem([t.get("spikes_per_sample", math.nan) for t in tests])[0]
            rows.append(dict(config=config, train_factor=ft, test_factor=fs, mean=mean, sem=sem,
                             n=n, spikes_per_sample=spikes))
        return dict(rows=rows, spike_cost=spike_cost_rows(records, configs, "train_factor"))
    if experiment == "neurons":
        groups = {}
        for r in ok:
            groups.setdefault((_cfg(r)["config"], _cfg(r)["hidden"]), []).append(r["test_accuracy"])
        rows = []
        for (config, hidden), acc in sorted(groups.items(),
                                            key=lambda kv: (order[kv[0][0]], kv[0][1])):
            mean, sem, n = mean_sem(acc)
            rows.append(dict(config=config, hidden=hidden, mean=mean, sem=sem, n=n))
        return dict(rows=rows, spike_cost=spike_cost_rows(records, configs, "hidden"))
    if experiment == "distributions":
        rows = []
        for config in configs:
            runs = [r for r in ok if _cfg(r)["config"] == config]
            if not runs:
                continue
            for quantity in ("tau_mem_ms", "tau_syn_ms"):
                for which in ("initial", "learned"):
                    x = np.concatenate([np.asarray(r[f"{which}_taus"][quantity]) for r in runs])
                    dt = np.repeat([r["dt_ms"] for r in runs],
                                   [len(r[f"{which}_taus"][quantity]) for r in runs])
                    row = dict(config=config, quantity=quantity, which=which, n=int(x.size),
                               seeds=len(runs), mean=float(x.mean()), std=float(x.std()),
                               median=float(np.median(x)), min=float(x.min()), max=float(x.max()),
                               at_lower_clamp=float(np.mean(x <= _TAU_MIN * dt * (1 + 1e-4))),
                               at_upper_clamp=float(np.mean(x >= _TAU_MAX * dt * (1 - 1e-4))))
                    for family in ("gamma", "lognorm"):
                        fit = fit_distribution(x, family)
                        row.update({f"{family}_{k}": v for k, v in fit.items()})
                    rows.append(row)
        return dict(rows=rows, accuracy=_table_rows(records, configs),
                    spike_cost=spike_cost_rows(records, configs))
    raise ValueError(f"experiment must be one of {list(EXPERIMENTS)}, got {experiment!r}")


# ------------------------------------------------------------------- reports
def _pct(mean, sem):
    return f"{100 * mean:.2f} +- {100 * sem:.2f}"


def _spike_table(rows, axis=None) -> str:
    head = f"| configuration |{f' {axis} |' if axis else ''} hidden spikes / sample | " \
           "synaptic ops / sample | seeds |"
    lines = [head, "|---|" + ("---|" if axis else "") + "---|---|---|"]
    for r in rows:
        ax = f" {r[axis]:g} |" if axis else ""
        lines.append(f"| {r['config']} |{ax} {r['spikes_per_sample']:.1f} +- "
                     f"{r['spikes_sem']:.1f} | {r['synops_per_sample']:.0f} +- "
                     f"{r['synops_sem']:.0f} | {r['n']} |")
    return "\n".join(lines)


def _grid_table(rows, configs, row_key, col_key, row_label, col_label) -> str:
    cols = sorted({r[col_key] for r in rows})
    keys = sorted({(r["config"], r[row_key]) if row_key else (r["config"],) for r in rows},
                  key=lambda k: (_order(configs)[k[0]], *k[1:]))
    cell = {((r["config"], r[row_key]) if row_key else (r["config"],), r[col_key]): r for r in rows}
    head = "| configuration |" + (f" {row_label} |" if row_key else "") + \
        "".join(f" {col_label} {c:g} |" for c in cols)
    lines = [head, "|---|" + ("---|" if row_key else "") + "---|" * len(cols)]
    for k in keys:
        cells = [cell.get((k, c)) for c in cols]
        lines.append(f"| {k[0]} |" + (f" {k[1]:g} |" if row_key else "") + "".join(
            f" {_pct(x['mean'], x['sem'])} |" if x else " |" for x in cells))
    return "\n".join(lines)


def _fit_cells(r, family) -> tuple:
    if not r[f"{family}_bins"]:
        return "n/a (all equal)", "n/a"
    return (f"{r[f'{family}_shape']:.3g}, {r[f'{family}_scale']:.3g}",
            f"{r[f'{family}_chi2']:.1f} (p={r[f'{family}_p']:.2g}, {r[f'{family}_bins']} bins)")


def _fit_table(rows) -> str:
    lines = ["| configuration | quantity | | n | mean | std | at clamps (low, high) "
             "| gamma shape, scale | gamma chi2 (p) | lognormal s, scale | lognormal chi2 (p) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g, gc = _fit_cells(r, "gamma")
        ln, lc = _fit_cells(r, "lognorm")
        lines.append(f"| {r['config']} | {r['quantity'].replace('_ms', '')} (ms) | {r['which']} | "
                     f"{r['n']} | {r['mean']:.2f} | {r['std']:.2f} | "
                     f"{100 * r['at_lower_clamp']:.0f} %, {100 * r['at_upper_clamp']:.0f} % | "
                     f"{g} | {gc} | {ln} | {lc} |")
    return "\n".join(lines)


def _csv(path: Path, rows, fields=None) -> None:
    import csv
    import io

    fields = fields or (list(rows[0]) if rows else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (";".join(f"{v:.6g}" for v in r[k]) if isinstance(r.get(k), list)
                        else r.get(k)) for k in fields})
    _atomic_write_bytes(path, buf.getvalue().encode())


def budget(base: TrainConfig, seeds, configs, n_runs: int) -> str:
    """One line: what the grid trained on."""
    return (f"dataset {base.dataset}, {base.train_size or 'all'} training / "
            f"{base.test_size or 'all'} test samples, {base.epochs} epochs, batch "
            f"{base.batch_size}, {base.hidden} hidden neurons, seeds {list(seeds)}, configurations "
            f"{list(configs)}, preset {base.preset}, {base.dtype}; {n_runs} runs")


def write_report(experiment: str, out, agg: dict, *, header: str, configs, records=(),
                 failures=(), plots=True) -> list:
    """Write ``<experiment>.md``, ``.csv``, ``-spike-cost.csv``, ``.json`` (and ``.png``)."""
    out = Path(out)
    files = []
    rows = agg["rows"]
    md = [f"# refsnn experiment {experiment}", "", header, ""]
    if experiment == "table":
        md += ["Last-epoch test accuracy:", "", format_table(agg["detail"]), ""]
        _csv(out / "table.csv", agg["detail"], ["config", "mean", "sem", "n", "accuracies"])
    elif experiment == "timescale":
        md += ["Test accuracy (%) at each test time scale (steps scaled alike), by training "
               "time scale:", "",
               _grid_table(rows, configs, "train_factor", "test_factor", "trained at", "x"), ""]
        _csv(out / "timescale.csv", rows)
    elif experiment == "neurons":
        md += ["Last-epoch test accuracy (%) by hidden size:", "",
               _grid_table(rows, configs, None, "hidden", None, "N ="), ""]
        _csv(out / "neurons.csv", rows)
    else:
        md += ["Time constants pooled over seeds; fits by maximum likelihood with location 0; "
               "chi-square over bins of equal probability under the fit, 2 fitted parameters.",
               "", _fit_table(rows), "", "Last-epoch test accuracy:", "",
               format_table(agg["accuracy"]), ""]
        _csv(out / "distributions.csv", rows)
    files.append(out / f"{experiment}.csv")
    axis = {"timescale": "train_factor", "neurons": "hidden"}.get(experiment)
    md += ["Spike cost on the test samples (per sample; synaptic ops = spikes x (N + C)):", "",
           _spike_table(agg["spike_cost"], axis), ""]
    _csv(out / f"{experiment}-spike-cost.csv", agg["spike_cost"])
    files.append(out / f"{experiment}-spike-cost.csv")
    if failures:
        md += ["Runs that failed twice (left out of the aggregates):", ""]
        md += [f"- {f['run']}: {f['errors'][-1]}" for f in failures] + [""]
    _atomic_write_bytes(out / f"{experiment}.md", "\n".join(md).encode())
    _atomic_write_bytes(out / f"{experiment}.json", json.dumps(
        dict(agg, header=header, failures=list(failures)), indent=1).encode())
    files = [out / f"{experiment}.md", *files, out / f"{experiment}.json"]
    if plots and rows and experiment != "table":
        files.append(_plot(experiment, out, agg, configs, records))
    return files


def _plot(experiment, out: Path, agg, configs, records) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = out / f"{experiment}.png"
    rows = agg["rows"]
    if experiment == "timescale":
        factors = sorted({r["train_factor"] for r in rows})
        fig, axes = plt.subplots(1, len(factors), figsize=(4.6 * len(factors), 3.6), squeeze=False,
                                 sharey=True)
        for ax, ft in zip(axes[0], factors, strict=True):
            for config in configs:
                rs = sorted((r for r in rows if r["config"] == config and r["train_factor"] == ft),
                            key=lambda r: r["test_factor"])
                if not rs:
                    continue
                x = np.array([r["test_factor"] for r in rs])
                m = 100 * np.array([r["mean"] for r in rs])
                s = 100 * np.array([r["sem"] for r in rs])
                ax.plot(x, m, marker="o", ms=3, label=config)
                ax.fill_between(x, m - s, m + s, alpha=0.2)
            ax.axvline(ft, color="k", ls=":", lw=1)
            ax.set_xscale("log", base=2)
            ticks = sorted({r["test_factor"] for r in rows})
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel("test time scale (x spike times)")
            ax.set_title(f"trained at x{ft:g}")
            ax.grid(alpha=0.3)
        axes[0, 0].set_ylabel("test accuracy (%)")
        axes[0, 0].legend(fontsize=8)
    elif experiment == "neurons":
        fig, (a0, a1) = plt.subplots(1, 2, figsize=(9, 3.6))
        for config in configs:
            rs = [r for r in rows if r["config"] == config]
            cs = [r for r in agg["spike_cost"] if r["config"] == config]
            if not rs:
                continue
            a0.errorbar([r["hidden"] for r in rs], [100 * r["mean"] for r in rs],
                        [100 * r["sem"] for r in rs], marker="o", ms=3, capsize=2, label=config)
            a1.errorbar([r["hidden"] for r in cs], [r["synops_per_sample"] for r in cs],
                        [r["synops_sem"] for r in cs], marker="o", ms=3, capsize=2, label=config)
        sizes = sorted({r["hidden"] for r in rows})
        for ax in (a0, a1):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes, [str(h) for h in sizes])
            ax.minorticks_off()
            ax.set_xlabel("hidden neurons")
            ax.grid(alpha=0.3)
        a0.set_ylabel("test accuracy (%)")
        a1.set_ylabel("synaptic ops / test sample")
        a1.set_yscale("log")
        a0.legend(fontsize=8)
    else:
        from scipy import stats

        present = [c for c in configs if any(r["config"] == c for r in rows)]
        fig, axes = plt.subplots(2, len(present), figsize=(3.4 * len(present), 5.4), squeeze=False)
        ok = _ok(records)
        for j, config in enumerate(present):
            runs = [r for r in ok if _cfg(r)["config"] == config]
            for i, quantity in enumerate(("tau_mem_ms", "tau_syn_ms")):
                ax = axes[i, j]
                init = np.concatenate([r["initial_taus"][quantity] for r in runs])
                learned = np.concatenate([r["learned_taus"][quantity] for r in runs])
                hi = max(init.max(), learned.max()) * 1.05
                bins = np.linspace(0, hi, 40)
                # a point mass (HomInit; nothing learned) is a line, not a bar off the scale
                if np.ptp(learned) > 0:
                    ax.hist(learned, bins=bins, density=True, alpha=0.5, color="C0",
                            label="learned")
                else:
                    ax.axvline(learned[0], color="C0", lw=4, alpha=0.5, label="learned (all equal)")
                if np.ptp(init) > 0:
                    ax.hist(init, bins=bins, density=True, histtype="step", color="0.4",
                            label="initial")
                else:
                    ax.axvline(init[0], color="0.4", ls=":", label="initial (all equal)")
                fit = next(r for r in rows if r["config"] == config and r["quantity"] == quantity
                           and r["which"] == "learned")
                xs = np.linspace(hi / 400, hi, 300)
                if fit["gamma_bins"]:
                    ax.plot(xs, stats.gamma.pdf(xs, fit["gamma_shape"], scale=fit["gamma_scale"]),
                            color="C1", lw=1, label="gamma fit")
                    ax.plot(xs, stats.lognorm.pdf(xs, fit["lognorm_shape"],
                                                  scale=fit["lognorm_scale"]),
                            color="C2", lw=1, ls="--", label="log-normal fit")
                ax.set_xlim(0, hi)
                ax.set_xlabel(quantity.replace("_ms", " (ms)"))
                ax.set_title(config, fontsize=9)
                ax.tick_params(labelsize=7)
        labels = {}
        for ax in axes.flat:
            for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
                labels.setdefault(label, h)
        fig.legend(list(labels.values()), list(labels), loc="lower center", ncol=len(labels),
                   fontsize=8)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    if experiment != "distributions":
        fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ------------------------------------------------------------------- the command
def _number_list(kind):
    import argparse

    def parse(text):
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers, got {text!r}") from None
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
        return values

    return parse


def add_parser(subparsers) -> None:
    """Register ``refsnn experiment`` on the CLI's subparsers."""
    from .cli import _add_training_options, _positive_int

    p = subparsers.add_parser(
        "experiment", help="the paper's experiments as grids of runs on Dask distributed",
        description=__doc__.split("\n")[0])
    p.add_argument("experiment", choices=EXPERIMENTS)
    p.add_argument("--configs", default=",".join(PAPER_CONFIGS),
                   help="comma-separated configurations (the paper's four)")
    p.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0..K-1 (3)")
    p.add_argument("--scheduler", default=None,
                   help="address of a Dask scheduler (tcp://host:port); default: a LocalCluster")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="worker processes of the LocalCluster (up to 2 by default)")
    p.add_argument("--hidden-sizes", type=_number_list(int),
                   default=DEFAULT_HIDDEN_SIZES, help="neurons: hidden sizes (16,32,64,128,256)")
    p.add_argument("--train-factors", type=_number_list(float), default=DEFAULT_TRAIN_FACTORS,
                   help="timescale: training time scales (0.5,1)")
    p.add_argument("--test-factors", type=_number_list(float), default=DEFAULT_TEST_FACTORS,
                   help="timescale: test time scales (0.25,0.5,0.75,1,1.5,2,3,4)")
    _add_training_options(p, epochs=3, train_size=5000, test_size=1000)
    p.set_defaults(func=_experiment)


def _experiment(args) -> int:
    from .cli import _train_config

    configs = tuple(c for c in args.configs.split(",") if c)
    bad = [c for c in configs if c not in CONFIGS]
    if bad or not configs:
        raise ValueError(f"--configs: unknown configuration(s) {bad}; choose from {list(CONFIGS)}")
    base = _train_config(args, config=configs[0], seed=0)
    seeds = tuple(range(args.seeds))
    specs = expand_grid(args.experiment, base, configs=configs, seeds=seeds,
                        hidden_sizes=args.hidden_sizes, train_factors=args.train_factors,
                        test_factors=args.test_factors)
    out = Path(args.out) if args.out else Path("runs") / f"experiment-{base.dataset}"
    try:
        grid = run_grid(specs, out, scheduler=args.scheduler, workers=args.workers,
                        progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"refsnn: interrupted; finished runs are kept in {out}; rerun the same command "
              "to continue", file=sys.stderr)
        return 130
    agg = aggregate(args.experiment, grid["records"], configs)
    header = budget(base, seeds, configs, len(specs))
    if args.experiment == "neurons":
        header = header.replace(f"{base.hidden} hidden neurons",
                                f"hidden neurons {list(args.hidden_sizes)}")
    if args.experiment == "timescale":
        header += (f"; trained at time scales {list(args.train_factors)}, tested at "
                   f"{list(args.test_factors)}")
    files = write_report(args.experiment, out, agg, header=header, configs=configs,
                         records=grid["records"], failures=grid["failures"])
    status = (f"{grid['ran']} runs run, {grid['skipped']} finished earlier, {grid['retried']} "
              f"retried, {len(grid['failures'])} failed; {grid['seconds']:.1f} s")
    if args.json:
        print(json.dumps(dict(rows=agg["rows"], spike_cost=agg["spike_cost"],
                              failed=grid["failures"], ran=grid["ran"], skipped=grid["skipped"],
                              retried=grid["retried"], seconds=grid["seconds"], out=str(out),
                              files=[str(f) for f in files])))
    else:
        print((out / f"{args.experiment}.md").read_text())
        print(f"{status}\nwritten: " + ", ".join(str(f) for f in files))
    return 1 if grid["failures"] else 0
