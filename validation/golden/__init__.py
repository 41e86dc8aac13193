"""Golden vectors: refsnn's outputs on fixed problems, for implementations in any language.

``validation/golden/v1/`` holds one ``.npz`` per problem (plain, uncompressed NumPy
``.npy`` arrays in a zip) and ``manifest.json`` describing each: its conventions (every
``refsnn.Conventions`` field), sizes, seed and input density, and the keys inside:

=====================  ==========================  ======================================
key                    shape                       what
=====================  ==========================  ======================================
``x``                  (B, T, n_in) float64        input spikes (0/1)
``labels``             (B,) int64                  classes
``params.<name>``      as ``refsnn.Params``         the ten parameters (``w_in`` (n_in, N),
                                                   ``w_rec`` (N, N) pre -> post, ...)
``states.<name>``      (B, K + 1, N) or (B, K+1, C) ``i_syn``, ``v``, ``spikes``,
                                                   ``i_syn_out``, ``v_out`` over the states
                                                   k = 0 .. K (0: the zero initial state)
``logits``             (B, C)                      the readout reduced over time
``loss``               ()                          mean cross-entropy (+ regularisers)
``grads.<name>``       as ``refsnn.Params``         the BPTT gradient of every parameter
=====================  ==========================  ======================================

K is T, or T - 1 with ``skip_last_input``. The values are computed by refsnn's NumPy
oracle (``refsnn.oracle_loss_and_grad``), in float64; ``generate.py`` rebuilds the folder
bit for bit. ``load(name)`` and ``names()`` read them back in Python; see
docs/validation.md for other languages.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["FOLDER", "load", "manifest", "names"]

#: the current version's folder
FOLDER = Path(__file__).resolve().parent / "v1"


def manifest(folder: Path | str = FOLDER) -> dict:
    """Read and parse the ``manifest.json`` of ``folder``."""
    return json.loads((Path(folder) / "manifest.json").read_text())


def names(folder: Path | str = FOLDER) -> list:
    """Return the problem names in ``folder`` (manifest order)."""
    return [c["name"] for c in manifest(folder)["cases"]]


def load(name: str, folder: Path | str = FOLDER) -> dict:
    """Read one problem.

    Returns a dict: ``params`` (``refsnn.Params``), ``grads`` (``Params``),
    ``conventions`` (``refsnn.Conventions``), ``x``, ``labels``, ``states`` (dict),
    ``logits``, ``loss`` (float), ``meta`` (its manifest entry).
    """
    from refsnn import Conventions, Params
    from refsnn.params import PARAM_NAMES

    entries = {c["name"]: c for c in manifest(folder)["cases"]}
    if name not in entries:
        raise ValueError(f"no golden problem {name!r} in {folder}; choose from {sorted(entries)}")
    meta = entries[name]
    with np.load(Path(folder) / meta["file"]) as z:
        data = {k: z[k] for k in z.files}
    return dict(
        params=Params(**{n: data[f"params.{n}"] for n in PARAM_NAMES}),
        grads=Params(**{n: data[f"grads.{n}"] for n in PARAM_NAMES}),
        conventions=Conventions(**meta["conventions"]),
        x=data["x"], labels=data["labels"], logits=data["logits"], loss=float(data["loss"]),
        states={k[7:]: v for k, v in data.items() if k.startswith("states.")},
        meta=meta,
    )
