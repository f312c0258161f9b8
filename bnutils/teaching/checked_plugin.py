"""The pytest plugin that makes nbval's run of a checked copy (:mod:`bnutils.teaching.checked`)
the student-copy check as well: ``conftest.py`` loads it (``-p bnutils.teaching.checked_plugin``
elsewhere). It acts only on notebooks whose metadata says ``bnbook.checked_copy``:

* each one's kernel starts in its chapter's folder (nbval starts it in the notebook's own);
* after a cell ran, :func:`bnutils.teaching.checked.check_cell` (a stub raises nothing but
  ``NotImplementedError``; a self-check prints a pass), whose failure fails the cell's item;
* when every cell passed, the chapter is written with their outputs
  (:func:`bnutils.teaching.checked.write_executed`), for the strict build to reuse.
"""

from __future__ import annotations

import time
import warnings

import pytest

from .checked import ROOT, check_cell, write_executed


def _meta(item):
    nb = getattr(item.parent, "nb", None)
    meta = nb.metadata.get("bnbook", {}) if nb is not None else {}
    return meta if meta.get("checked_copy") else None


def pytest_collection_modifyitems(session, config, items):
    from nbval import plugin

    for item in items:
        meta, parent = _meta(item), item.parent
        if meta is None or hasattr(parent, "_bnbook_outputs"):
            continue
        cwd = str((ROOT / meta["checked_copy_of"]).parent)
        setup = parent.setup

        def setup_in_chapter_folder(setup=setup, cwd=cwd):
            kernel = plugin.RunningKernel
            plugin.RunningKernel = lambda name, **kw: kernel(name, **{**kw, "cwd": cwd})
            try:
                setup()
            finally:
                plugin.RunningKernel = kernel

        parent.setup = setup_in_chapter_folder
        parent._bnbook_outputs, parent._bnbook_failed, parent._bnbook_t0 = {}, False, None
        parent._bnbook_ncells = sum(c.cell_type == "code" for c in parent.nb.cells)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if _meta(item) is None:
        return (yield)
    parent = item.parent
    if parent._bnbook_t0 is None:
        parent._bnbook_t0 = time.perf_counter()
    try:
        result = yield
        check_cell(item.cell, item.test_outputs or [])
    except BaseException:
        parent._bnbook_failed = True
        raise
    parent._bnbook_outputs[item.cell_num] = [dict(o) for o in item.test_outputs or []]
    if len(parent._bnbook_outputs) == parent._bnbook_ncells and not parent._bnbook_failed:
        try:
            write_executed(parent.path, parent._bnbook_outputs, time.perf_counter() - parent._bnbook_t0)
        except ValueError as e:  # the chapter changed while it ran: the build executes it itself
            warnings.warn(f"{parent.path.name}: not written for the build to reuse: {e}", stacklevel=1)
    return result
