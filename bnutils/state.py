"""Measurements must not disturb what they measure. :func:`preserved` snapshots everything a probe
could touch -- parameters, their ``.grad``, buffers (BN running statistics), train/eval flags, the
optimiser's state and the random number generators -- and puts it all back afterwards, in place,
so tensors keep their identity and an optimiser still holds the same parameter objects."""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn


def _rng_state():
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def preserved(model: nn.Module, optimizer: torch.optim.Optimizer | None = None):
    """Run the body, then restore ``model`` (and ``optimizer``) exactly as they were.

    >>> with preserved(model):  # doctest: +SKIP
    ...     model.train(); model(x).sum().backward()   # anything at all
    """
    params = [(p, p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
              for p in model.parameters()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    opt_state = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
    rng = _rng_state()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value, grad in params:
                p.copy_(value)
                p.grad = grad
            for b, value in buffers:
                b.copy_(value)
        for m, mode in modes:
            m.training = mode
        if optimizer is not None:
            optimizer.load_state_dict(opt_state)
        _set_rng_state(rng)


def fingerprint(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Everything :func:`preserved` protects, copied, for tests that compare before and after."""
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()],
        "buffers": [b.detach().clone() for b in model.buffers()],
        "modes": [m.training for m in model.modules()],
        "optimizer": copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None,
        "rng": torch.get_rng_state().clone(),
    }


def changed(before: dict, after: dict) -> list[tuple[str, str]]:
    """What differs between two :func:`fingerprint` results, as ``(part, what)`` pairs in the order
    params, buffers, grads, modes, rng, optimizer (``[]``: nothing). The tests
    (``tests/helpers.assert_undisturbed``) and the students' self-checks
    (``bnutils.teaching.checks``) both judge "a measurement leaves the model as it was" by it."""
    out = []
    for part in ("params", "buffers"):
        if len(before[part]) != len(after[part]):
            out.append((part, f"the number of {part} changed ({len(before[part])} -> {len(after[part])})"))
        out += [(part, f"{part}[{i}] changed") for i, (a, b) in enumerate(zip(before[part], after[part]))
                if not torch.equal(a, b)]
    for i, (a, b) in enumerate(zip(before["grads"], after["grads"])):
        if (a is None) != (b is None):
            out.append(("grads", f"grad {i}: None-ness changed"))
        elif a is not None and not torch.equal(a, b):
            out.append(("grads", f"grad {i} changed"))
    if before["modes"] != after["modes"]:
        out.append(("modes", "train/eval modes changed"))
    if not torch.equal(before["rng"], after["rng"]):
        out.append(("rng", "the global random state changed"))
    if repr(before["optimizer"]) != repr(after["optimizer"]):
        out.append(("optimizer", "optimizer state changed"))
    return out
