"""The glued numbers of a paragraph, shown under it where the book's markdown cannot show them.

The prose cites every measured number with myst-nb's ``{glue:text}`key:format``` role, which only
the book's build (Sphinx) resolves. JupyterLab with ``jupyterlab-myst`` renders the rest of the
book's MyST (directives, maths, citations, cross-references) but not glue (jupyterlab-myst issue
#165: it evaluates ``{eval}`` roles, not ``{glue}``), so it shows the role's ``key:format``; Colab
and plain Jupyter show the raw role. So under each markdown cell that cites glued numbers a chapter
has a code cell, tagged ``remove-cell`` (nothing of it is in the HTML book or the PDF), that calls
:func:`show` with the cell's ``key:format`` strings in order: it displays each number as the book
formats it, in a small table keyed by what the text shows. A cell after the Colab cell calls
:func:`watch`, which records every value glued from then on, and a table whose numbers are glued
only further down the notebook fills in when they are. ``watch(chapter)`` also keeps the chapter's
values in ``<claims folder>/glued/<chapter>.json`` (beside the claims ledgers, per scale), where
the summary's tables find the numbers it pastes from the chapters (``{glue:text}`ics.ipynb::key```).

``python -m bnutils.glued book/*.ipynb`` writes these cells (after a change to the prose);
``tests/test_readers.py`` checks that every chapter has them, in step with its markdown.
"""

from __future__ import annotations

import html
import json
import re
import sys
from ast import literal_eval
from pathlib import Path

GLUE_ROLE = re.compile(r"(?<!`)\{glue(?::text)?\}`([^`]+)`")  # not `{glue:text}` quoted as code
PREFIX = "application/papermill.record/"  # myst_nb.ext.glue.GLUE_PREFIX, for display=False
MISSING = "(glued further down: run the cells below)"

_values: dict[str, str] = {}  # glued name -> its text/plain, as myst-nb stores it
_store: list = [None]  # the file watch(chapter) keeps this session's values in
_waiting: list[tuple[tuple[str, ...], object]] = []  # (keys, display handle) of tables not yet full


def format_plain_text(text: str, fmt_spec: str) -> str:
    """myst-nb's formatting of a glued ``text/plain`` for ``{glue:text}`key:fmt_spec``` (a copy of
    ``myst_nb.core.variables.format_plain_text``, which cannot be imported without Sphinx, as on
    Colab; tests/test_readers.py checks that they agree)."""
    try:
        value = literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if fmt_spec == "":
        return str(value)
    type_char = fmt_spec[-1]
    if type_char == "s":
        value = str(value)
    elif type_char in ("b", "c", "d", "o", "x", "X"):
        value = int(value)
    elif type_char in ("e", "E", "f", "F", "g", "G", "n", "%"):
        value = float(value)
    return format(value, fmt_spec)


def _split(key: str) -> tuple[str, str]:
    # as myst-nb's glue:text role: the last ":" separates the name from the format ("s" if none)
    name, sep, spec = key.rpartition(":")
    return (name, spec) if sep else (key, "s")


def _folder():
    from .config import claims_dir

    folder = claims_dir()
    return None if folder is None else folder / "glued"


def _chapter_values(doc: str) -> dict[str, str] | None:
    folder = _folder()
    path = None if folder is None else folder / f"{doc}.json"
    try:
        return json.loads(path.read_text()) if path is not None else None
    except (OSError, ValueError):
        return None


def formatted(key: str) -> str | None:
    """What ``{glue:text}`key``` shows in the book, from the values glued so far (None: not yet).
    ``doc.ipynb::name`` (another chapter's value) comes from that chapter's last run at this scale."""
    name, spec = _split(key)
    doc, sep, other = name.partition(".ipynb::")
    if sep:
        values = _chapter_values(doc) or {}
        if other not in values:
            return f"(glued by {doc}.ipynb: run that chapter first, at this scale)"
        text = values[other]
    elif name in _values:
        text = _values[name]
    else:
        return None
    try:
        return format_plain_text(text, spec)
    except (TypeError, ValueError) as exc:
        return f"(cannot format {text!r} with {spec!r}: {exc})"


def _bundle(keys: tuple[str, ...]) -> dict:
    rows = [(k, formatted(k)) for k in keys]
    width = max(len(k) for k in keys)
    text = "\n".join(f"{k:<{width}}  {MISSING if v is None else v}" for k, v in rows)
    cells = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(MISSING if v is None else v)}</td></tr>"
                    for k, v in rows)
    table = ("<table class='bnutils-glued'><thead><tr><th>in the text above</th><th>value</th></tr></thead>"
             f"<tbody>{cells}</tbody></table>")
    return {"text/plain": text, "text/html": table}


def show(*keys: str):
    """Display the numbers that ``{glue:text}`key``` shows in the book, one row per key (the
    ``key:format`` as the text above shows it, and the formatted value)."""
    from IPython.display import display

    if not keys:
        return
    handle = display(_bundle(keys), raw=True, display_id=True)
    if handle is not None and any(formatted(k) is None for k in keys):
        _waiting.append((keys, handle))


def _record(name: str, text: str) -> None:
    _values[name] = text
    if _store[0] is not None:
        try:
            _store[0].parent.mkdir(parents=True, exist_ok=True)
            tmp = _store[0].with_suffix(".tmp")
            tmp.write_text(json.dumps(_values, indent=0))
            tmp.replace(_store[0])
        except OSError:  # a read-only cache: the tables of this notebook still work
            pass
    for item in list(_waiting):
        keys, handle = item
        if any(_split(k)[0] == name for k in keys):
            handle.update(_bundle(keys), raw=True)
            if all(formatted(k) is not None for k in keys):
                _waiting.remove(item)


def watch(chapter: str | None = None, shell=None) -> bool:
    """Record every value glued (``myst_nb.glue``) from now on in this IPython session, for
    :func:`show`; with ``chapter``, also in that chapter's file for other notebooks (the
    summary). Returns False outside IPython."""
    if chapter is not None:
        folder = _folder()
        _store[0] = None if folder is None else folder / f"{chapter}.json"
        _values.clear()  # one run of a chapter, one set of values
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    pub = shell.display_pub
    if getattr(pub.publish, "records_glue", False):
        return True
    publish = pub.publish

    def recording(data, metadata=None, *args, **kwargs):
        book = (metadata or {}).get("scrapbook") if isinstance(metadata, dict) else None
        if book and "name" in book:
            text = data.get(book.get("mime_prefix", "") + "text/plain")
            if text is not None:
                _record(book["name"], text)
        return publish(data, metadata, *args, **kwargs)

    recording.records_glue = True
    pub.publish = recording
    return True


# ----- the cells in the notebooks -----------------------------------------------------------------

TAG = "remove-cell"
WATCH_HEAD = ("# In Jupyter, the numbers the text cites are shown under each paragraph (bnutils.glued);\n"
              "# this cell and those tables are not in the book, where the numbers are in the text.\n"
              "from bnutils import glued\n")


def watch_source(chapter: str | None = None) -> str:
    return WATCH_HEAD + (f"glued.watch({json.dumps(chapter)});" if chapter else "glued.watch();")


def show_source(keys) -> str:
    return "glued.show(" + ", ".join(json.dumps(k) for k in keys) + ")"


FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
SPAN = re.compile(r"(?<!`)``(?!`)[^\n]*?(?<!`)``(?!`)")  # a ``double-backtick`` code span


def _prose(markdown: str) -> str:
    """``markdown`` without its code blocks (a fence whose info string is not ``{directive}``);
    a directive's body is kept, it is prose."""
    out, fences = [], []  # the open fences: (marker, is code)
    for line in markdown.splitlines(keepends=True):
        m = FENCE.match(line)
        if m and fences and m.group(1)[0] == fences[-1][0][0] and len(m.group(1)) >= len(fences[-1][0]) \
                and not m.group(2).strip():
            fences.pop()  # a closing fence
            continue
        if m and not (fences and fences[-1][1]):
            fences.append((m.group(1), not m.group(2).strip().startswith("{")))
            continue
        if not (fences and fences[-1][1]):
            out.append(line)
    return "".join(out)


def keys_of(markdown: str) -> tuple[str, ...]:
    """The ``key:format`` of every glue role of ``markdown``, in order, each once (not those
    quoted in code: a fenced block that is not a directive, or a ````double-backtick```` span)."""
    text = SPAN.sub("", _prose(markdown))
    return tuple(dict.fromkeys(m.group(1) for m in GLUE_ROLE.finditer(text)))


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _is_ours(cell) -> bool:
    src = _source(cell)
    return cell["cell_type"] == "code" and (src.startswith(WATCH_HEAD) or src.startswith("glued.show("))


def _code_cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": [TAG]}, "outputs": [],
            "source": source.splitlines(keepends=True)}


def sync(nb: dict, chapter: str | None = None) -> dict:
    """``nb`` with a :func:`watch` cell right after its first code cell (the Colab cell; or before
    the first table, if that comes first) and a :func:`show` cell under each markdown cell that
    cites glued numbers, none elsewhere."""
    import copy

    nb = copy.deepcopy(nb)
    if not any(keys_of(_source(c)) for c in nb["cells"] if c["cell_type"] == "markdown"):
        return {**nb, "cells": [c for c in nb["cells"] if not _is_ours(c)]}
    old: dict[str, list] = {}  # the cells already there, by source: kept with their ids
    for c in nb["cells"]:
        if _is_ours(c):
            old.setdefault(_source(c), []).append(c)

    def reuse(src):
        return old[src].pop(0) if old.get(src) else _code_cell(src)

    cells, watched = [], False
    for cell in nb["cells"]:
        if _is_ours(cell):
            continue
        cells.append(cell)
        if cell["cell_type"] == "code" and not watched:
            cells.append(reuse(watch_source(chapter)))
            watched = True
        elif cell["cell_type"] == "markdown" and (keys := keys_of(_source(cell))):
            if not watched:  # numbers cited before any code cell: watch first all the same
                cells.append(reuse(watch_source(chapter)))
                watched = True
            cells.append(reuse(show_source(keys)))
    if "id" in nb["cells"][0]:  # nbformat >= 4.5: every cell a unique id
        import uuid

        seen = set()
        for cell in cells:
            if cell.get("id") in seen or "id" not in cell:
                cell["id"] = uuid.uuid4().hex[:8]
            seen.add(cell["id"])
    return {**nb, "cells": cells}


def main(paths: list[str]) -> int:
    changed = 0
    for path in map(Path, paths):
        nb = json.loads(path.read_text())
        new = sync(nb, path.stem)
        if new != nb:
            path.write_text(json.dumps(new, indent=1, ensure_ascii=False) + "\n")
            changed += 1
            print(f"{path}: glued-number cells updated")
    return 0 if changed >= 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
