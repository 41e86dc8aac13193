"""The input scan: the 32-input block tests (LLVM intrinsics) and ``scan_input``.

Each intrinsic is compared bit for bit with its plain Python twin (the code that runs
under ``NUMBA_DISABLE_JIT=1``), and ``scan_input`` with NumPy, on inputs that hold every
kind of value the tests tell apart: 0, -0, 1, other values, subnormals, inf and NaN.
"""

import numpy as np
import pytest
from numba import njit

from refsnn import _intrinsics as bits
from refsnn import kernels as kn

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 3.0, 1e-310, np.inf, -np.inf, np.nan]


@njit
def _jit_masks(x, starts, out):
    for k in range(starts.shape[0]):
        out[k, 0] = bits.nonzero_mask32(x, starts[k])
        out[k, 1] = bits.nonbinary_mask32(x, starts[k])
        out[k, 2] = bits.nonfinite_mask32(x, starts[k])
        out[k, 3] = bits.popcount(out[k, 0])


def _py_masks(x, starts):
    out = np.empty((starts.size, 4), np.int64)
    for k, s in enumerate(starts):
        out[k, :3] = (bits._py_nonzero_mask32(x, s), bits._py_nonbinary_mask32(x, s),
                      bits._py_nonfinite_mask32(x, s))
        out[k, 3] = bits._py_popcount(out[k, 0])
    return out


def _special_input(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(shape) < 0.5, 0.0, rng.choice(SPECIAL, size=shape))
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_masks_equal_python_twins(dtype):
    x = _special_input(dtype, (3, 5, 70), 0)
    x[0, 0, :32] = 0  # an empty block
    x[0, 1, :32] = 1  # a full one
    starts = np.arange(0, x.size - 32 + 1, 7)
    got = np.empty((starts.size, 4), np.int64)
    with np.errstate(invalid="ignore"):
        _jit_masks(x, starts, got)
        want = _py_masks(x, starts)
    np.testing.assert_array_equal(got, want)
    assert (want[:, 0] == 0).any() and (want[:, 0] == 2**32 - 1).any()
    assert want[:, 2].any() and want[:, 1].any()


def test_block_masks_match_their_definition():
    x = np.zeros((1, 1, 32))
    x[0, 0, [0, 5, 31]] = [1.0, np.nan, -0.0]
    x[0, 0, [7, 8]] = [np.inf, 2.0]
    with np.errstate(invalid="ignore"):
        assert bits._py_nonzero_mask32(x, 0) == (1 << 0) | (1 << 5) | (1 << 7) | (1 << 8)
        assert bits._py_nonbinary_mask32(x, 0) == (1 << 5) | (1 << 7) | (1 << 8)
        assert bits._py_nonfinite_mask32(x, 0) == (1 << 5) | (1 << 7)
    assert bits._py_popcount(-1) == 64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_in", [5, 32, 33, 63, 70, 96])
@pytest.mark.parametrize("skip_last", [False, True])
def test_scan_input_equals_numpy(dtype, n_in, skip_last):
    B, T = 3, 6
    K = T - 1 if skip_last else T
    x = _special_input(dtype, (B, T, n_in), n_in)
    x[1, 2] = 0  # an empty step
    x[2, 3] = np.where(x[2, 3] != 0, 1.0, 0.0)  # a binary step
    ptr = np.full(B * K + 1, -1, np.int64)
    masks = np.empty((B, K, -(-n_in // 32)), np.uint32)
    general = np.empty(B * K, np.uint8)
    with np.errstate(invalid="ignore"):
        bad, most = kn.scan_input(x, K, ptr, masks, general)
        nonzero = x[:, :K] != 0
        other = nonzero & (x[:, :K] != 1)
    assert bad == np.count_nonzero(~np.isfinite(x))
    assert most == nonzero.sum(axis=(1, 2)).max()
    np.testing.assert_array_equal(ptr, np.r_[0, np.cumsum(nonzero.sum(axis=2).ravel())])
    np.testing.assert_array_equal(general, other.any(axis=2).ravel())
    padded = np.zeros((B, K, masks.shape[2] * 32), bool)
    padded[..., :n_in] = nonzero
    shifts = np.arange(32, dtype=np.uint64)
    want = (padded.reshape(B, K, -1, 32).astype(np.uint64) << shifts).sum(-1)
    np.testing.assert_array_equal(masks, want.astype(np.uint32))
    assert general.any() and not general.all()


@njit
def _jit_prefetch_sum(x, ahead):
    total = 0.0
    for k in range(x.size):
        bits.prefetch(x, k + ahead)  # past the end near the last entries: never faults
        total += x.flat[k]
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prefetch_reads_nothing_changes_nothing_and_never_faults(dtype):
    # the scan asks for lines PREFETCH_BYTES past the row it tests: past the end of x
    # on its last rows: a prefetch has no effect but on timing
    x = np.arange(100, dtype=dtype)
    before = x.copy()
    ahead = 1 << 24  # 16 M entries past a 100-entry array
    assert _jit_prefetch_sum(x, ahead) == float(before.sum())
    assert np.array_equal(x, before)
    assert bits._py_prefetch(x, ahead) is None
    # and the compiled code does ask for the lines
    assert any("@llvm.prefetch" in ir for ir in _jit_prefetch_sum.inspect_llvm().values())


@pytest.mark.parametrize("mask_type", [np.uint32, np.int64])
def test_store_few_set_bits_writes_the_set_bits_and_two_spare_slots_at_most(mask_type):
    # the first count entries are store_set_bits', and nothing is written past
    # max(count, 2) entries from ``at`` (the two spare stores), for every count of bits
    rng = np.random.default_rng(3)
    for count in range(33):
        mask = 0
        for k in rng.choice(32, count, replace=False):
            mask |= 1 << int(k)
        want = np.full(40, -7, np.int32)
        n = bits._py_store_set_bits(want, 3, mask, 64)
        got = np.full(40, -7, np.int32)
        assert kn.store_few_set_bits(got, 3, mask_type(mask), 64) == n == count
        assert np.array_equal(got[: 3 + n], want[: 3 + n])
        assert (got[3 + max(n, 2):] == -7).all()


@pytest.mark.parametrize("density", [0.0, 0.02, 0.3, 1.0])
def test_events_of_a_sample_are_its_nonzero_inputs_and_touch_no_other_sample(density):
    # the forward pass writes each sample's events from its masks (``_fill_events``): by
    # two spare stores per word while they land among the sample's own later events,
    # else by compressing stores; the events of the other samples must stay untouched
    rng = np.random.default_rng(int(density * 100))
    B, T, n_in = 3, 9, 70
    x = (rng.random((B, T, n_in)) < density).astype(np.float32)
    x[1, -2:] = 0  # a sample whose last steps are empty
    x[2, :, 5] = 1  # ... and one with an event at every step
    K = T - 1
    ptr = np.full(B * K + 1, -1, np.int64)
    masks = np.empty((B, K, 3), np.uint32)
    general = np.empty(B * K, np.uint8)
    kn.scan_input(x, K, ptr, masks, general)
    n_ev = ptr[-1]
    for b in range(B):
        ev_idx = np.full(n_ev, -7, np.int32)
        ev_val = np.zeros(n_ev, np.float32)
        kn._fill_events(b, x, masks, general, ptr, ev_idx, ev_val)
        lo, hi = ptr[b * K], ptr[(b + 1) * K]
        assert np.array_equal(ev_idx[lo:hi], np.nonzero(x[b, :K])[1])
        assert (ev_idx[:lo] == -7).all() and (ev_idx[hi:] == -7).all()
        assert (ev_val[lo:hi] == 1).all()
