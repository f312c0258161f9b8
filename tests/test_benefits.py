"""Tests for what book/benefits.ipynb adds to bnutils: the sigmoid saturation probe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnutils.experiments import Experiment, Probe, run
from bnutils.probes import saturation_probe, sigmoid_saturation, weight_norm_probe
from bnutils.models import ModelConfig, mlp
from bnutils.train import TrainConfig
from tests.helpers import assert_undisturbed


def _ref_fraction(z: torch.Tensor, threshold: float) -> float:
    s = torch.sigmoid(z)
    return float((s * (1 - s) < threshold).double().mean())


def test_saturation_matches_a_direct_computation():
    torch.manual_seed(0)
    model = mlp(20, [30, 40], 5, act="sigmoid")
    x = 3 * torch.randn(64, 20)
    z1 = model[0](x)
    z2 = model[2](torch.sigmoid(z1))
    got = sigmoid_saturation(model, x, threshold=0.05)
    assert got == pytest.approx([_ref_fraction(z1, 0.05), _ref_fraction(z2, 0.05)], abs=1e-6)


def test_saturation_extremes():
    lin = nn.Linear(1, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0], [0.0], [100.0], [-100.0]]))
        lin.bias.zero_()
    model = nn.Sequential(lin, nn.Sigmoid())
    assert sigmoid_saturation(model, torch.ones(8, 1)) == [0.5]
    # every unit of a saturated layer, none at z = 0
    assert sigmoid_saturation(nn.Sequential(nn.Sigmoid()), torch.zeros(3, 5)) == [0.0]
    assert sigmoid_saturation(nn.Sequential(nn.Sigmoid()), torch.full((3, 5), 20.0)) == [1.0]


def test_saturation_leaves_the_model_undisturbed_in_both_modes():
    torch.manual_seed(1)
    model = mlp(10, [16, 16], 3, act="sigmoid", norm="bn", dropout=0.2)
    x = torch.randn(32, 10)
    y = torch.randint(0, 3, (32,))
    F.cross_entropy(model(x), y).backward()  # gradients present, must survive
    for mode in (True, False):
        model.train(mode)
        assert_undisturbed(model, lambda: saturation_probe(model, x, y, lr=0.1, loss_fn=F.cross_entropy))


def test_saturation_rejects_bad_input():
    with pytest.raises(ValueError, match="no nn.Sigmoid"):
        sigmoid_saturation(mlp(4, [4], 2, act="relu"), torch.randn(3, 4))
    with pytest.raises(ValueError, match="threshold"):
        sigmoid_saturation(mlp(4, [4], 2, act="sigmoid"), torch.randn(3, 4), threshold=0.3)


def test_saturation_grows_with_the_initial_scale_and_bn_caps_it():
    torch.manual_seed(0)
    x = torch.rand(256, 50)
    fracs = {}
    for norm in (None, "bn"):
        for scale in (0.1, 10.0):
            torch.manual_seed(0)
            model = mlp(50, [64, 64], 10, act="sigmoid", norm=norm)
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_normal_(m.weight, gain=scale)
            fracs[norm, scale] = sigmoid_saturation(model, x)
    assert max(fracs[None, 0.1]) == 0.0
    assert min(fracs[None, 10.0]) > 0.2
    # BN standardises the sigmoid's input, whatever the scale: |z| > 4.6 is rare
    assert max(fracs["bn", 10.0]) < 0.01


def test_saturation_as_an_experiment_probe():
    exp = Experiment(data="digits", model=ModelConfig(act="sigmoid", hidden=(16, 16)),
                     train=TrainConfig(lr=0.1, steps=6, eval_every=3, probe_every=3),
                     probes=(Probe("saturation", (("threshold", 0.05),)),))
    h = run(exp, cache=False)
    assert list(h.probe_steps) == [0, 3]
    assert len(h.probes["saturation"]) == 2
    assert all(len(v) == 2 and all(0.0 <= f <= 1.0 for f in v) for v in h.probes["saturation"])


def test_layer_gradient_norms_at_init_shrink_with_depth_for_a_small_sigmoid_init():
    """What the chapter measures with weight_norm_probe at initialisation: with 0.1x Glorot the
    gradient vanishes towards the input without BN, and does not with BN."""
    torch.manual_seed(0)
    x, y = torch.rand(128, 50), torch.randint(0, 10, (128,))
    out = {}
    for norm in (None, "bn"):
        torch.manual_seed(0)
        model = mlp(50, [64, 64, 64], 10, act="sigmoid", norm=norm)
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight, gain=0.1)
        out[norm] = weight_norm_probe(model, x, y, lr=0.1, loss_fn=F.cross_entropy)["grad_norm"]
    assert out[None][0] < 1e-3 * out[None][-1]
    assert out["bn"][0] > 1e-1 * out["bn"][-1]
