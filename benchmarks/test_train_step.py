"""One training step: forward, backward and an Adam update of every parameter (lr 1e-3,
betas 0.9, 0.999, the paper's optimiser) with the decays clamped to [2/e, 0.995]."""

import numpy as np
import pytest
from _common import CASES, case_of, timed

import refsnn
from refsnn.bench import make_problem
from refsnn.params import DECAY_FIELDS, PARAM_NAMES


class Adam:
    """Adam on a dict of arrays, in place (the update of ``torch.optim.Adam``)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, betas[0], betas[1], eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads):
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for k, p in params.items():
            g = grads[k]
            self.m[k] *= self.b1
            self.m[k] += (1 - self.b1) * g
            self.v[k] *= self.b2
            self.v[k] += (1 - self.b2) * g * g
            p -= self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)


@pytest.mark.parametrize("name", list(CASES))
def test_train_step(benchmark, name):
    case, rounds = case_of(name)
    p, x, y = make_problem(case)
    conv = refsnn.Conventions.preset("paper")
    params = {k: getattr(p, k).copy() for k in PARAM_NAMES}
    opt = Adam(params)

    def step():
        _, g = refsnn.loss_and_grad(refsnn.Params(**params), x, y, conv)
        opt.step(params, g.as_dict())
        for k in DECAY_FIELDS:
            np.clip(params[k], 2 / np.e, 0.995, out=params[k])

    benchmark.group = f"train step {name}"
    timed(benchmark, step, rounds)
