r"""Internal covariate shift, as Santurkar et al. (2018) define it (Definition 2.1), and its
training probe: for each weighted layer, how much its gradient changes when every earlier layer
takes its SGD step on the same batch. The chapter :doc:`ics` measures it (``Probe("ics")``).
The model is left exactly as it was found (:mod:`bnutils.state`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .models import weighted_layers
from .state import _rng_state, _set_rng_state, preserved

__all__ = ["LayerICS", "ics", "ics_probe"]


@dataclass(frozen=True)
class LayerICS:
    r"""The internal covariate shift of one layer at one step (Santurkar et al., Definition 2.1):
    :math:`G` is the gradient of the loss with respect to the layer's weight, :math:`G'` the same
    gradient after every earlier layer has taken its SGD step on the same batch.

    ``l2`` is :math:`\|G - G'\|_2`, ``cosine`` is :math:`\cos(G, G')` (1 and 0: no shift),
    ``grad_norm`` is :math:`\|G\|_2` and ``relative`` is ``l2 / grad_norm``.
    """

    layer: int  # index into weighted_layers(model)
    l2: float  # ||G - G'||_2
    cosine: float  # <G, G'> / (||G|| ||G'||); NaN if either is zero
    grad_norm: float  # ||G||_2

    @property
    def relative(self) -> float:
        """``l2 / grad_norm``: the shift as a fraction of the gradient (NaN if G = 0)."""
        return self.l2 / self.grad_norm if self.grad_norm > 0 else float("nan")


def _layer_indices(n: int, layers) -> list[int]:
    if layers is None:
        return list(range(n))
    out = []
    for i in layers:
        if not isinstance(i, int) or isinstance(i, bool) or not -n <= i < n:
            raise IndexError(f"layer index {i!r} out of range for a model with {n} weighted layers")
        out.append(i % n)
    return out


def ics(model: nn.Module, x, y, lr: float, loss_fn=F.cross_entropy, layers=None) -> list[LayerICS]:
    r"""Internal covariate shift of the weighted layers of ``model`` on the batch (x, y).

    For each layer :math:`i` (an ``nn.Linear`` or ``nn.Conv2d``, in registration order; ``layers``
    picks some by index into :func:`weighted_layers`):

    .. math::

        G = \nabla_{W_i} L(W_1, \dots, W_k; x, y), \qquad
        G' = \nabla_{W_i} L(W_1 - \eta\nabla_{W_1}L, \dots, W_{i-1} - \eta\nabla_{W_{i-1}}L,
                             W_i, \dots, W_k; x, y),

    where every parameter registered *before* :math:`W_i` (weights, biases, BN's
    :math:`\gamma, \beta`) takes one plain SGD step of size ``lr`` computed on (x, y), and
    everything from :math:`W_i` on keeps its value. The model runs in training mode (BN uses the
    batch statistics of x); the random state is reset before every forward pass, so noise layers
    and dropout draw the same values for G and G'. Costs one forward and backward pass, plus one
    per measured layer. The model, its gradients, buffers, modes and the random state are left
    exactly as they were.

    Returns one :class:`LayerICS` per measured layer.
    """
    targets = weighted_layers(model)
    if not targets:
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer to measure")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"Invalid learning rate: {lr}")
    chosen = _layer_indices(len(targets), layers)
    params = [p for p in model.parameters() if p.requires_grad]
    position = {id(p): k for k, p in enumerate(params)}
    for i in chosen:
        if id(targets[i].weight) not in position:
            raise ValueError(f"layer {i}'s weight does not require grad")
    out: list[LayerICS] = []
    with preserved(model):
        model.train()
        rng = _rng_state()
        start = [p.detach().clone() for p in params]

        def grads(wrt):
            _set_rng_state(rng)  # the same noise and dropout masks in every pass
            return torch.autograd.grad(loss_fn(model(x), y), wrt, allow_unused=True)

        g_all = grads(params)
        for i in chosen:
            k = position[id(targets[i].weight)]
            with torch.no_grad():
                for p, g in zip(params[:k], g_all[:k]):
                    if g is not None:
                        p.sub_(g, alpha=lr)  # the earlier layers' step-t update
            (g_new,) = grads([params[k]])
            with torch.no_grad():
                for p, value in zip(params[:k], start[:k]):
                    p.copy_(value)
            g_old = g_all[k]
            g_old = torch.zeros_like(params[k]) if g_old is None else g_old
            g_new = torch.zeros_like(params[k]) if g_new is None else g_new
            a, b = g_old.detach().double().flatten(), g_new.detach().double().flatten()
            na, nb = float(a.norm()), float(b.norm())
            cos = float(a @ b) / (na * nb) if na > 0 and nb > 0 else float("nan")
            out.append(LayerICS(layer=i, l2=float((a - b).norm()), cosine=cos, grad_norm=na))
    return out


def ics_probe(model: nn.Module, x, y, *, lr, loss_fn, layers=None, **_) -> dict:
    """:func:`ics` as a training probe (kind ``"ics"``): plain lists, one entry per measured layer,
    under the keys ``layer``, ``l2``, ``relative``, ``cosine`` and ``grad_norm``."""
    res = ics(model, x, y, lr, loss_fn, layers)
    return {
        "layer": [r.layer for r in res],
        "l2": [r.l2 for r in res],
        "relative": [r.relative for r in res],
        "cosine": [r.cosine for r in res],
        "grad_norm": [r.grad_norm for r in res],
    }
