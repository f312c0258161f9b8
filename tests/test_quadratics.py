"""The quadratic test problems, the schedule and the run helper, checked against closed forms
and torch.optim in float64."""

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from bnutils.quadratics import iterations_to_tol, linear_decay, minimize_quadratic, quadratic


@pytest.mark.parametrize("rotate", [True, False])
def test_quadratic_has_the_condition_number_and_minimiser(rotate):
    q = quadratic(1e3, dim=12, seed=4, rotate=rotate)
    assert q.condition_number == pytest.approx(1e3, rel=1e-8)
    assert q.L == pytest.approx(1.0) and q.mu == pytest.approx(1e-3)
    assert_close(q.A, q.A.T)
    assert_close(q.grad(q.x_star), torch.zeros(12, dtype=torch.float64), atol=1e-10, rtol=0)
    x = torch.randn(12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert q.gap(x) == pytest.approx(float(q.f(x) - q.f(q.x_star)), rel=1e-9)
    if not rotate:
        assert torch.count_nonzero(q.A - torch.diag(torch.diagonal(q.A))) == 0


def test_quadratic_is_deterministic_and_leaves_global_rng():
    state = torch.get_rng_state()
    a, b = quadratic(10.0, 5, seed=1), quadratic(10.0, 5, seed=1)
    assert torch.equal(a.A, b.A) and torch.equal(a.b, b.b)
    assert torch.equal(state, torch.get_rng_state())
    assert not torch.equal(a.A, quadratic(10.0, 5, seed=2).A)
    with pytest.raises(ValueError):
        quadratic(0.5, 5)
    with pytest.raises(ValueError):
        quadratic(10.0, 1)


def _closed_form(q, lr, beta, steps):
    """Gradient descent / Polyak's heavy ball written out."""
    x_prev = x = torch.zeros(q.dim, dtype=torch.float64)
    out = [q.gap(x)]
    for _ in range(steps):
        x, x_prev = x - lr * q.grad(x) + beta * (x - x_prev), x
        out.append(q.gap(x))
    return np.array(out)


@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_minimize_quadratic_matches_closed_form_sgd_and_momentum(beta):
    q = quadratic(50.0, dim=8, seed=0)
    gaps = minimize_quadratic(q, lambda p: torch.optim.SGD(p, lr=0.5, momentum=beta), steps=200)
    np.testing.assert_allclose(gaps, _closed_form(q, 0.5, beta, 200), rtol=1e-6, atol=1e-12)


def _adaptive_closed_form(q, lr, kind, steps, alpha=0.99, eps=1e-8):
    x = torch.zeros(q.dim, dtype=torch.float64)
    acc = torch.zeros_like(x)
    out = [q.gap(x)]
    for _ in range(steps):
        g = q.grad(x)
        if kind == "adagrad":
            acc = acc + g * g
            x = x - lr * g / (acc.sqrt() + 1e-10)
        else:
            acc = alpha * acc + (1 - alpha) * g * g
            x = x - lr * g / (acc.sqrt() + eps)
        out.append(q.gap(x))
    return np.array(out)


def test_minimize_quadratic_matches_closed_form_adagrad_rmsprop():
    q = quadratic(20.0, dim=6, seed=5)
    gaps = minimize_quadratic(q, lambda p: torch.optim.Adagrad(p, lr=0.3), steps=100)
    np.testing.assert_allclose(gaps, _adaptive_closed_form(q, 0.3, "adagrad", 100), rtol=1e-6, atol=1e-12)
    gaps = minimize_quadratic(q, lambda p: torch.optim.RMSprop(p, lr=0.01), steps=100)
    np.testing.assert_allclose(gaps, _adaptive_closed_form(q, 0.01, "rmsprop", 100), rtol=1e-6, atol=1e-12)


def test_tolerance_stop_divergence_and_schedule():
    q = quadratic(10.0, dim=5, seed=0)
    gaps = minimize_quadratic(q, lambda p: torch.optim.SGD(p, lr=1.0), steps=10_000, tol=1e-8)
    assert len(gaps) < 10_001 and gaps[-1] <= 1e-8 * gaps[0]
    assert iterations_to_tol(gaps, 1e-8) == len(gaps) - 1
    assert iterations_to_tol(gaps, 1e-30) == math.inf
    # lr > 2 / L diverges: the run stops at the first non-finite gap or runs out growing
    bad = minimize_quadratic(q, lambda p: torch.optim.SGD(p, lr=2.5), steps=3000)
    assert not np.isfinite(bad[-1]) or bad[-1] > 1e100
    # the scheduler is stepped: a rate decayed to 0 at once freezes x after the first step
    frozen = minimize_quadratic(q, lambda p: torch.optim.SGD(p, lr=1.0), steps=5,
                                scheduler=lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda k: 0.0 if k else 1.0))
    assert np.all(frozen[1:] == frozen[1])


def test_linear_decay():
    assert linear_decay(0, 0.1, 0.001, 100) == 0.1
    assert linear_decay(50, 0.1, 0.001, 100) == pytest.approx(0.0505)
    assert linear_decay(100, 0.1, 0.001, 100) == pytest.approx(0.001)
    assert linear_decay(10**6, 0.1, 0.001, 100) == pytest.approx(0.001)
    with pytest.raises(ValueError):
        linear_decay(1, 0.1, 0.01, 0)


def test_regression_quadratic_is_least_squares():
    from bnutils.quadratics import regression_quadratic

    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = X @ torch.arange(1.0, 6.0, dtype=torch.float64) + 0.1 * torch.randn(200, generator=g, dtype=torch.float64)
    q = regression_quadratic(X, y)
    assert_close(q.x_star, torch.linalg.lstsq(X, y).solution)
    assert_close(q.A, X.T @ X / 200)
    with pytest.raises(ValueError, match="N x D"):
        regression_quadratic(X, y[:10])


def test_train_linear_records_and_repeats():
    from bnutils.quadratics import train_linear

    g = torch.Generator().manual_seed(1)
    X = torch.randn(500, 4, generator=g)
    y = X @ torch.ones(4)
    loss = lambda w, xb, yb: 0.5 * ((xb @ w - yb) ** 2).mean()
    measure = lambda w: float(loss(w.detach(), X, y))
    seen, secs, vals = train_linear(X, y, loss, measure, None, 0.5, steps=20, record_every=5)
    assert seen.tolist() == [0, 2500, 5000, 7500, 10000] and len(secs) == len(vals) == 5
    assert np.all(np.diff(vals) < 0) and np.all(np.diff(secs) >= 0)  # gradient descent descends
    a = train_linear(X, y, loss, measure, 16, 0.1, steps=30, seed=3)
    b = train_linear(X, y, loss, measure, 16, 0.1, steps=30, seed=3)
    assert a[0].tolist() == list(range(0, 31 * 16, 16)) and np.array_equal(a[2], b[2])  # same seed, same run
    with pytest.raises(ValueError, match="batch"):
        train_linear(X, y, loss, measure, 0, 0.1, steps=1)


def test_tuned_runs_heavy_ball_beats_gradient_descent():
    from bnutils.quadratics import tuned_runs

    # 1,000 steps, not 3,000: gradient descent reaches the tolerance at step 259, heavy ball at 39,
    # AdaGrad's best rate at 785 (the same runs as with 3,000); RMSProp's never does (its tail: 4x the time)
    runs = tuned_runs(100.0, 1000, 1e-6)
    assert list(runs) == ["gradient descent", "heavy ball", "AdaGrad", "RMSProp"]
    its = {k: iterations_to_tol(g, 1e-6) for k, g in runs.items()}
    assert its["heavy ball"] * 3 < its["gradient descent"] < math.inf


@pytest.mark.parametrize("cls, rates", [(torch.optim.Adagrad, (0.3, 3.0, 300.0)),   # never, at 127, at 129
                                        (torch.optim.RMSprop, (1e-3, 1e-1)),         # never, never
                                        (torch.optim.SGD, (0.5, 1.0, 50.0))])        # two stops, then overflow
def test_several_rates_at_once_are_the_runs_one_at_a_time(cls, rates):
    """minimize_quadratic_at_rates gives, bit for bit, one minimize_quadratic a rate: runs that reach
    the tolerance at different steps, runs that never do, and a run that leaves the reals."""
    from bnutils.quadratics import minimize_quadratic_at_rates

    q = quadratic(30.0, dim=20, seed=0)
    together = minimize_quadratic_at_rates(q, cls, rates, 600, tol=1e-6)
    alone = [minimize_quadratic(q, lambda p: cls(p, lr=r), 600, tol=1e-6) for r in rates]
    assert [len(g) for g in together] == [len(g) for g in alone]
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)
    untolerant = minimize_quadratic_at_rates(q, cls, rates[:2], 50)
    assert [len(g) for g in untolerant] == [51, 51]
    np.testing.assert_array_equal(untolerant[0], minimize_quadratic(q, lambda p: cls(p, lr=rates[0]), 50))


def test_several_rates_cover_every_way_a_run_ends():
    from bnutils.quadratics import minimize_quadratic_at_rates

    q = quadratic(30.0, dim=20, seed=0)
    ends = {len(g) - 1: bool(np.isfinite(g[-1]))
            for cls, rates in ((torch.optim.Adagrad, (0.3, 3.0, 300.0)), (torch.optim.SGD, (0.5, 1.0, 50.0)))
            for g in minimize_quadratic_at_rates(q, cls, rates, 600, tol=1e-6)}
    assert 600 in ends and len([k for k, ok in ends.items() if k < 600 and ok]) >= 3 and False in ends.values()
