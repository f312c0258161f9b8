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

(an equality when ``eps = 0``). Santurkar et al. print :math:`1/\sqrt m` in front of the last term;
their proof gives :math:`1/m`, and the printed version is *smaller* than the exact value whenever
:math:`\langle g_j, \hat y_j\rangle \ne 0`, so it cannot be an upper bound -- :func:`check_theorem_41`
evaluates both (``"bound"`` with :math:`1/m`, ``"bound_sqrt_m"`` as printed).

The descent lemma (:func:`descent_lemma`): if :math:`L` is :math:`\beta`-smooth, one step of
gradient descent of size :math:`\eta` decreases it by at least
:math:`\eta (1 - \beta\eta/2) \lVert g\rVert^2`, a decrease for every :math:`\eta < 2/\beta`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .norms import batch_norm

__all__ = ["bn_gradient_bound", "theorem41_instance", "check_theorem_41", "identity_recovery",
           "descent_bound", "descent_lemma", "theorem42_instance", "check_theorem_42"]


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


def _random_instance(m: int, n_in: int, n_out: int, n_classes: int, seed: int):
    """The random setting of Theorems 4.1 and 4.2, in float64: inputs of a random scale, weights,
    gamma, beta, a linear read-out and labels."""
    gen = torch.Generator().manual_seed(seed)
    opts = {"dtype": torch.float64}
    x = torch.randn(m, n_in, generator=gen, **opts) * (0.5 + 2.0 * torch.rand(1, generator=gen, **opts))
    w = torch.randn(n_out, n_in, generator=gen, **opts) / math.sqrt(n_in)
    gamma = 0.2 + 2.0 * torch.rand(n_out, generator=gen, **opts)
    beta = torch.randn(n_out, generator=gen, **opts)
    head = torch.randn(n_classes, n_out, generator=gen, **opts)
    labels = torch.randint(0, n_classes, (m,), generator=gen)
    return x, w, gamma, beta, head, labels


def theorem41_instance(m: int = 32, n_in: int = 20, n_out: int = 8, n_classes: int = 5, eps: float = 1e-5,
                       seed: int = 0) -> dict:
    """One random instance: Gaussian inputs and weights, a random gamma and beta, and a random
    downstream loss (a random linear read-out, cross-entropy on random labels). Gradients by
    autograd through :func:`bnutils.norms.batch_norm`, in float64.

    Returns a dict of (n_out,) NumPy arrays: ``lhs`` (the squared norm of the gradient reaching
    ``y`` through BN), ``bound`` and ``bound_sqrt_m`` (the two right-hand sides), ``g_sq``
    (:math:`\\lVert g_j\\rVert^2`, the standard network's gradient at the same activations) and
    ``scale_sq`` (:math:`\\gamma^2/\\sigma_j^2`)."""
    x, w, gamma, beta, head, labels = _random_instance(m, n_in, n_out, n_classes, seed)

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


def descent_bound(loss0: float, grad_sq: float, beta: float, etas) -> np.ndarray:
    r"""The descent lemma's guarantee for a :math:`\beta`-smooth loss: after a gradient step of size
    :math:`\eta`,

    .. math::

        L(w - \eta g) \le L(w) - \eta \Big(1 - \frac{\beta\eta}{2}\Big) \lVert g\rVert^2 ,

    a decrease for every :math:`\eta < 2/\beta`, the largest at :math:`\eta = 1/\beta`. Returns the
    right-hand side for each ``eta``."""
    etas = np.asarray(etas, dtype=np.float64)
    return loss0 - etas * (1.0 - beta * etas / 2.0) * grad_sq


def descent_lemma(model, x, y, fractions=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75), loss_fn=F.cross_entropy,
                  iters: int = 50, tol: float = 1e-3) -> dict:
    r"""The descent lemma checked on a network at its current weights, on the batch ``(x, y)``.

    :math:`\beta` is estimated locally as the Hessian's top eigenvalue at :math:`w` (power iteration,
    :func:`bnutils.curvature.hessian_top_eigenvalue`); the loss is then evaluated at
    :math:`w - \eta g` for :math:`\eta` = ``fractions`` :math:`\times\, 1/\beta` (by
    :func:`bnutils.landscape.landscape`, which leaves the model as it was) and compared with
    :func:`descent_bound`. Returns a dict: ``beta``, ``grad_sq``, ``loss0``, ``etas``, ``losses``,
    ``bound`` and ``slack`` = actual decrease / guaranteed decrease (at least 1 where the lemma
    holds with this :math:`\beta`)."""
    from .landscape import landscape
    from .curvature import hessian_top_eigenvalue

    params = [p for p in model.parameters() if p.requires_grad]
    beta, _ = hessian_top_eigenvalue(lambda: loss_fn(model(x), y), params, iters=iters, tol=tol)
    etas = np.asarray(fractions, dtype=np.float64) / beta
    walk = landscape(model, x, y, etas, loss_fn=loss_fn)
    grad_sq = walk.grad_norm ** 2
    bound = descent_bound(walk.loss0, grad_sq, beta, etas)
    guaranteed = walk.loss0 - bound
    return {"beta": float(beta), "grad_sq": float(grad_sq), "loss0": float(walk.loss0), "etas": etas,
            "losses": walk.losses, "bound": bound, "slack": (walk.loss0 - walk.losses) / guaranteed}


def theorem42_instance(m: int = 32, n_in: int = 20, n_out: int = 8, n_classes: int = 5, eps: float = 1e-5,
                       seed: int = 0) -> dict:
    r"""Santurkar et al.'s Theorem 4.2 on one random instance (the setting of
    :func:`theorem41_instance`), unit by unit. With :math:`\hat g_j = \nabla_{y_j}\hat L` the gradient
    that reaches unit :math:`j`'s pre-activations through batch norm, :math:`g_j = \partial L/\partial z_j`
    and :math:`H_{jj} = \partial^2 L/\partial z_j^2` the standard network's gradient and Hessian at the
    same activations, the theorem compares the curvature of the BN network along its gradient,

    .. math::

        \hat g_j^\top \frac{\partial^2 \hat L}{\partial y_j^2}\, \hat g_j \;\le\;
        \frac{\gamma^2}{\sigma_j^2}\, \hat g_j^\top H_{jj}\, \hat g_j
        - \frac{\gamma}{m\sigma_j^2}\, \langle g_j, \hat y_j\rangle\, \lVert \hat g_j\rVert^2 .

    Along :math:`\hat g_j` (orthogonal to :math:`\mathbf 1` and :math:`\hat y_j`) the batch mean does not
    move and the variance grows only to second order, which gives exactly this, an equality when
    ``eps = 0``. Second derivatives by double backward, in float64.

    Returns a dict of (n_out,) arrays: ``lhs``, ``rhs``, ``rescaled`` (the first term of the right-hand
    side) and ``correction`` (the second, with its sign)."""
    x, w, gamma, beta, head, labels = _random_instance(m, n_in, n_out, n_classes, seed)
    y0 = x @ w.T  # (m, C)
    z0 = batch_norm(y0, None, None, gamma, beta, training=True, eps=eps)

    def with_column(base, j, col):
        return torch.cat([base[:, :j], col[:, None], base[:, j + 1:]], dim=1)

    out = {k: np.zeros(n_out) for k in ("lhs", "rhs", "rescaled", "correction")}
    for j in range(n_out):
        yj = y0[:, j].clone().requires_grad_(True)
        z = batch_norm(with_column(y0, j, yj), None, None, gamma, beta, training=True, eps=eps)
        (gh,) = torch.autograd.grad(F.cross_entropy(z @ head.T, labels), yj, create_graph=True)
        (hess_gh,) = torch.autograd.grad(gh, yj, grad_outputs=gh.detach())
        gh = gh.detach()
        zj = z0[:, j].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(with_column(z0, j, zj) @ head.T, labels), zj, create_graph=True)
        (h_gh,) = torch.autograd.grad(g, zj, grad_outputs=gh)
        with torch.no_grad():
            sigma2 = y0[:, j].var(unbiased=False) + eps
            y_hat = (y0[:, j] - y0[:, j].mean()) / torch.sqrt(sigma2)
            rescaled = gamma[j] ** 2 / sigma2 * (gh @ h_gh)
            correction = -gamma[j] / (m * sigma2) * (g.detach() @ y_hat) * (gh @ gh)
            out["lhs"][j] = float(gh @ hess_gh)
            out["rescaled"][j] = float(rescaled)
            out["correction"][j] = float(correction)
            out["rhs"][j] = float(rescaled + correction)
    return out


def check_theorem_42(n_instances: int = 100, m_choices=(4, 16, 64, 256), eps: float = 1e-5, seed: int = 0):
    """:func:`theorem42_instance` on ``n_instances`` random instances: one row per (instance, unit) in a
    pandas DataFrame with columns ``m``, ``lhs``, ``rhs``, ``rescaled``, ``correction``."""
    import pandas as pd

    rows = []
    for i in range(n_instances):
        m = m_choices[i % len(m_choices)]
        r = theorem42_instance(m=m, eps=eps, seed=seed * 100_003 + i)
        for j in range(len(r["lhs"])):
            rows.append({"instance": i, "m": m, **{k: float(v[j]) for k, v in r.items()}})
    return pd.DataFrame(rows)
