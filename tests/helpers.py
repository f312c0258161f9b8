"""Shared test helpers."""

from __future__ import annotations

from bnutils.state import changed, fingerprint


def assert_undisturbed(model, fn, optimizer=None):
    """Call ``fn()`` and assert that ``model`` (parameters, gradients, buffers, train/eval modes),
    ``optimizer`` state and the global random state are exactly as before
    (:func:`bnutils.state.changed`). Returns fn's result."""
    before = fingerprint(model, optimizer)
    result = fn()
    differences = changed(before, fingerprint(model, optimizer))
    assert not differences, "; ".join(what for _, what in differences)
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
