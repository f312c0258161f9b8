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
