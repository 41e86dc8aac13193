"""Golden vectors: regeneration reproduces the stored files, and refsnn's kernels reproduce them."""

import json

import numpy as np
import pytest

import refsnn
from refsnn.params import PARAM_NAMES
from validation import golden
from validation.golden.generate import GRID, generate
from validation.gradcheck import relative_error


def _same_within(a, b, rel, where):
    """Assert that the JSON values ``a`` and ``b`` agree: floats to ``rel``, the rest exactly."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=rel), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same_within(a[k], b[k], rel, f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for k, (u, v) in enumerate(zip(a, b, strict=True)):
            _same_within(u, v, rel, f"{where}[{k}]")
    else:
        assert a == b, where


def test_regeneration_reproduces_the_stored_files(tmp_path):
    """The generator writes the same bytes every time (two runs here); and the stored files:
    byte for byte where this machine's NumPy rounds as the generating machine's did, else
    every number within 1e-12 of its array's largest entry (the oracle's matrix products
    may round differently on another CPU: docs/validation.md). Seen on a machine with
    AVX-512: the differences were below 3e-16 of that entry."""
    files = generate(tmp_path / "a")
    again = generate(tmp_path / "b")
    assert [f.name for f in again] == [f.name for f in files]
    for f, g in zip(files, again, strict=True):
        assert f.read_bytes() == g.read_bytes(), f.name
    stored = sorted(p.name for p in golden.FOLDER.iterdir())
    assert sorted(f.name for f in files) == stored
    for f in files:
        want = golden.FOLDER / f.name
        if f.read_bytes() == want.read_bytes():
            continue
        if f.suffix == ".json":
            _same_within(json.loads(f.read_text()), json.loads(want.read_text()), 1e-12, f.name)
            continue
        got, exp = np.load(f), np.load(want)
        assert got.files == exp.files, f.name
        for k in got.files:
            a, b = got[k], exp[k]
            assert (a.dtype, a.shape) == (b.dtype, b.shape), (f.name, k)
            if a.dtype.kind == "f":
                assert relative_error(a, b) <= 1e-12, (f.name, k, relative_error(a, b))
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{f.name} {k}")


def test_folder_is_small_and_the_manifest_describes_every_file():
    assert sum(p.stat().st_size for p in golden.FOLDER.iterdir()) < 2_000_000
    m = json.loads((golden.FOLDER / "manifest.json").read_text())
    assert m["format_version"] == 1 and len(m["cases"]) == len(GRID)
    for case in m["cases"]:
        assert (golden.FOLDER / case["file"]).is_file()
        refsnn.Conventions(**case["conventions"])  # every field, valid
        assert set(case["sizes"]) == {"batch", "steps", "n_in", "hidden", "classes", "updates"}


@pytest.mark.parametrize("name", golden.names())
def test_refsnn_reproduces_the_golden_vectors(name):
    g = golden.load(name)
    conv, p, x, y = g["conventions"], g["params"], g["x"], g["labels"]
    assert x.dtype == np.float64 and y.dtype == np.int64
    loss, grads = refsnn.loss_and_grad(p, x, y, conv)
    assert loss == pytest.approx(g["loss"], rel=1e-12)
    scale = max(float(np.max(np.abs(getattr(g["grads"], n)))) for n in PARAM_NAMES)
    for n in PARAM_NAMES:
        err = relative_error(getattr(grads, n), getattr(g["grads"], n), 1e-6 * scale)
        assert err <= 1e-10, (n, err)
    tr = refsnn.forward(p, x, conv.replace(record_initial_state=True))
    if conv.spike_fn == "heaviside":
        np.testing.assert_array_equal(tr.spikes, g["states"]["spikes"])
    for k in ("i_syn", "v", "spikes", "i_syn_out", "v_out"):
        assert relative_error(getattr(tr, k), g["states"][k]) <= 1e-12, k
    np.testing.assert_allclose(refsnn.forward(p, x, conv).logits, g["logits"], rtol=1e-12,
                               atol=1e-14)


def test_the_grid_covers_presets_and_fires():
    presets = {g["meta"]["preset"] for g in map(golden.load, golden.names())}
    assert presets == set(refsnn.Conventions.PRESETS)
    for name in golden.names():
        s = golden.load(name)["states"]["spikes"]
        assert 0 < s.mean() < 0.9, name


def test_load_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="no golden problem"):
        golden.load("nope")
