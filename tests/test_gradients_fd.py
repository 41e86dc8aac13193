"""BPTT against float64 central finite differences (validation.gradcheck)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refsnn
from refsnn.params import PARAM_NAMES
from validation.gradcheck import READOUT_ONLY, check_gradients, exact_twin
from validation.strategies import cases, conventions

RTOL = 1e-6  # see validation.gradcheck.TOLERANCES


def small_problem(seed, B=3, T=14, n_in=5, N=4, C=3):
    rng = np.random.default_rng(seed)
    p = refsnn.random_params(n_in, N, C, rng)
    x = (rng.random((B, T, n_in)) < 0.3).astype(np.float64)
    y = rng.integers(0, C, B)
    return p, x, y


@pytest.mark.parametrize("seed", [0, 1])
def test_smooth_preset_every_coordinate_of_every_parameter(seed):
    p, x, y = small_problem(seed)
    conv = refsnn.Conventions.preset("smooth")
    report = check_gradients(p, x, y, conv, mode="coordinate")
    assert set(report.fields) == set(PARAM_NAMES)
    for f in report.fields.values():
        assert f.checked == getattr(p, f.name).size
        assert f.max_rel <= RTOL, (f.name, f.max_rel)
    assert report.passed()


def test_smooth_preset_with_regularisers():
    p, x, y = small_problem(4)
    conv = refsnn.Conventions.preset("smooth").replace(
        reg_rate_strength=3.0, reg_rate_target=0.02, reg_pop_strength=2.0, reg_pop_target=0.05
    )
    report = check_gradients(p, x, y, conv)
    assert report.worst() <= RTOL, report.as_dict()


@given(cases(conv=conventions(hard=False), max_hidden=5, max_steps=12).filter(
    lambda c: not c.conventions.input_scale_detached
    and not c.conventions.reset_detached
    and not c.conventions.reset_threshold_detached
))
def test_exact_twin_of_any_conventions_matches_finite_differences(case):
    report = check_gradients(
        case.params, case.x, case.labels, case.conventions, mode="directions", n_directions=2
    )
    assert report.worst() <= RTOL, (case.describe(), case.conventions, report.as_dict())


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_hard_spikes_readout_gradients_are_exact(preset):
    """Readout parameters never change the hidden raster: their gradient is exact,
    except where the conventions cut it on purpose (the paper detaches (1 - decay))."""
    p, x, y = small_problem(2, T=25)
    conv = refsnn.Conventions.preset(preset)
    assert refsnn.forward(p, x, conv).spikes.sum() > 5
    fields = READOUT_ONLY
    if conv.input_scale_detached:
        fields = tuple(f for f in READOUT_ONLY if f != "decay_mem_out")
        cut = check_gradients(p, x, y, conv, fields=("decay_mem_out",)).fields["decay_mem_out"]
        assert cut.max_rel > 1e-2  # the stop-gradient is real, and visible
    report = check_gradients(p, x, y, conv, fields=fields)
    for f in report.fields.values():
        assert f.raster_changed == 0 and f.checked == getattr(p, f.name).size
        assert f.max_rel <= RTOL, (f.name, f.max_rel)


def test_hard_spikes_input_weights_exact_when_layer_is_silent_to_readout():
    """With every hidden spike raster unchanged and a readout driven only by
    spikes, w_in's finite difference is zero; BPTT's surrogate is not, which the raster
    guard makes visible: a perturbation that changes spikes is skipped, not compared."""
    p, x, y = small_problem(5, T=25)
    conv = refsnn.Conventions.preset("paper")
    report = check_gradients(p, x, y, conv, fields=("w_in",), eps=1e-6)
    f = report.fields["w_in"]
    assert f.checked + f.raster_changed == p.w_in.size


@given(st.sampled_from(["default", "paper", "smooth"]))
def test_exact_twin_of_presets(preset):
    p, x, y = small_problem(3)
    conv = exact_twin(refsnn.Conventions.preset(preset), scale=4.0)
    report = check_gradients(p, x, y, conv, mode="directions", n_directions=3)
    assert report.worst() <= RTOL
