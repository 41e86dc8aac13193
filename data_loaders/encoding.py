"""Turning pixels and address events into the network's input spike trains.

Time is in SECONDS throughout this module, except the latency code, which is
defined in time steps as in the SpyTorch tutorial it comes from.

Binning policy (the paper's, used by every dataset in this package)::

    step  = round(t / dt)          numpy.round: halves go to the even step
    keep    step < n_steps         spikes at or past the window are dropped
    x[step, unit] = 1              several spikes in one bin count once
                                   (counts=True keeps the number instead)

Input indexing: N-MNIST ``x + 34 y + 1156 p`` (2312 inputs), DVS128
``x + 128 y + 16384 p`` (32768 inputs), where ``p`` is the polarity bit (1 = ON).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DVS_N_INPUTS",
    "DVS_SENSOR",
    "NMNIST_N_INPUTS",
    "NMNIST_SENSOR",
    "bin_events",
    "dvs_index",
    "dvs_n_inputs",
    "latency_encode",
    "latency_time",
    "nmnist_index",
    "scale_times",
    "shd_channel_jitter",
]

NMNIST_SENSOR = 34
NMNIST_N_INPUTS = 2 * NMNIST_SENSOR * NMNIST_SENSOR  # 2312
DVS_SENSOR = 128
DVS_N_INPUTS = 2 * DVS_SENSOR * DVS_SENSOR  # 32768


def latency_time(x: np.ndarray, *, tau_eff: float = 20.0, threshold: float = 0.2) -> np.ndarray:
    """Continuous first-spike latency of the SpyTorch latency code, in time steps.

    ``T = tau_eff * ln(x / (x - threshold))`` for ``x > threshold``, ``inf`` otherwise
    (F. Zenke, SpyTorch tutorial 2: the time a leaky integrator driven by a constant
    current ``x`` needs to reach ``threshold``).

    Parameters
    ----------
    x : array_like of float
        Normalised intensities, usually ``pixel / 255`` in [0, 1].
    tau_eff : float, default 20.0
        Membrane time constant in steps (20 ms at dt = 1 ms).
    threshold : float, default 0.2
        Intensities at or below it never fire.

    Returns
    -------
    numpy.ndarray of float64, shape of ``x``
        Latency in steps; ``inf`` where there is no spike. E.g. 1.0 -> 4.4629,
        0.5 -> 10.2165, 0.25 -> 32.1888, 0.21 -> 60.8904.
    """
    x = np.asarray(x, dtype=np.float64)
    if not tau_eff > 0 or not threshold > 0:
        raise ValueError(f"tau_eff and threshold must be > 0, got {tau_eff}, {threshold}")
    times = np.full(x.shape, np.inf)
    fires = x > threshold
    times[fires] = tau_eff * np.log(x[fires] / (x[fires] - threshold))
    return times


def latency_encode(
    images: np.ndarray,
    *,
    tau_eff: float = 20.0,
    threshold: float = 0.2,
    n_steps: int = 100,
    max_value: float = 255.0,
) -> np.ndarray:
    """Latency-code images: each pixel fires at most once, brighter pixels earlier.

    A pixel with ``x = pixel / max_value`` fires at step ``floor(latency_time(x))``
    (see :func:`latency_time`); it does not fire if ``x <= threshold`` or if that
    step is ``>= n_steps``. With the defaults (dt = 1 ms, 100 steps) a Fashion-MNIST
    test image fires about 333 spikes.

    Parameters
    ----------
    images : array_like, shape (..., n_pixels) or any shape
        Raw intensities in [0, max_value] (uint8 for Fashion-MNIST).
    tau_eff : float, default 20.0
        Time constant in steps.
    threshold : float, default 0.2
        Normalised intensity threshold.
    n_steps : int, default 100
        Length of the window in steps.
    max_value : float, default 255.0
        Intensity that maps to ``x = 1``.

    Returns
    -------
    numpy.ndarray of int64, shape of ``images``
        Spike step of each pixel, ``-1`` where the pixel does not fire.
    """
    images = np.asarray(images)
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    x = images.astype(np.float64) / float(max_value)
    if x.size and (np.nanmin(x) < 0 or not np.all(np.isfinite(x))):
        raise ValueError("images must be finite and >= 0")
    latency = latency_time(x, tau_eff=tau_eff, threshold=threshold)
    steps = np.full(images.shape, -1, dtype=np.int64)
    fires = latency < n_steps  # floor(T) < n_steps  <=>  T < n_steps
    steps[fires] = np.floor(latency[fires]).astype(np.int64)
    return steps


def bin_events(
    times_seconds: np.ndarray,
    units: np.ndarray,
    n_units: int,
    dt: float,
    n_steps: int,
    *,
    counts: bool = False,
    dtype=np.float32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Bin events into a dense raster with the paper's rule.

    ``step = round(t / dt)`` (numpy rounding, halves to even), events with
    ``step >= n_steps`` are dropped, and each (step, unit) cell holds 1 if any event
    fell into it (or the number of events, with ``counts=True``).

    Parameters
    ----------
    times_seconds : array_like of float, shape (n_events,)
        Event times in seconds, finite and >= 0. float16 input (SHD) is widened to
        float64 before dividing.
    units : array_like of int, shape (n_events,)
        Input index of each event, in ``[0, n_units)``.
    n_units : int
        Number of input channels.
    dt : float
        Step length in seconds, > 0.
    n_steps : int
        Number of steps in the window.
    counts : bool, default False
        Store event counts instead of 0/1.
    dtype : numpy dtype, default float32
        Element type of the result.
    out : numpy.ndarray, shape (n_steps, n_units), optional
        Zero-filled array to write into (e.g. one sample of a batch).

    Returns
    -------
    numpy.ndarray, shape (n_steps, n_units)
        The raster; ``out`` if it was given.
    """
    times = np.asarray(times_seconds, dtype=np.float64).reshape(-1)
    units = np.asarray(units).reshape(-1)
    if times.shape != units.shape:
        raise ValueError(f"times and units differ in length: {times.size} vs {units.size}")
    if not dt > 0 or not np.isfinite(dt):
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    if n_steps < 0 or n_units < 1:
        raise ValueError(f"need n_steps >= 0 and n_units >= 1, got {n_steps}, {n_units}")
    if units.size and not np.issubdtype(units.dtype, np.integer):
        raise ValueError(f"units must be integers, got {units.dtype}")
    if times.size:
        if not np.all(np.isfinite(times)) or times.min() < 0:
            raise ValueError("event times must be finite and >= 0 seconds")
        if units.min() < 0 or units.max() >= n_units:
            raise ValueError(
                f"units must lie in [0, {n_units}), got range {units.min()}..{units.max()}"
            )
    if out is None:
        out = np.zeros((n_steps, n_units), dtype=dtype)
    elif out.shape != (n_steps, n_units):
        raise ValueError(f"out has shape {out.shape}, expected {(n_steps, n_units)}")
    steps = np.round(times / dt)
    keep = steps < n_steps
    steps = steps[keep].astype(np.int64)
    units = units[keep].astype(np.int64)
    if counts:
        np.add.at(out, (steps, units), 1)
    else:
        out[steps, units] = 1
    return out


def scale_times(times_seconds: np.ndarray, factor: float) -> np.ndarray:
    """Time-scale augmentation: stretch (factor > 1) or compress (< 1) a sample.

    Parameters
    ----------
    times_seconds : array_like of float, shape (n_events,)
        Event times in seconds.
    factor : float
        Positive, finite scale factor; the paper's robustness experiment trains and
        tests at factors such as 0.5 and 1.0, or ``2 ** N(0, 0.5)``.

    Returns
    -------
    numpy.ndarray of float64, shape (n_events,)
        ``times_seconds * factor``.
    """
    if not factor > 0 or not np.isfinite(factor):
        raise ValueError(f"time-scale factor must be positive and finite, got {factor}")
    return np.asarray(times_seconds, dtype=np.float64) * float(factor)


def shd_channel_jitter(
    units: np.ndarray,
    rng: np.random.Generator,
    *,
    sd: float = 20.0,
    n_units: int = 700,
    merge: int = 10,
) -> np.ndarray:
    """Apply the paper's optional SHD augmentation: jitter channels, merge neighbours.

    ``unit' = ((unit + rint(sd * N(0, 1))) mod n_units) // merge``, one normal draw
    per event. With the defaults, 700 channels become 70.

    Parameters
    ----------
    units : array_like of int, shape (n_events,)
        Channel of each event, in ``[0, n_units)``.
    rng : numpy.random.Generator
        Source of the jitter.
    sd : float, default 20.0
        Standard deviation of the jitter in channels; 0 merges without jitter.
    n_units : int, default 700
        Number of channels before merging.
    merge : int, default 10
        Channels merged into one; must divide ``n_units``.

    Returns
    -------
    numpy.ndarray of int64, shape (n_events,)
        New channel indices in ``[0, n_units // merge)``.
    """
    if merge < 1 or n_units % merge:
        raise ValueError(f"merge={merge} must be >= 1 and divide n_units={n_units}")
    if sd < 0:
        raise ValueError(f"sd must be >= 0, got {sd}")
    units = np.asarray(units, dtype=np.int64)
    if sd > 0:
        units = units + np.rint(sd * rng.standard_normal(units.shape)).astype(np.int64)
    return np.mod(units, n_units) // merge


def _check_xyp(x, y, p, side: int, name: str):
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.int64)
    for label, values, high in (("x", x, side), ("y", y, side), ("p", p, 2)):
        if values.size and (values.min() < 0 or values.max() >= high):
            raise ValueError(
                f"{name} {label} must lie in [0, {high}), got {values.min()}..{values.max()}"
            )
    return x, y, p


def nmnist_index(x, y, p) -> np.ndarray:
    """Compute the paper's N-MNIST input index ``x + 34 y + 1156 p`` (2312 inputs).

    Parameters
    ----------
    x, y : array_like of int, shape (n_events,)
        Pixel address, 0..33.
    p : array_like of int, shape (n_events,)
        Polarity, 0 (OFF) or 1 (ON).

    Returns
    -------
    numpy.ndarray of int64, shape (n_events,)
    """
    x, y, p = _check_xyp(x, y, p, NMNIST_SENSOR, "N-MNIST")
    return x + NMNIST_SENSOR * y + NMNIST_SENSOR * NMNIST_SENSOR * p


def dvs_n_inputs(downsample: int = 1) -> int:
    """Count the DVS128 inputs after ``downsample`` x ``downsample`` pooling."""
    if downsample < 1 or DVS_SENSOR % downsample:
        raise ValueError(f"downsample={downsample} must be >= 1 and divide {DVS_SENSOR}")
    side = DVS_SENSOR // downsample
    return 2 * side * side


def dvs_index(x, y, p, *, downsample: int = 1) -> np.ndarray:
    """DVS128 input index ``x + 128 y + 16384 p``, optionally on a coarser grid.

    With ``downsample = f`` (a divisor of 128), pixels are pooled in f x f blocks:
    ``side = 128 // f`` and the index is ``x // f + side * (y // f) + side**2 * p``.
    ``f = 1`` is the paper's indexing (32768 inputs, no downsampling).

    Parameters
    ----------
    x, y : array_like of int, shape (n_events,)
        Pixel address, 0..127.
    p : array_like of int, shape (n_events,)
        Polarity, 0 or 1.
    downsample : int, default 1
        Pooling factor.

    Returns
    -------
    numpy.ndarray of int64, shape (n_events,)
        Indices in ``[0, dvs_n_inputs(downsample))``.
    """
    dvs_n_inputs(downsample)  # validates the factor
    x, y, p = _check_xyp(x, y, p, DVS_SENSOR, "DVS128")
    side = DVS_SENSOR // downsample
    return x // downsample + side * (y // downsample) + side * side * p
