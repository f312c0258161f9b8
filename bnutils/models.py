"""Model builders: an MLP, a VGG-style CNN and the deep linear network, each with a choice of
normalization layer. Layers come in the order ``Linear/Conv -> norm -> activation``.

Normalization names (``norm=``):

========== ==========================================================
None       no normalization (the "standard" network)
"bn"       the from-scratch :class:`bnutils.norms.BatchNorm`
"torch_bn" PyTorch's ``nn.BatchNorm1d`` / ``nn.BatchNorm2d``
"noisy_bn" :class:`~bnutils.norms.NoisyBatchNorm` (Santurkar et al. §2.1)
"noise"    the same noise without normalization
"l1", "l2", "linf" :class:`~bnutils.norms.LpNorm` (Santurkar et al. §3.3)
"layer"    ``nn.LayerNorm`` (MLP) / ``nn.GroupNorm(1, C)`` (CNN)
"group"    ``nn.GroupNorm`` with groups of up to 8 channels
========== ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .norms import BatchNoise, BatchNorm, LpNorm, NoisyBatchNorm

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def _group_norm(c: int) -> nn.GroupNorm:
    groups = max(1, c // 8)
    while c % groups:
        groups -= 1
    return nn.GroupNorm(groups, c)


# name -> (builder for (N, C) features, builder for (N, C, H, W) feature maps)
NORMS = {
    None: (None, None),
    "bn": (BatchNorm, BatchNorm),
    "torch_bn": (nn.BatchNorm1d, nn.BatchNorm2d),
    "noisy_bn": (NoisyBatchNorm, NoisyBatchNorm),
    "noise": (BatchNoise, BatchNoise),
    "l1": (lambda c: LpNorm(c, p=1), lambda c: LpNorm(c, p=1)),
    "l2": (lambda c: LpNorm(c, p=2), lambda c: LpNorm(c, p=2)),
    "linf": (lambda c: LpNorm(c, p=float("inf")), lambda c: LpNorm(c, p=float("inf"))),
    "layer": (nn.LayerNorm, lambda c: nn.GroupNorm(1, c)),
    "group": (_group_norm, _group_norm),
}

INITS = ("default", "glorot", "he", "gaussian")


def _choice(kind: str, value, choices) -> None:
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {kind} {value!r}; choose one of {shown}")


def norm_layer(norm: str | None, num_features: int, spatial: bool = False) -> nn.Module | None:
    """The normalization layer called ``norm`` for ``num_features`` units (or channels)."""
    _choice("norm", norm, list(NORMS))
    make = NORMS[norm][1 if spatial else 0]
    return None if make is None else make(num_features)


def activation(act: str) -> nn.Module:
    _choice("activation", act, list(ACTIVATIONS))
    return ACTIVATIONS[act]()


def _positive_ints(name: str, values) -> tuple[int, ...]:
    values = tuple(values)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{name} must be positive ints, got {values!r}")
    return values


def mlp(in_features: int, hidden: Sequence[int], out_features: int, act: str = "relu",
        norm: str | None = None, dropout: float = 0.0) -> nn.Sequential:
    """A multi-layer perceptron: ``[Linear -> norm -> act (-> Dropout)] * len(hidden) -> Linear``.

    >>> mlp(784, [100, 100], 10, act="sigmoid", norm="bn")  # doctest: +ELLIPSIS
    Sequential(...)
    """
    _choice("activation", act, list(ACTIVATIONS))
    _choice("norm", norm, list(NORMS))
    (in_features, out_features) = _positive_ints("in_features and out_features", (in_features, out_features))
    hidden = _positive_ints("hidden", hidden)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout}")
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if (n := norm_layer(norm, h)) is not None:
            layers.append(n)
        layers.append(activation(act))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


# VGG configurations: ints are 3x3 conv widths, "M" a 2x2 max-pool.
CNN_CONFIGS = {
    "small": (16, "M", 32, "M", 64, "M"),
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
}


def cnn(in_channels: int = 1, num_classes: int = 10, channels: Sequence | str = "small",
        image_size: int = 28, act: str = "relu", norm: str | None = None) -> nn.Sequential:
    """A VGG-style CNN: ``[Conv3x3 -> norm -> act]`` blocks and 2x2 max-pools, then one linear layer.

    ``channels`` is a key of :data:`CNN_CONFIGS` (``"small"``: 16-32-64, ``"vgg11"``: VGG-11 as
    Santurkar et al. use it on CIFAR-10) or a sequence like ``(16, "M", 32, "M")``.
    """
    _choice("activation", act, list(ACTIVATIONS))
    _choice("norm", norm, list(NORMS))
    if isinstance(channels, str):
        _choice("CNN configuration", channels, list(CNN_CONFIGS))
        channels = CNN_CONFIGS[channels]
    layers: list[nn.Module] = []
    c, size = in_channels, image_size
    for v in channels:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            size //= 2
        else:
            layers.append(nn.Conv2d(c, v, kernel_size=3, padding=1))
            if (n := norm_layer(norm, v, spatial=True)) is not None:
                layers.append(n)
            layers.append(activation(act))
            c = v
    if size < 1:
        raise ValueError(f"image_size {image_size} is too small for {len([v for v in channels if v == 'M'])} max-pools")
    layers += [nn.Flatten(), nn.Linear(c * size * size, num_classes)]
    return nn.Sequential(*layers)


def deep_linear(dim: int = 10, depth: int = 25, norm: str | None = None) -> nn.Sequential:
    """Santurkar et al.'s deep linear network: ``depth`` square ``Linear(dim, dim, bias=False)``
    layers, with ``norm`` after every layer but the last."""
    _choice("norm", norm, list(NORMS))
    (dim, depth) = _positive_ints("dim and depth", (dim, depth))
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(dim, dim, bias=False))
        if i < depth - 1 and (n := norm_layer(norm, dim)) is not None:
            layers.append(n)
    return nn.Sequential(*layers)


def init_weights(model: nn.Module, scheme: str = "glorot", scale: float = 1.0) -> nn.Module:
    """Re-initialise every Linear and Conv2d weight in place (biases to zero).

    ``scheme``: ``"default"`` (PyTorch's own, left as is), ``"glorot"`` (Xavier normal, gain
    ``scale``), ``"he"`` (Kaiming normal for ReLU, times ``scale``) or ``"gaussian"`` (N(0, scale^2),
    Ioffe & Szegedy's "small random Gaussian values"). Draws from the global RNG: seed it first.
    """
    _choice("init scheme", scheme, INITS)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if scheme == "default":
        return model
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            w = m.weight
            with torch.no_grad():
                if scheme == "glorot":
                    nn.init.xavier_normal_(w, gain=scale)
                elif scheme == "he":
                    nn.init.kaiming_normal_(w, nonlinearity="relu")
                    w.mul_(scale)
                else:
                    w.normal_(0.0, scale)
                if m.bias is not None:
                    m.bias.zero_()
    return model


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build one of the book's networks for a data set."""

    arch: str = "mlp"  # "mlp" | "cnn" | "deep_linear"
    hidden: tuple = (100, 100, 100)  # MLP hidden widths
    channels: str | tuple = "small"  # CNN: a CNN_CONFIGS name or a tuple like (16, "M", 32, "M")
    depth: int = 25  # deep linear network: number of square layers
    act: str = "relu"  # activation, see ACTIVATIONS
    norm: str | None = None  # normalization, see NORMS
    init: str = "default"  # weight init scheme, see init_weights
    init_scale: float = 1.0  # gain (glorot/he) or std (gaussian)
    dropout: float = 0.0  # MLP only: dropout probability after each hidden activation
    weight_norm: bool = False  # reparameterise every Linear/Conv2d weight as g * v / ||v|| (Salimans & Kingma)


ARCHS = ("mlp", "cnn", "deep_linear")


def build_model(cfg: ModelConfig, in_shape: Sequence[int], out_features: int) -> nn.Sequential:
    """Build ``cfg`` for inputs of shape ``in_shape`` (one example) and ``out_features`` outputs.
    Uses the global RNG: call :func:`bnutils.config.seed_everything` first."""
    _choice("architecture", cfg.arch, ARCHS)
    in_shape = tuple(in_shape)
    if cfg.arch == "mlp":
        model = mlp(math.prod(in_shape), cfg.hidden, out_features, cfg.act, cfg.norm, cfg.dropout)
        if len(in_shape) > 1:
            model.insert(0, nn.Flatten())
    elif cfg.arch == "cnn":
        if len(in_shape) != 3:
            raise ValueError(f"the CNN expects images (C, H, W), got examples of shape {in_shape}")
        model = cnn(in_shape[0], out_features, cfg.channels, in_shape[-1], cfg.act, cfg.norm)
    else:
        if len(in_shape) != 1 or in_shape[0] != out_features:
            raise ValueError(f"the deep linear network maps R^d to R^d, got inputs {in_shape} "
                             f"and {out_features} outputs")
        model = deep_linear(in_shape[0], cfg.depth, cfg.norm)
    model = init_weights(model, cfg.init, cfg.init_scale)
    if cfg.weight_norm:
        # PyTorch's own parametrization: w = g v / ||v|| per output unit, g and v initialised
        # from the weight just drawn, so the network computes the same function at step 0.
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.utils.parametrizations.weight_norm(m)
    return model


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The ``nn.Linear`` and ``nn.Conv2d`` modules of ``model``, in registration order."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def count_params(params: Iterable[torch.Tensor]) -> int:
    """The number of scalar entries in ``params`` (e.g. ``model.parameters()``)."""
    return sum(p.numel() for p in params)
