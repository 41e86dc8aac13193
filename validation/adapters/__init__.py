"""Adapters: other implementations of the network, mapped onto refsnn's conventions.

One module per framework; each docstring states the mapping (decay form, input
scaling, reset, delays, detach, layout, clamps), the conventions it expresses
(``Adapter.conventions()``, a Hypothesis strategy; ``Adapter.supports(conv)``) and its
tolerance with the reason.

==============  =====================================================================
name            engine
==============  =====================================================================
torch           ``validation.torch_twin``: refsnn in PyTorch autograd, every convention
paper           ``validation.paper_model``: the authors' model as they wrote it
snntorch        snnTorch 1.0.0 ``RSynaptic`` + refsnn's readout on its spikes
norse           Norse 1.1.0 ``LIFRecurrentCell`` + refsnn's readout on its spikes
spikingjelly    SpikingJelly 2.0.0 ``CUBALIFNode`` in a ``LinearRecurrentContainer``
                + refsnn's readout on its spikes
==============  =====================================================================
"""

from __future__ import annotations

from .base import Adapter, PeerRun, Tolerance

__all__ = ["ADAPTER_NAMES", "Adapter", "PeerRun", "Tolerance", "get_adapter"]

ADAPTER_NAMES = ("torch", "paper", "snntorch", "norse", "spikingjelly")


def get_adapter(name: str) -> Adapter:
    """Return the adapter called ``name`` (one of ``ADAPTER_NAMES``)."""
    if name == "torch":
        from .twin import TorchTwinAdapter as cls
    elif name == "paper":
        from .paper import PaperAdapter as cls
    elif name == "snntorch":
        from .snntorch_rsynaptic import SnnTorchAdapter as cls
    elif name == "norse":
        from .norse_lif import NorseAdapter as cls
    elif name == "spikingjelly":
        from .spikingjelly_cuba import SpikingJellyAdapter as cls
    else:
        raise ValueError(f"unknown framework {name!r}; choose from {', '.join(ADAPTER_NAMES)}, all")
    return cls()
