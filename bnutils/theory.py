r"""Santurkar et al.'s Theorem 4.1, evaluated: one linear layer followed by batch norm.

Setting (their §4): a batch of :math:`m` inputs, a linear layer :math:`y = W x`, batch norm
:math:`\hat y_j = (y_j - \mu_j)/\sigma_j` per unit :math:`j`, :math:`z_j = \gamma \hat y_j + \beta`
with :math:`\gamma, \beta` held fixed, and any loss :math:`L` of :math:`z`. Write
:math:`g_j = \partial L / \partial z_j \in \mathbb R^m` (the gradient the *standard* network would
have at the same activations) and :math:`\nabla_{y_j} \hat L` the gradient that reaches the linear
layer through batch norm. Batch norm's backward pass is

.. math::

    \nabla_{y_j} \hat L = \frac{\gamma}{m \sigma_j}
        \big( m g_j - \langle \mathbf 1, g_j\rangle \mathbf 1 - \langle g_j, \hat y_j\rangle \hat y_j \big),

and since :math:`\hat y_j \perp \mathbf 1` and :math:`\lVert \hat y_j \rVert^2 \le m`,

.. math::

    \lVert \nabla_{y_j} \hat L \rVert^2 \le \frac{\gamma^2}{\sigma_j^2} \Big(
        \lVert g_j \rVert^2 - \tfrac1m \langle \mathbf 1, g_j\rangle^2
        - \tfrac1m \langle g_j, \hat y_j\rangle^2 \Big)

(an equality when ``eps = 0``). The theorem as usually quoted carries :math:`1/\sqrt m` in front of
the last term; that version is *smaller* than the exact value whenever
:math:`\langle g_j, \hat y_j\rangle \ne 0`, so it cannot be an upper bound -- :func:`check_theorem_41`
evaluates both (``"bound"`` with :math:`1/m`, ``"bound_sqrt_m"`` as quoted).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .norms import batch_norm

__all__ = ["bn_gradient_bound", "theorem41_instance", "check_theorem_41", "identity_recovery"]


def bn_gradient_bound(g: torch.Tensor, y_hat: torch.Tensor, gamma: torch.Tensor, sigma: torch.Tensor,
                      sqrt_m: bool = False) -> torch.Tensor:
    r"""The right-hand side of Theorem 4.1 for every unit.

    Args:
        g: (m, C) gradient of the loss with respect to the BN output :math:`z`.
        y_hat: (m, C) normalised activations.
        gamma, sigma: (C,) scale and batch standard deviation :math:`\sqrt{\sigma_B^2 + \epsilon}`.
        sqrt_m: use :math:`1/\sqrt m` in front of :math:`\langle g, \hat y\rangle^2` (as the theorem
            is usually quoted) instead of :math:`1/m` (as its proof gives).

    Returns:
        (C,) tensor of bounds on :math:`\lVert \nabla_{y_j} \hat L \rVert^2`.
    """
    m = g.shape[0]
    ones = g.sum(0)  # <1, g_j>
    proj = (g * y_hat).sum(0)  # <g_j, y_hat_j>
    c = 1.0 / math.sqrt(m) if sqrt_m else 1.0 / m
    return (gamma / sigma) ** 2 * ((g * g).sum(0) - ones ** 2 / m - c * proj ** 2)


def theorem41_instance(m: int = 32, n_in: int = 20, n_out: int = 8, n_classes: int = 5, eps: float = 1e-5,
                       seed: int = 0) -> dict:
    """One random instance: Gaussian inputs and weights, a random gamma and beta, and a random
    downstream loss (a random linear read-out, cross-entropy on random labels). Gradients by
    autograd through :func:`bnutils.norms.batch_norm`, in float64.

    Returns a dict of (n_out,) NumPy arrays: ``lhs`` (the squared norm of the gradient reaching
    ``y`` through BN), ``bound`` and ``bound_sqrt_m`` (the two right-hand sides), ``g_sq``
    (:math:`\\lVert g_j\\rVert^2`, the standard network's gradient at the same activations) and
    ``scale_sq`` (:math:`\\gamma^2/\\sigma_j^2`)."""
    gen = torch.Generator().manual_seed(seed)
    opts = {"dtype": torch.float64}
    x = torch.randn(m, n_in, generator=gen, **opts) * (0.5 + 2.0 * torch.rand(1, generator=gen, **opts))
    w = torch.randn(n_out, n_in, generator=gen, **opts) / math.sqrt(n_in)
    gamma = 0.2 + 2.0 * torch.rand(n_out, generator=gen, **opts)
    beta = torch.randn(n_out, generator=gen, **opts)
    head = torch.randn(n_classes, n_out, generator=gen, **opts)
    labels = torch.randint(0, n_classes, (m,), generator=gen)

    y = (x @ w.T).requires_grad_(True)  # (m, C)
    z = batch_norm(y, None, None, gamma, beta, training=True, eps=eps)
    z.retain_grad()
    loss = F.cross_entropy(z @ head.T, labels)
    loss.backward()
    with torch.no_grad():
        var = y.var(0, unbiased=False)
        sigma = torch.sqrt(var + eps)
        y_hat = (y - y.mean(0)) / sigma
        g = z.grad
        return {
            "lhs": (y.grad ** 2).sum(0).numpy(),
            "bound": bn_gradient_bound(g, y_hat, gamma, sigma).numpy(),
            "bound_sqrt_m": bn_gradient_bound(g, y_hat, gamma, sigma, sqrt_m=True).numpy(),
            "g_sq": (g ** 2).sum(0).numpy(),
            "scale_sq": ((gamma / sigma) ** 2).numpy(),
        }


def check_theorem_41(n_instances: int = 200, m_choices=(4, 16, 64, 256), eps: float = 1e-5, seed: int = 0):
    """Evaluate Theorem 4.1 on ``n_instances`` random instances (batch sizes cycling through
    ``m_choices``); one row per (instance, unit) in a pandas DataFrame with columns ``m``,
    ``lhs``, ``bound``, ``bound_sqrt_m``, ``g_sq``, ``scale_sq``."""
    import pandas as pd

    rows = []
    for i in range(n_instances):
        m = m_choices[i % len(m_choices)]
        r = theorem41_instance(m=m, eps=eps, seed=seed * 100_003 + i)
        for j in range(len(r["lhs"])):
            rows.append({"instance": i, "m": m, **{k: float(v[j]) for k, v in r.items()}})
    return pd.DataFrame(rows)


def identity_recovery(y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    r"""Observation 4.3: with :math:`\gamma = \sqrt{\sigma_B^2 + \epsilon}` and :math:`\beta = \mu_B`,
    batch norm returns its input, so every function the standard network computes on this batch
    the BN network can compute too. Returns ``BN(y)`` with those parameters (equal to ``y``)."""
    dims = [0] + list(range(2, y.dim()))
    mean = y.mean(dim=dims)
    var = y.var(dim=dims, unbiased=False)
    return batch_norm(y, None, None, torch.sqrt(var + eps), mean, training=True, eps=eps)
