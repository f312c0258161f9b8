"""The pytest plugin that makes nbval's run of a checked copy (:mod:`bnutils.teaching.checked`)
the student-copy check as well: ``conftest.py`` loads it (``-p bnutils.teaching.checked_plugin``
elsewhere). It acts only on notebooks whose metadata says ``bnbook.checked_copy``:

* each one's kernel starts in its chapter's folder (nbval starts it in the notebook's own), and a
  kernel that does not answer is started again, up to :data:`KERNEL_STARTS` times in all: kernels
  started side by side (``pytest -n 2``) sometimes lose jupyter_client's race for a TCP port and
  never answer (jupyter/jupyter_client#487; a CI run lost a whole chapter to it), and a fresh
  kernel gets fresh ports;
* after a cell ran, :func:`bnutils.teaching.checked.check_cell` (a stub raises nothing but
  ``NotImplementedError``; a self-check prints a pass), whose failure fails the cell's item;
* when every cell passed, the chapter is written with their outputs
  (:func:`bnutils.teaching.checked.write_executed`), for the strict build to reuse;
* under ``pytest -n 2 --dist loadgroup`` a notebook's cells are one unit of work (one worker, one
  kernel) and every other test is a unit of its own, so the unit tests collected beside the chapters
  fill one worker while the other runs a chapter (``make checks``). pytest-xdist's own loadgroup
  would do this with an ``xdist_group`` mark, but with pytest 9.2 it no longer groups anything
  (it renames the node id, which pytest 9.2 no longer reads: pytest-dev/pytest-xdist#1386), so
  :func:`pytest_xdist_make_scheduler` groups by notebook file itself.
"""

from __future__ import annotations

import time
import warnings

import pytest
from xdist.scheduler import LoadGroupScheduling

from .checked import ROOT, check_cell, write_executed

KERNEL_STARTS = 3


def _meta(item):
    nb = getattr(item.parent, "nb", None)
    meta = nb.metadata.get("bnbook", {}) if nb is not None else {}
    return meta if meta.get("checked_copy") else None


def pytest_collection_modifyitems(session, config, items):
    from nbval import plugin

    # pytest names a notebook outside its rootdir without the file ("::Cell 3"; the rootdir is the
    # repository when its tests or its other files are collected too): two such notebooks
    # have cells of the same names, and then the reports cannot say which notebook failed and
    # pytest-xdist, which keeps its work by name, runs some cells and loses others (seen: six
    # chapters' copies in /tmp under `-n 2`, 23 cells failing with NameError)
    outside = sorted({str(item.parent.path) for item in items
                      if item.nodeid.startswith("::") and getattr(item.parent, "nb", None) is not None})
    if len(outside) > 1:
        raise pytest.UsageError(
            f"{len(outside)} notebooks lie outside pytest's rootdir ({config.rootpath}): {', '.join(outside)}. "
            "pytest names their cells without the file ('::Cell 3'), so the cells of different notebooks "
            "share names and cannot be run apart. Put them inside the repository (e.g. python -m "
            "bnutils.teaching.checked copies book/*.ipynb --out _build/check/mine), or run one at a time.")

    for item in items:
        meta, parent = _meta(item), item.parent
        if meta is None or hasattr(parent, "_bnbook_outputs"):
            continue
        cwd = str((ROOT / meta["checked_copy_of"]).parent)
        setup = parent.setup

        def setup_in_chapter_folder(setup=setup, cwd=cwd):
            kernel = plugin.RunningKernel
            plugin.RunningKernel = lambda name, **kw: _start(kernel, name, **{**kw, "cwd": cwd})
            try:
                setup()
            finally:
                plugin.RunningKernel = kernel

        parent.setup = setup_in_chapter_folder
        parent._bnbook_outputs, parent._bnbook_failed, parent._bnbook_t0 = {}, False, None
        parent._bnbook_ncells = sum(c.cell_type == "code" for c in parent.nb.cells)


def notebook_scope(nodeid: str) -> str | None:
    """The notebook a test item belongs to (its file, for a cell of an ``.ipynb``), else None.
    pytest names a notebook outside its rootdir without the file (``::Cell 3``): its cells are one
    scope (a second such notebook is refused at collection, see above)."""
    path = nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        return path
    return "notebooks outside the rootdir" if nodeid.startswith("::Cell ") else None


class NotebookScheduling(LoadGroupScheduling):
    """pytest-xdist's loadgroup scheduling (by scope, the scopes with the most items handed out
    first), where a notebook's cells are one scope and every other test one of its own."""

    def _split_scope(self, nodeid: str) -> str:
        return notebook_scope(nodeid) or super()._split_scope(nodeid)


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` schedules with :class:`NotebookScheduling`."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return NotebookScheduling(config, log)


def _start(kernel, name, **kw):
    """``kernel(name, **kw)``, started again when it does not answer (nbval's RuntimeError)."""
    for attempt in range(1, KERNEL_STARTS + 1):
        try:
            return kernel(name, **kw)
        except RuntimeError as e:
            if attempt == KERNEL_STARTS:
                raise
            warnings.warn(f"kernel {name!r} did not start ({e}); starting a new one "
                          f"(attempt {attempt + 1} of {KERNEL_STARTS})", stacklevel=2)


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
