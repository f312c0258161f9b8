"""Hessian-vector products, conjugate gradient and Newton steps, against PyTorch in float64 (the
spectrum: tests/test_spectrum.py)."""

import pytest
import torch
from torch.testing import assert_close

from bnutils.curvature import conjugate_gradient, dense_hessian_bytes, flatten, hvp, newton_step, unflatten
from bnutils.quadratics import quadratic
from bnutils.tables import format_bytes
from bnutils.timing import time_per_step


def _small_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    y = torch.randn(16, generator=g, dtype=torch.float64)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)

    def loss_of(w_, v_):
        return ((torch.tanh(x @ w_) @ v_ - y) ** 2).mean()

    return [w, v], loss_of


def test_hvp_matches_autograd_hessian():
    params, loss_of = _small_problem()
    flat = flatten(params).detach()

    def loss_flat(theta):
        w_, v_ = unflatten(theta, params)
        return loss_of(w_, v_)

    H = torch.autograd.functional.hessian(loss_flat, flat)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        vec = torch.randn(flat.numel(), generator=g, dtype=torch.float64)
        assert_close(hvp(lambda: loss_of(*params), params, vec), H @ vec)
    assert all(p.grad is None for p in params)


def test_cg_matches_linalg_solve():
    q = quadratic(100.0, dim=30, seed=3)
    res = conjugate_gradient(lambda v: q.A @ v, q.b, tol=1e-12)
    assert_close(res.x, torch.linalg.solve(q.A, q.b), rtol=1e-8, atol=1e-8)
    assert res.iterations <= 10 * 30
    assert res.residual_norms[0] == pytest.approx(float(q.b.norm()))
    # well conditioned: CG needs far fewer than d products
    easy = quadratic(2.0, dim=200, seed=0)
    assert conjugate_gradient(lambda v: easy.A @ v, easy.b, tol=1e-8).iterations < 30


def test_cg_on_a_hessian_via_hvp():
    params, loss_of = _small_problem()
    flat = flatten(params).detach()

    def loss_flat(theta):
        return loss_of(*unflatten(theta, params))

    H = torch.autograd.functional.hessian(loss_flat, flat)
    A = H + 5.0 * torch.eye(flat.numel(), dtype=torch.float64)  # damped: positive definite
    b = torch.arange(flat.numel(), dtype=torch.float64)
    res = conjugate_gradient(lambda v: hvp(lambda: loss_of(*params), params, v) + 5.0 * v, b, tol=1e-12)
    assert_close(res.x, torch.linalg.solve(A, b))


def test_cg_zero_rhs_and_bad_shape():
    res = conjugate_gradient(lambda v: 2 * v, torch.zeros(5, dtype=torch.float64))
    assert res.iterations == 0 and torch.equal(res.x, torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="flat vector"):
        conjugate_gradient(lambda v: v, torch.zeros(2, 2))


def test_newton_step_solves_a_quadratic_in_one_step():
    q = quadratic(1e4, dim=20, seed=0)
    x0 = torch.randn(20, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert_close(x0 + newton_step(q.grad(x0), q.A), q.x_star)
    assert_close(x0 + newton_step(q.grad(x0), lambda v: q.A @ v, tol=1e-14), q.x_star, rtol=1e-7, atol=1e-7)


def test_regularised_newton_step():
    H = torch.diag(torch.tensor([2.0, -1.0], dtype=torch.float64))
    g = torch.tensor([1.0, 0.5], dtype=torch.float64)
    d = newton_step(g, H)
    assert_close(d, torch.tensor([-0.5, 0.5], dtype=torch.float64))  # ascent along the negative curvature
    assert float(g[1] * d[1]) > 0  # along the negative-curvature axis it climbs
    d2 = newton_step(g, H, alpha=3.0)
    assert_close(d2, -g / torch.tensor([5.0, 2.0], dtype=torch.float64))
    assert float(g @ d2) < 0  # a descent direction
    with pytest.raises(ValueError, match="shape"):
        newton_step(g, torch.eye(3, dtype=torch.float64))


def test_hessian_memory_and_timer():
    assert dense_hessian_bytes(1e3) == 4e6
    assert dense_hessian_bytes(1.75e11, bytes_per_entry=2) == pytest.approx(6.125e22)
    assert format_bytes(4e6) == "4 MB" and format_bytes(512) == "512 B"
    calls = []
    t = time_per_step(lambda: calls.append(1), number=3, repeats=2, warmup=1)
    assert t >= 0 and len(calls) == 1 + 3 * 2
