"""Hessian-vector products, conjugate gradient and Newton steps, against PyTorch in float64 (the
spectrum: tests/test_spectrum.py)."""

import numpy as np
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
    assert t > 0 and len(calls) == 1 + 2 * (3 + 2)  # warm-up, and two more before each block (tests/test_timing.py)


# ----- SciPy's CG gives the numbers of the written-out CG it replaced, to float precision --------


def _written_out_cg(matvec, b, tol=1e-10, max_iter=None):
    """The loop bnutils.curvature.conjugate_gradient ran before it called SciPy (Hestenes & Stiefel)."""
    max_iter = 10 * b.numel() if max_iter is None else max_iter
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), r @ r
    norms, k = [float(torch.sqrt(rr))], 0
    while k < max_iter:
        ap = matvec(p)
        k += 1
        pap = p @ ap
        if pap <= 0:
            break
        alpha = rr / pap
        x, r = x + alpha * p, r - alpha * ap
        rr_new = r @ r
        norms.append(float(torch.sqrt(rr_new)))
        if norms[-1] <= tol * norms[0]:
            break
        p, rr = r + (rr_new / rr) * p, rr_new
    return x, k, norms


def test_scipy_cg_agrees_with_the_written_out_loop_when_well_conditioned():
    # every number: the solution, the count of products, the residual after each
    q = quadratic(2.0, dim=200, seed=3)
    products = []
    res = conjugate_gradient(lambda v: products.append(1) or q.A @ v, q.b, tol=1e-12)
    x, k, norms = _written_out_cg(lambda v: q.A @ v, q.b, tol=1e-12)
    assert res.iterations == k == len(products) == len(res.residual_norms) - 1  # one product an iteration
    assert res.x.dtype == torch.float64 and isinstance(res.x, torch.Tensor)
    assert_close(res.x, x, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.residual_norms, norms, rtol=1e-9)


@pytest.mark.parametrize("kappa, dim", [(100.0, 30), (1e4, 50)])
def test_scipy_cg_agrees_with_the_written_out_loop_when_ill_conditioned(kappa, dim):
    # In floating point CG's residual history is chaotic once its Ritz values converge: a one-ulp
    # change of b moves the written-out loop's own history by O(1) in the middle and its count by
    # one (measured: kappa 1e4, 145 -> 144 products). What agrees is what CG is for: the solution
    # (to the tolerance times kappa: both stop somewhere in that chaos), the count (to a product or
    # two), the residual's first steps and its end.
    q = quadratic(kappa, dim=dim, seed=3)
    res = conjugate_gradient(lambda v: q.A @ v, q.b, tol=1e-8)
    x, k, norms = _written_out_cg(lambda v: q.A @ v, q.b, tol=1e-8)
    assert float((res.x - x).norm() / x.norm()) < 1e-8 * kappa
    assert abs(res.iterations - k) <= max(1, k // 50)
    np.testing.assert_allclose(res.residual_norms[:5], norms[:5], rtol=1e-12)
    assert res.residual_norms[-1] < 1e-8 * res.residual_norms[0]
    true = float((q.b - q.A @ res.x).norm() / q.b.norm())  # the recursion tracks the true residual
    assert true < 1e-7


def test_scipy_cg_on_hessian_vector_products_agrees():
    params, loss_of = _small_problem()
    mv = lambda v: hvp(lambda: loss_of(*params), params, v) + 5.0 * v
    b = torch.arange(flatten(params).numel(), dtype=torch.float64)
    res = conjugate_gradient(mv, b, tol=1e-12)
    x, k, norms = _written_out_cg(mv, b, tol=1e-12)
    assert res.iterations == k
    assert_close(res.x, x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.residual_norms, norms, rtol=1e-6)


def test_cg_stops_at_negative_curvature_like_truncated_newton():
    A = torch.diag(torch.tensor([2.0, -1.0, 3.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    res = conjugate_gradient(lambda v: A @ v, b)
    x, k, norms = _written_out_cg(lambda v: A @ v, b)
    assert res.iterations == k and res.residual_norms == pytest.approx(norms)
    assert_close(res.x, x)
    # indefinite along the very first direction: nothing moves
    first = conjugate_gradient(lambda v: -v, b)
    assert first.iterations == 1 and torch.equal(first.x, torch.zeros(3, dtype=torch.float64))


def test_cg_keeps_float32():
    q = quadratic(10.0, dim=20, seed=1)
    A, b = q.A.float(), q.b.float()
    res = conjugate_gradient(lambda v: A @ v, b, tol=1e-5)
    assert res.x.dtype == torch.float32
    assert float((A @ res.x - b).norm() / b.norm()) < 1e-4
