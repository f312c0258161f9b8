r"""The landscape along a step: Santurkar et al.'s §3.2 measurements of smoothness.

At weights :math:`w` with gradient :math:`g = \nabla L(w)` on one batch, walk along a direction
:math:`d` (the gradient itself, or a random direction of the same norm) by step sizes
:math:`\eta_1, \dots, \eta_k`, *without training on it*, and record

.. math::

    L(\eta) = L(w - \eta d), \qquad g(\eta) = \nabla L(w - \eta d),

then summarise the walk by three numbers:

* **loss variation**, :math:`\max_\eta L(\eta) - \min_\eta L(\eta)`;
* **gradient predictiveness**, :math:`\max_\eta \lVert g - g(\eta) \rVert_2` (smaller: the gradient
  at :math:`w` still describes the loss further along the step);
* **effective** :math:`\beta`-**smoothness**,
  :math:`\max_\eta \lVert g - g(\eta) \rVert_2 / \lVert \eta d \rVert_2`, a finite-difference
  Lipschitz constant of the gradient along the walk.

Cost: one forward and backward pass for :math:`g`, then one per :math:`\eta` and direction. The
parameters are moved *in place* and put back by :func:`bnutils.state.preserved` (one snapshot, no
copy of the model per :math:`\eta`), which also restores BN running statistics, ``.grad`` fields,
train/eval modes and the random state.

>>> res = landscape(model, x, y, etas=[0.05, 0.1, 0.2])  # doctest: +SKIP
>>> res.loss_range, res.grad_predictiveness, res.beta_smoothness  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .state import preserved

__all__ = ["LandscapeResult", "landscape", "landscape_probe", "VGG_MULTIPLIERS", "DLN_MULTIPLIERS"]

# Step sizes as multiples of the learning rate: Santurkar et al. use [0.5, 4] x lr for VGG ...
VGG_MULTIPLIERS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
# ... and [1/100, 30] x lr for the deep linear network (here 8 points spaced geometrically).
DLN_MULTIPLIERS = tuple(float(v) for v in np.geomspace(0.01, 30.0, 8))

DIRECTIONS = ("gradient", "random")


@dataclass(frozen=True)
class LandscapeResult:
    """One walk along a direction. Arrays have one entry per step size."""

    etas: np.ndarray  # (k,) step sizes
    losses: np.ndarray  # (k,) L(w - eta d)
    grad_diffs: np.ndarray  # (k,) ||g - grad L(w - eta d)||_2
    loss0: float  # L(w)
    grad_norm: float  # ||g||_2 at w: a local Lipschitz constant of the loss
    direction: str = "gradient"  # "gradient" or "random"

    @property
    def loss_range(self) -> float:
        """max - min of L(eta) over the step sizes (NaN if any loss is not finite)."""
        return _finite_or_nan(np.max(self.losses) - np.min(self.losses), self.losses)

    @property
    def grad_predictiveness(self) -> float:
        """max over the step sizes of ||g - g(eta)||_2 (smaller is more predictive)."""
        return _finite_or_nan(np.max(self.grad_diffs), self.grad_diffs)

    @property
    def beta_smoothness(self) -> float:
        """max over the step sizes of ||g - g(eta)||_2 / ||eta d||_2 (d has the norm of g)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = self.grad_diffs / (np.abs(self.etas) * self.grad_norm)
        return _finite_or_nan(np.max(ratios), ratios)

    def summary(self) -> dict:
        """The three summaries and ||g|| as plain floats."""
        return {"loss_range": self.loss_range, "grad_predictiveness": self.grad_predictiveness,
                "beta_smoothness": self.beta_smoothness, "grad_norm": self.grad_norm}


def _finite_or_nan(value, values) -> float:
    return float(value) if np.all(np.isfinite(values)) else float("nan")


def _loss_and_grads(model, params, x, y, loss_fn):
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def _random_direction(like: Sequence[torch.Tensor], norm: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """A Gaussian direction, drawn from its own generator (the global random state is not used),
    rescaled to have the global 2-norm ``norm``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    d = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in like]
    total = torch.sqrt(sum((t * t).sum() for t in d))
    return [t * (norm / total) for t in d]


def landscape(model: nn.Module, x: torch.Tensor, y: torch.Tensor, etas: Sequence[float],
              loss_fn: Callable = F.cross_entropy, direction: str = "gradient", seed: int = 0,
              directions: Sequence[str] | None = None):
    r"""Walk from the current weights along ``-eta * d`` for each ``eta`` in ``etas``.

    Args:
        model: the network, in the mode it is to be measured in (train mode during training,
            so BN uses the batch's statistics, as in the step it is about to take).
        x, y: the batch.
        etas: step sizes (absolute, not multiples of a learning rate).
        loss_fn: ``loss_fn(model(x), y)`` is the scalar loss.
        direction: ``"gradient"`` (:math:`d = g`) or ``"random"`` (a Gaussian direction rescaled to
            :math:`\lVert g\rVert`, drawn from a generator seeded with ``seed``).
        directions: several directions at once (sharing the one pass that computes :math:`g`);
            then a dict ``{direction: LandscapeResult}`` is returned.

    Returns:
        A :class:`LandscapeResult` (or a dict of them when ``directions`` is given). The model,
        its gradients, buffers, modes and the global random state are left as they were.

    Cost: :math:`1 + k \cdot n_\text{directions}` forward and backward passes.
    """
    etas_arr = np.asarray([float(e) for e in etas], dtype=np.float64)
    if etas_arr.ndim != 1 or len(etas_arr) == 0:
        raise ValueError("etas must be a non-empty sequence of step sizes")
    if not np.all(np.isfinite(etas_arr)):
        raise ValueError(f"etas must be finite, got {list(etas)}")
    many = directions is not None
    directions = tuple(directions) if many else (direction,)
    for d in directions:
        if d not in DIRECTIONS:
            raise ValueError(f"unknown direction {d!r}; choose one of {', '.join(DIRECTIONS)}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")

    out = {}
    with preserved(model):
        w0 = [p.detach().clone() for p in params]  # the one snapshot the walk returns to
        loss0, g = _loss_and_grads(model, params, x, y, loss_fn)
        gnorm = torch.sqrt(sum((t * t).sum() for t in g))
        g_flat = torch.cat([t.reshape(-1) for t in g])  # g as one vector
        for name in directions:
            d = g if name == "gradient" else _random_direction(params, gnorm, seed)
            losses, diffs = [], []
            for eta in etas_arr:
                with torch.no_grad():  # p = p0 - eta * d, one kernel per parameter
                    for p, p0, di in zip(params, w0, d):
                        torch.add(p0, di, alpha=-float(eta), out=p)
                loss, g_eta = _loss_and_grads(model, params, x, y, loss_fn)
                # ||g - g(eta)||_2 over all parameters at once (3 kernels, not 3 per parameter)
                diff = torch.linalg.vector_norm(g_flat - torch.cat([t.reshape(-1) for t in g_eta]))
                losses.append(float(loss))
                diffs.append(float(diff))
            out[name] = LandscapeResult(etas_arr.copy(), np.asarray(losses), np.asarray(diffs),
                                        float(loss0), float(gnorm), name)
    return out if many else out[directions[0]]


def landscape_probe(model: nn.Module, x, y, *, lr, loss_fn, multipliers=VGG_MULTIPLIERS,
                    directions=("gradient",), seed: int = 0, **_) -> dict:
    """The landscape measurement as a training probe (kind ``"landscape"``), at step sizes
    ``multipliers x lr``. Returns plain data: for the gradient direction ``loss_range``,
    ``grad_predictiveness``, ``beta_smoothness``, ``grad_norm``, ``losses``, ``grad_diffs``, and
    for a random direction the same keys prefixed ``random_``."""
    etas = [float(m) * float(lr) for m in multipliers]
    res = landscape(model, x, y, etas, loss_fn=loss_fn, seed=seed, directions=tuple(directions))
    out: dict = {}
    for name, r in res.items():
        prefix = "" if name == "gradient" else f"{name}_"
        for k, v in r.summary().items():
            out[prefix + k] = v
        out[prefix + "losses"] = [float(v) for v in r.losses]
        out[prefix + "grad_diffs"] = [float(v) for v in r.grad_diffs]
    return out

