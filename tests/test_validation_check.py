"""validation.check: passes correct implementations, catches subtle errors, shrinks them.

The two subtle errors of the issue, written as buggy candidates here:

- ``long_sequence_bug``: refsnn's gradient, with the recurrent-weight gradient 0.1 %
  too large on sequences of 16 steps or more (the kind of error an off-by-one in a
  long accumulation gives). The smallest counterexample has exactly 16 steps;
- ``undetached_reset``: the reset differentiated though the conventions detach it.
"""

import numpy as np
import pytest

import refsnn
import validation
from refsnn.params import PARAM_NAMES
from validation.report import CheckReport

LONG = 16


def long_sequence_bug(conv):
    def candidate(params, x, labels):
        loss, grads = refsnn.loss_and_grad(params, x, labels, conv)
        if x.shape[1] >= LONG:
            grads = grads.replace(w_rec=grads.w_rec * 1.001)
        return loss, grads

    return candidate


def undetached_reset(conv):
    def candidate(params, x, labels):
        return refsnn.loss_and_grad(params, x, labels, conv.replace(reset_detached=False))

    return candidate


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_a_correct_implementation_passes(preset):
    conv = refsnn.Conventions.preset(preset)

    def oracle(params, x, labels):  # refsnn's plain NumPy oracle: another code path
        loss, grads, _ = refsnn.oracle_loss_and_grad(params, x, labels, conv)
        return loss, grads

    report = validation.check(oracle, conv, examples=15)
    assert isinstance(report, CheckReport)
    assert report.passed and report.counterexample is None and bool(report)
    assert report.cases == 15 and report.failed == 0
    assert "PASSED" in str(report)


def test_the_autograd_twin_passes_as_a_dict_of_gradients():
    pytest.importorskip("torch")
    from validation.torch_twin import torch_loss_and_grad

    conv = refsnn.Conventions.preset("smooth")

    def twin(params, x, labels):
        loss, grads, _ = torch_loss_and_grad(params, x, labels, conv)
        return loss, grads.as_dict()

    report = validation.check(twin, "smooth", examples=10)
    assert report.passed, str(report)


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_catches_a_gradient_off_by_a_tenth_of_a_percent_on_long_sequences(preset):
    conv = refsnn.Conventions.preset(preset)
    report = validation.check(long_sequence_bug(conv), conv, examples=30)
    assert not report.passed
    ce = report.counterexample
    assert ce.quantity == "grad.w_rec"
    assert ce.sizes["steps"] == LONG  # shrunk to the shortest sequence that shows it
    assert ce.sizes["hidden"] <= 2 and ce.sizes["batch"] == 1
    assert 5e-4 < ce.errors["grad.w_rec"].rel < 2e-3
    text = str(report)
    assert "FAILED" in text and "grad.w_rec differs" in text and f"steps {LONG}" in text
    # the counterexample reproduces
    a = ce.arrays
    _, good = refsnn.loss_and_grad(a["params"], a["x"], a["labels"], conv)
    _, bad = long_sequence_bug(conv)(a["params"], a["x"], a["labels"])
    assert not np.allclose(good.w_rec, bad.w_rec, rtol=1e-6, atol=0)


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_catches_a_reset_that_is_not_detached_and_shrinks_it(preset):
    conv = refsnn.Conventions.preset(preset)
    report = validation.check(undetached_reset(conv), conv, examples=30)
    assert not report.passed
    ce = report.counterexample
    assert ce.quantity.startswith("grad.")
    assert ce.sizes["hidden"] <= 2 and ce.sizes["batch"] == 1 and ce.sizes["steps"] <= 8
    assert ce.conventions == conv
    assert "smallest counterexample" in str(report)


def test_reports_exceptions_and_wrong_return_types():
    def crashes(params, x, labels):
        raise RuntimeError("boom")

    report = validation.check(crashes, None, examples=3)
    assert not report.passed and report.counterexample.quantity == "exception"
    assert "RuntimeError: boom" in str(report)
    assert report.counterexample.sizes["steps"] == 2  # shrunk to the smallest problem

    report = validation.check(lambda p, x, y: (0.0, [1, 2]), None, examples=3)
    assert not report.passed and "dict of arrays" in report.counterexample.detail

    def missing_field(params, x, labels):
        loss, grads = refsnn.loss_and_grad(params, x, labels)
        d = grads.as_dict()
        del d["v_rest"]
        return loss, d

    report = validation.check(missing_field, None, examples=3)
    assert report.counterexample.quantity == "grad.v_rest"


def test_bad_arguments():
    with pytest.raises(ValueError, match="callable"):
        validation.check(3, None)
    with pytest.raises(ValueError, match="preset"):
        validation.check(lambda *a: None, "nope")
    with pytest.raises(ValueError, match="examples"):
        validation.check(lambda *a: None, None, examples=0)
    with pytest.raises(ValueError, match="rtol"):
        validation.check(lambda *a: None, None, rtol=-1)


def test_the_worst_errors_cover_the_loss_and_every_gradient():
    report = validation.check(lambda p, x, y: refsnn.loss_and_grad(p, x, y), None, examples=3)
    assert set(report.worst) == {"loss"} | {f"grad.{n}" for n in PARAM_NAMES}
    assert all(e.rel == 0 for e in report.worst.values())
