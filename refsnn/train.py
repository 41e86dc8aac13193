"""Training on the CPU: the paper's configurations, Adam, checkpoints and metrics.

Configurations (Perez-Nieves et al. 2021):

=============== ========================= =========================================
name            initial time constants    trained
=============== ========================= =========================================
hominit-stdtr   all equal (HomInit)       weights (StdTr)
hetinit-stdtr   Gamma, shape 3 (HetInit)  weights
hominit-hettr   all equal                 weights + per-neuron hidden decays (HetTr)
hetinit-hettr   Gamma, shape 3            weights + per-neuron hidden decays
hominit-homtr   all equal                 weights + one shared decay per kind (HomTr)
=============== ========================= =========================================

Readout decays are never trained. Trained decays are either the decay factors
themselves, clamped to [2/e, 0.995] after every step (the paper), or ``log(tau/dt)``
clamped to the same range (``tau_param="log_tau"``). Thresholds, if trained, are
clamped to [0.5, 1.5].

A run is a pure function of its ``TrainConfig``: the initial network comes from
``default_rng([seed, 0])``, the shuffle of epoch e from ``default_rng([seed, 1, e])``,
and the kernels are deterministic, so the same config gives bitwise-identical
parameters (``params_sha256``), and a run resumed from its checkpoint ends exactly
where the uninterrupted run ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .conventions import PRESET_NAMES, Conventions
from .init import DECAY_MAX, DECAY_MIN, TAU_DISTRIBUTIONS, THRESHOLD_MAX, THRESHOLD_MIN, init_params
from .network import forward, loss_grad_and_logits
from .params import PARAM_NAMES, Params, aligned_copy

__all__ = [
    "CONFIGS",
    "TrainConfig",
    "TrainResult",
    "CheckpointError",
    "train",
    "evaluate",
    "params_sha256",
    "load_checkpoint",
]

CONFIGS = {
    "hominit-stdtr": ("hom", "std"),
    "hetinit-stdtr": ("het", "std"),
    "hominit-hettr": ("hom", "het"),
    "hetinit-hettr": ("het", "het"),
    "hominit-homtr": ("hom", "hom"),
}
#: per dataset: the weight initialisation and input-weight scale that make the layer
#: fire at the start. The paper's initialisation otherwise, except:
#: - fmnist: with the paper's bound 1/sqrt(N) and the latency code, a HomInit network is
#:   silent for some seeds (seed 0: not one hidden spike in 512 images, max v = 0.90);
#:   its readout then never leaves the zero initial state, which the max over time
#:   includes, so every gradient is exactly zero and it stays at chance. Input weights
#:   x 1.5 make every configuration start active (``--weight-scale 1`` is the paper's).
#: - the procedural tasks: one spike per input is far too weak a drive (measured).
DATASET_WEIGHT_INIT = {
    "fmnist": ("paper", 1.5),
    "yinyang": ("fan_in", 10.0),
    "randman": ("fan_in", 10.0),
    "delay": ("fan_in", 2.0),
}
PAPER_CONFIGS = ("hominit-stdtr", "hetinit-stdtr", "hominit-hettr", "hetinit-hettr")
CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not belong to this run."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (times in ms, sizes in samples)."""

    dataset: str = "fmnist"
    config: str = "hetinit-hettr"
    hidden: int = 128
    epochs: int = 3
    train_size: int | None = 5000
    test_size: int | None = 1000
    batch_size: int = 64
    seed: int = 0
    lr: float = 1e-3
    lr_decays: float = 1e-3
    tau_syn_ms: float = 10.0
    tau_mem_ms: float = 20.0
    het_dist: str = "gamma"
    tau_param: str = "decay"
    train_threshold: bool = False
    het_threshold: bool = False
    preset: str = "paper"
    dtype: str = "float32"
    n_steps: int | None = None
    dt_ms: float | None = None
    time_scale: float = 1.0
    weight_init: str | None = None
    weight_scale: float | None = None
    data_root: str | None = None

    def __post_init__(self):
        init, scale = DATASET_WEIGHT_INIT.get(self.dataset, ("paper", 1.0))
        if self.weight_init is None:
            object.__setattr__(self, "weight_init", init)
        if self.weight_scale is None:
            object.__setattr__(self, "weight_scale", scale)
        if self.weight_init not in ("paper", "fan_in"):
            raise ValueError(f"weight_init must be 'paper' or 'fan_in', got {self.weight_init!r}")
        if self.config not in CONFIGS:
            raise ValueError(f"config must be one of {list(CONFIGS)}, got {self.config!r}")
        for name in ("hidden", "epochs", "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("train_size", "test_size", "n_steps"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be an integer >= 1 (or omitted for all), got {v!r}")
        for name in ("lr", "lr_decays", "tau_syn_ms", "tau_mem_ms", "time_scale", "weight_scale"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.dt_ms is not None and not (math.isfinite(self.dt_ms) and self.dt_ms > 0):
            raise ValueError(f"dt_ms must be a finite number > 0, got {self.dt_ms!r}")
        if self.het_dist not in TAU_DISTRIBUTIONS or self.het_dist == "hom":
            raise ValueError(
                f"het_dist must be one of {[d for d in TAU_DISTRIBUTIONS if d != 'hom']}, "
                f"got {self.het_dist!r}"
            )
        if self.tau_param not in ("decay", "log_tau"):
            raise ValueError(f"tau_param must be 'decay' or 'log_tau', got {self.tau_param!r}")
        if self.preset not in PRESET_NAMES:
            raise ValueError(f"preset must be one of {list(PRESET_NAMES)}, got {self.preset!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    def replace(self, **changes) -> "TrainConfig":
        """Return a copy with fields changed."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """JSON-serialisable fields."""
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """Outcome of ``train``."""

    config: TrainConfig
    params: Params
    initial_params: Params
    metrics: list = field(default_factory=list)
    seconds: float = 0.0
    samples_per_second: float = 0.0

    @property
    def test_accuracy(self) -> float:
        """Test accuracy after the last epoch."""
        return self.metrics[-1]["test_accuracy"]

    @property
    def train_accuracy(self) -> float:
        """Accuracy on the training batches of the last epoch."""
        return self.metrics[-1]["train_accuracy"]

    def summary(self) -> dict:
        """Return the JSON summary of ``refsnn train --json``."""
        last = self.metrics[-1]
        return dict(
            test_accuracy=last["test_accuracy"],
            train_accuracy=last["train_accuracy"],
            test_loss=last["test_loss"],
            train_loss=last["train_loss"],
            epochs=len(self.metrics),
            seconds=self.seconds,
            samples_per_second=self.samples_per_second,
            params_sha256=params_sha256(self.params),
            config=self.config.as_dict(),
        )


def params_sha256(params: Params) -> str:
    """SHA-256 of every parameter's bytes, in ``PARAM_NAMES`` order, with dtype and shape."""
    h = hashlib.sha256()
    for name in PARAM_NAMES:
        a = np.ascontiguousarray(getattr(params, name))
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------- trainable variables
_LOG_TAU_MIN = math.log(-1.0 / math.log(DECAY_MIN))  # tau/dt = 3.26
_LOG_TAU_MAX = math.log(-1.0 / math.log(DECAY_MAX))  # tau/dt = 199.5


def _trainable(cfg: TrainConfig) -> tuple:
    names = ["w_in", "w_rec", "w_out"]
    if CONFIGS[cfg.config][1] in ("het", "hom"):
        names += ["decay_syn", "decay_mem"]
    if cfg.train_threshold:
        names.append("threshold")
    return tuple(names)


def _to_variables(p: Params, cfg: TrainConfig) -> dict:
    """Return the optimiser's variables.

    Weights as they are; decays per neuron (HetTr) or one shared value (HomTr), as
    decays or as log(tau/dt).
    """
    mode = CONFIGS[cfg.config][1]
    out = {}
    for name in _trainable(cfg):
        a = aligned_copy(getattr(p, name))  # updated in place, so aligned once for all
        if name.startswith("decay"):
            if mode == "hom":
                a = a[:1].copy()
            if cfg.tau_param == "log_tau":
                a = np.log(-1.0 / np.log(a))
        out[name] = a
    return out


def _to_params(variables: dict, base: Params, cfg: TrainConfig) -> Params:
    changes = {}
    n = base.n_hidden
    for name, a in variables.items():
        if name.startswith("decay"):
            d = np.exp(-np.exp(-a)) if cfg.tau_param == "log_tau" else a
            changes[name] = np.ascontiguousarray(np.broadcast_to(d, (n,)), dtype=base.dtype)
        else:
            changes[name] = a
    return base.replace(**changes)


def _variable_grads(grads: Params, variables: dict, cfg: TrainConfig) -> dict:
    """Chain rule from parameter gradients to the variables'."""
    mode = CONFIGS[cfg.config][1]
    out = {}
    for name, a in variables.items():
        g = getattr(grads, name)
        if name.startswith("decay"):
            if mode == "hom":  # one shared value: the sum over the neurons it drives
                g = np.array([np.sum(g)], dtype=a.dtype)
            if cfg.tau_param == "log_tau":  # d = exp(-exp(-a)), dd/da = d exp(-a)
                ea = np.exp(-a)
                g = g * np.exp(-ea) * ea
        out[name] = np.asarray(g, dtype=a.dtype)
    return out


def _clamp(variables: dict, cfg: TrainConfig) -> None:
    for name, a in variables.items():
        if name.startswith("decay"):
            lo, hi = ((_LOG_TAU_MIN, _LOG_TAU_MAX) if cfg.tau_param == "log_tau"
                      else (DECAY_MIN, DECAY_MAX))
            np.clip(a, lo, hi, out=a)
        elif name == "threshold":
            np.clip(a, THRESHOLD_MIN, THRESHOLD_MAX, out=a)


def _adam_step(variables, grads, state, cfg: TrainConfig) -> None:
    """One Adam step (PyTorch's form of the bias correction), decays in their own group."""
    state["step"] += 1
    t = state["step"]
    b1, b2 = ADAM_BETAS
    c1, c2 = 1 - b1**t, 1 - b2**t
    for name, a in variables.items():
        g = grads[name]
        m, v = state["m"][name], state["v"][name]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        lr = cfg.lr_decays if name.startswith("decay") else cfg.lr
        a -= (lr / c1) * m / (np.sqrt(v) / math.sqrt(c2) + ADAM_EPS)


# ------------------------------------------------------------------- data
def open_data(cfg: TrainConfig):
    """Load the train and test ``SpikeDataset`` and the fixed stratified index subsets."""
    import data_loaders as dl

    kwargs = dict(root=cfg.data_root, n_steps=cfg.n_steps, time_scale=cfg.time_scale)
    if cfg.dt_ms is not None:
        kwargs["dt"] = cfg.dt_ms * 1e-3
    train_ds = dl.load_dataset(cfg.dataset, "train", **kwargs)
    test_ds = dl.load_dataset(cfg.dataset, "test", **kwargs)
    sub = np.random.default_rng([cfg.seed, 2])
    train_idx = (
        dl.stratified_subset(train_ds.labels, cfg.train_size, sub)
        if cfg.train_size is not None and cfg.train_size < len(train_ds)
        else np.arange(len(train_ds))
    )
    test_idx = (
        dl.stratified_subset(test_ds.labels, cfg.test_size, sub)
        if cfg.test_size is not None and cfg.test_size < len(test_ds)
        else np.arange(len(test_ds))
    )
    if len(train_idx) < cfg.batch_size:
        raise ValueError(
            f"train_size {len(train_idx)} is smaller than batch_size {cfg.batch_size}: no "
            "full batch to train on (the last partial batch is dropped)"
        )
    return train_ds, test_ds, train_idx, test_idx


def evaluate(params: Params, dataset, indices, conv: Conventions, batch_size=256, dtype=np.float32):
    """Accuracy and mean cross-entropy on ``dataset[indices]`` (all of them, no shuffle)."""
    import data_loaders as dl

    from .network import cross_entropy

    correct, total, loss_sum = 0, 0, 0.0
    for x, y in dl.iterate_batches(dataset, batch_size, None, indices=indices, drop_last=False,
                                   dtype=dtype):
        logits = forward(params, x, conv).logits
        correct += int(np.sum(np.argmax(logits, axis=1) == y))
        loss_sum += cross_entropy(logits.astype(np.float64), y)[0] * len(y)
        total += len(y)
    return correct / total, loss_sum / total


def _tau_stats(p: Params, dt: float) -> dict:
    tau_mem = -dt / np.log(p.decay_mem.astype(np.float64)) * 1e3
    tau_syn = -dt / np.log(p.decay_syn.astype(np.float64)) * 1e3
    return dict(
        tau_mem_ms_mean=float(tau_mem.mean()), tau_mem_ms_std=float(tau_mem.std()),
        tau_syn_ms_mean=float(tau_syn.mean()), tau_syn_ms_std=float(tau_syn.std()),
    )


# ------------------------------------------------------------------- checkpoints
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save_checkpoint(out: Path, cfg, epoch, params, initial, variables, state, metrics) -> None:
    import io

    arrays = {}
    for name in PARAM_NAMES:
        arrays[f"params/{name}"] = getattr(params, name)
        arrays[f"initial/{name}"] = getattr(initial, name)
    for name, a in variables.items():
        arrays[f"var/{name}"] = a
        arrays[f"adam_m/{name}"] = state["m"][name]
        arrays[f"adam_v/{name}"] = state["v"][name]
    meta = dict(
        format="refsnn-checkpoint-1", epoch=epoch, adam_step=state["step"],
        config=cfg.as_dict(), metrics=metrics,
        next_shuffle_rng=np.random.default_rng([cfg.seed, 1, epoch + 1]).bit_generator.state,
    )
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _atomic_write_bytes(out / CHECKPOINT, buf.getvalue())


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by ``train``; ``CheckpointError`` if it is unreadable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(bytes(data.pop("meta")).decode())
        if meta.get("format") != "refsnn-checkpoint-1":
            raise ValueError(f"unknown format {meta.get('format')!r}")
        params = Params(**{n: data[f"params/{n}"] for n in PARAM_NAMES})
        initial = Params(**{n: data[f"initial/{n}"] for n in PARAM_NAMES})
        names = [k.split("/", 1)[1] for k in data if k.startswith("var/")]
        return dict(
            meta=meta, params=params, initial=initial,
            variables={n: data[f"var/{n}"].copy() for n in names},
            adam=dict(
                step=int(meta["adam_step"]),
                m={n: data[f"adam_m/{n}"].copy() for n in names},
                v={n: data[f"adam_v/{n}"].copy() for n in names},
            ),
        )
    except FileNotFoundError:
        raise
    except Exception as exc:  # any decoding problem: a corrupt or foreign file
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a refsnn checkpoint ({type(exc).__name__}: "
            f"{exc}); delete it or start without --resume"
        ) from None


def _write_metrics(out: Path, metrics: list) -> None:
    _atomic_write_bytes(out / METRICS, "".join(json.dumps(m) + "\n" for m in metrics).encode())


# ------------------------------------------------------------------- the loop
def train(cfg: TrainConfig, out=None, *, resume: bool = False, progress: bool = True,
          data=None) -> TrainResult:
    """Train one configuration; write a checkpoint and the metrics every epoch.

    Parameters
    ----------
    cfg : TrainConfig
    out : path, optional
        Output folder for ``checkpoint.npz`` (atomic, every epoch) and
        ``metrics.jsonl`` (one line per epoch). Nothing is written when None.
    resume : bool
        Continue from ``out/checkpoint.npz`` (which must belong to the same config);
        the result is bitwise identical to an uninterrupted run.
    progress : bool
        A tqdm progress bar with loss, accuracy and ETA.
    data : tuple, optional
        ``open_data(cfg)``'s result, to share loaded data between runs.

    An interrupt (Ctrl-C) loses at most the current epoch: the last checkpoint stays.
    """
    from tqdm.auto import tqdm

    import data_loaders as dl

    dtype = np.dtype(cfg.dtype)
    conv = Conventions.preset(cfg.preset)
    train_ds, test_ds, train_idx, test_idx = open_data(cfg) if data is None else data
    dt = train_ds.dt
    out = None if out is None else Path(out)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    start_epoch, metrics = 0, []
    if resume:
        if out is None or not (out / CHECKPOINT).exists():
            raise FileNotFoundError(
                f"--resume: no checkpoint at {None if out is None else out / CHECKPOINT}; "
                "start without --resume"
            )
        ck = load_checkpoint(out / CHECKPOINT)
        if ck["meta"]["config"] != cfg.as_dict():
            diff = {k: (v, cfg.as_dict().get(k)) for k, v in ck["meta"]["config"].items()
                    if cfg.as_dict().get(k) != v}
            if set(diff) - {"epochs"}:
                raise CheckpointError(
                    f"checkpoint {out / CHECKPOINT} belongs to another run (differs in "
                    f"{ {k: v for k, v in diff.items() if k != 'epochs'} }: checkpoint value, "
                    "this run); use another --out or the same options"
                )
        params, initial = ck["params"], ck["initial"]
        variables, state = ck["variables"], ck["adam"]
        start_epoch, metrics = ck["meta"]["epoch"] + 1, ck["meta"]["metrics"]
        _write_metrics(out, metrics)  # drop lines of an epoch that never checkpointed
    else:
        init_kind = CONFIGS[cfg.config][0]
        params = init_params(
            train_ds.n_inputs, cfg.hidden, train_ds.n_classes, np.random.default_rng([cfg.seed, 0]),
            dt=dt, tau_syn=cfg.tau_syn_ms * 1e-3, tau_mem=cfg.tau_mem_ms * 1e-3,
            dist="hom" if init_kind == "hom" else cfg.het_dist, het_threshold=cfg.het_threshold,
            weight_init=cfg.weight_init, weight_scale=cfg.weight_scale, conventions=conv,
            dtype=dtype,
        )
        initial = params.copy()
        variables = _to_variables(params, cfg)
        _clamp(variables, cfg)
        params = _to_params(variables, params, cfg)
        state = dict(step=0, m={k: np.zeros_like(a) for k, a in variables.items()},
                     v={k: np.zeros_like(a) for k, a in variables.items()})
        if out is not None:
            _write_metrics(out, [])

    n_batches = len(train_idx) // cfg.batch_size
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, 1, epoch])
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(
            dl.iterate_batches(train_ds, cfg.batch_size, rng, indices=train_idx, drop_last=True,
                               dtype=dtype),
            total=n_batches, desc=f"{cfg.config} epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress, leave=False, unit="batch",
        )
        for x, y in bar:
            loss, grads, logits = loss_grad_and_logits(params, x, y, conv)
            if state["step"] == 0 and not np.any(grads.w_out):
                tqdm.write(
                    "refsnn: warning: the first batch has no gradient (the hidden layer is "
                    "silent or the readout never rises above its zero initial state); "
                    "increase --weight-scale"
                )
            vgrads = _variable_grads(grads, variables, cfg)
            _adam_step(variables, vgrads, state, cfg)
            _clamp(variables, cfg)
            params = _to_params(variables, params, cfg)
            loss_sum += loss * len(y)
            correct += int(np.sum(np.argmax(logits, axis=1) == y))
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        bar.close()
        train_seconds = time.perf_counter() - t0
        test_acc, test_loss = evaluate(params, test_ds, test_idx, conv, dtype=dtype)
        seconds = time.perf_counter() - t0
        metrics.append(dict(
            epoch=epoch + 1, train_loss=loss_sum / seen, train_accuracy=correct / seen,
            test_loss=test_loss, test_accuracy=test_acc, seconds=seconds,
            train_seconds=train_seconds, samples_per_second=seen / train_seconds,
            **_tau_stats(params, dt),
        ))
        if out is not None:
            _save_checkpoint(out, cfg, epoch, params, initial, variables, state, metrics)
            _write_metrics(out, metrics)
        if progress:
            m = metrics[-1]
            tqdm.write(
                f"{cfg.config} epoch {epoch + 1}/{cfg.epochs}: train loss {m['train_loss']:.4f} "
                f"acc {m['train_accuracy']:.4f}, test acc {m['test_accuracy']:.4f} "
                f"({seconds:.1f} s)"
            )
    seconds = sum(m["seconds"] for m in metrics)
    train_secs = sum(m["train_seconds"] for m in metrics)
    return TrainResult(
        config=cfg, params=params, initial_params=initial, metrics=metrics, seconds=seconds,
        samples_per_second=(n_batches * cfg.batch_size * len(metrics)) / max(train_secs, 1e-12),
    )
