r"""Second-order tools without ever forming the Hessian: Hessian-vector products by double
backward, :math:`Hv = \nabla_\theta (\nabla_\theta L \cdot v)`, at the cost of about two backward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


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


# --- Newton's method without forming the Hessian (the survey's §2.2) -------------------------

from typing import NamedTuple  # noqa: E402


class CGResult(NamedTuple):
    """What :func:`conjugate_gradient` returns: the solution, the number of matrix-vector
    products it used, and the residual norm after each (``residual_norms[0] = ||b||``)."""

    x: torch.Tensor
    iterations: int
    residual_norms: list


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       tol: float = 1e-10, max_iter: int | None = None) -> CGResult:
    r"""Solve :math:`A x = b` for symmetric positive definite :math:`A`, given only ``matvec(v) = A v``.

    Conjugate gradient (Hestenes & Stiefel 1952), from :math:`x_0 = 0`: with residual
    :math:`r = b - A x` and search direction :math:`p`,

    .. math:: \alpha = \frac{r^\top r}{p^\top A p},\quad x \mathrel{+}= \alpha p,\quad
              r \mathrel{-}= \alpha A p,\quad p = r + \frac{r_{\text{new}}^\top r_{\text{new}}}{r^\top r} p.

    In exact arithmetic it ends in at most d steps, d = ``b.numel()``; in floating point an
    ill-conditioned system can need more. It stops when :math:`\|r\| \le` ``tol``
    :math:`\cdot \|b\|`, after ``max_iter`` (default 10 d, as SciPy) products, or when
    :math:`p^\top A p \le 0` (the matrix is not positive definite along ``p``: the last iterate is
    returned, as truncated-Newton methods do).

    Args:
        matvec: ``v -> A v`` on flat (d,) vectors, e.g. a Hessian-vector product.
        b: the (d,) right-hand side.
    """
    if b.dim() != 1:
        raise ValueError(f"b must be a flat vector, got shape {tuple(b.shape)}")
    max_iter = 10 * b.numel() if max_iter is None else max_iter
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = r @ r
    b_norm = float(torch.sqrt(rr))
    norms = [b_norm]
    if b_norm == 0.0:
        return CGResult(x, 0, norms)
    k = 0
    while k < max_iter:
        ap = matvec(p)
        k += 1
        pap = p @ ap
        if pap <= 0:
            break
        alpha = rr / pap
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        norms.append(float(torch.sqrt(rr_new)))
        if norms[-1] <= tol * b_norm:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return CGResult(x, k, norms)


def newton_step(grad: torch.Tensor, hessian, alpha: float = 0.0, **cg_kwargs) -> torch.Tensor:
    r"""The (regularised) Newton step :math:`d = -(H + \alpha I)^{-1} g`, so that
    :math:`\theta' = \theta + d`.

    ``hessian`` is a dense (d, d) matrix (solved exactly with ``torch.linalg.solve``) or a
    function ``v -> H v`` (solved by :func:`conjugate_gradient`, which needs
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
