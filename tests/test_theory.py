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


def test_descent_lemma_on_a_quadratic_is_exact_along_the_top_eigenvector():
    # L(w) = 1/2 w^T A w with A = diag(4, 1): beta = 4; starting on the top eigenvector the loss
    # along -g is exactly the lemma's bound, and elsewhere it lies below it
    from torch import nn

    from bnutils.theory import descent_bound, descent_lemma

    class Quad(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))

        def forward(self, x):
            return self.w

    def loss(w, _):
        return 0.5 * (4 * w[0] ** 2 + w[1] ** 2)

    top = descent_lemma(Quad([1.0, 0.0]), None, None, loss_fn=loss, iters=200, tol=0.0)
    assert top["beta"] == pytest.approx(4.0, rel=1e-6)
    np.testing.assert_allclose(top["losses"], top["bound"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(top["slack"], 1.0, rtol=1e-9)
    mixed = descent_lemma(Quad([1.0, 1.0]), None, None, loss_fn=loss, iters=200, tol=0.0)
    assert (mixed["losses"] <= mixed["bound"] + 1e-12).all() and (mixed["slack"][:-1] > 1).all()
    assert descent_bound(2.0, 1.0, 4.0, [0.5])[0] == pytest.approx(2.0)  # no decrease promised at 2/beta


def test_theorem_42_is_an_equality_without_eps_and_holds_up_to_eps():
    from bnutils.theory import check_theorem_42, theorem42_instance

    r = theorem42_instance(m=16, eps=1e-300, seed=3)
    np.testing.assert_allclose(r["lhs"], r["rhs"], rtol=1e-8, atol=1e-14)
    df = check_theorem_42(n_instances=8)
    assert len(df) == 8 * 8
    rel = (df["lhs"] - df["rhs"]).abs() / (df["rescaled"].abs() + df["correction"].abs())
    assert rel.max() < 1e-3


def test_theorem_42_has_both_terms():
    # the left-hand side is the second derivative of the BN loss along its own gradient
    from bnutils.theory import theorem42_instance

    r = theorem42_instance(m=8, n_out=1, seed=4, eps=1e-300)
    assert np.isfinite(r["lhs"]).all() and np.isfinite(r["rhs"]).all()
    assert r["rescaled"][0] != 0.0 and r["correction"][0] != 0.0  # both terms are there
