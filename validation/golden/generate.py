"""Regenerate the golden vectors: ``python -m validation.golden.generate [--out DIR]``.

The grid: the three presets (``default``, ``paper``, ``smooth``) at three sizes, plus
variants that exercise the other reset forms, delays, reductions, surrogates and the
regularisers at the small size. Each problem's parameters and inputs come from its own
seed through ``numpy.random.default_rng`` (drawn here, not by ``refsnn.random_params``,
so the vectors do not move when that helper changes); the outputs come from refsnn's
NumPy oracle in float64. Files are written byte-for-byte reproducibly: uncompressed zip
entries in a fixed order with a fixed timestamp, and a manifest with sorted keys.

``--check`` regenerates into a temporary folder and compares every byte with ``--out``
(exit 1 on a difference). Bit-identity holds on one platform; across CPUs NumPy's matrix
products may round differently, so other machines should compare with a tolerance
(docs/validation.md).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

import refsnn
from refsnn.conventions import Conventions
from refsnn.params import PARAM_NAMES, Params

__all__ = ["GRID", "generate", "problem", "write_npz"]

FORMAT_VERSION = 1
#: (batch, steps, n_in, hidden, classes)
SIZES = {"tiny": (1, 10, 3, 3, 2), "small": (3, 20, 8, 6, 3), "medium": (4, 50, 20, 16, 4)}
#: input spike probability per bin, by size (each layer fires, none saturates)
DENSITY = {"tiny": 0.6, "small": 0.2, "medium": 0.1}
VARIANTS = {
    "to_reset_leak-euler": dict(reset="to_reset_leak", input_scale="dt_over_tau",
                                decay_form="euler", surrogate="triangle", surrogate_scale=1.0),
    "subtract_decayed-ge-arctan": dict(reset="subtract_decayed", reset_detached=False,
                                       spike_test="ge", surrogate="arctan", surrogate_scale=2.0,
                                       reduction="mean"),
    "to_reset-sigmoid-last": dict(reset="to_reset", surrogate="sigmoid", surrogate_scale=4.0,
                                  reduction="last", readout_delay=1),
    "none-previous-delay2-count-reg": dict(
        reset="none", membrane_current="previous", recurrent_delay=2, reduction="count",
        surrogate="exponential", surrogate_scale=5.0, input_scale="none",
        reg_rate_strength=0.5, reg_rate_target=0.05, reg_pop_strength=2.0, reg_pop_target=0.1),
}


def _grid():
    grid = []
    seed = 0
    for preset in Conventions.PRESETS:
        for size in SIZES:
            grid.append((f"{preset}-{size}", preset, {}, size, seed))
            seed += 1
    for name, changes in VARIANTS.items():
        grid.append((f"variant-{name}", "default", changes, "small", seed))
        seed += 1
    return grid


#: (name, preset, changes to the preset, size name, seed)
GRID = _grid()


def problem(seed: int, sizes, density: float) -> tuple:
    """Parameters, input and labels of one golden problem (float64)."""
    B, T, n_in, N, C = sizes
    rng = np.random.default_rng(seed)

    def u(lo, hi, shape):
        return rng.uniform(lo, hi, size=shape)

    b_in, b_h = 3.0 / np.sqrt(n_in), 1.0 / np.sqrt(N)
    p = Params(
        w_in=u(-0.3 * b_in, b_in, (n_in, N)), w_rec=u(-b_h, b_h, (N, N)),
        w_out=u(-b_h, b_h, (N, C)), decay_syn=u(0.6, 0.98, N), decay_mem=u(0.6, 0.98, N),
        threshold=u(0.5, 1.5, N), v_reset=u(-0.3, 0.3, N), v_rest=u(-0.3, 0.3, N),
        decay_syn_out=u(0.6, 0.98, C), decay_mem_out=u(0.6, 0.98, C),
    )
    x = (rng.random((B, T, n_in)) < density).astype(np.float64)
    labels = rng.integers(0, C, size=B).astype(np.int64)
    return p, x, labels


def write_npz(path: Path, arrays: dict) -> None:
    """Write an uncompressed ``.npz`` whose bytes depend only on ``arrays``.

    Sorted keys, fixed timestamps; readable by ``numpy.load``.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            a = np.asarray(arrays[key])
            a = a if a.flags.c_contiguous else a.copy(order="C")  # keeps 0-d arrays 0-d
            np.lib.format.write_array(buf, a, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def generate(out: Path | str) -> list:
    """Write every golden problem and ``manifest.json`` into ``out``; return the files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cases, files = [], []
    for name, preset, changes, size, seed in GRID:
        conv = Conventions.preset(preset).replace(**changes)
        sizes = SIZES[size]
        p, x, labels = problem(seed, sizes, DENSITY[size])
        loss, grads, st = refsnn.oracle_loss_and_grad(p, x, labels, conv)
        arrays = {"x": x, "labels": labels, "logits": st["logits"],
                  "loss": np.array(loss, dtype=np.float64)}
        for key, src in (("i_syn", "i"), ("v", "v"), ("spikes", "s"), ("i_syn_out", "i_out"),
                         ("v_out", "v_out")):
            arrays[f"states.{key}"] = st[src]
        for n in PARAM_NAMES:
            arrays[f"params.{n}"] = getattr(p, n)
            arrays[f"grads.{n}"] = getattr(grads, n)
        file = f"{name}.npz"
        write_npz(out / file, arrays)
        files.append(out / file)
        B, T, n_in, N, C = sizes
        K = T - 1 if conv.skip_last_input else T
        cases.append(dict(
            name=name, file=file, preset=preset, changes=changes, conventions=conv.as_dict(),
            sizes=dict(batch=B, steps=T, n_in=n_in, hidden=N, classes=C, updates=K),
            seed=seed, input_density=DENSITY[size], loss=float(loss),
            first_recorded_state=0 if conv.record_initial_state else 1,
        ))
    manifest = dict(
        format_version=FORMAT_VERSION,
        generator="python -m validation.golden.generate --out validation/golden/v1",
        computed_by="refsnn.oracle_loss_and_grad, float64",
        keys=dict(
            x="(B, T, n_in) input", labels="(B,) int64", logits="(B, C)", loss="()",
            states="states.{i_syn,v,spikes} (B, K+1, N); states.{i_syn_out,v_out} (B, K+1, C);"
                   " states k = 0..K, 0 the zero initial state",
            params="params.<name>, shapes of refsnn.Params",
            grads="grads.<name>: dloss/dparams.<name>",
        ),
        cases=cases,
    )
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    (out / "manifest.json").write_text(text)
    files.append(out / "manifest.json")
    return files


def main(argv=None) -> int:
    """Command line: regenerate, or ``--check`` against the stored folder."""
    ap = argparse.ArgumentParser(prog="python -m validation.golden.generate",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "v1"))
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary folder and compare bytes with --out")
    args = ap.parse_args(argv)
    if not args.check:
        files = generate(args.out)
        print(f"wrote {len(files)} files to {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(tmp)
        bad = [f.name for f in files if not (Path(args.out) / f.name).is_file()
               or (Path(args.out) / f.name).read_bytes() != f.read_bytes()]
    if bad:
        print(f"golden vectors differ from a regeneration: {', '.join(bad)}")
        return 1
    print(f"{len(files)} files regenerate bit for bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
