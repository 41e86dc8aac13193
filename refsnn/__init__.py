"""refsnn: reference NumPy/Numba implementation of heterogeneous recurrent LIF networks.

The network of Perez-Nieves et al. (2021), "Neural heterogeneity promotes robust
learning": a recurrent layer of current-based LIF neurons with per-neuron synaptic
and membrane decays, thresholds, reset and rest potentials, and a leaky-integrator
readout, with exact hand-derived BPTT gradients for every parameter
(``docs/derivation.md``).

Public API
----------
Params, Conventions, Trace
forward(params, x, conventions) -> Trace
loss(params, x, labels, conventions) -> float
loss_and_grad(params, x, labels, conventions) -> (loss, Params)
oracle_loss_and_grad, oracle_forward : the plain NumPy oracle
random_params : a random network for tests and examples
"""

from .conventions import Conventions
from .network import Trace, forward, loss, loss_and_grad
from .oracle import oracle_forward, oracle_loss_and_grad
from .params import PARAM_NAMES, Params
from .random import random_params

__all__ = [
    "Conventions",
    "Params",
    "PARAM_NAMES",
    "Trace",
    "forward",
    "loss",
    "loss_and_grad",
    "oracle_forward",
    "oracle_loss_and_grad",
    "random_params",
]
__version__ = "0.1.0"
