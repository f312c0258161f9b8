r"""One execution of each chapter serves nbval, the student-copy check and the strict smoke build.

``make test`` used to execute every chapter three times at ``smoke`` scale: under nbval, as a
student copy with the solutions put back, and in the strict Jupyter Book build. Now once:

1. ``python -m bnutils.teaching.checked copies book/*.ipynb --out _build/check/smoke`` writes each
   chapter's *checked copy*: its student copy (:func:`bnutils.teaching.student.student_copy`) with
   the reference solution's code cells put back right after each stub. Its code cells are the
   chapter's own, in the chapter's order, with the stubs between them: :func:`checked_copy`
   refuses to write a copy for which that is not so. Stubs are tagged ``raises-exception`` (nbval's
   tag; a stub that defines nothing raises ``NotImplementedError`` at top level).
2. ``pytest --nbval-lax _build/check/smoke/*.ipynb`` runs them, every cell an nbval item, with
   :mod:`bnutils.teaching.checked_plugin` as a pytest plugin (``conftest.py`` loads it): each kernel starts in the chapter's own
   folder (``book/``); a stub may raise ``NotImplementedError`` and nothing else; each self-check
   (a call of ``checks.check_...``) must print a pass (``✓``); and when every cell of a copy passed,
   the chapter itself is written with the outputs its cells printed, to
   ``<out>/executed/<chapter>.ipynb``, stamped with the scale and :func:`package_version`.
3. ``python -m bnutils.teaching.checked cache _build/check/smoke/executed --build _build/smoke``
   adds those executed chapters to the strict build's jupyter-cache (the one ``execute_notebooks:
   cache`` reads), so the build executes none of them again. A chapter executed at another scale,
   with another version of the package or with other code is not added: the build executes it.

The checked copy is a complete run of the chapter (every code cell, in order), so it writes the
chapter's claims ledger like any execution of it; the summary chapter, which reads every ledger,
runs after the others (``make notebooks``). A student's copy run on its own (``make lab``,
``make grade``) is partial: it runs with ``BNBOOK_CLAIMS=off``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import nbformat

from .student import STUB_TAG, solution_blocks, student_copy

ROOT = Path(__file__).resolve().parents[2]
RAISES_TAG = "raises-exception"  # nbval: the cell may raise
ROLE = "bnbook_check"  # cell metadata in a checked copy: "stub", "solution" or "self-check"
PASS_MARK = "✓"


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def checked_copy(nb, chapter: str, source: str | None = None):
    """The student copy of ``nb`` with the reference solutions put back after each stub (a new
    notebook). ``source`` (the chapter's path, relative to the repository) is recorded in its
    metadata, ``bnbook.checked_copy_of``: nbval's kernel starts in its folder and the executed
    chapter is written from it. Raises ``ValueError`` when the copy's code, stubs left out, is not
    the chapter's code in the chapter's order."""
    blocks = {b.label: b for b in solution_blocks(nb)}
    stud = student_copy(nb, chapter=chapter)
    cells = []
    for cell in stud.cells:
        if cell.cell_type == "code" and STUB_TAG in cell.metadata.get("tags", []):
            cell.metadata["tags"] = [*cell.metadata["tags"], RAISES_TAG]
            cell.metadata[ROLE] = "stub"
            cells.append(cell)
            for ref in blocks[cell.metadata["exercise"]].code:
                ref = copy.deepcopy(ref)
                ref.metadata[ROLE] = "solution"
                ref.outputs, ref.execution_count = [], None
                cells.append(ref)
            continue
        if cell.cell_type == "code" and "checks.check_" in cell.source:
            cell.metadata[ROLE] = "self-check"
        cells.append(cell)
    out = copy.deepcopy(stud)
    out.cells = cells
    out.metadata["bnbook"] = {**out.metadata.get("bnbook", {}), "chapter": chapter, "checked_copy": True,
                              "checked_copy_of": source or f"book/{chapter}.ipynb"}
    if [c.source for c in cells if c.cell_type == "code" and c.metadata.get(ROLE) != "stub"] != _code(nb):
        raise ValueError(f"{chapter}: the checked copy's code (stubs left out) is not the chapter's code in "
                         "its order, so one execution cannot stand for the chapter's")
    return out


def check_cell(cell, outputs) -> None:
    """What the student check asks of one executed cell of a checked copy beyond running: a stub
    raises nothing or ``NotImplementedError``; a self-check prints a pass. Raises ``AssertionError``."""
    role = cell.metadata.get(ROLE)
    errors = [o for o in outputs if o.get("output_type") == "error"]
    if role == "stub":
        assert all(o["ename"] == "NotImplementedError" for o in errors), \
            f"the stub raised {errors[0]['ename']}: {errors[0]['evalue']} (only NotImplementedError is expected)"
    elif role == "self-check":
        text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
        assert PASS_MARK in text, f"self-check printed no pass ({PASS_MARK}): {text!r}"


def chapter_with_outputs(original, executed):
    """The chapter ``original`` with the outputs of its cells in the executed checked copy."""
    ran = [c for c in executed.cells if c.cell_type == "code" and c.metadata.get(ROLE) != "stub"]
    out = copy.deepcopy(original)
    mine = [c for c in out.cells if c.cell_type == "code"]
    if [c.source for c in ran] != [c.source for c in mine]:
        raise ValueError("the executed checked copy is not of this chapter's code")
    for n, (cell, done) in enumerate(zip(mine, ran), start=1):
        cell.outputs = done.outputs
        cell.execution_count = n
    return out


def package_version() -> str:
    from ..experiments import package_version as version  # the source hash, not a run

    return version()


def write_executed(checked_path, outputs: dict[int, list], seconds: float) -> Path:
    """Write the chapter of the checked copy at ``checked_path`` with the outputs nbval recorded
    (``outputs[i]``: the outputs of the i-th code cell) to ``executed/<chapter>.ipynb`` beside it."""
    checked_path = Path(checked_path)
    executed = nbformat.read(checked_path, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        cell.outputs = [nbformat.from_dict(o) for o in outputs[i]]
    meta = executed.metadata["bnbook"]
    original = nbformat.read(ROOT / meta["checked_copy_of"], as_version=4)
    nb = chapter_with_outputs(original, executed)
    from ..config import get_scale

    nb.metadata["bnbook_executed"] = {"scale": get_scale(), "package_version": package_version(),
                                      "seconds": round(seconds, 1), "by": "nbval, checked copy"}
    target = checked_path.parent / "executed" / f"{meta['chapter']}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


def cache_executed(executed_dir, build_dir, scale: str) -> list[str]:
    """Add the executed chapters in ``executed_dir`` to the jupyter-cache of the book built into
    ``build_dir`` (``jupyter-book build --path-output build_dir``), each only if it was executed
    at ``scale`` with this package version and it is the chapter as it is now (jupyter-cache's own
    hash: code cells with their metadata, the kernel), so that myst-nb finds it. Returns the
    chapters added."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(Path(build_dir) / "_build" / ".jupyter_cache")
    version = package_version()
    added = []
    for path in sorted(Path(executed_dir).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        stamp = nb.metadata.pop("bnbook_executed", {})
        source = ROOT / "book" / path.name
        if stamp.get("scale") != scale or stamp.get("package_version") != version or not source.exists():
            continue
        if cache.create_hashed_notebook(nbformat.read(source, as_version=4))[1] != cache.create_hashed_notebook(nb)[1]:
            continue  # the chapter changed since (its code or cells' metadata: what myst-nb's match hashes)
        record = cache.add_nb_to_project(str(source))
        cache.cache_notebook_bundle(CacheBundleIn(nb, record.uri, data={"execution_seconds": stamp.get("seconds")}),
                                    check_validity=False, overwrite=True)
        added.append(path.stem)
    return added


def pending(notebooks, build_dir, first=()) -> list[str]:
    """The notebooks (paths) whose current code the jupyter-cache of the book built into
    ``build_dir`` holds no execution of: the ones its build would execute. Those named in
    ``first`` (chapter names) come first, in that order (``make book`` lists the longest first, so
    that the chapters it runs two at a time end together)."""
    rank = {name: i for i, name in enumerate(first)}
    notebooks = sorted(map(str, notebooks), key=lambda p: rank.get(Path(p).stem, len(rank)))
    from jupyter_cache import get_cache

    cache = get_cache(Path(build_dir) / "_build" / ".jupyter_cache")
    todo = []
    for path in map(str, notebooks):
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(path)
    return todo


# ------------------------------------------------------------------------------ command line

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bnutils.teaching.checked", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("copies", help="write the checked copies of chapters")
    c.add_argument("notebooks", nargs="+")
    c.add_argument("--out", required=True)
    k = sub.add_parser("cache", help="add executed chapters to a book build's jupyter-cache")
    k.add_argument("executed")
    k.add_argument("--build", required=True, help="the build's --path-output")
    k.add_argument("--scale", default=os.environ.get("BNBOOK_SCALE", "smoke"))
    p = sub.add_parser("pending", help="print the notebooks a book build's jupyter-cache holds no execution of")
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--build", required=True, help="the build's --path-output")
    p.add_argument("--first", default="", help="chapters to list first, in this order (comma-separated)")
    args = ap.parse_args(argv)
    if args.cmd == "pending":
        print(" ".join(pending(args.notebooks, args.build, [c for c in args.first.split(",") if c])))
    elif args.cmd == "copies":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("executed/*.ipynb"):  # executions of an earlier run never stand for this one
            old.unlink()
        for path in map(Path, args.notebooks):
            nb = nbformat.read(path, as_version=4)
            source = os.path.relpath(path.resolve(), ROOT)
            nbformat.write(checked_copy(nb, path.stem, source), out / path.name)
        print(f"{len(args.notebooks)} checked copies (student copy, solutions put back) in {out}")
    else:
        added = sorted(cache_executed(args.executed, args.build, args.scale))
        print(f"jupyter-cache of {args.build}: {len(added)} chapters executed by the tests added "
              f"({', '.join(added) or 'none'}); the build executes the others")
    return 0


if __name__ == "__main__":
    sys.exit(main())
