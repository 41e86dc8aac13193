"""Bounded cross-validation of every peer against refsnn (skipped when a peer is missing).

The default run draws a few small problems per framework within the conventions it
expresses; ``-m slow`` runs the heavier sweep (more problems, longer sequences).
"""

import numpy as np
import pytest
from hypothesis import given, settings

import refsnn
from validation.adapters import ADAPTER_NAMES, get_adapter
from validation.check import probe, validate, validate_adapter

PEERS = ("snntorch", "norse", "spikingjelly")
SMALL = dict(max_hidden=5, max_steps=12, max_batch=2)


def adapter_or_skip(name):
    adapter = get_adapter(name)
    missing = adapter.missing()
    if missing is not None:
        pytest.skip(f"{name} not installed: {missing}")
    return adapter


@pytest.mark.parametrize("name", ADAPTER_NAMES)
def test_bounded_cross_validation(name):
    adapter_or_skip(name)
    report = validate(name, examples=12, findings=False, sizes=SMALL)
    assert report.installed and report.failed == 0, str(report)
    assert report.ok and report.cases + report.inconclusive == 12
    assert report.counterexample is None
    assert report.worst["loss"].rel <= report.worst["loss"].tol
    if name in PEERS:
        assert {"i_syn", "v", "spikes", "i_syn_out", "v_out", "logits", "loss"} <= set(report.worst)
        grads = {q[5:] for q in report.worst if q.startswith("grad.")}
        assert set(adapter_or_skip(name).grad_fields) == grads


@pytest.mark.parametrize("name", ADAPTER_NAMES)
def test_strategies_draw_only_what_the_adapter_supports(name):
    adapter = get_adapter(name)

    @settings(max_examples=25)
    @given(adapter.conventions())
    def drawn(conv):
        assert adapter.supports(conv) is None

    drawn()


@pytest.mark.parametrize("name", PEERS)
def test_unsupported_conventions_are_refused_with_a_reason(name):
    adapter = get_adapter(name)
    reason = adapter.supports(refsnn.Conventions.preset("paper"))
    assert isinstance(reason, str) and reason


def test_norse_superspike_scale_is_a_finding_and_it_agrees_at_scale_1():
    adapter = adapter_or_skip("norse")
    findings = adapter.findings()
    text = " ".join(findings)
    assert "SuperSpike ignores its scale" in text and "agrees with it at scale 1" in text
    conv = refsnn.Conventions().replace(reset="to_reset_leak", surrogate_scale=1.0)
    assert probe(adapter, conv).passed  # scale 1: agrees
    at100 = probe(adapter, conv.replace(surrogate_scale=100.0), method="super", alpha=100.0)
    assert not at100.passed and at100.culprit().quantity.startswith("grad.")


class _NorseAtScale100:
    """Norse asked for SuperSpike at scale 100 (which it ignores): a real disagreement."""

    def __init__(self, norse):
        self.norse = norse

    def __getattr__(self, name):
        return getattr(self.norse, name)

    def conventions(self):
        return self.norse.conventions().map(
            lambda c: c.replace(surrogate="fast_sigmoid", surrogate_scale=100.0))

    def supports(self, conv):
        return None

    def run(self, params, x, labels, conv, device="cpu"):
        return self.norse.run(params, x, labels, conv, device, method="super", alpha=100.0)


def test_a_peer_defect_is_found_and_shrunk_to_a_few_neurons_and_steps():
    norse = adapter_or_skip("norse")
    report = validate_adapter(_NorseAtScale100(norse), examples=10, findings=False, sizes=SMALL)
    assert report.failed > 0 and not report.ok
    ce = report.counterexample
    assert ce.quantity.startswith("grad.")
    assert ce.sizes["hidden"] <= 2 and ce.sizes["steps"] <= 4 and ce.sizes["batch"] == 1
    assert "minimal counterexample" in str(report)


@pytest.mark.parametrize("name", ("snntorch", "spikingjelly"))
def test_findings_are_measured(name):
    adapter = adapter_or_skip(name)
    findings = adapter.findings()
    assert findings and all(isinstance(f, str) and f for f in findings)
    text = " ".join(findings)
    if name == "snntorch":
        assert "float32" in text
    else:
        assert "scales the height" in text
    assert "initial state's spike" in text


def test_a_missing_framework_is_not_installed_never_a_pass(monkeypatch):
    from validation.adapters.norse_lif import NorseAdapter

    monkeypatch.setattr(NorseAdapter, "requires", ("torch", "norse_is_not_here"))
    report = validate("norse", examples=3)
    assert not report.installed and not report.ok and report.status == "not installed"
    assert report.cases == 0 and report.passed == 0
    assert "pip install --no-deps norse==1.1.0" in str(report)
    assert report.as_dict()["install"].startswith("pip install")


def test_trace_mappings_are_the_peers_variables():
    """Norse and SpikingJelly record the membrane after the reset and their own current
    variable; refsnn's states mapped to those agree on a problem where neurons fire."""
    for name in ("norse", "spikingjelly"):
        adapter = adapter_or_skip(name)
        conv = refsnn.Conventions().replace(
            reset="to_reset_leak", surrogate_scale=1.0,
            spike_test="ge" if name == "spikingjelly" else "gt")
        comp = probe(adapter, conv)
        assert comp.passed, comp.errors
        assert comp.errors["v"].rel < 1e-12 and comp.errors["i_syn"].rel < 1e-12
        rng = np.random.default_rng(0)  # probe's problem: the layer fires
        p = adapter.prepare(refsnn.random_params(4, 5, 3, rng), conv)
        x = (rng.random((2, 12, 4)) < 0.3).astype(np.float64)
        assert refsnn.forward(p, x, conv).spikes.sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ADAPTER_NAMES)
def test_sweep(name):
    adapter_or_skip(name)
    report = validate(name, examples=120, findings=False,
                      sizes=dict(max_hidden=10, max_steps=40, max_batch=4))
    assert report.ok, str(report)


@pytest.mark.slow
@pytest.mark.parametrize("name", PEERS)
def test_sweep_shrinks_each_undocumented_setting(name):
    """Without the adapters' initial-state bridge each peer disagrees on the threshold
    gradient; the search finds it and shrinks it to one neuron."""
    adapter = adapter_or_skip(name)

    class NoInitialSpikeGradient:
        def __getattr__(self, attr):
            return getattr(adapter, attr)

        def run(self, params, x, labels, conv, device="cpu"):
            return adapter.run(params, x, labels, conv, device, initial_spike_gradient=False)

    report = validate_adapter(NoInitialSpikeGradient(), examples=40, findings=False)
    assert not report.ok
    assert report.counterexample.quantity == "grad.threshold"
    assert report.counterexample.sizes["hidden"] == 1

