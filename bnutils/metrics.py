"""Measurements taken during training. Each one leaves the model exactly as it found it
(see :mod:`bnutils.state`) and returns plain data.

Probe functions (for :class:`bnutils.experiments.Probe`) share one signature,
``probe(model, x, y, *, lr, loss_fn, **params)``, and run on the batch about to be used.
"""

from __future__ import annotations

import torch
from torch import nn

from .state import preserved


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The ``nn.Linear`` and ``nn.Conv2d`` modules of ``model``, in registration order."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def weight_norm_probe(model: nn.Module, x, y, *, lr, loss_fn, **_) -> dict:
    """Per weighted layer: the weight's Frobenius norm and the gradient's norm on (x, y), and the
    effective step size ``lr / ||W||^2`` that scale invariance gives a layer feeding a BN layer
    (Arora et al. 2019)."""
    layers = weighted_layers(model)
    if not layers:
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer to measure")
    with preserved(model):
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        w = [float(m.weight.detach().norm()) for m in layers]
        g = [float(m.weight.grad.norm()) if m.weight.grad is not None else 0.0 for m in layers]
    return {"weight_norm": w, "grad_norm": g, "effective_lr": [lr / max(v * v, 1e-30) for v in w]}


def grad_norm_probe(model: nn.Module, x, y, *, lr, loss_fn, **_) -> float:
    """The norm of the gradient of the loss on (x, y) with respect to all parameters: a local
    measure of the loss's Lipschitzness."""
    params = [p for p in model.parameters() if p.requires_grad]
    with preserved(model):
        grads = torch.autograd.grad(loss_fn(model(x), y), params, allow_unused=True)
    return float(torch.sqrt(sum((g * g).sum() for g in grads if g is not None)))
