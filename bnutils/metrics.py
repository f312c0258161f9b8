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


# ------------------------------------------------------------------ internal covariate shift (ICS)
# Santurkar et al. 2018, Definition 2.1. Appended for the chapter book/ics.ipynb.

import math as _math
from dataclasses import dataclass as _dataclass

import torch.nn.functional as _F

from .state import _rng_state, _set_rng_state


@_dataclass(frozen=True)
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


def ics(model: nn.Module, x, y, lr: float, loss_fn=_F.cross_entropy, layers=None) -> list[LayerICS]:
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
    if not (isinstance(lr, (int, float)) and _math.isfinite(lr) and lr >= 0):
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


# ------------------------------------------------- activations seen by a nonlinearity (I&S Fig. 1)

_ACTIVATION_TYPES = (nn.ReLU, nn.Sigmoid, nn.Tanh)


def activation_inputs(model: nn.Module, x, index: int = -1, train: bool = True) -> torch.Tensor:
    """The input to the ``index``-th nonlinearity (``nn.ReLU``, ``nn.Sigmoid``, ``nn.Tanh``, in
    registration order) when ``model`` runs on ``x``, as a (samples, units) tensor: for feature
    maps (N, C, H, W) every spatial position counts as a sample, (N*H*W, C).

    ``train=True`` runs in training mode (BN normalises with the statistics of x, noise layers
    draw noise), as the next layer sees it during training. Leaves the model as it found it.
    """
    acts = [m for m in model.modules() if isinstance(m, _ACTIVATION_TYPES)]
    if not acts:
        raise ValueError("the model has no nn.ReLU, nn.Sigmoid or nn.Tanh to look at")
    if not -len(acts) <= index < len(acts):
        raise IndexError(f"activation index {index} out of range for {len(acts)} nonlinearities")
    seen = []
    hook = acts[index].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        with preserved(model), torch.no_grad():
            model.train(train)
            model(x)
    finally:
        hook.remove()
    a = seen[0]
    if a.dim() > 2:  # (N, C, *) -> (N * prod(*), C)
        a = a.transpose(0, 1).reshape(a.shape[1], -1).T
    return a


def activation_percentiles(model: nn.Module, x, index: int = -1, q=(15, 50, 85),
                           units=None, train: bool = True) -> list[list[float]]:
    """The ``q`` percentiles over the samples of x of the input to the ``index``-th nonlinearity,
    per unit (Ioffe & Szegedy's Figure 1 uses 15, 50 and 85): a ``len(q)`` x units nested list."""
    a = activation_inputs(model, x, index, train)
    if units is not None:
        a = a[:, list(units)]
    qs = torch.tensor([v / 100.0 for v in q], dtype=torch.float64)
    return torch.quantile(a.double(), qs, dim=0).tolist()


def activation_probe(model: nn.Module, x, y, *, lr, loss_fn, index: int = -1, units=None,
                     q=(15, 50, 85), values: bool | int = False, train: bool = True, **_) -> dict:
    """Training probe (kind ``"activations"``): the percentiles ``q`` of the input to the
    ``index``-th nonlinearity on the batch, per unit (``units``: a tuple of unit indices, or all),
    as a (len(q), units) array; with ``values=True`` also the raw values, a (samples, units) array,
    or with ``values=n`` those of the first ``n`` units only. Give the probe a fixed batch
    (``Probe("activations", ..., batch=("test", 1000))``) to watch one distribution move."""
    a = activation_inputs(model, x, index, train)
    if units is not None:
        a = a[:, list(units)]
    qs = torch.tensor([v / 100.0 for v in q], dtype=torch.float64, device=a.device)
    out = {"q": list(q), "percentiles": torch.quantile(a.double(), qs, dim=0).cpu().numpy()}
    if values is not False:
        kept = a if values is True else a[:, :int(values)]
        out["values"] = kept.cpu().numpy().copy()
    return out

from .landscape import LandscapeResult, landscape, landscape_probe  # noqa: E402


# ------------------------------------------------------------------ sigmoid saturation
# Appended for the chapter book/benefits.ipynb (the survey's §3.1, "less dependence on init").


def sigmoid_saturation(model: nn.Module, x, threshold: float = 0.01) -> list[float]:
    r"""Per ``nn.Sigmoid`` module of ``model``, in registration order: the fraction of its units
    on the batch ``x`` whose derivative :math:`g'(z) = g(z)(1 - g(z))` is below ``threshold``
    (the largest derivative is :math:`g'(0) = 1/4`; ``threshold=0.01`` means :math:`|z| > 4.6`).

    The model runs in its current mode (training mode: BN normalises with the batch statistics of
    ``x``); the model, its buffers and the random state are left exactly as they were.
    """
    if not 0.0 < threshold <= 0.25:
        raise ValueError(f"threshold must be in (0, 0.25] (the sigmoid's largest derivative), got {threshold}")
    sigmoids = [m for m in model.modules() if isinstance(m, nn.Sigmoid)]
    if not sigmoids:
        raise ValueError("the model has no nn.Sigmoid layer to measure")
    fractions: list[float] = []

    def hook(_module, _inputs, output):
        d = output * (1 - output)
        fractions.append(float((d < threshold).float().mean()))

    handles = [m.register_forward_hook(hook) for m in sigmoids]
    try:
        with preserved(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return fractions


def saturation_probe(model: nn.Module, x, y, *, lr, loss_fn, threshold: float = 0.01, **_) -> list[float]:
    """:func:`sigmoid_saturation` on the training batch, as a probe (``Probe("saturation")``)."""
    return sigmoid_saturation(model, x, threshold)
