"""Santurkar et al.'s noisy BatchNorm (§2.1): after BN, per step and unit a shift mu_j ~ U(-0.5, 0.5)
and scale sigma_j ~ U(1, 1.25); per sample m_ij ~ U(mu_j - 0.1, mu_j + 0.1), s_ij ~ N(sigma_j, 0.1);
output s_ij * a_ij + m_ij. Spatial positions count as samples. Plain BN in eval mode."""

from __future__ import annotations

import pytest
import torch

from bnutils import models
from bnutils.norms import BatchNoise, BatchNorm, NoisyBatchNorm


def _draws(shape, seed):
    """(s, m) of one draw of the noise, recovered from its action on 0 and 1 (it is affine)."""
    noise = BatchNoise(shape[1]).double()
    torch.manual_seed(seed)
    m = noise(torch.zeros(shape, dtype=torch.float64))
    torch.manual_seed(seed)
    s = noise(torch.ones(shape, dtype=torch.float64)) - m
    return s, m


def _per_channel(t):
    """(N, C, *) -> (C, N * prod(*)): every sample and position of one channel in a row."""
    return t.transpose(0, 1).reshape(t.shape[1], -1)


@pytest.mark.parametrize("shape", [(4000, 6), (40, 6, 10, 10)])
def test_noise_distribution(shape):
    s, m = _draws(shape, seed=0)
    s, m = _per_channel(s), _per_channel(m)
    # the shift: one centre mu_j per unit, then U(mu_j - 0.1, mu_j + 0.1) per sample
    lo, hi = m.min(1).values, m.max(1).values
    assert bool(((hi - lo) <= 0.2 + 1e-12).all())
    assert bool(((hi - lo) > 0.19).all())  # per sample (and per position): it spreads over the range
    centre = (hi + lo) / 2
    assert bool((centre.abs() < 0.5 + 1e-3).all())
    assert float(centre.std()) > 0.05  # per unit: the centres differ between units
    # the scale: N(sigma_j, 0.1^2) per sample, sigma_j in [1, 1.25] per unit
    assert bool(((s.mean(1) > 0.99) & (s.mean(1) < 1.26)).all())
    torch.testing.assert_close(s.std(1), torch.full((shape[1],), 0.1, dtype=torch.float64), atol=0.01, rtol=0)
    assert float(s.mean(1).std()) > 0.01


def test_noise_is_fresh_at_every_step():
    noise = BatchNoise(5)
    torch.manual_seed(0)
    a = noise(torch.zeros(2000, 5)).mean(0)
    b = noise(torch.zeros(2000, 5)).mean(0)
    assert float((a - b).abs().max()) > 0.05
    torch.manual_seed(0)
    torch.testing.assert_close(noise(torch.zeros(2000, 5)).mean(0), a)  # and seeded


def test_noise_is_affine_per_element():
    x = torch.randn(50, 3, 4, 4, dtype=torch.float64)
    s, m = _draws(x.shape, seed=3)
    noise = BatchNoise(3)
    torch.manual_seed(3)
    torch.testing.assert_close(noise(x), s * x + m)


def test_noisy_bn_is_bn_then_noise_in_training():
    torch.manual_seed(0)
    x = torch.randn(32, 4, 5, 5, dtype=torch.float64) * 3 + 1
    nbn, bn = NoisyBatchNorm(4).double(), BatchNorm(4).double()
    with torch.no_grad():
        for mod in (nbn, bn):
            mod.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))
            mod.bias.copy_(torch.tensor([0.0, -1.0, 1.0, 0.2]))
    torch.manual_seed(7)
    got = nbn(x)
    torch.manual_seed(7)
    want = BatchNoise(4)(bn(x))
    torch.testing.assert_close(got, want)
    # the running statistics are BN's: the noise comes after them
    torch.testing.assert_close(nbn.running_mean, bn.running_mean)
    torch.testing.assert_close(nbn.running_var, bn.running_var)
    # gradients flow through the noise
    xg = x.clone().requires_grad_()
    nbn(xg).sum().backward()
    assert xg.grad is not None and bool(torch.isfinite(xg.grad).all())


def test_eval_mode_is_plain_bn_and_plain_identity():
    torch.manual_seed(0)
    x = torch.randn(16, 3)
    nbn, bn = NoisyBatchNorm(3), BatchNorm(3)
    for _ in range(3):
        nbn(x * 2 + 1), bn(x * 2 + 1)
    nbn.eval(), bn.eval()
    torch.testing.assert_close(nbn(x), bn(x))
    torch.testing.assert_close(nbn(x), nbn(x))  # no noise, deterministic
    noise = BatchNoise(3).eval()
    assert torch.equal(noise(x), x)


def test_builders_use_noisy_bn():
    mlp = models.mlp(4, [5, 5], 2, norm="noisy_bn")
    assert sum(isinstance(m, NoisyBatchNorm) for m in mlp) == 2
    cnn = models.cnn(1, 10, (4, "M"), image_size=4, norm="noisy_bn")
    assert sum(isinstance(m, NoisyBatchNorm) for m in cnn) == 1
    assert cnn(torch.randn(2, 1, 4, 4)).shape == (2, 10)
    noise = models.mlp(4, [5], 2, norm="noise")
    assert any(isinstance(m, BatchNoise) for m in noise)
