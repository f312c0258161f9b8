"""Statistics of a network on a batch, and the training probes that record them: the weights'
and gradients' norms, the inputs of a nonlinearity and their percentiles (Ioffe & Szegedy's
Figure 1), the saturation of sigmoid units. Each one leaves the model exactly as it found it
(see :mod:`bnutils.state`) and returns plain data.

Probe functions (the values of :data:`bnutils.experiments.PROBES`) share one signature,
``probe(model, x, y, *, lr, loss_fn, **params)``, and run on the batch about to be used.
The other probes live with what they measure: :mod:`bnutils.ics`, :mod:`bnutils.landscape`,
:mod:`bnutils.curvature`.
"""

from __future__ import annotations

import torch
from torch import nn

from .models import weighted_layers
from .state import preserved

__all__ = ["weight_norm_probe", "grad_norm_probe", "activation_inputs", "activation_percentiles",
           "activation_probe", "sigmoid_saturation", "saturation_probe"]


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


# ------------------------------------------------------------------ sigmoid saturation
# For the chapter book/benefits.ipynb (the survey's §3.1, "less dependence on init").


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
