r"""Curvature without ever forming the Hessian: everything here is built on Hessian-vector
products by double backward, :math:`Hv = \nabla_\theta (\nabla_\theta L \cdot v)`, at the cost of
about two backward passes each.

* :func:`hvp` -- the product itself (:func:`flatten` and :func:`unflatten` move between a list of
  parameters and one flat vector);
* :func:`conjugate_gradient` and :func:`newton_step` -- Newton's method from products alone
  (the survey's §2.2), by SciPy's CG on a ``LinearOperator`` around the product;
* :func:`hessian_top_eigenvalue` -- power iteration, :math:`v \leftarrow Hv / \|Hv\|`, with the
  Rayleigh quotient :math:`\lambda = v^\top H v` as the estimate. It converges to the eigenvalue of
  largest *magnitude*; near a minimum that is :math:`\lambda_{\max}`. Written out, not
  ``scipy.sparse.linalg.eigsh``: the beyond chapter teaches this loop and checks it against this one.
* :func:`lanczos` -- ``m`` steps of the Lanczos iteration (with full reorthogonalisation): an
  orthonormal basis :math:`V` of the Krylov space and the tridiagonal :math:`T = V^\top H V`,
  diagonalised by ``scipy.linalg.eigh_tridiagonal``.
* :func:`hessian_spectrum` -- stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019):
  for a random unit vector :math:`v`, with :math:`T = S\,\mathrm{diag}(\theta)\,S^\top`,

  .. math::

      \phi(t) \approx \sum_{k=1}^{m} \tau_k\, g_\sigma(t - \theta_k), \qquad \tau_k = S_{1k}^2,

  a smoothed estimate of the eigenvalue density :math:`\phi(t) = \frac1P \sum_i \delta(t - \lambda_i)`
  (averaged over several ``v``). The nodes :math:`\theta_k` (Ritz values) include the outliers exactly.
* :func:`top_eigenspace` and :func:`gradient_share` -- the top-``k`` Ritz pairs and the share
  :math:`\|V_k^\top g\|^2 / \|g\|^2` of the gradient that lies in their span.
* :func:`hessian_probe` and :func:`spectrum_probe` -- the probes behind ``Probe("hessian")`` and
  ``Probe("spectrum")`` in :mod:`bnutils.experiments`;
* :func:`dense_hessian_bytes` -- what storing the Hessian instead would cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from scipy.sparse.linalg import LinearOperator, cg
from torch import nn

from .state import preserved

__all__ = [
    "flatten",
    "unflatten",
    "hvp",
    "CGResult",
    "conjugate_gradient",
    "newton_step",
    "hessian_top_eigenvalue",
    "lanczos",
    "Spectrum",
    "hessian_spectrum",
    "top_eigenspace",
    "gradient_share",
    "loss_closure",
    "hessian_probe",
    "spectrum_probe",
    "dense_hessian_bytes",
]


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors into one vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split ``vector`` into tensors shaped like ``like``."""
    n = sum(t.numel() for t in like)
    if vector.numel() != n:
        raise ValueError(f"vector has {vector.numel()} elements, the parameters have {n}")
    out, i = [], 0
    for t in like:
        out.append(vector[i:i + t.numel()].view_as(t))
        i += t.numel()
    return out


def hvp(closure: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], vector: torch.Tensor) -> torch.Tensor:
    r"""The Hessian-vector product :math:`H v` of the scalar ``closure()`` with respect to ``params``.

    Args:
        closure: recomputes the loss (a scalar) from ``params``.
        params: tensors that require grad.
        vector: flat (P,) vector, P the total number of parameter entries.

    Returns:
        The flat (P,) vector :math:`Hv`. Parameters' ``.grad`` fields are left untouched.
    """
    params = list(params)
    if not params:
        raise ValueError("hvp needs at least one parameter")
    loss = closure()
    if loss.dim() != 0:
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs (the closure returned shape {tuple(loss.shape)})")
    grads = torch.autograd.grad(loss, params, create_graph=True)
    flat_g = flatten(grads)
    if vector.shape != flat_g.shape:
        raise ValueError(f"vector must have shape {tuple(flat_g.shape)}, got {tuple(vector.shape)}")
    hv = torch.autograd.grad(flat_g @ vector.to(flat_g.dtype), params, allow_unused=True)
    return flatten([torch.zeros_like(p) if h is None else h for h, p in zip(hv, params)]).detach()


# ------------------------------------------ Newton's method without forming the Hessian (§2.2)


class CGResult(NamedTuple):
    """What :func:`conjugate_gradient` returns: the solution, the number of matrix-vector
    products it used, and the residual norm after each (``residual_norms[0] = ||b||``)."""

    x: torch.Tensor
    iterations: int
    residual_norms: list


class _NotPositiveDefinite(Exception):
    """Raised inside SciPy's CG when a search direction has p^T A p <= 0."""


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       tol: float = 1e-10, max_iter: int | None = None) -> CGResult:
    r"""Solve :math:`A x = b` for symmetric positive definite :math:`A`, given only ``matvec(v) = A v``.

    Conjugate gradient (Hestenes & Stiefel 1952) from :math:`x_0 = 0`, by SciPy's
    :func:`scipy.sparse.linalg.cg` on a :class:`~scipy.sparse.linalg.LinearOperator` around
    ``matvec`` (no chapter writes CG out as its lesson: the optimization chapter uses it as a
    tool, so the well-kept implementation does the work). With residual :math:`r = b - A x` and
    search direction :math:`p`,

    .. math:: \alpha = \frac{r^\top r}{p^\top A p},\quad x \mathrel{+}= \alpha p,\quad
              r \mathrel{-}= \alpha A p,\quad p = r + \frac{r_{\text{new}}^\top r_{\text{new}}}{r^\top r} p.

    In exact arithmetic it ends in at most d steps, d = ``b.numel()``; in floating point an
    ill-conditioned system can need more. It stops when :math:`\|r\| <` ``tol``
    :math:`\cdot \|b\|` (SciPy's ``rtol``), after ``max_iter`` (default 10 d, as SciPy) products,
    or when :math:`p^\top A p \le 0` (the matrix is not positive definite along ``p``: the last
    iterate is returned, as truncated-Newton methods do; SciPy's CG does not check this, so the
    operator does). It works in ``b``'s dtype (float64 NumPy for a float64 ``b``) and returns
    ``x`` on ``b``'s device.

    ``residual_norms`` are the norms of SciPy's own recursive residual, the one its stopping test
    reads: after each iteration the callback applies :math:`r \mathrel{-}= \alpha A p` with the
    product the operator has just returned, so recording them costs no extra product.

    Same numbers as the loop written out here before (tests/test_curvature.py): on a
    well-conditioned system every one to float precision; on an ill-conditioned one CG's residual
    history is chaotic once its Ritz values converge (a one-ulp change of ``b`` moves either loop's
    count by one), so the solution agrees to the tolerance and the count to a product. Measured on
    the optimization chapter's damped digits Newton system (650 parameters, ``tol=1e-8``): 103
    products instead of 102, relative residual 8.265e-9 instead of 8.266e-9, distance to the dense
    Newton step 4.83e-8 instead of 4.87e-8; its claims hold as before.

    Args:
        matvec: ``v -> A v`` on flat (d,) vectors, e.g. a Hessian-vector product.
        b: the (d,) right-hand side.
    """
    if b.dim() != 1:
        raise ValueError(f"b must be a flat vector, got shape {tuple(b.shape)}")
    n = b.numel()
    max_iter = 10 * n if max_iter is None else max_iter
    b_np = b.detach().cpu().numpy().copy()
    b_norm = float(np.linalg.norm(b_np))
    if b_norm == 0.0:
        return CGResult(torch.zeros_like(b), 0, [b_norm])
    track = {"r": b_np.copy(), "p": None, "q": None, "products": 0, "x": np.zeros_like(b_np)}
    norms = [b_norm]

    def apply(p):
        p = np.asarray(p).reshape(-1)
        q = matvec(torch.from_numpy(p.copy()).to(device=b.device, dtype=b.dtype))
        q = q.detach().reshape(-1).cpu().numpy().astype(b_np.dtype, copy=False)
        track["products"] += 1
        if not np.dot(p, q) > 0:
            raise _NotPositiveDefinite
        track["p"], track["q"] = p.copy(), q
        return q

    def record(xk):
        if track["products"] != len(norms):
            raise RuntimeError("scipy.sparse.linalg.cg no longer calls the operator once per iteration; "
                               "bnutils.curvature.conjugate_gradient cannot follow its residual")
        r, p, q = track["r"], track["p"], track["q"]
        rho = np.dot(r, r)
        r -= (rho / np.dot(p, q)) * q  # SciPy's update, on the same numbers
        norms.append(float(np.linalg.norm(r)))
        track["x"] = xk.copy()

    op = LinearOperator((n, n), matvec=apply, dtype=b_np.dtype)
    try:
        x, _ = cg(op, b_np, rtol=tol, atol=0.0, maxiter=max_iter, callback=record)
    except _NotPositiveDefinite:
        x = track["x"]
    x = torch.from_numpy(np.ascontiguousarray(x)).to(device=b.device, dtype=b.dtype)
    return CGResult(x, track["products"], norms)


def newton_step(grad: torch.Tensor, hessian, alpha: float = 0.0, **cg_kwargs) -> torch.Tensor:
    r"""The (regularised) Newton step :math:`d = -(H + \alpha I)^{-1} g`, so that
    :math:`\theta' = \theta + d`.

    ``hessian`` is a dense (d, d) matrix (solved exactly with ``torch.linalg.solve``) or a
    function ``v -> H v`` (solved by :func:`conjugate_gradient`, SciPy's CG, which needs
    :math:`H + \alpha I` positive definite; ``cg_kwargs`` go to it). With ``alpha = 0`` this is
    Newton's step, which heads for the critical point of the local quadratic model whatever its
    kind: near a saddle it moves *towards* the saddle. With :math:`\alpha > -\lambda_{\min}(H)`
    the step is a descent direction.
    """
    if callable(hessian):
        return -conjugate_gradient(lambda v: hessian(v) + alpha * v, grad, **cg_kwargs).x
    H = torch.as_tensor(hessian, dtype=grad.dtype)
    if H.shape != (grad.numel(), grad.numel()):
        raise ValueError(f"hessian must have shape {(grad.numel(), grad.numel())}, got {tuple(H.shape)}")
    eye = torch.eye(grad.numel(), dtype=grad.dtype, device=grad.device)
    return -torch.linalg.solve(H + alpha * eye, grad)


# ------------------------------------------ the spectrum: power iteration, Lanczos, SLQ

MatVec = Callable[[torch.Tensor], torch.Tensor]


def _params(params) -> list[torch.Tensor]:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("need at least one parameter that requires grad")
    return params


def _start_vector(n: int, seed: int, dtype, device) -> torch.Tensor:
    """A random unit vector from its own generator (the global random state is not touched)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    return v / v.norm()


def hessian_top_eigenvalue(closure: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                           iters: int = 100, tol: float = 1e-4, seed: int = 0
                           ) -> tuple[float, torch.Tensor]:
    r"""The Hessian's eigenvalue of largest magnitude, by power iteration on Hessian-vector products.

    Args:
        closure: recomputes the scalar loss from ``params``.
        params: the parameters (only those with ``requires_grad`` count).
        iters: at most this many Hessian-vector products.
        tol: stop when the estimate changes by less than ``tol`` times its size.
        seed: seeds the random start vector (its own generator).

    Returns:
        ``(eigenvalue, eigenvector)``, the vector flat (P,) and of unit norm.

    Example:
        >>> lam, v = hessian_top_eigenvalue(lambda: loss_fn(model(x), y), model.parameters())  # doctest: +SKIP

    Why not ``scipy.sparse.linalg.eigsh``: the beyond chapter writes this power iteration out as its
    lesson and asserts that the package's loop gives the same number, and ``Probe("hessian")``'s
    recorded values (the beyond chapter's and landscape chapter's claims) come from this loop with
    its few iterations (``iters=5`` to ``10``, ``tol=1e-2``). ARPACK's restarted Lanczos would
    return a converged (different) value, not the same numbers for the same seeds.
    """
    params = _params(params)
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    n = sum(p.numel() for p in params)
    v = _start_vector(n, seed, params[0].dtype, params[0].device)
    lam = None
    for _ in range(iters):
        hv = hvp(closure, params, v)
        new = float(v @ hv)  # Rayleigh quotient
        norm = hv.norm()
        if not math.isfinite(new) or float(norm) == 0.0:
            return new, v
        v = hv / norm
        if lam is not None and abs(new - lam) <= tol * max(abs(new), 1e-12):
            lam = new
            break
        lam = new
    return lam, v


def lanczos(matvec: MatVec, v0: torch.Tensor, m: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    r"""``m`` steps of the Lanczos iteration for the symmetric operator ``matvec`` from ``v0``.

    Every new vector is re-orthogonalised against all earlier ones (twice), so the basis stays
    orthonormal in floating point and no spurious copies of the outliers appear.

    Written out rather than ``scipy.sparse.linalg.eigsh``: stochastic Lanczos quadrature needs the
    tridiagonal :math:`T` of the Krylov space of one given random start vector (its eigenvectors'
    first components are the quadrature weights), which ARPACK's implicitly restarted iteration
    neither starts from exactly nor returns. ``T``'s eigen-decomposition is SciPy's
    (:func:`scipy.linalg.eigh_tridiagonal`).

    Returns:
        ``(alpha, beta, V)``: the diagonal (j,) and off-diagonal (j-1,) of :math:`T = V^\top H V`
        (float64 NumPy), and the basis ``V`` of shape (j, P); ``j <= m`` (fewer if the Krylov
        space is exhausted).
    """
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    n = v0.numel()
    m = min(m, n)
    V = torch.zeros(m, n, dtype=v0.dtype, device=v0.device)
    alpha, beta = [], []
    v = v0.reshape(-1) / v0.norm()
    for j in range(m):
        V[j] = v
        w = matvec(v).reshape(-1).to(v.dtype)
        a = float(w @ v)
        alpha.append(a)
        w = w - a * v
        if j > 0:
            w = w - beta[-1] * V[j - 1]
        for _ in range(2):  # full reorthogonalisation
            w = w - V[:j + 1].T @ (V[:j + 1] @ w)
        b = float(w.norm())
        if j == m - 1 or b <= 1e-10 * max(1.0, abs(a)):
            break
        beta.append(b)
        v = w / b
    k = len(alpha)
    return np.asarray(alpha, dtype=np.float64), np.asarray(beta[:k - 1], dtype=np.float64), V[:k]


def _tridiag_eig(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of the symmetric tridiagonal T with
    diagonal ``alpha`` and off-diagonal ``beta``, by LAPACK's tridiagonal solver
    (:func:`scipy.linalg.eigh_tridiagonal`), without forming the dense (m, m) matrix."""
    return eigh_tridiagonal(alpha, beta)


@dataclass
class Spectrum:
    """Stochastic Lanczos quadrature: for each of the random vectors, ``m`` nodes (Ritz values)
    and their weights (summing to one). Arrays are (vectors, m), padded with NaN nodes and zero
    weights when a Lanczos run stopped early."""

    nodes: np.ndarray
    weights: np.ndarray
    top_values: np.ndarray | None = None  # (k,) largest Ritz values of the first run (top_k > 0)
    top_vectors: torch.Tensor | None = None  # (k, P) their Ritz vectors, orthonormal rows

    def density(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        r"""The smoothed density :math:`\frac1{n_v}\sum_v \sum_k \tau_k g_\sigma(t - \theta_k)` on ``grid``."""
        grid = np.asarray(grid, dtype=np.float64)
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        ok = np.isfinite(self.nodes)
        th, w = self.nodes[ok], self.weights[ok]
        g = np.exp(-0.5 * ((grid[:, None] - th[None, :]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        return g @ w / self.nodes.shape[0]

    @property
    def lambda_max(self) -> float:
        return float(np.nanmax(self.nodes))

    @property
    def lambda_min(self) -> float:
        return float(np.nanmin(self.nodes))

    def mass_above(self, t: float) -> float:
        """The estimated fraction of eigenvalues larger than ``t``."""
        ok = np.isfinite(self.nodes)
        return float(self.weights[ok & (np.nan_to_num(self.nodes, nan=-np.inf) > t)].sum() / self.nodes.shape[0])


def hessian_spectrum(closure: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                     m: int = 60, n_vectors: int = 1, seed: int = 0, top_k: int = 0) -> Spectrum:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019):
    ``n_vectors`` Lanczos runs of ``m`` Hessian-vector products each, from random unit vectors.
    With ``top_k > 0`` the first run's ``top_k`` largest Ritz pairs are kept as well (as
    :func:`top_eigenspace` returns them), at no extra cost."""
    params = _params(params)
    if n_vectors < 1:
        raise ValueError(f"n_vectors must be >= 1, got {n_vectors}")
    n = sum(p.numel() for p in params)
    m_eff = min(m, n)
    nodes = np.full((n_vectors, m_eff), np.nan)
    weights = np.zeros((n_vectors, m_eff))
    top_values = top_vectors = None
    for r in range(n_vectors):
        v0 = _start_vector(n, seed + r, params[0].dtype, params[0].device)
        alpha, beta, V = lanczos(lambda v: hvp(closure, params, v), v0, m_eff)
        theta, s = _tridiag_eig(alpha, beta)
        nodes[r, :len(theta)] = theta
        weights[r, :len(theta)] = s[0] ** 2
        if r == 0 and top_k > 0:
            top_values, top_vectors = _ritz(theta, s, V, top_k)
    return Spectrum(nodes, weights, top_values, top_vectors)


def _ritz(theta: np.ndarray, s: np.ndarray, V: torch.Tensor, k: int) -> tuple[np.ndarray, torch.Tensor]:
    """The ``k`` largest Ritz values and their vectors ``S^T V``, largest first."""
    order = np.argsort(theta)[::-1][:k]
    vecs = torch.as_tensor(s[:, order].T.copy(), dtype=V.dtype, device=V.device) @ V
    return theta[order], vecs


def top_eigenspace(closure: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], k: int,
                   m: int = 60, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """The ``k`` largest Ritz values of ``m`` Lanczos steps and their Ritz vectors, (k,) and (k, P),
    largest first. With ``m`` a few times ``k`` the outlying eigenvalues come out accurately."""
    params = _params(params)
    n = sum(p.numel() for p in params)
    if not 1 <= k <= min(m, n):
        raise ValueError(f"k must be between 1 and min(m, P) = {min(m, n)}, got {k}")
    v0 = _start_vector(n, seed, params[0].dtype, params[0].device)
    alpha, beta, V = lanczos(lambda v: hvp(closure, params, v), v0, m)
    theta, s = _tridiag_eig(alpha, beta)
    return _ritz(theta, s, V, k)


def gradient_share(grad: torch.Tensor, vectors: torch.Tensor) -> float:
    r"""The share of ``grad``'s squared norm in the span of the orthonormal rows of ``vectors``:
    :math:`\|V g\|^2 / \|g\|^2` (Gur-Ari et al.; Ghorbani et al. 2019, §4)."""
    g = grad.reshape(-1).to(vectors.dtype)
    gg = float(g @ g)
    if gg == 0.0:
        return float("nan")
    return float((vectors @ g).pow(2).sum()) / gg


def loss_closure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> Callable[[], torch.Tensor]:
    """``closure()`` = ``loss_fn(model(x), y)`` in the model's current mode."""
    return lambda: loss_fn(model(x), y)


def hessian_probe(model: nn.Module, x, y, *, lr, loss_fn, iters: int = 20, tol: float = 1e-3,
                  top_k: int = 0, m: int = 40, seed: int = 0) -> dict:
    r"""The top Hessian eigenvalue of the loss on the batch (x, y) in training mode, and
    ``lr * lambda_max`` (gradient descent on a quadratic is stable while it is below 2).
    With ``top_k > 0`` also the top-``k`` Ritz values (``m`` Lanczos steps) and the share of the
    gradient in their span. The model is left exactly as it was (:func:`bnutils.state.preserved`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    with preserved(model):
        model.train()
        closure = loss_closure(model, x, y, loss_fn)
        lam, _ = hessian_top_eigenvalue(closure, params, iters=iters, tol=tol, seed=seed)
        out = {"lambda_max": lam, "lr_lambda_max": lr * lam}
        if top_k > 0:
            theta, vecs = top_eigenspace(closure, params, top_k, m=m, seed=seed)
            g = flatten(torch.autograd.grad(closure(), params))
            out["top_eigenvalues"] = [float(t) for t in theta]
            out["grad_share"] = gradient_share(g.detach(), vecs)
    return out


def spectrum_probe(model: nn.Module, x, y, *, lr, loss_fn, m: int = 40, top_k: int = 10, seed: int = 0,
                   **_) -> dict:
    r"""Final probe (kind ``"spectrum"``): the Hessian's eigenvalue density on the batch (x, y) in
    training mode by stochastic Lanczos quadrature (``m`` steps from one random start vector drawn
    with ``seed``), its top-``top_k`` Ritz values and the share of the gradient in their span,
    :math:`\|V_k^\top g\|^2/\|g\|^2`. Returns plain data: ``nodes``, ``weights`` (rebuild with
    :class:`Spectrum`), ``top`` and ``share``. The model is left exactly as it was."""
    params = [p for p in model.parameters() if p.requires_grad]
    with preserved(model):
        model.train()
        closure = loss_closure(model, x, y, loss_fn)
        spec = hessian_spectrum(closure, params, m=m, n_vectors=1, seed=seed, top_k=top_k)
        grad = flatten(torch.autograd.grad(closure(), params))
        share = gradient_share(grad.detach(), spec.top_vectors)
    return {"nodes": spec.nodes, "weights": spec.weights, "top": spec.top_values, "share": share}


def dense_hessian_bytes(n_params: int | float, bytes_per_entry: int = 4) -> float:
    """Bytes to store a dense P x P Hessian (float32 by default): ``P**2 * bytes_per_entry``."""
    return float(n_params) ** 2 * bytes_per_entry
