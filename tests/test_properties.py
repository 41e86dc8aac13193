"""Properties of the network that hold for any parameters and conventions."""

import numba
import numpy as np
import pytest
from hypothesis import assume, given

import refsnn
from refsnn.params import PARAM_NAMES
from refsnn.surrogates import surrogate
from tests.helpers import assert_grads_close, sample_floors
from validation.gradcheck import relative_error
from validation.strategies import cases, conventions


@given(cases(conv=conventions(hard=True)))
def test_hard_spikes_are_binary(case):
    tr = refsnn.forward(case.params, case.x, case.conventions)
    assert set(np.unique(tr.spikes)) <= {0.0, 1.0}


@given(cases())
def test_zero_input_stays_at_rest(case):
    """With v_rest = 0 (the initial state) and positive thresholds, no input means no
    current, no spike and a membrane that stays at 0."""
    p = case.params.replace(v_rest=np.zeros_like(case.params.v_rest))
    conv = case.conventions
    assume(conv.spike_fn == "heaviside")
    tr = refsnn.forward(p, np.zeros_like(case.x), conv)
    assert not tr.spikes.any() and not tr.v.any() and not tr.i_syn.any() and not tr.v_out.any()


@given(cases(max_batch=5))
def test_batch_elements_are_independent_and_permutation_equivariant(case):
    p, x, y, conv = case.params, case.x, case.labels, case.conventions
    B = x.shape[0]
    perm = np.random.default_rng(case.seed).permutation(B)
    full = refsnn.forward(p, x, conv)
    permuted = refsnn.forward(p, x[perm], conv)
    for name in ("i_syn", "v", "spikes", "i_syn_out", "v_out", "logits"):
        np.testing.assert_array_equal(getattr(permuted, name), getattr(full, name)[perm])
    # each sample alone gives the same states as within the batch
    for b in range(B):
        alone = refsnn.forward(p, x[b : b + 1], conv)
        np.testing.assert_array_equal(alone.v[0], full.v[b])
    # the batch gradient does not depend on the order of the samples (up to the
    # order of the final sum over the batch)
    loss, g = refsnn.loss_and_grad(p, x, y, conv)
    loss_p, g_p = refsnn.loss_and_grad(p, x[perm], y[perm], conv)
    assert loss_p == pytest.approx(loss, rel=1e-13, abs=1e-15)
    assert_grads_close(g_p, g, 1e-12, sample_floors(p, x, y, conv))


@given(cases(dtype=np.float64, max_hidden=6, max_steps=15))
def test_float32_agrees_with_float64(case):
    p64, x64, y, conv = case.params, case.x, case.labels, case.conventions
    p32, x32 = p64.astype(np.float32), x64.astype(np.float32)
    tr64 = refsnn.forward(p64, x64, conv)
    tr32 = refsnn.forward(p32, x32, conv)
    # a membrane within float32 rounding of its threshold may flip a spike: skip those
    assume(np.array_equal(tr32.spikes > 0.5, tr64.spikes > 0.5))
    margin = np.min(np.abs(tr64.v - case.params.threshold), initial=np.inf)
    assume(margin > 1e-4)
    # and each surrogate factor of the two trajectories must agree to 1e-4 of itself:
    # near a zero of the surrogate (the triangle's edge at |v - th| = 1/s) its relative
    # error is the membrane's float32 error over the distance to the edge, unbounded,
    # and a gradient carried by such a factor has that relative error too: the problem
    # is ill-conditioned there, whatever the arithmetic (found: one factor at
    # 1 - s|x| = 0.01, s = 100, membrane error 6.5e-7 -> 6.5e-3; and a v_reset gradient
    # carried by a factor of 1.94 at 1 - s|x| = 0.019, membrane error 3.4e-7 -> 1.8e-3,
    # which agreed to 1e-4 of the largest factor, 41; in float64, decay_mem perturbed
    # by 6e-8 of itself moved that gradient by 1.2e-2)
    sg64 = surrogate(conv.surrogate, tr64.v - p64.threshold, conv.surrogate_scale)
    sg32 = surrogate(conv.surrogate, tr32.v.astype(np.float64) - p32.threshold.astype(np.float64),
                     conv.surrogate_scale)
    assume(np.all(np.abs(sg32 - sg64) <= 1e-4 * np.abs(sg64)))
    # and the readout must not be silent: then every logit is 0, the logit gradient is
    # the same for every class but the label's, and each hidden gradient (carried by
    # surrogates alone) is a difference of the classes' nearly equal contributions
    # (found: 8.5e-9, 1.9e-3 apart in float32, all readout gradients exactly 0)
    assume(np.any(tr64.v_out != 0))
    assert tr32.v.dtype == np.float32
    assert relative_error(tr32.v, tr64.v) < 1e-4
    l64, g64 = refsnn.loss_and_grad(p64, x64, y, conv)
    l32, g32 = refsnn.loss_and_grad(p32, x32, y, conv)
    assert g32.w_in.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-4, abs=1e-6)
    # float32 has 6e-8 relative rounding; BPTT over <= 15 steps with surrogate factors up
    # to 100 amplifies it to ~1e-5; 1e-3 of the per-sample scale catches any real error.
    # Every field's terms are rounded at float32 precision relative to the network's
    # largest quantities, so a field 1e-5 of the others carries absolute errors of a
    # few eps32 (6e-8) times the largest gradient entry: the floor is 1e-4 of it (an
    # absolute tolerance of 1e-7 x largest). And 1e-30 absolute: a silent network whose
    # whole gradient is ~1e-46 in float64 is exactly 0 in float32 (below 1.2e-38).
    largest = max(float(np.max(np.abs(v))) for v in g64.as_dict().values())
    floors = {k: max(v, 1e-4 * largest, 1e-30)
              for k, v in sample_floors(p64, x64, y, conv).items()}
    assert_grads_close(g32, g64, 1e-3, floors)


@pytest.mark.parametrize("batch", [8, 9])  # two tasks of 4 (kernels.task_size); 8 + 1
def test_gradients_bitwise_identical_across_runs_and_thread_counts(batch):
    rng = np.random.default_rng(11)
    p = refsnn.random_params(30, 16, 5, rng)
    x = (rng.random((batch, 40, 30)) < 0.1).astype(np.float64)
    y = rng.integers(0, 5, batch)
    conv = refsnn.Conventions.preset("paper")
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, before, 1, before):
            numba.set_num_threads(threads)
            results.append(refsnn.loss_and_grad(p, x, y, conv))
    finally:
        numba.set_num_threads(before)
    loss0, g0 = results[0]
    for loss, g in results[1:]:
        assert loss == loss0
        for name in PARAM_NAMES:
            assert np.array_equal(getattr(g, name), getattr(g0, name)), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_states_do_not_depend_on_the_forward_group(monkeypatch, dtype):
    """The forward kernel runs samples in lockstep groups that share each delivery of
    spikes; a sample's states and the gradients are the same bits for any group size."""
    from refsnn import network

    rng = np.random.default_rng(3)
    p = refsnn.random_params(40, 30, 5, rng).astype(dtype)
    x = (rng.random((11, 25, 40)) < 0.2).astype(dtype)
    y = rng.integers(0, 5, 11)
    runs = []
    for group in (1, 3, 8, 11):
        monkeypatch.setattr(network, "_forward_group_size", lambda batch, g=group: g)
        tr = refsnn.forward(p, x, "paper")
        runs.append((tr, refsnn.loss_and_grad(p, x, y, "paper")))
    assert runs[0][0].spikes.sum() > 100  # the layer fires
    tr0, (loss0, g0) = runs[0]
    for tr, (loss, g) in runs[1:]:
        for name in ("i_syn", "v", "spikes", "i_syn_out", "v_out", "logits"):
            assert np.array_equal(getattr(tr, name), getattr(tr0, name)), name
        assert loss == loss0
        for name in PARAM_NAMES:
            assert np.array_equal(getattr(g, name), getattr(g0, name)), name


def test_kernels_run_as_plain_python_with_jit_disabled():
    """NUMBA_DISABLE_JIT=1 runs every kernel as Python (for coverage and debuggers)
    and gives the same result as the compiled kernels."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, numpy as np, refsnn\n"
        "rng = np.random.default_rng(0)\n"
        "p = refsnn.random_params(5, 4, 3, rng)\n"
        "x = (rng.random((2, 10, 5)) < 0.3).astype(float)\n"
        "loss, g = refsnn.loss_and_grad(p, x, np.array([0, 2]), 'paper')\n"
        "print(json.dumps([loss] + g.flat().tolist()))\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    interpreted = np.array(json.loads(out))
    rng = np.random.default_rng(0)
    p = refsnn.random_params(5, 4, 3, rng)
    x = (rng.random((2, 10, 5)) < 0.3).astype(float)
    loss, g = refsnn.loss_and_grad(p, x, np.array([0, 2]), "paper")
    compiled = np.concatenate([[loss], g.flat()])
    np.testing.assert_allclose(interpreted, compiled, rtol=1e-13, atol=1e-16)


def test_ci_profile_draws_the_same_examples_on_every_run():
    """The "ci" profile (``CI`` set, as in ``.ci/run``) is derandomized: a property draws
    the same examples on every run, so that a failure in CI recurs."""
    from hypothesis import settings
    from hypothesis import strategies as st

    def draw():
        seen = []

        @settings(settings.get_profile("ci"), database=None)
        @given(st.integers(-10**6, 10**6))
        def prop(n):
            seen.append(n)

        prop()
        return seen

    first = draw()
    assert len(set(first)) > 1
    assert draw() == first
