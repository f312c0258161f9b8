"""Shared test helpers."""

from __future__ import annotations

import torch

from bnutils.state import fingerprint


def assert_undisturbed(model, fn, optimizer=None):
    """Call ``fn()`` and assert that ``model`` (parameters, gradients, buffers, train/eval modes),
    ``optimizer`` state and the global random state are exactly as before. Returns fn's result."""
    before = fingerprint(model, optimizer)
    result = fn()
    after = fingerprint(model, optimizer)
    for key in ("params", "buffers"):
        assert len(before[key]) == len(after[key]), key
        for i, (a, b) in enumerate(zip(before[key], after[key])):
            assert torch.equal(a, b), f"{key}[{i}] changed"
    for i, (a, b) in enumerate(zip(before["grads"], after["grads"])):
        assert (a is None) == (b is None), f"grad {i}: None-ness changed"
        if a is not None:
            assert torch.equal(a, b), f"grad {i} changed"
    assert before["modes"] == after["modes"], "train/eval modes changed"
    assert torch.equal(before["rng"], after["rng"]), "the global random state changed"
    if optimizer is not None:
        assert repr(before["optimizer"]) == repr(after["optimizer"]), "optimizer state changed"
    return result


def sphinx_build(*args: str) -> int:
    """Sphinx's ``build_main(args)`` in this process, with its translations reset before and after:
    Sphinx keeps the catalogues it loaded per process and adds a new language's only as a fallback,
    so a Chinese build earlier in the same test worker would otherwise translate an English one."""
    from sphinx import locale
    from sphinx.cmd.build import build_main

    locale.translators.clear()
    try:
        return build_main(list(args))
    finally:
        locale.translators.clear()
