"""Internal covariate shift (Santurkar et al., Definition 2.1) and the activation measurements of
Ioffe & Szegedy's Figure 1, in bnutils.ics and bnutils.probes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnutils import ics, models, probes
from bnutils.experiments import Experiment, Probe, run
from bnutils.models import ModelConfig
from bnutils.norms import BatchNorm
from bnutils.train import TrainConfig
from helpers import assert_undisturbed


def _two_layer(norm=False, act=nn.Sigmoid):
    torch.manual_seed(0)
    layers = [nn.Linear(5, 4)]
    if norm:
        layers.append(BatchNorm(4))
    layers += [act(), nn.Linear(4, 3)]
    model = nn.Sequential(*layers).double()
    if norm:  # move gamma and beta away from 1 and 0, so that their step matters
        with torch.no_grad():
            model[1].weight.uniform_(0.5, 1.5)
            model[1].bias.uniform_(-0.5, 0.5)
    return model


def _data(n=16):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _reference_ics(model, x, y, lr):
    """Definition 2.1 written out for Linear(5,4) [-> BN] -> act -> Linear(4,3), with explicit
    tensors and a functional forward pass (no bnutils code)."""
    norm = isinstance(model[1], BatchNorm)
    act = model[2] if norm else model[1]
    first, last = model[0], model[-1]
    w1, b1 = first.weight.detach().clone(), first.bias.detach().clone()
    w2, b2 = last.weight.detach().clone(), last.bias.detach().clone()
    gam = model[1].weight.detach().clone() if norm else None
    bet = model[1].bias.detach().clone() if norm else None

    def loss(w1, b1, gam, bet, w2, b2):
        h = x @ w1.T + b1
        if norm:
            mu = h.mean(0)
            var = h.var(0, unbiased=False)
            h = (h - mu) / torch.sqrt(var + model[1].eps) * gam + bet
        return F.cross_entropy(act(h) @ w2.T + b2, y)

    tensors = [w1, b1, gam, bet, w2, b2]
    live = [t.requires_grad_() for t in tensors if t is not None]
    grads = iter(torch.autograd.grad(loss(*tensors), live))
    g = [None if t is None else next(grads) for t in tensors]
    # layer 1 (index 0): nothing comes before it, G' = G.
    out = [(0.0, 1.0, float(g[0].norm()))]
    # layer 2 (index 1): W1, b1 (and gamma, beta) take their step; W2, b2 stay.
    moved = [t.detach() - lr * gt if t is not None else None for t, gt in zip(tensors[:4], g[:4])]
    w2_ = w2.detach().clone().requires_grad_()
    (g2,) = torch.autograd.grad(loss(*moved, w2_, b2.detach()), [w2_])
    G, Gp = g[4].flatten(), g2.flatten()
    out.append((float((G - Gp).norm()), float(G @ Gp / (G.norm() * Gp.norm())), float(G.norm())))
    return out


@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("lr", [0.1, 2.0])
def test_ics_matches_definition_on_two_layers(norm, lr):
    model = _two_layer(norm)
    x, y = _data()
    got = ics.ics(model, x, y, lr, F.cross_entropy)
    want = _reference_ics(model, x, y, lr)
    assert [r.layer for r in got] == [0, 1]
    for r, (l2, cos, gn) in zip(got, want):
        assert r.l2 == pytest.approx(l2, rel=1e-9, abs=1e-12)
        assert r.cosine == pytest.approx(cos, rel=1e-9)
        assert r.grad_norm == pytest.approx(gn, rel=1e-9)
        assert r.relative == pytest.approx(l2 / gn, rel=1e-9, abs=1e-12)
    assert got[1].l2 > 0 and got[1].cosine < 1


def test_ics_uses_batch_statistics_even_in_eval_mode():
    model = _two_layer(norm=True)
    x, y = _data()
    train_mode = ics.ics(model, x, y, 0.5)
    model.eval()
    eval_mode = ics.ics(model, x, y, 0.5)
    assert not model.training
    assert [r.l2 for r in train_mode] == [r.l2 for r in eval_mode]


def test_ics_zero_rate_is_no_shift():
    model = _two_layer(norm=True)
    x, y = _data()
    for r in ics.ics(model, x, y, 0.0):
        assert r.l2 == 0.0
        assert r.cosine == pytest.approx(1.0, abs=1e-12)


def test_ics_leaves_everything_as_it_found_it():
    model = _two_layer(norm=True)
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):  # momentum buffers, .grad and running statistics all non-trivial
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    res = assert_undisturbed(model, lambda: ics.ics(model, x, y, 0.3), opt)
    assert len(res) == 2
    model.train()
    assert_undisturbed(model, lambda: ics.ics_probe(model, x, y, lr=0.3, loss_fn=F.cross_entropy), opt)


def test_ics_noise_is_the_same_for_G_and_G_prime():
    """With noisy BN the random state is reset before each pass: at rate 0 nothing moves, so G' = G
    exactly, although every forward pass draws noise."""
    torch.manual_seed(0)
    model = models.mlp(6, [8, 8], 3, norm="noisy_bn").double()
    x = torch.randn(32, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (32,))
    res = assert_undisturbed(model, lambda: ics.ics(model, x, y, 0.0))
    assert all(r.l2 == 0.0 for r in res)
    assert all(r.l2 > 0 for r in ics.ics(model, x, y, 0.5)[1:])


def test_ics_layers_and_cnn():
    torch.manual_seed(0)
    model = models.cnn(1, 10, (4, "M", 8, "M"), image_size=8, norm="bn")
    x = torch.randn(6, 1, 8, 8)
    y = torch.randint(0, 10, (6,))
    res = ics.ics(model, x, y, 0.1, layers=(1, -1))
    assert [r.layer for r in res] == [1, 2]
    assert all(math.isfinite(r.l2) and -1 <= r.cosine <= 1 + 1e-6 for r in res)
    with pytest.raises(IndexError):
        ics.ics(model, x, y, 0.1, layers=(3,))
    with pytest.raises(ValueError):
        ics.ics(nn.Sequential(nn.ReLU()), x, y, 0.1)


def test_ics_probe_in_training_does_not_change_training():
    base = Experiment(data="digits", model=ModelConfig(hidden=(16, 16), norm="bn", act="sigmoid"),
                      train=TrainConfig(lr=0.5, steps=6, batch_size=32, eval_every=3, probe_every=2))
    probed = Experiment(data="digits", model=base.model, train=base.train,
                        probes=(Probe("ics", (("layers", (1, 2)),)),))
    h0, h1 = run(base, cache=False), run(probed, cache=False)
    np.testing.assert_array_equal(h0.loss, h1.loss)
    np.testing.assert_array_equal(h0.test_acc, h1.test_acc)
    assert list(h1.probe_steps) == [0, 2, 4]
    rec = h1.probes["ics"][0]
    assert rec["layer"] == [1, 2]
    assert set(rec) == {"layer", "l2", "relative", "cosine", "grad_norm"}
    assert all(isinstance(v, float) for k in ("l2", "relative", "cosine") for v in rec[k])


def test_activation_inputs_and_percentiles():
    torch.manual_seed(0)
    model = models.mlp(5, [7, 6], 3, act="sigmoid", norm="bn")
    x = torch.randn(40, 5)
    a = assert_undisturbed(model, lambda: probes.activation_inputs(model, x, index=-1))
    with torch.no_grad():  # by hand: the last sigmoid's input is the second BN's output
        want = model[4](model[3](torch.sigmoid(model[1](model[0](x)))))
    torch.testing.assert_close(a, want)
    p = probes.activation_percentiles(model, x, index=-1, q=(15, 50, 85), units=(0, 2))
    ref = np.percentile(want.numpy().astype(np.float64), [15, 50, 85], axis=0)[:, [0, 2]]
    np.testing.assert_allclose(np.array(p), ref, rtol=1e-6, atol=1e-6)
    probe = probes.activation_probe(model, x, None, lr=0.1, loss_fn=None, index=0, values=True)
    assert np.array(probe["percentiles"]).shape == (3, 7)
    assert np.array(probe["values"]).shape == (40, 7)


def test_activation_inputs_feature_maps_count_positions_as_samples():
    torch.manual_seed(0)
    model = models.cnn(1, 10, (4, "M"), image_size=6)
    x = torch.randn(3, 1, 6, 6)
    a = probes.activation_inputs(model, x, index=0)
    assert a.shape == (3 * 36, 4)
    with torch.no_grad():
        conv = model[0](x)
    torch.testing.assert_close(a[:, 1].sort().values, conv[:, 1].flatten().sort().values)
