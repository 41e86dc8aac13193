"""One batch interface for every dataset: ``load_dataset`` -> ``SpikeDataset`` -> batches.

A :class:`SpikeDataset` holds, per sample, a function returning its events (times
in seconds, input indices) and converts a batch of samples to a dense
``(batch, n_steps, n_inputs)`` array only when asked (:meth:`SpikeDataset.dense`),
with the binning rule of :func:`data_loaders.encoding.bin_events`.

Defaults per dataset (``dt`` in seconds; every one can be overridden):

=========  ======  =======  ========  =======  ========================================
name       dt      n_steps  n_inputs  classes  source of the defaults
=========  ======  =======  ========  =======  ========================================
fmnist     1 ms    100      784       10       SpyTorch latency code (tau_eff 20 steps)
nmnist     1 ms    300      2312      10       paper indexing; 300 ms covers a sample
dvs        5 ms    300      32768     10 (11)  paper indexing; dt and window chosen here
shd        0.5 ms  2000     700 (70)  20       paper code (time_step 0.5 ms, 2000 steps)
ssc        0.5 ms  2000     700 (70)  35       as SHD
yinyang    1 ms    60       5         3        chosen here (spikes at 5..45 ms, bias 25)
randman    1 ms    100      100       10       chosen here
delay      1 ms    75       20        2        chosen here (2 x 10 cue + 50 delay + 5)
=========  ======  =======  ========  =======  ========================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .aedat import index_aedat31, list_gesture, read_aedat31
from .encoding import (
    DVS_SENSOR,
    NMNIST_N_INPUTS,
    bin_events,
    dvs_index,
    dvs_n_inputs,
    latency_encode,
    nmnist_index,
    shd_channel_jitter,
)
from .errors import DataFormatError
from .fashion_mnist import load_fashion_mnist
from .nmnist import list_nmnist, read_nmnist
from .procedural import YIN_YANG_SPLITS, delayed_memory, randman, yin_yang, yin_yang_encode
from .shd import SHD_N_UNITS, read_shd

__all__ = [
    "DATASET_NAMES",
    "SpikeDataset",
    "iterate_batches",
    "load_dataset",
    "stratified_subset",
]

EventsFn = Callable[[int], tuple[np.ndarray, np.ndarray]]

#: name -> (splits, default dt in seconds, default n_steps)
_DEFAULTS: dict[str, tuple[tuple[str, ...], float, int | None]] = {
    "fmnist": (("train", "test"), 1e-3, 100),
    "nmnist": (("train", "test"), 1e-3, 300),
    "dvs": (("train", "test"), 5e-3, 300),
    "shd": (("train", "test"), 0.5e-3, 2000),
    "ssc": (("train", "valid", "test"), 0.5e-3, 2000),
    "yinyang": (("train", "valid", "test"), 1e-3, 60),
    "randman": (("train", "valid", "test"), 1e-3, 100),
    "delay": (("train", "valid", "test"), 1e-3, None),  # None: the task's own length
}
DATASET_NAMES = tuple(_DEFAULTS)
_SPLIT_CODE = {"train": 0, "valid": 1, "test": 2}


class SpikeDataset:
    """A labelled set of spike-train samples, densified per batch.

    Parameters
    ----------
    name : str
        Dataset name, e.g. ``"shd"``.
    events : callable
        ``events(i) -> (times_seconds float (k,), units int (k,))`` for sample ``i``.
    labels : array_like of int, shape (n_samples,)
        Class of every sample, 0-based.
    n_inputs, n_classes, n_steps : int
        Input channels (after any unit transform), classes, steps per sample.
    dt : float
        Step length in seconds.
    time_scale : float, default 1.0
        Factor applied to every event time before binning (time-scale experiment).
    counts : bool, default False
        Dense arrays hold event counts instead of 0/1.
    unit_transform : callable, optional
        ``unit_transform(units, rng) -> units``, applied on every :meth:`dense`
        call (random augmentation such as the SHD channel jitter).
    rng : numpy.random.Generator, optional
        Default generator for ``unit_transform``.
    info : dict, optional
        Free-form description (split, root, options), kept as :attr:`info`.
    on_close : callable, optional
        Called by :meth:`close` (and on leaving a ``with`` block).

    Attributes
    ----------
    name, labels, n_inputs, n_classes, n_steps, dt, time_scale, counts, info
        As above; ``labels`` is an int64 array.
    """

    def __init__(
        self,
        name: str,
        events: EventsFn,
        labels,
        *,
        n_inputs: int,
        n_classes: int,
        n_steps: int,
        dt: float,
        time_scale: float = 1.0,
        counts: bool = False,
        unit_transform: Callable[[np.ndarray, np.random.Generator | None], np.ndarray]
        | None = None,
        rng: np.random.Generator | None = None,
        info: dict | None = None,
        on_close: Callable[[], None] | None = None,
    ):
        if not time_scale > 0 or not np.isfinite(time_scale):
            raise ValueError(f"time_scale must be positive and finite, got {time_scale}")
        if not dt > 0 or n_steps < 1 or n_inputs < 1 or n_classes < 1:
            raise ValueError(
                f"need dt > 0 and n_steps, n_inputs, n_classes >= 1, got dt={dt}, "
                f"n_steps={n_steps}, n_inputs={n_inputs}, n_classes={n_classes}"
            )
        self.name = name
        self._events = events
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_inputs = int(n_inputs)
        self.n_classes = int(n_classes)
        self.n_steps = int(n_steps)
        self.dt = float(dt)
        self.time_scale = float(time_scale)
        self.counts = bool(counts)
        self._unit_transform = unit_transform
        self.rng = rng
        self.info = dict(info or {})
        self._on_close = on_close

    def close(self) -> None:
        """Release open files (SHD/SSC keep their HDF5 file open); idempotent."""
        if self._on_close is not None:
            self._on_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __repr__(self) -> str:
        return (
            f"SpikeDataset({self.name!r}, {len(self)} samples, n_steps={self.n_steps}, "
            f"dt={self.dt}, n_inputs={self.n_inputs}, n_classes={self.n_classes})"
        )

    def events(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Events of one sample, times already multiplied by ``time_scale``.

        Returns
        -------
        times_seconds : numpy.ndarray of float64, shape (k,)
        units : numpy.ndarray of int64, shape (k,)
            Input indices before any random ``unit_transform``.
        """
        n = len(self)
        if not -n <= int(index) < n:
            raise IndexError(f"sample {index} out of range for {n} samples of {self.name}")
        times, units = self._events(int(index) % n)
        times = np.asarray(times, dtype=np.float64) * self.time_scale
        return times, np.asarray(units, dtype=np.int64)

    def dense(self, indices, dtype=np.float32, *, rng: np.random.Generator | None = None):
        """Dense input of the given samples.

        Parameters
        ----------
        indices : array_like of int, shape (batch,)
            Sample indices.
        dtype : numpy dtype, default float32
            Element type of the result.
        rng : numpy.random.Generator, optional
            Generator for a random ``unit_transform``; defaults to :attr:`rng`.

        Returns
        -------
        numpy.ndarray, shape (batch, n_steps, n_inputs)
            0/1 (or counts), binned with ``step = round(t / dt)``, steps
            ``>= n_steps`` dropped.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.zeros((indices.size, self.n_steps, self.n_inputs), dtype=dtype)
        generator = rng if rng is not None else self.rng
        for row, index in enumerate(indices):
            times, units = self.events(index)
            if self._unit_transform is not None:
                units = self._unit_transform(units, generator)
            bin_events(
                times,
                units,
                self.n_inputs,
                self.dt,
                self.n_steps,
                counts=self.counts,
                out=out[row],
            )
        return out

    def subset(self, indices) -> SpikeDataset:
        """Return a dataset of the given samples (e.g. from :func:`stratified_subset`)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"subset indices out of range for {n} samples")
        indices = indices % n if n else indices
        parent = self._events
        return SpikeDataset(
            self.name,
            lambda i: parent(int(indices[i])),
            self.labels[indices],
            n_inputs=self.n_inputs,
            n_classes=self.n_classes,
            n_steps=self.n_steps,
            dt=self.dt,
            time_scale=self.time_scale,
            counts=self.counts,
            unit_transform=self._unit_transform,
            rng=self.rng,
            info={**self.info, "subset_of": len(self)},
        )


def stratified_subset(labels, size: int, rng) -> np.ndarray:
    """Choose a fixed, class-balanced subset of sample indices.

    Each class gets ``size // n_classes`` samples, or all it has if fewer; what is
    left is spread over the classes that still have samples, and the last few
    places (when ``size`` does not divide evenly) go to classes chosen by ``rng``.
    Within a class, samples are drawn by ``rng`` without replacement.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Class of every sample.
    size : int
        Number of indices wanted, ``0 <= size <= n``.
    rng : numpy.random.Generator or int
        Source of randomness; the same generator state gives the same subset.

    Returns
    -------
    numpy.ndarray of int64, shape (size,)
        Sorted sample indices.
    """
    labels = np.asarray(labels).reshape(-1)
    if not 0 <= size <= labels.size:
        raise ValueError(f"size must lie in [0, {labels.size}], got {size}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    classes, available = np.unique(labels, return_counts=True)
    quota = np.zeros(classes.size, dtype=np.int64)
    remaining = int(size)
    while remaining > 0:
        open_classes = np.flatnonzero(quota < available)
        share = remaining // open_classes.size
        if share == 0:
            lucky = rng.permutation(open_classes)[:remaining]
            quota[lucky] += 1
            break
        add = np.minimum(share, available[open_classes] - quota[open_classes])
        quota[open_classes] += add
        remaining -= int(add.sum())
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
        for c, q in zip(classes, quota, strict=True)
        if q
    ]
    if not chosen:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def iterate_batches(
    dataset: SpikeDataset,
    batch_size: int,
    rng: np.random.Generator | None,
    *,
    indices=None,
    drop_last: bool = True,
    dtype=np.float32,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield minibatches ``(x, y)`` of a dataset.

    Parameters
    ----------
    dataset : SpikeDataset
        Source of samples.
    batch_size : int
        Samples per batch, >= 1.
    rng : numpy.random.Generator or None
        Shuffles the order (a fresh permutation per call) and drives random
        augmentation; ``None`` keeps the given order (evaluation).
    indices : array_like of int, optional
        Samples to use (e.g. a :func:`stratified_subset`); default all.
    drop_last : bool, default True
        Drop the last, incomplete batch (training); pass False to evaluate on all.
    dtype : numpy dtype, default float32
        Element type of ``x``.

    Yields
    ------
    x : numpy.ndarray, shape (batch, n_steps, n_inputs)
        Dense 0/1 (or count) input.
    y : numpy.ndarray of int64, shape (batch,)
        Labels.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(dataset)
    order = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if order.size and (order.min() < 0 or order.max() >= n):
        raise IndexError(f"indices must lie in [0, {n}) for {dataset.name}")
    if rng is not None:
        order = rng.permutation(order)
    stop = (order.size // batch_size) * batch_size if drop_last else order.size
    for start in range(0, stop, batch_size):
        batch = order[start : start + batch_size]
        yield dataset.dense(batch, dtype=dtype, rng=rng), dataset.labels[batch]


# ---------------------------------------------------------------------------
# load_dataset and one builder per dataset
# ---------------------------------------------------------------------------

_HOW_TO_GET = {
    "nmnist": "download N-MNIST Train.zip/Test.zip (www.garrickorchard.com/datasets/n-mnist) "
    "and unzip them into one folder holding Train/ and Test/",
    "dvs": "download DvsGesture.tar.gz (research.ibm.com/dvsgesture) and unpack it",
    "shd": "download shd_train.h5.gz and shd_test.h5.gz (zenkelab.org/datasets, "
    "compneuro.net) and gunzip them into one folder",
    "ssc": "download ssc_{train,valid,test}.h5.gz (zenkelab.org/datasets, compneuro.net) and "
    "gunzip them into one folder",
}


def _data_root(name: str, root) -> Path:
    variable = f"REFSNN_{name.upper()}_ROOT"
    if root is None:
        root = os.environ.get(variable) or None
    if root is None:
        raise FileNotFoundError(
            f"no data directory for {name!r}: pass root=... or set {variable}; to get the "
            f"data, {_HOW_TO_GET[name]}"
        )
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{name} data directory {root} does not exist; to get the data, {_HOW_TO_GET[name]}"
        )
    return root


def _take(options: dict, defaults: dict) -> dict:
    """Split ``options`` into the known ones (with defaults); raise on the rest."""
    unknown = set(options) - set(defaults)
    if unknown:
        raise TypeError(
            f"unknown options {sorted(unknown)}; this dataset accepts {sorted(defaults)}"
        )
    return {key: options.get(key, value) for key, value in defaults.items()}


def _build_fmnist(split, root, dt, n_steps, options):
    opts = _take(options, {"verify_md5": False, "tau": 20e-3, "threshold": 0.2})
    images, labels = load_fashion_mnist(split, root, verify_md5=opts["verify_md5"])
    pixels = images.reshape(images.shape[0], -1)
    tau_eff = opts["tau"] / dt  # the SpyTorch code's tau_eff, in steps

    def events(i):
        steps = latency_encode(
            pixels[i], tau_eff=tau_eff, threshold=opts["threshold"], n_steps=n_steps
        )
        units = np.flatnonzero(steps >= 0)
        return steps[units] * dt, units

    return events, labels, {"n_inputs": pixels.shape[1], "n_classes": 10}, opts


def _build_nmnist(split, root, dt, n_steps, options):
    opts = _take(options, {})
    paths, labels = list_nmnist(_data_root("nmnist", root), split)

    def events(i):
        ev = read_nmnist(paths[i])
        return ev["t"] * 1e-6, nmnist_index(ev["x"], ev["y"], ev["p"])

    return events, labels, {"n_inputs": NMNIST_N_INPUTS, "n_classes": 10}, opts


def _build_dvs(split, root, dt, n_steps, options):
    opts = _take(options, {"classes": tuple(range(1, 11)), "downsample": 1})
    samples, labels = list_gesture(_data_root("dvs", root), split, classes=opts["classes"])
    n_inputs = dvs_n_inputs(opts["downsample"])
    packet_index: dict[Path, np.ndarray] = {}  # per trial file, built on first use

    def events(i):
        path, start, end = samples[i]
        if path not in packet_index:
            packet_index[path] = index_aedat31(path)
        ev = read_aedat31(path, t_start=start, t_end=end, index=packet_index[path])
        if ev.size and (ev["x"].max() >= DVS_SENSOR or ev["y"].max() >= DVS_SENSOR):
            raise DataFormatError(
                path,
                f"events in [{start}, {end}) us",
                f"x and y in 0..{DVS_SENSOR - 1} (DVS128)",
                f"x up to {ev['x'].max()}, y up to {ev['y'].max()}",
            )
        units = dvs_index(ev["x"], ev["y"], ev["p"], downsample=opts["downsample"])
        return (ev["t"] - start) * 1e-6, units

    n_classes = len(set(int(c) for c in opts["classes"]))
    return events, labels, {"n_inputs": n_inputs, "n_classes": n_classes}, opts


def _build_heidelberg(name, split, root, dt, n_steps, options):
    opts = _take(options, {"jitter_sd": 0.0, "merge_channels": 1})
    directory = _data_root(name, root)
    path = directory / f"{name}_{split}.h5"
    if not path.is_file():
        packed = [
            p for p in (path.with_suffix(".h5.gz"), path.with_suffix(".h5.zip")) if p.is_file()
        ]
        hint = f"decompress {packed[0]} first" if packed else _HOW_TO_GET[name]
        raise FileNotFoundError(f"{path} does not exist; {hint}")
    spikes = read_shd(path)
    n_classes = {"shd": 20, "ssc": 35}[name]
    if len(spikes) and spikes.labels.max() >= n_classes:
        raise DataFormatError(
            path, "key 'labels'", f"classes 0..{n_classes - 1}", str(spikes.labels.max())
        )
    merge, sd = int(opts["merge_channels"]), float(opts["jitter_sd"])
    transform = None
    if merge != 1 or sd != 0:
        if merge < 1 or SHD_N_UNITS % merge or sd < 0:
            raise ValueError(
                f"need jitter_sd >= 0 and merge_channels dividing {SHD_N_UNITS}, got {sd}, {merge}"
            )

        def transform(units, generator):
            if sd > 0 and generator is None:
                raise ValueError("jitter_sd > 0 needs a numpy Generator: pass rng=")
            return shd_channel_jitter(units, generator, sd=sd, n_units=SHD_N_UNITS, merge=merge)

    def events(i):
        times, units, _ = spikes[i]
        return times, units

    shape = {"n_inputs": SHD_N_UNITS // merge, "n_classes": n_classes}
    return events, spikes.labels, shape, opts, transform, spikes.close


def _build_yinyang(split, root, dt, n_steps, options):
    size, seed = YIN_YANG_SPLITS[split]
    opts = _take(
        options,
        {"n_samples": size, "seed": seed, "t_early": 5e-3, "t_late": 45e-3, "bias_time": 25e-3},
    )
    features, labels = yin_yang(opts["n_samples"], opts["seed"])
    times = yin_yang_encode(
        features, t_early=opts["t_early"], t_late=opts["t_late"], bias_time=opts["bias_time"]
    )
    units = np.arange(times.shape[1], dtype=np.int64)
    return (lambda i: (times[i], units)), labels, {"n_inputs": units.size, "n_classes": 3}, opts


def _build_randman(split, root, dt, n_steps, options):
    opts = _take(
        options,
        {
            "n_samples": 2000 if split == "train" else 500,
            "n_classes": 10,
            "n_units": 100,
            "dim_manifold": 1,
            "n_spikes": 1,
            "alpha": 2.0,
            "seed": 0,
        },
    )
    steps, units, labels = randman(
        opts["n_samples"],
        n_classes=opts["n_classes"],
        n_units=opts["n_units"],
        n_steps=n_steps,
        dim_manifold=opts["dim_manifold"],
        n_spikes=opts["n_spikes"],
        alpha=opts["alpha"],
        seed=opts["seed"],
        sample_rng=np.random.default_rng([opts["seed"], _SPLIT_CODE[split]]),
    )
    shape = {"n_inputs": opts["n_units"], "n_classes": opts["n_classes"]}
    return (lambda i: (steps[i] * dt, units)), labels, shape, opts


def _build_delay(split, root, dt, n_steps, options):
    opts = _take(
        options,
        {
            "n_samples": 2000 if split == "train" else 500,
            "n_classes": 2,
            "delay": 50,
            "cue_steps": 10,
            "tail_steps": 5,
            "channels_per_class": 10,
            "p_signal": 0.5,
            "p_noise": 0.01,
            "seed": 0,
        },
    )
    task = {k: v for k, v in opts.items() if k not in ("n_samples", "seed")}
    spikes, labels = delayed_memory(
        opts["n_samples"], seed=np.random.default_rng([opts["seed"], _SPLIT_CODE[split]]), **task
    )

    def events(i):
        steps, units = np.nonzero(spikes[i])
        return steps * dt, units

    shape = {
        "n_inputs": spikes.shape[2],
        "n_classes": opts["n_classes"],
        "task_steps": spikes.shape[1],
    }
    return events, labels, shape, opts


def load_dataset(
    name: str,
    split: str,
    *,
    root: str | os.PathLike | None = None,
    n_steps: int | None = None,
    dt: float | None = None,
    time_scale: float = 1.0,
    rng=None,
    **options,
) -> SpikeDataset:
    """Open one split of a dataset as a :class:`SpikeDataset`.

    Parameters
    ----------
    name : {"fmnist", "nmnist", "dvs", "shd", "ssc", "yinyang", "randman", "delay"}
        The dataset (see the module docstring for defaults).
    split : {"train", "test"}, or "valid" for ssc and the procedural tasks
        The split.
    root : str or os.PathLike, optional
        Data directory. Defaults: fmnist, the ``REFSNN_FMNIST_ROOT`` environment
        variable or ``/usr/share/datasets/fashion-mnist``; nmnist, dvs, shd, ssc,
        the variable ``REFSNN_<NAME>_ROOT``. Unused by procedural tasks.
    n_steps : int, optional
        Steps per sample; default per dataset.
    dt : float, optional
        Step length in seconds; default per dataset.
    time_scale : float, default 1.0
        Multiplies every event time before binning.
    rng : numpy.random.Generator or int, optional
        Default generator of random augmentation (SHD/SSC ``jitter_sd``).
    **options
        Per dataset:

        - fmnist: ``verify_md5`` (False), ``tau`` (20e-3 s), ``threshold`` (0.2)
        - dvs: ``classes`` (1..10; ``range(1, 12)`` adds "other"), ``downsample`` (1)
        - shd, ssc: ``jitter_sd`` (0; the paper's augmentation is 20),
          ``merge_channels`` (1; the paper's is 10, giving 70 inputs)
        - yinyang: ``n_samples``, ``seed`` (published per split), ``t_early``,
          ``t_late``, ``bias_time`` (seconds)
        - randman: ``n_samples``, ``n_classes``, ``n_units``, ``dim_manifold``,
          ``n_spikes``, ``alpha``, ``seed`` (task; splits draw from (seed, split))
        - delay: ``n_samples``, ``n_classes``, ``delay``, ``cue_steps``,
          ``tail_steps``, ``channels_per_class``, ``p_signal``, ``p_noise``, ``seed``
        - all: ``counts`` (False): dense arrays hold counts, not 0/1.

    Returns
    -------
    SpikeDataset

    Raises
    ------
    FileNotFoundError
        If the data directory or a file is missing; the message says how to get it.
    DataFormatError
        If a file is malformed.
    """
    if name not in _DEFAULTS:
        raise ValueError(f"unknown dataset {name!r}; choose from {DATASET_NAMES}")
    splits, default_dt, default_steps = _DEFAULTS[name]
    if split not in splits:
        raise ValueError(f"{name} has splits {splits}, got {split!r}")
    dt = default_dt if dt is None else float(dt)
    if not dt > 0:
        raise ValueError(f"dt must be > 0 seconds, got {dt}")
    options = dict(options)
    counts = bool(options.pop("counts", False))
    generation_steps = default_steps if n_steps is None or name == "delay" else n_steps
    if name in ("shd", "ssc"):
        events, labels, shape, opts, transform, on_close = _build_heidelberg(
            name, split, root, dt, generation_steps, options
        )
    else:
        builder = {
            "fmnist": _build_fmnist,
            "nmnist": _build_nmnist,
            "dvs": _build_dvs,
            "yinyang": _build_yinyang,
            "randman": _build_randman,
            "delay": _build_delay,
        }[name]
        events, labels, shape, opts = builder(split, root, dt, generation_steps, options)
        transform = on_close = None
    if n_steps is None:
        n_steps = default_steps if default_steps is not None else shape["task_steps"]
    generator = (
        rng if isinstance(rng, np.random.Generator) or rng is None else (np.random.default_rng(rng))
    )
    return SpikeDataset(
        name,
        events,
        labels,
        n_inputs=shape["n_inputs"],
        n_classes=shape["n_classes"],
        n_steps=n_steps,
        dt=dt,
        time_scale=time_scale,
        counts=counts,
        unit_transform=transform,
        rng=generator,
        info={"split": split, "root": None if root is None else os.fspath(root), **opts},
        on_close=on_close,
    )
