"""Theorem 4.1 of Santurkar et al., evaluated on random instances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bnutils.theory import bn_gradient_bound, check_theorem_41, identity_recovery, theorem41_instance


def test_bound_by_hand_on_a_tiny_instance():
    g = torch.tensor([[1.0], [2.0], [-1.0], [0.0]], dtype=torch.float64)
    y_hat = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]], dtype=torch.float64)
    gamma, sigma = torch.tensor([2.0], dtype=torch.float64), torch.tensor([4.0], dtype=torch.float64)
    # ||g||^2 = 6, <1,g> = 2, <g,y_hat> = -2, m = 4, (gamma/sigma)^2 = 1/4
    assert float(bn_gradient_bound(g, y_hat, gamma, sigma)) == pytest.approx(0.25 * (6 - 4 / 4 - 4 / 4))
    assert float(bn_gradient_bound(g, y_hat, gamma, sigma, sqrt_m=True)) == pytest.approx(0.25 * (6 - 1 - 4 / 2))


def test_bound_holds_on_every_instance_and_is_tight():
    df = check_theorem_41(n_instances=24)
    assert len(df) == 24 * 8
    assert (df["lhs"] <= df["bound"] * (1 + 1e-10) + 1e-15).all()
    assert (df["lhs"] / df["bound"]).min() > 0.99  # an equality up to eps
    assert (df["lhs"] <= df["scale_sq"] * df["g_sq"] * (1 + 1e-10)).all()  # never more than the rescaled gradient


def test_bound_is_an_equality_without_eps():
    r = theorem41_instance(m=16, eps=1e-300, seed=5)
    np.testing.assert_allclose(r["lhs"], r["bound"], rtol=1e-9)


def test_the_sqrt_m_version_is_not_an_upper_bound():
    r = theorem41_instance(m=64, seed=1)
    assert (r["lhs"] > r["bound_sqrt_m"]).all()


def test_lhs_is_autograd_through_torch_batch_norm():
    r = theorem41_instance(m=8, seed=2, eps=1e-5)
    assert np.all(np.isfinite(r["lhs"])) and np.all(r["lhs"] >= 0)
    # the same instance with PyTorch's batch norm gives the same left-hand side
    gen = torch.Generator().manual_seed(2)
    opts = {"dtype": torch.float64}
    x = torch.randn(8, 20, generator=gen, **opts) * (0.5 + 2.0 * torch.rand(1, generator=gen, **opts))
    w = torch.randn(8, 20, generator=gen, **opts) / math.sqrt(20)
    gamma = 0.2 + 2.0 * torch.rand(8, generator=gen, **opts)
    beta = torch.randn(8, generator=gen, **opts)
    head = torch.randn(5, 8, generator=gen, **opts)
    labels = torch.randint(0, 5, (8,), generator=gen)
    y = (x @ w.T).requires_grad_(True)
    z = torch.nn.functional.batch_norm(y, None, None, gamma, beta, training=True, eps=1e-5)
    torch.nn.functional.cross_entropy(z @ head.T, labels).backward()
    np.testing.assert_allclose((y.grad ** 2).sum(0).numpy(), r["lhs"], rtol=1e-9)


@pytest.mark.parametrize("shape", [(16, 4), (4, 3, 5, 5)])
def test_identity_recovery(shape):
    y = torch.randn(*shape, dtype=torch.float64) * 5 - 3
    torch.testing.assert_close(identity_recovery(y), y)
