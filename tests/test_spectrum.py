"""bnutils.curvature's spectrum on a quadratic whose spectrum is known, and the probe on a real network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnutils import models
from bnutils.curvature import (Spectrum, gradient_share, hessian_probe, hessian_spectrum,
                              hessian_top_eigenvalue, lanczos, top_eigenspace)
from bnutils.experiments import PROBES

from helpers import assert_undisturbed

P = 30
EIGS = np.concatenate([[50.0, 20.0, 10.0], np.linspace(-1.0, 2.0, P - 3)])  # three outliers


def quadratic(eigs=EIGS, seed=0):
    """theta (P,) with loss 0.5 theta^T A theta - b^T theta, A = Q diag(eigs) Q^T, in float64."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.as_tensor(eigs, dtype=torch.float64)) @ q.T
    b = torch.randn(len(eigs), generator=g, dtype=torch.float64)
    theta = torch.randn(len(eigs), generator=g, dtype=torch.float64, requires_grad=True)
    closure = lambda: 0.5 * theta @ a @ theta - b @ theta
    return theta, closure, a, q


def test_top_eigenvalue_of_a_quadratic():
    theta, closure, _, q = quadratic()
    lam, v = hessian_top_eigenvalue(closure, [theta], iters=500, tol=1e-12)
    assert lam == pytest.approx(50.0, rel=1e-8)
    assert abs(float(v @ q[:, 0])) == pytest.approx(1.0, abs=1e-6)
    assert theta.grad is None


def test_top_eigenvalue_is_deterministic_and_leaves_the_rng_alone():
    theta, closure, _, _ = quadratic()
    state = torch.get_rng_state()
    a, _ = hessian_top_eigenvalue(closure, [theta], iters=7)
    b, _ = hessian_top_eigenvalue(closure, [theta], iters=7)
    assert a == b
    assert torch.equal(state, torch.get_rng_state())


def test_lanczos_basis_is_orthonormal_and_tridiagonalises():
    theta, closure, a, _ = quadratic()
    v0 = torch.ones(P, dtype=torch.float64)
    alpha, beta, V = lanczos(lambda v: a @ v, v0, 12)
    torch.testing.assert_close(V @ V.T, torch.eye(len(alpha), dtype=torch.float64), atol=1e-10, rtol=0)
    t = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    np.testing.assert_allclose((V @ a @ V.T).numpy(), t, atol=1e-9)


def test_slq_recovers_the_spectrum_when_m_equals_the_dimension():
    theta, closure, _, _ = quadratic()
    spec = hessian_spectrum(closure, [theta], m=P, n_vectors=3)
    assert isinstance(spec, Spectrum)
    for r in range(3):
        np.testing.assert_allclose(np.sort(spec.nodes[r]), np.sort(EIGS), atol=1e-8)
        assert spec.weights[r].sum() == pytest.approx(1.0, abs=1e-12)
    assert spec.lambda_max == pytest.approx(50.0) and spec.lambda_min == pytest.approx(-1.0)
    # three outliers of thirty: about a tenth of the mass above 5 (random weights, so loosely)
    assert 0.0 < spec.mass_above(5.0) < 0.4


def test_slq_trace_estimate_and_density_normalisation():
    # m=4 Lanczos steps, not m=P: a run's quadrature sum(weights * nodes) is e1^T T e1 = v^T A v
    # for every m >= 1 (Gauss quadrature is exact for degree <= 2m-1), so the trace estimate is the
    # same number as with m=P, and each run's weights sum to 1 for any m. The 200 probes stay: they
    # set the estimate's spread (sd about 2.4/sqrt(200) = 0.17, ~5% of the mean 3.1, under rel=0.1).
    theta, closure, _, _ = quadratic()
    spec = hessian_spectrum(closure, [theta], m=4, n_vectors=200)
    trace = float(np.nansum(spec.nodes * spec.weights) / spec.nodes.shape[0])
    assert trace == pytest.approx(EIGS.mean(), rel=0.1)
    grid = np.linspace(-10, 70, 4001)
    mass = np.trapezoid(spec.density(grid, sigma=0.5), grid)
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_few_lanczos_steps_find_the_outliers():
    theta, closure, _, _ = quadratic()
    vals, vecs = top_eigenspace(closure, [theta], k=3, m=15)
    np.testing.assert_allclose(vals, [50.0, 20.0, 10.0], rtol=1e-6)
    torch.testing.assert_close(vecs @ vecs.T, torch.eye(3, dtype=torch.float64), atol=1e-8, rtol=0)


def test_gradient_share():
    theta, closure, a, q = quadratic()
    top = q[:, :3].T
    assert gradient_share(q[:, 0] * 3 - q[:, 2], top) == pytest.approx(1.0)
    assert gradient_share(q[:, 5] + q[:, 9], top) == pytest.approx(0.0, abs=1e-12)
    assert gradient_share(q[:, 0] + q[:, 9], top) == pytest.approx(0.5)
    assert np.isnan(gradient_share(torch.zeros(P, dtype=torch.float64), top))


def test_argument_checks():
    theta, closure, _, _ = quadratic()
    with pytest.raises(ValueError, match="iters"):
        hessian_top_eigenvalue(closure, [theta], iters=0)
    with pytest.raises(ValueError, match="requires grad"):
        hessian_top_eigenvalue(closure, [theta.detach()])
    with pytest.raises(ValueError, match="k must be"):
        top_eigenspace(closure, [theta], k=0)
    with pytest.raises(ValueError, match="sigma"):
        Spectrum(np.zeros((1, 2)), np.ones((1, 2)) / 2).density(np.zeros(3), 0.0)


@pytest.mark.parametrize("norm", [None, "bn", "torch_bn"])
def test_probe_leaves_the_model_untouched(norm):
    torch.manual_seed(0)
    model = models.mlp(12, [16, 16], 3, norm=norm)
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    torch.nn.functional.cross_entropy(model(x), y).backward()  # some .grad to preserve
    model.eval()  # and a mode to preserve
    out = assert_undisturbed(model, lambda: hessian_probe(
        model, x, y, lr=0.1, loss_fn=torch.nn.functional.cross_entropy, iters=10, top_k=3, m=12))
    assert out["lr_lambda_max"] == pytest.approx(0.1 * out["lambda_max"])
    assert out["top_eigenvalues"][0] == pytest.approx(out["lambda_max"], rel=0.05)
    assert 0.0 <= out["grad_share"] <= 1.0 + 1e-6


def test_probe_is_registered():
    assert PROBES["hessian"] is hessian_probe


def test_spectrum_keeps_the_top_ritz_pairs_of_its_first_run():
    theta, closure, _, _ = quadratic()
    spec = hessian_spectrum(closure, [theta], m=15, n_vectors=2, top_k=3)
    vals, vecs = top_eigenspace(closure, [theta], k=3, m=15)
    np.testing.assert_allclose(spec.top_values, vals)
    torch.testing.assert_close(spec.top_vectors, vecs)
    assert hessian_spectrum(closure, [theta], m=5).top_vectors is None


def test_tridiagonal_eigensolver_gives_the_dense_eigh_numbers():
    # SLQ's nodes and weights from scipy.linalg.eigh_tridiagonal, as they were from np.linalg.eigh of
    # the dense T (the weights are squared first components, so an eigenvector's sign cannot matter)
    from bnutils.curvature import _tridiag_eig

    theta, closure, a, _ = quadratic()
    for m in (1, 2, 12, P):
        alpha, beta, _ = lanczos(lambda v: a @ v, torch.ones(P, dtype=torch.float64), m)
        nodes, s = _tridiag_eig(alpha, beta)
        dense_nodes, dense_s = np.linalg.eigh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
        scale = np.abs(dense_nodes).max()
        np.testing.assert_allclose(nodes, dense_nodes, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(s[0] ** 2, dense_s[0] ** 2, rtol=0, atol=1e-12)
        t = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
        np.testing.assert_allclose(t @ s, s * nodes, atol=1e-10 * scale)  # eigenpairs of T
