r"""Small, exactly solvable problems for watching optimisers work (the survey's §2).

* :func:`quadratic` -- :math:`f(x) = \tfrac12 x^\top A x - b^\top x` with a chosen condition number
  :math:`\kappa = \lambda_{\max}(A) / \lambda_{\min}(A)`, its minimiser :math:`x^\star = A^{-1} b` known;
* :func:`minimize_quadratic` -- run any optimiser with the ``torch.optim`` interface on one (and
  :func:`minimize_quadratic_at_rates`, the same at several rates at once), and
  :func:`iterations_to_tol` -- how many steps it took to shrink the gap :math:`f(x_k) - f^\star`;
* :func:`linear_decay` -- the survey's learning-rate schedule;
* :func:`tuned_runs` -- gradient descent, heavy ball, AdaGrad and RMSProp on one, each at its best rate;
* :func:`regression_quadratic` and :func:`train_linear` -- linear least squares as a quadratic, and
  mini-batch SGD on it with ``torch.optim``, timed and measured as it goes.

>>> q = quadratic(100.0, dim=10, seed=0)
>>> round(q.condition_number)
100
>>> gaps = minimize_quadratic(q, lambda p: torch.optim.SGD(p, lr=2 / (q.L + q.mu)), steps=2000, tol=1e-6)
>>> iterations_to_tol(gaps, 1e-6) < 2000
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Quadratic", "quadratic", "minimize_quadratic", "minimize_quadratic_at_rates", "iterations_to_tol",
           "linear_decay", "tuned_runs", "regression_quadratic", "train_linear"]


@dataclass(frozen=True)
class Quadratic:
    r"""The quadratic :math:`f(x) = \tfrac12 x^\top A x - b^\top x`, :math:`A` symmetric positive definite.

    Shapes: ``A`` (d, d), ``b`` (d,), ``x_star`` (d,) the minimiser :math:`A^{-1} b`.
    """

    A: torch.Tensor
    b: torch.Tensor
    x_star: torch.Tensor

    @property
    def dim(self) -> int:
        return self.b.numel()

    @property
    def eigenvalues(self) -> torch.Tensor:
        return torch.linalg.eigvalsh(self.A)

    @property
    def L(self) -> float:
        """The largest eigenvalue (the gradient's Lipschitz constant)."""
        return float(self.eigenvalues[-1])

    @property
    def mu(self) -> float:
        """The smallest eigenvalue (the strong-convexity constant)."""
        return float(self.eigenvalues[0])

    @property
    def condition_number(self) -> float:
        return self.L / self.mu

    def f(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x @ (self.A @ x) - self.b @ x

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla f(x) = A x - b`."""
        return self.A @ x - self.b

    def gap(self, x: torch.Tensor) -> float:
        r""":math:`f(x) - f^\star = \tfrac12 (x - x^\star)^\top A (x - x^\star) \ge 0`."""
        e = x - self.x_star
        return float(0.5 * e @ (self.A @ e))


def quadratic(condition_number: float, dim: int = 20, seed: int = 0, rotate: bool = True,
              dtype: torch.dtype = torch.float64) -> Quadratic:
    r"""A quadratic whose Hessian has eigenvalues spaced log-uniformly from
    :math:`1/\kappa` to 1, so ``L = 1`` and ``mu = 1 / condition_number``.

    Args:
        condition_number: :math:`\kappa \ge 1`.
        dim: the dimension d (at least 2 when :math:`\kappa > 1`).
        seed: seeds the rotation and ``b`` (a private generator: the global RNG is untouched).
        rotate: ``True``: :math:`A = Q \Lambda Q^\top` with a random orthogonal :math:`Q`;
            ``False``: :math:`A = \Lambda`, diagonal, so the axes are the eigenvectors.
    """
    if not (condition_number >= 1 and math.isfinite(condition_number)):
        raise ValueError(f"condition_number must be a finite number >= 1, got {condition_number}")
    if not isinstance(dim, int) or dim < 1 or (dim < 2 and condition_number > 1):
        raise ValueError(f"dim must be an int >= 2 (>= 1 when condition_number is 1), got {dim!r}")
    g = torch.Generator().manual_seed(seed)
    lam = torch.logspace(-math.log10(condition_number), 0.0, dim, dtype=dtype)
    if rotate:
        q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=dtype))
        q = q * torch.sign(torch.diagonal(r))  # a Haar-distributed rotation
        A = (q * lam) @ q.T
        A = 0.5 * (A + A.T)
    else:
        A = torch.diag(lam)
    b = torch.randn(dim, generator=g, dtype=dtype)
    return Quadratic(A, b, torch.linalg.solve(A, b))


def minimize_quadratic(problem: Quadratic, make_optimizer: Callable[[list], object], steps: int,
                       x0: torch.Tensor | None = None, tol: float | None = None,
                       scheduler: Callable[[object], object] | None = None) -> np.ndarray:
    r"""Run an optimiser on ``problem`` and return the gaps :math:`f(x_k) - f^\star`, k = 0..steps.

    ``make_optimizer(params)`` builds a ``torch.optim.Optimizer`` (or anything with ``step()`` that
    reads ``p.grad``) for the one-element list ``params``. The gradient :math:`Ax - b` is written
    into ``x.grad`` directly, without autograd. ``x0`` defaults to zeros. With ``tol``, stop once
    the gap is at most ``tol`` times the first gap (the array is then shorter). ``scheduler(opt)``
    optionally builds an ``lr_scheduler``, stepped after every step. A gap that becomes NaN or
    infinite ends the run (the last entry is then not finite).
    """
    x = torch.nn.Parameter(problem.b.new_zeros(problem.dim) if x0 is None else x0.detach().clone())
    opt = make_optimizer([x])
    sched = scheduler(opt) if scheduler is not None else None
    gaps = np.empty(steps + 1)
    with torch.no_grad():
        gaps[0] = problem.gap(x)
        stop = None if tol is None else tol * gaps[0]
        for k in range(1, steps + 1):
            x.grad = problem.grad(x)
            opt.step()
            if sched is not None:
                sched.step()
            gaps[k] = problem.gap(x)
            if (stop is not None and gaps[k] <= stop) or not math.isfinite(gaps[k]):
                return gaps[:k + 1]
    return gaps


def minimize_quadratic_at_rates(problem: Quadratic, optimizer_class: type, rates, steps: int,
                                tol: float | None = None, **options) -> list[np.ndarray]:
    r""":func:`minimize_quadratic` with ``optimizer_class(params, lr=r, **options)`` for each rate
    ``r`` in ``rates``, from zero, stopped as it stops each run; returns one gap array a rate.

    One optimiser runs them all, with one param group (one copy of :math:`x`) a rate. The numbers
    are the same, bit for bit, as one run a rate (``tests/test_quadratics.py``): each copy is updated
    by the same operations, and a finished run's gradient is set to ``None``, which ``torch.optim``
    skips. What changes is the time: on a 20-dimensional problem most of a step is ``step()``'s own
    overhead, here paid once an iteration instead of once a rate (four AdaGrad rates over 5,000
    iterations: 2.0 s against 3.2 s on the 2-core development machine).
    """
    xs = [torch.nn.Parameter(problem.b.new_zeros(problem.dim)) for _ in rates]
    opt = optimizer_class([{"params": [x], "lr": r} for x, r in zip(xs, rates)], **options)
    gaps = np.empty((len(xs), steps + 1))
    ends = [steps] * len(xs)  # each run's last iteration
    with torch.no_grad():
        for i, x in enumerate(xs):
            gaps[i, 0] = problem.gap(x)
        stops = [None if tol is None else tol * g for g in gaps[:, 0]]
        running = list(range(len(xs)))
        for k in range(1, steps + 1):
            if not running:
                break
            for i in running:
                xs[i].grad = problem.grad(xs[i])
            opt.step()
            for i in list(running):
                gaps[i, k] = problem.gap(xs[i])
                if (stops[i] is not None and gaps[i, k] <= stops[i]) or not math.isfinite(gaps[i, k]):
                    ends[i] = k
                    xs[i].grad = None  # finished: step() leaves it alone from now on
                    running.remove(i)
    return [gaps[i, :ends[i] + 1].copy() for i in range(len(xs))]


def iterations_to_tol(gaps: np.ndarray, tol: float) -> float:
    """The first k with ``gaps[k] <= tol * gaps[0]``; ``inf`` if the run never got there."""
    gaps = np.asarray(gaps, dtype=float)
    hit = np.nonzero(gaps <= tol * gaps[0])[0]
    return float(hit[0]) if len(hit) else math.inf


def linear_decay(k: int, eta0: float, eta_tau: float, tau: int) -> float:
    r"""The survey's schedule: :math:`\eta_k = (1 - \alpha)\eta_0 + \alpha \eta_\tau` with
    :math:`\alpha = k / \tau` for :math:`k \le \tau`, then constant :math:`\eta_\tau`.

    >>> [linear_decay(k, 1.0, 0.01, 4) for k in (0, 2, 4, 10)]
    [1.0, 0.505, 0.01, 0.01]
    """
    if tau < 1:
        raise ValueError(f"tau must be >= 1, got {tau}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    alpha = min(k / tau, 1.0)
    return (1.0 - alpha) * eta0 + alpha * eta_tau



def tuned_runs(kappa: float, steps: int, tol: float, seed: int = 0) -> dict[str, np.ndarray]:
    r"""The gaps :math:`f(x_k) - f^\star` of four methods on ``quadratic(kappa, dim=20, seed=seed)``,
    each stopped at ``tol`` (see :func:`minimize_quadratic`): gradient descent at its best constant
    rate :math:`2/(L + \mu)`, heavy ball at Polyak's rate and momentum
    (:math:`4/(\sqrt L + \sqrt\mu)^2`, :math:`((\sqrt\kappa - 1)/(\sqrt\kappa + 1))^2`), and AdaGrad
    and RMSProp (``torch.optim``) at the best rate of a small grid (fewest iterations to ``tol``,
    then the lowest gap)."""
    q = quadratic(kappa, dim=20, seed=seed)
    L, mu = q.L, q.mu
    out = {
        "gradient descent": minimize_quadratic(q, lambda p: torch.optim.SGD(p, lr=2 / (L + mu)), steps, tol=tol),
        "heavy ball": minimize_quadratic(q, lambda p: torch.optim.SGD(
            p, lr=4 / (math.sqrt(L) + math.sqrt(mu)) ** 2,
            momentum=((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)) ** 2), steps, tol=tol),
    }
    for name, make, grid in (("AdaGrad", torch.optim.Adagrad, (0.1, 0.3, 1.0, 3.0)),
                             ("RMSProp", torch.optim.RMSprop, (1e-3, 1e-2, 1e-1))):
        tries = minimize_quadratic_at_rates(q, make, grid, steps, tol=tol)  # = one minimize_quadratic a rate
        out[name] = min(tries, key=lambda g: (iterations_to_tol(g, tol), np.nanmin(g)))
    return out


def regression_quadratic(X: torch.Tensor, y: torch.Tensor) -> Quadratic:
    r"""Linear least squares :math:`J(w) = \frac1{2N}\lVert Xw - y\rVert^2` as a quadratic in
    :math:`w`: Hessian :math:`C = X^\top X / N` and :math:`b = X^\top y / N`, in float64 (``X`` is
    N x D)."""
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be N x D and y of length N, got {tuple(X.shape)} and {tuple(y.shape)}")
    A = (X.T @ X / len(X)).double()
    b = (X.T @ y / len(X)).double()
    return Quadratic(A, b, torch.linalg.solve(A, b))


def train_linear(X: torch.Tensor, y: torch.Tensor, loss_fn: Callable, measure: Callable, batch: int | None,
                 lr: float, steps: int, seed: int = 0, schedule: Callable[[int], float] | None = None,
                 record_every: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train a linear model ``w`` (zeros at the start) with ``torch.optim.SGD`` on ``loss_fn(w, Xb, yb)``:
    mini-batches of ``batch`` rows drawn with replacement from a generator seeded with ``seed``, or
    gradient descent on all of ``X`` when ``batch`` is None. ``schedule(k)`` multiplies the rate
    (``LambdaLR``). Returns three arrays, at step 0 and every ``record_every`` steps: the examples
    seen, the seconds spent training (measuring is not part of the cost) and ``measure(w)``."""
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be a positive size or None (gradient descent), got {batch}")
    n = len(X)
    gen = torch.Generator().manual_seed(seed)
    w = torch.zeros(X.shape[1], requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule) if schedule else None
    seen, secs, values = [0], [0.0], [measure(w)]
    clock = 0.0
    for k in range(1, steps + 1):
        t0 = time.perf_counter()
        if batch is None:
            xb, yb = X, y
        else:
            idx = torch.randint(n, (batch,), generator=gen)
            xb, yb = X[idx], y[idx]
        opt.zero_grad()
        loss_fn(w, xb, yb).backward()
        opt.step()
        if sched:
            sched.step()
        clock += time.perf_counter() - t0
        if k % record_every == 0:
            seen.append(k * (n if batch is None else batch))
            secs.append(clock)
            values.append(measure(w))
    return np.array(seen), np.array(secs), np.array(values)
