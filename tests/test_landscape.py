"""The landscape probe (Santurkar et al. §3.2): against a straightforward loop over step sizes,
undisturbing, cheap, and the l_p normalization it is used on."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnutils import probes
from bnutils.experiments import PROBES, Experiment, Probe, run
from bnutils.landscape import DLN_MULTIPLIERS, VGG_MULTIPLIERS, LandscapeResult, landscape, landscape_probe
from bnutils.models import ModelConfig, mlp
from bnutils.norms import LpNorm
from bnutils.train import TrainConfig
from tests.helpers import assert_undisturbed


def _two_layer(norm=None, seed=0):
    torch.manual_seed(seed)
    return mlp(6, [8], 3, norm=norm).double()


def _batch(seed=1, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _naive(model, x, y, etas, direction=None):
    """The definition, written plainly: a fresh deep copy of the model for every eta."""
    m0 = copy.deepcopy(model)
    loss = F.cross_entropy(m0(x), y)
    g = torch.autograd.grad(loss, list(m0.parameters()))
    d = g if direction is None else direction
    losses, diffs = [], []
    for eta in etas:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for p, di in zip(m.parameters(), d):
                p -= eta * di
        loss_e = F.cross_entropy(m(x), y)
        g_e = torch.autograd.grad(loss_e, list(m.parameters()))
        losses.append(float(loss_e.detach()))
        diffs.append(float(torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(g, g_e)))))
    gnorm = float(torch.sqrt(sum((t * t).sum() for t in g)))
    return np.array(losses), np.array(diffs), gnorm


@pytest.mark.parametrize("norm", [None, "bn", "l2"])
def test_matches_a_plain_loop_over_etas(norm):
    model, (x, y) = _two_layer(norm), _batch()
    etas = [0.05, 0.1, 0.4, 1.0]
    res = landscape(model, x, y, etas)
    losses, diffs, gnorm = _naive(model, x, y, etas)
    torch.testing.assert_close(res.losses, losses, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(res.grad_diffs, diffs, rtol=1e-10, atol=1e-12)
    assert res.grad_norm == pytest.approx(gnorm, rel=1e-12)
    assert res.loss_range == pytest.approx(losses.max() - losses.min(), rel=1e-12)
    assert res.grad_predictiveness == pytest.approx(diffs.max(), rel=1e-12)
    assert res.beta_smoothness == pytest.approx(max(d / (e * gnorm) for d, e in zip(diffs, etas)), rel=1e-12)


def test_random_direction_has_the_gradient_norm_and_matches_the_loop():
    model, (x, y) = _two_layer("bn"), _batch()
    etas = [0.1, 0.5]
    res = landscape(model, x, y, etas, direction="random", seed=3)
    assert res.direction == "random"
    gen = torch.Generator().manual_seed(3)
    params = list(model.parameters())
    d = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    _, _, gnorm = _naive(model, x, y, etas)
    total = torch.sqrt(sum((t * t).sum() for t in d))
    d = [t * gnorm / total for t in d]
    losses, diffs, _ = _naive(model, x, y, etas, direction=d)
    torch.testing.assert_close(res.losses, losses, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(res.grad_diffs, diffs, rtol=1e-10, atol=1e-12)
    both = landscape(model, x, y, etas, directions=("gradient", "random"), seed=3)
    np.testing.assert_array_equal(both["random"].losses, res.losses)
    np.testing.assert_array_equal(both["gradient"].losses, landscape(model, x, y, etas).losses)


def test_tiny_steps_see_the_hessian():
    """||g - g(eta)|| / (eta ||g||) -> ||H g|| / ||g|| as eta -> 0 (checked by double backward)."""
    from bnutils.curvature import flatten, hvp

    model, (x, y) = _two_layer(), _batch()
    params = list(model.parameters())
    g = flatten(torch.autograd.grad(F.cross_entropy(model(x), y), params))
    hg = hvp(lambda: F.cross_entropy(model(x), y), params, g)
    res = landscape(model, x, y, [1e-6])
    assert res.beta_smoothness == pytest.approx(float(hg.norm() / g.norm()), rel=1e-4)


@pytest.mark.parametrize("norm", [None, "bn", "noisy_bn", "linf"])
def test_leaves_the_model_undisturbed(norm):
    torch.manual_seed(0)
    model = mlp(6, [8, 8], 3, norm=norm)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    F.cross_entropy(model(x), y).backward()  # .grad fields set: they must survive
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.step()
    assert_undisturbed(model, lambda: landscape(model, x, y, [0.1, 0.2], directions=("gradient", "random")), opt)
    model.eval()
    assert_undisturbed(model, lambda: landscape_probe(model, x, y, lr=0.1, loss_fn=F.cross_entropy))


def test_costs_one_pass_per_eta():
    """1 + k forward passes per direction, and no copy of the model per eta."""
    model, (x, y) = _two_layer("bn"), _batch()
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    landscape(model, x, y, VGG_MULTIPLIERS)
    assert len(calls) == 1 + len(VGG_MULTIPLIERS)
    calls.clear()
    landscape(model, x, y, VGG_MULTIPLIERS, directions=("gradient", "random"))
    assert len(calls) == 1 + 2 * len(VGG_MULTIPLIERS)


def test_probe_returns_plain_data_and_is_registered():
    assert PROBES["landscape"] is landscape_probe
    model, (x, y) = _two_layer("bn"), _batch()
    out = landscape_probe(model, x, y, lr=0.1, loss_fn=F.cross_entropy, directions=("gradient", "random"))
    for key in ("loss_range", "grad_predictiveness", "beta_smoothness", "grad_norm"):
        assert isinstance(out[key], float) and isinstance(out["random_" + key], float)
    assert len(out["losses"]) == len(VGG_MULTIPLIERS) and all(isinstance(v, float) for v in out["losses"])
    res = landscape(model, x, y, [0.1 * m for m in VGG_MULTIPLIERS])
    assert out["loss_range"] == res.loss_range
    # ||g|| is the grad_norms probe's measurement: Lipschitzness comes for free
    assert out["grad_norm"] == pytest.approx(probes.grad_norm_probe(model, x, y, lr=0.1, loss_fn=F.cross_entropy))
    assert len(DLN_MULTIPLIERS) == 8
    assert DLN_MULTIPLIERS[0] == pytest.approx(0.01) and DLN_MULTIPLIERS[-1] == pytest.approx(30.0)


def test_probe_inside_training_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("BNBOOK_CACHE", "off")
    exp = Experiment(data="digits", model=ModelConfig(hidden=(16,), norm="bn"),
                     train=TrainConfig(lr=0.1, steps=6, probe_every=3, eval_every=3),
                     probes=(Probe("landscape", (("multipliers", (1.0, 2.0)),)),))
    a, b = run(exp, cache=False), run(exp, cache=False)
    assert a == b and len(a.probes["landscape"]) == 2
    plain = run(Experiment(data="digits", model=exp.model, train=exp.train), cache=False)
    np.testing.assert_array_equal(a.loss, plain.loss)  # probing does not change training


def test_non_finite_losses_give_nan_summaries():
    r = LandscapeResult(np.array([1.0, 2.0]), np.array([1.0, np.inf]), np.array([1.0, np.nan]), 1.0, 1.0)
    assert np.isnan(r.loss_range) and np.isnan(r.grad_predictiveness) and np.isnan(r.beta_smoothness)


def test_rejects_bad_arguments():
    model, (x, y) = _two_layer(), _batch()
    with pytest.raises(ValueError, match="direction"):
        landscape(model, x, y, [0.1], direction="sideways")
    with pytest.raises(ValueError, match="non-empty"):
        landscape(model, x, y, [])
    with pytest.raises(ValueError, match="trainable"):
        landscape(nn.Sequential(nn.Flatten()), x, y, [0.1])


# ---------------------------------------------------------------- l_p normalization (§3.3)

@pytest.mark.parametrize("p", [1, 2, float("inf")])
@pytest.mark.parametrize("shape", [(32, 5), (8, 3, 4, 4)])
def test_lp_norm_follows_its_definition(p, shape):
    """Subtract the batch mean, divide by the unit's average l_p norm over the batch (SCIENCE.md)."""
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64) * 3 + 2
    layer = LpNorm(shape[1], p=p).double()
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2)
        layer.bias.normal_()
    out = layer(x)
    xt = x.transpose(0, 1).reshape(shape[1], -1)  # (C, m) with spatial positions as samples
    xc = xt - xt.mean(1, keepdim=True)
    norm = xc.abs().amax(1) if p == float("inf") else xc.abs().pow(p).mean(1).pow(1 / p)
    want = (xc / (norm[:, None] + layer.eps)) * layer.weight[:, None] + layer.bias[:, None]
    torch.testing.assert_close(out.transpose(0, 1).reshape(shape[1], -1), want)
    if p == 2:  # the l_2 version is batch norm with eps outside the square root
        bn = F.batch_norm(x, None, None, layer.weight, layer.bias, training=True, eps=1e-12)
        torch.testing.assert_close(out, bn, rtol=1e-4, atol=1e-4)
    layer.eval()
    assert torch.isfinite(layer(x)).all()


def test_lp_builders_and_gradients():
    for name, p in (("l1", 1), ("l2", 2), ("linf", float("inf"))):
        model = mlp(6, [8], 3, norm=name).double()
        assert any(isinstance(m, LpNorm) and m.p == p for m in model.modules())
    layer = LpNorm(3, p=1).double()
    x = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t), (x,))
