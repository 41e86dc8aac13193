"""Procedural tasks that need no download: Yin-Yang, Randman and a delayed-memory task.

Every generator takes its randomness explicitly (an int seed or a
``numpy.random.Generator``); nothing touches numpy's global random state.

Yin-Yang (Kriener, Goeltz and Petrovici 2021, MIT licence): points in the unit
square, inside the circle of radius ``r_big`` at (0.5, 0.5). With ``d_r``, ``d_l``
the distances to (0.75, 0.5) and (0.25, 0.5)::

    dot  (2)  if d_r < r_small or d_l < r_small
    yin  (1)  elif d_r <= r_small or r_small < d_l <= r_big / 2
                   or (y > r_big and d_r > r_big / 2)
    yang (0)  otherwise

Per sample the class ``goal = randint(3)`` is drawn first, then ``(x, y) =
rand(2) * 2 r_big`` until the point lies in the circle and in class ``goal``.
Features are ``(x, y, 1 - x, 1 - y)``. With ``numpy.random.RandomState(seed)`` this
reproduces the published splits: train 5000 at seed 42 (class counts
[1681, 1702, 1617], first sample (0.680307538588, 0.450499251970), class 2),
validation 1000 at 41, test 1000 at 40.

Randman (Zenke and Vogels 2021, MIT licence): each class is a smooth random map
from ``[0, 1]^D`` to ``R^U``; coordinate ``u`` is a product over the D manifold
dimensions of ``sum_i a_i th0 sin(2 pi (i x th1 + th2))`` with ``a_i = 1 / ((i +
1)^alpha + 1)`` and ``th ~ U(0, 1)``. Sampled points are min-max scaled per unit to
[0, 1] and unit ``u`` fires once at step ``y_u (n_steps - 1)``: every unit fires the
same number of spikes in every sample, so the class lives only in spike timing.

Delayed memory (this package's task): see :func:`delayed_memory`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "YIN_YANG_SPLITS",
    "delayed_memory",
    "randman",
    "yin_yang",
    "yin_yang_class",
    "yin_yang_encode",
]

#: Published Yin-Yang splits: split -> (size, seed).
YIN_YANG_SPLITS = {"train": (5000, 42), "valid": (1000, 41), "test": (1000, 40)}


def _generator(seed) -> np.random.Generator:
    """Make a Generator from an int seed or SeedSequence; pass a Generator through."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("pass a seed (int) or a numpy.random.Generator; no global state is used")
    return np.random.default_rng(seed)


def yin_yang_class(x: float, y: float, *, r_small: float = 0.1, r_big: float = 0.5) -> int:
    """Class of a point of the Yin-Yang disc: 0 yang, 1 yin, 2 dot (module docstring)."""
    d_right = np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_left = np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    if d_right < r_small or d_left < r_small:
        return 2
    is_yin = (
        d_right <= r_small
        or r_small < d_left <= 0.5 * r_big
        or (y > r_big and d_right > 0.5 * r_big)
    )
    return int(is_yin)


def yin_yang(
    n: int, seed=42, *, r_small: float = 0.1, r_big: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Generate Yin-Yang samples by the published rejection sampler.

    Parameters
    ----------
    n : int
        Number of samples.
    seed : int, numpy.random.RandomState or numpy.random.Generator, default 42
        An int (or RandomState) drives ``numpy.random.RandomState`` exactly as the
        published generator does, reproducing its splits (:data:`YIN_YANG_SPLITS`).
        A Generator gives an independent stream with the same algorithm.
    r_small, r_big : float, default 0.1, 0.5
        Radii of the dots and of the disc.

    Returns
    -------
    features : numpy.ndarray of float64, shape (n, 4)
        ``(x, y, 1 - x, 1 - y)``, each in [0, 1].
    labels : numpy.ndarray of int64, shape (n,)
        0 yang, 1 yin, 2 dot.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if isinstance(seed, np.random.Generator):

        def draw_class():
            return int(seed.integers(3))

        def draw_point():
            return seed.random(2)
    else:
        state = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)

        def draw_class():
            return int(state.randint(3))

        def draw_point():
            return state.rand(2)

    features = np.empty((n, 4))
    labels = np.empty(n, dtype=np.int64)
    for k in range(n):
        goal = draw_class()
        while True:
            x, y = draw_point() * 2.0 * r_big
            if np.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            if yin_yang_class(x, y, r_small=r_small, r_big=r_big) == goal:
                break
        features[k] = (x, y, 1.0 - x, 1.0 - y)
        labels[k] = goal
    return features, labels


def yin_yang_encode(
    features: np.ndarray,
    *,
    t_early: float = 5e-3,
    t_late: float = 45e-3,
    bias_time: float | None = 25e-3,
) -> np.ndarray:
    """Spike-latency code of Yin-Yang features: one spike per input, plus a bias spike.

    Feature value ``v`` in [0, 1] fires at ``t_early + v (t_late - t_early)``
    seconds (larger values later, as in Goeltz et al. 2021); an optional fifth
    input fires at ``bias_time`` in every sample.

    Parameters
    ----------
    features : array_like of float, shape (n, 4)
        Output of :func:`yin_yang`.
    t_early, t_late : float, default 5 ms, 45 ms
        Spike times of the values 0 and 1, in seconds.
    bias_time : float or None, default 25 ms
        Time of the bias spike in seconds; ``None`` for no bias input.

    Returns
    -------
    numpy.ndarray of float64, shape (n, 5), or (n, 4) without bias
        Spike time of input ``j`` of sample ``i`` at ``[i, j]``, in seconds.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-d (n, n_features), got shape {features.shape}")
    if not 0 <= t_early <= t_late:
        raise ValueError(f"need 0 <= t_early <= t_late, got {t_early}, {t_late}")
    if features.size and (features.min() < 0 or features.max() > 1):
        raise ValueError("features must lie in [0, 1]")
    times = t_early + features * (t_late - t_early)
    if bias_time is not None:
        if bias_time < 0:
            raise ValueError(f"bias_time must be >= 0, got {bias_time}")
        times = np.concatenate([times, np.full((features.shape[0], 1), float(bias_time))], 1)
    return times


def _randman_params(rng, n_units, dim_manifold, alpha, prec=1e-3, max_frequencies=1000):
    n_frequencies = int(min(np.ceil(prec ** (-1.0 / alpha)), max_frequencies))
    theta = rng.random((n_units, dim_manifold, 3, n_frequencies))
    theta[:, :, 0, 0] = 0.0  # no constant offset (the reference's use_bias=False)
    amplitude = 1.0 / (np.arange(1, n_frequencies + 1) ** alpha + 1.0)
    return theta, amplitude


def _randman_eval(points, theta, amplitude):
    """Evaluate one random manifold: points (m, D) -> (m, n_units)."""
    n_frequencies = amplitude.size
    frequency = np.arange(n_frequencies)
    out = np.ones((points.shape[0], theta.shape[0]))
    for d in range(points.shape[1]):
        th0, th1, th2 = theta[:, d, 0], theta[:, d, 1], theta[:, d, 2]  # (U, F) each
        phase = (
            2 * np.pi * (frequency * points[:, d, None, None] * th1[None] + th2[None])
        )  # (m, U, F)
        out *= np.sum(amplitude * th0[None] * np.sin(phase), axis=-1)
    return out


def randman(
    n_samples: int,
    *,
    n_classes: int = 10,
    n_units: int = 100,
    n_steps: int = 100,
    dim_manifold: int = 1,
    n_spikes: int = 1,
    alpha: float = 2.0,
    seed=0,
    sample_rng=None,
    n_reference: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spiking random-manifold classification task (class coded only in spike timing).

    The task (manifold parameters and the per-unit scaling) is fixed by ``seed``;
    the sampled points come from ``sample_rng``, so train and test sets of one task
    share ``seed`` and differ in ``sample_rng``. Unlike the reference, which scales
    each generated set by its own min and max, the scaling here comes from
    ``n_reference`` points per class drawn with the task, so one point maps to the
    same spike times in every set (values are clipped to [0, 1]).

    Parameters
    ----------
    n_samples : int
        Number of samples; classes are balanced (counts differ by at most one).
    n_classes : int, default 10
    n_units : int, default 100
        Input channels per spike "layer"; there are ``n_spikes * n_units`` events.
    n_steps : int, default 100
        Spike steps lie in ``[0, n_steps - 1]``.
    dim_manifold : int, default 1
        Intrinsic dimension D of each class manifold.
    n_spikes : int, default 1
        Spikes per unit; each comes from its own manifold.
    alpha : float, default 2.0
        Smoothness: spectral fall-off exponent.
    seed : int or numpy.random.Generator, default 0
        Defines the task.
    sample_rng : int or numpy.random.Generator, optional
        Draws points, labels and order; defaults to continuing the task generator.
    n_reference : int, default 256
        Points per class used to fix the min-max scaling.

    Returns
    -------
    spike_steps : numpy.ndarray of float64, shape (n_samples, n_spikes * n_units)
        Spike time, in (fractional) steps, of event ``j``.
    units : numpy.ndarray of int64, shape (n_spikes * n_units,)
        Channel of event ``j``: ``j % n_units``.
    labels : numpy.ndarray of int64, shape (n_samples,)
    """
    if min(n_classes, n_units, n_steps, dim_manifold, n_spikes, n_reference) < 1:
        raise ValueError("n_classes, n_units, n_steps, dim_manifold, n_spikes must be >= 1")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    task_rng = _generator(seed)
    manifolds = []
    for _ in range(n_classes):
        per_spike = []
        for _ in range(n_spikes):
            theta, amplitude = _randman_params(task_rng, n_units, dim_manifold, alpha)
            reference = _randman_eval(
                task_rng.random((n_reference, dim_manifold)), theta, amplitude
            )
            per_spike.append((theta, amplitude, reference.min(0), reference.max(0)))
        manifolds.append(per_spike)
    rng = task_rng if sample_rng is None else _generator(sample_rng)
    labels = rng.permutation(np.arange(n_samples) % n_classes).astype(np.int64)
    points = rng.random((n_samples, dim_manifold))
    spike_steps = np.empty((n_samples, n_spikes * n_units))
    for k in range(n_classes):
        members = labels == k
        for s, (theta, amplitude, low, high) in enumerate(manifolds[k]):
            y = _randman_eval(points[members], theta, amplitude)
            y = np.clip((y - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
            spike_steps[members, s * n_units : (s + 1) * n_units] = y * (n_steps - 1)
    units = np.tile(np.arange(n_units, dtype=np.int64), n_spikes)
    return spike_steps, units, labels


def delayed_memory(
    n_samples: int,
    *,
    n_classes: int = 2,
    delay: int = 50,
    cue_steps: int = 10,
    tail_steps: int = 5,
    channels_per_class: int = 10,
    p_signal: float = 0.5,
    p_noise: float = 0.01,
    seed=0,
) -> tuple[np.ndarray, np.ndarray]:
    """Delayed-memory task: the class is ``(cue + probe) mod n_classes``.

    Inputs form ``n_classes`` groups of ``channels_per_class`` channels. In the
    first ``cue_steps`` steps group ``c`` (the cue) fires, each channel with
    probability ``p_signal`` per step; then ``delay`` steps pass; then group ``q``
    (the probe) fires likewise for ``cue_steps`` steps; ``tail_steps`` steps follow
    for the readout. Outside the active group, every channel fires with probability
    ``p_noise`` per step. ``c`` and ``q`` are uniform, and the label ``(c + q) mod n_classes`` is
    independent of each of them alone (for 2 classes: 0 = match, 1 = non-match).

    So the class can be read neither from the cue nor from the probe: the network
    must keep the cue across ``delay`` steps. A leaky neuron with membrane time
    constant ``tau`` << ``delay`` steps forgets it (chance level, even with the max
    over time as readout); ``tau`` >~ ``delay`` keeps it.

    Parameters
    ----------
    n_samples : int
        Number of samples; labels are balanced.
    n_classes : int, default 2
        Number of cue patterns, and of classes.
    delay : int, default 50
        Steps between the end of the cue and the start of the probe.
    cue_steps : int, default 10
        Length of the cue and of the probe.
    tail_steps : int, default 5
        Steps after the probe.
    channels_per_class : int, default 10
    p_signal, p_noise : float, default 0.5, 0.01
        Per-step spike probabilities of an active group and of the background.
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    spikes : numpy.ndarray of uint8, shape (n_samples, n_steps, n_inputs)
        0/1 raster with ``n_steps = 2 cue_steps + delay + tail_steps`` and
        ``n_inputs = n_classes * channels_per_class``.
    labels : numpy.ndarray of int64, shape (n_samples,)
    """
    if n_classes < 2 or cue_steps < 1 or channels_per_class < 1:
        raise ValueError("need n_classes >= 2, cue_steps >= 1, channels_per_class >= 1")
    if delay < 0 or tail_steps < 0 or n_samples < 0:
        raise ValueError("delay, tail_steps and n_samples must be >= 0")
    if not (0 <= p_noise <= 1 and 0 <= p_signal <= 1):
        raise ValueError("p_signal and p_noise must be probabilities")
    rng = _generator(seed)
    n_steps = 2 * cue_steps + delay + tail_steps
    n_inputs = n_classes * channels_per_class
    labels = rng.permutation(np.arange(n_samples) % n_classes).astype(np.int64)
    cue = rng.integers(n_classes, size=n_samples)
    probe = (labels - cue) % n_classes
    probability = np.full((n_samples, n_steps, n_inputs), p_noise)
    probe_start = cue_steps + delay
    for k in range(n_samples):
        for group, start in ((cue[k], 0), (probe[k], probe_start)):
            channels = slice(group * channels_per_class, (group + 1) * channels_per_class)
            probability[k, start : start + cue_steps, channels] = p_signal
    spikes = (rng.random(probability.shape) < probability).astype(np.uint8)
    return spikes, labels
