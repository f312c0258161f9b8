"""bnutils.layerwise: per-layer probe results (the "ics" probe's lists) as runs x steps x layers,
on real training runs, with the NaN padding of a run that stopped early."""

from dataclasses import replace

import numpy as np
import pytest

from bnutils import experiments as E
from bnutils import layerwise
from bnutils.models import ModelConfig
from bnutils.train import TrainConfig

ICS = E.Experiment(data="digits", model=ModelConfig(hidden=(16, 16), norm="bn"),
                   train=TrainConfig(steps=9, eval_every=9, batch_size=32, probe_every=3),
                   probes=(E.Probe("ics", (("layers", (1, 2)),)),))


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("BNBOOK_CACHE", str(tmp_path))
    monkeypatch.delenv("BNBOOK_SEED_OFFSET", raising=False)
    E._memory.cache_clear()
    yield E.sweep(E.seeds(ICS, 2), jobs=1)
    E._memory.cache_clear()


def test_runs_steps_and_layers_in_order(runs):
    steps, values = layerwise.probe_array(runs, "relative")
    assert values.shape == (2, len(runs[0].probe_steps), 2)
    np.testing.assert_array_equal(steps, runs[0].probe_steps)
    for s, h in enumerate(runs):
        expected = np.array([p["relative"] for p in h.probes["ics"]], dtype=float)
        np.testing.assert_array_equal(values[s], expected)


def test_a_run_that_stopped_early_is_padded_with_nan(runs):
    short = replace(runs[1], probe_steps=runs[1].probe_steps[:2], probes={"ics": runs[1].probes["ics"][:2]})
    steps, values = layerwise.probe_array([runs[0], short], "cosine")
    assert len(steps) == len(runs[0].probe_steps)
    assert np.isnan(values[1, 2:]).all() and np.isfinite(values[1, :2]).all() and np.isfinite(values[0]).all()


def test_missing_probe_or_key_is_a_clear_error(runs):
    with pytest.raises(KeyError, match="no probe 'hessian'"):
        layerwise.probe_array(runs, "relative", probe="hessian")
    with pytest.raises(KeyError, match="records no 'nope'"):
        layerwise.probe_array(runs, "nope")
    with pytest.raises(ValueError, match="at least one history"):
        layerwise.probe_array([], "relative")
