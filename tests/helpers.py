"""Comparisons shared by the tests."""

import numpy as np
import pytest

import refsnn
from refsnn.cli import main
from refsnn.params import PARAM_NAMES
from validation.gradcheck import relative_error

#: logit differences d for the closed-form cross-entropy tests: both overflow ends, the
#: tiny losses where ``log(sum e^z)`` and ``p_y - 1`` cancel (-15.2: the case found in CI)
CE_OFFSETS = [-700.0, -40.0, -15.21299652739923, -1.0, 0.0, 2.5, 36.0, 700.0]


def sample_floors(params, x, labels, conv):
    """Per field, one sample's largest gradient contribution: ``max_b |grad_b| / B``.

    The denominator floor of ``relative_error`` against cancellation across the batch.
    """
    per_sample = [
        refsnn.oracle_loss_and_grad(params, x[b : b + 1], labels[b : b + 1], conv)[1]
        for b in range(x.shape[0])
    ]
    return {
        name: max(float(np.max(np.abs(getattr(g, name)))) for g in per_sample) / x.shape[0]
        for name in PARAM_NAMES
    }


def assert_grads_close(grads, expected, rtol, floors=None, what=""):
    for name in PARAM_NAMES:
        floor = 0.0 if floors is None else floors[name]
        err = relative_error(getattr(grads, name), getattr(expected, name), floor)
        assert err <= rtol, f"gradient of {name}: relative error {err:.3g} > {rtol:g} {what}"


def usage_error(capsys, *argv):
    """Run ``refsnn *argv``; assert a usage error (exit 2) in one line; return the line."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    return err
