"""The from-scratch batch norm (``bnutils.norms.BatchNorm``, hand-written backward) against
``torch.nn.BatchNorm1d`` / ``BatchNorm2d``: one forward and backward pass in training mode, at the
shapes the book's networks produce. Paired ratios, from-scratch / PyTorch."""

from __future__ import annotations

import torch
from torch import nn

from bnutils.norms import BatchNorm

from .common import interleaved, median, paired_ratio, per_call, row

# (label, input shape): the Ioffe MLP's hidden layers at batch 60, the small CNN's three conv
# layers at batch 128 on 28x28 MNIST.
SHAPES = [
    ("MLP hidden (60, 100)", (60, 100)),
    ("CNN conv1 (128, 16, 28, 28)", (128, 16, 28, 28)),
    ("CNN conv2 (128, 32, 14, 14)", (128, 32, 14, 14)),
    ("CNN conv3 (128, 64, 7, 7)", (128, 64, 7, 7)),
]
# VGG-11 on CIFAR-10 (batch 128): for the GPU script.
VGG_SHAPES = [
    ("VGG-11 conv1 (128, 64, 32, 32)", (128, 64, 32, 32)),
    ("VGG-11 conv5 (128, 512, 4, 4)", (128, 512, 4, 4)),
]


def fwd_bwd(layer, x, g):
    def step():
        x.grad = None
        layer(x).backward(g)
    return step


def bench_shape(label, shape, rounds, device="cpu", min_time=0.05, tiny=False):
    c = shape[1]
    ours = BatchNorm(c).to(device)
    theirs = (nn.BatchNorm1d(c) if len(shape) == 2 else nn.BatchNorm2d(c)).to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(device).requires_grad_()
    g = torch.randn(shape, generator=gen).to(device)
    fns = {"torch": per_call(fwd_bwd(theirs, x, g), min_time, device),
           "scratch": per_call(fwd_bwd(ours, x, g), min_time, device)}
    n = {k: f.n for k, f in fns.items()}
    times = interleaved(fns, rounds=rounds, warmup=0 if tiny else 1, device=device)
    us = {k: 1e6 * median(v) / n[k] for k, v in times.items()}
    r = paired_ratio({k: [t / n[k] for t in v] for k, v in times.items()}, "scratch", "torch")
    return row("bn", f"BatchNorm fwd+bwd {label}: scratch / torch", r,
               note=f"torch {us['torch']:.0f} us, scratch {us['scratch']:.0f} us",
               shape=list(shape), us_per_call=us, times_s=times, calls_per_round=n)


def run(tiny: bool = False, device="cpu", shapes=None) -> list:
    shapes = shapes or SHAPES
    if tiny:
        return [bench_shape(label, (8,) + tuple(s[1:2]) + tuple(min(d, 4) for d in s[2:]), 1,
                            device, min_time=0.001, tiny=True) for label, s in shapes]
    return [bench_shape(label, s, 9, device) for label, s in shapes]
