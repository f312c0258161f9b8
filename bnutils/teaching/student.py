r"""Student copies of the chapters: the exercises stay, the solutions go.

    python -m bnutils.teaching.student              # every book/*.ipynb -> _build/student/
    python -m bnutils.teaching.student book/batchnorm.ipynb --out _build/student

For each notebook (with nbconvert's machinery, so the result is an ordinary ``.ipynb``):

1. :class:`StubSolutions` removes the solution dropdowns from markdown -- ``{solution}``
   directives, and the gated ``{solution-start}`` ... ``{solution-end}`` cells -- and, in front of
   the code cells of each gated solution, inserts one *stub* code cell: the solution's imports and
   the signatures (with docstrings) of the functions and classes it defines, each body replaced by
   ``raise NotImplementedError("Exercise <label> (<title>): write ...")``, or just that ``raise`` when
   the solution defines nothing. A solution cell whose metadata has ``"stub": "..."`` uses that
   source as its stub instead. Code cells of a gated solution that lack the ``solution`` tag get it.
   When the solution defines functions or classes, the stub is only those (filled in, the cell runs
   cleanly); its other top-level statements belong in a cell of their own (below). Code cells of a
   gated solution tagged ``self-check`` (the call of a check of :mod:`bnutils.teaching.checks`)
   or ``student-keep`` (code that uses the answer: a run, a plot) stay in the student copy, in
   order, right after the stub; so in the published book the check and the run sit in the
   solution's dropdown, and in the student copy right under the student's code.
   After each exercise that is not a code exercise (``"kind"`` in its metadata, below), an
   *answer cell* is inserted: a markdown cell tagged ``answer`` with ``"exercise": label`` in its
   metadata, which the grader (:mod:`bnutils.teaching.grade`) collects for grading by hand.
2. ``TagRemovePreprocessor`` -- *enabled*: it does nothing unless ``enabled=True`` -- removes the
   cells tagged ``solution``.
3. ``ClearOutputPreprocessor`` clears outputs and execution counts.

Everything else stays, so a student runs each self-check under their own code. Each exercise's
points, kind and check are in the metadata of the markdown cell that opens it::

    "exercises": {"batchnorm-ex-code": {"points": 3, "kind": "code",
                  "check": {"name": "check_batchnorm_forward", "target": "bn_forward_2d",
                            "kwargs": {"spatial": true}}}}

(:func:`exercise_specs` reads them). The functions :func:`exercises` and :func:`solution_blocks`
read a chapter's exercises and reference solutions (for the instructors' page, the grader and the
tests).
"""

from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbconvert.exporters import NotebookExporter
from nbconvert.preprocessors import ClearOutputPreprocessor, Preprocessor, TagRemovePreprocessor
from traitlets.config import Config

SOLUTION_TAG = "solution"
STUB_TAG = "student-stub"
CHECK_TAG = "self-check"  # in a gated solution: stays in the student copy (a self-check call)
KEEP_TAG = "student-keep"  # in a gated solution: stays in the student copy (code that uses the answer)
ANSWER_TAG = "answer"  # the answer cell of a reasoning exercise in the student copy
KINDS = ("reason", "experiment", "code", "open")

# An opening fence with a directive: ```{name} argument   or   :::{name} argument
_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|:{3,})\s*\{(?P<name>[A-Za-z][\w-]*)\}\s*(?P<arg>.*?)\s*$")


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened with ``fence`` (same character, at least as long)."""
    s = line.strip()
    indent = len(line) - len(line.lstrip(" "))
    return indent <= 3 and len(s) >= len(fence) and set(s) == {fence[0]}


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


@dataclass
class Exercise:
    label: str
    title: str
    cell: int  # index of the markdown cell that opens it


@dataclass
class SolutionBlock:
    """One gated solution: its label and its code cells (the reference solution)."""

    label: str
    start_cell: int
    code: list = field(default_factory=list)  # the code cells, as notebook nodes


def exercises(nb) -> list[Exercise]:
    """The ``{exercise}`` / ``{exercise-start}`` directives of a notebook, in order."""
    out = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        lines = _source(cell).splitlines()
        for j, line in enumerate(lines):
            m = _OPEN.match(line)
            if m and m["name"] in ("exercise", "exercise-start"):
                label = ""
                for opt in lines[j + 1:]:
                    o = opt.strip()
                    if not o.startswith(":"):
                        break
                    if o.startswith(":label:"):
                        label = o[len(":label:"):].strip()
                out.append(Exercise(label, m["arg"], i))
    return out


@dataclass(frozen=True)
class ExerciseSpec:
    """An exercise's grading metadata: its weight, its kind, and for a code exercise the check
    (a name in :data:`bnutils.teaching.checks.CHECKS`), the name the student defines (``target``)
    and the check's keyword arguments."""

    label: str
    title: str
    points: float
    kind: str
    check: str | None = None
    target: str | None = None
    kwargs: dict = field(default_factory=dict)

    def call(self) -> str:
        """The self-check call as it appears in the chapter: ``checks.check_x(target, k=v)``."""
        args = [self.target] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"checks.{self.check}({', '.join(args)})"


def exercise_specs(nb) -> dict[str, ExerciseSpec]:
    """Every exercise of a notebook with its metadata (see the module docstring), in order.
    An exercise without metadata is an error: every exercise has a weight."""
    specs = {}
    for e in exercises(nb):
        meta = nb.cells[e.cell].get("metadata", {}).get("exercises", {}).get(e.label)
        if meta is None:
            raise ValueError(f"exercise {e.label!r} has no metadata: give its cell "
                             f'"exercises": {{"{e.label}": {{"points": ..., "kind": ...}}}}')
        kind = meta.get("kind")
        if kind not in KINDS:
            raise ValueError(f"exercise {e.label!r}: kind must be one of {KINDS}, got {kind!r}")
        check = meta.get("check") or {}
        if kind == "code" and not check:
            raise ValueError(f"code exercise {e.label!r} has no check in its metadata")
        specs[e.label] = ExerciseSpec(e.label, e.title, float(meta["points"]), kind, check.get("name"),
                                      check.get("target"), dict(check.get("kwargs", {})))
    return specs


def _exercise_ends(text: str) -> list[tuple[int, str]]:
    """(line index just past the block, label) for each exercise directive in a markdown text."""
    lines = text.splitlines(keepends=True)
    out = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i].rstrip("\n"))
        if m and m["name"] in ("exercise", "exercise-start"):
            label = ""
            for opt in lines[i + 1:]:
                o = opt.strip()
                if not o.startswith(":"):
                    break
                if o.startswith(":label:"):
                    label = o[len(":label:"):].strip()
            i = _skip_block(lines, i, m["fence"])
            out.append((i, label))
            continue
        i += 1
    return out


def answer_cell(label: str, title: str):
    """The markdown cell a student writes a reasoning exercise's answer in."""
    src = (f"**Your answer** ({label}{': ' + title if title else ''}). Replace this line with your answer; "
           "it is graded by hand.")
    return nbformat.v4.new_markdown_cell(src, metadata={"tags": [ANSWER_TAG], "exercise": label})


def _strip_markdown(text: str, gated: str | None) -> tuple[str, str | None, list[str], bool]:
    """Remove solution directives from one markdown cell.

    ``gated`` is the label of a ``solution-start`` still open from an earlier cell (or None).
    Returns (kept text, gated label after this cell, labels of solutions started here, whether a
    gated solution ended in this cell).
    """
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    started: list[str] = []
    ended = False
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _OPEN.match(line.rstrip("\n"))
        if gated is not None:
            if m and m["name"] == "solution-end":
                i = _skip_block(lines, i, m["fence"])
                gated, ended = None, True
            else:
                i += 1
            continue
        if m and m["name"] == "solution":
            i = _skip_block(lines, i, m["fence"])
            continue
        if m and m["name"] == "solution-start":
            label = m["arg"].split()[0] if m["arg"] else ""
            i = _skip_block(lines, i, m["fence"])
            gated = label
            started.append(label)
            continue
        if m and m["name"] == "solution-end":  # stray end without a start: drop it
            i = _skip_block(lines, i, m["fence"])
            continue
        kept.append(line)
        i += 1
    return "".join(kept), gated, started, ended


def _skip_block(lines: list[str], i: int, fence: str) -> int:
    """The index just past the block whose opening fence is ``lines[i]``."""
    j = i + 1
    while j < len(lines):
        if _closes(lines[j].rstrip("\n"), fence):
            return j + 1
        j += 1
    return j  # unclosed: MyST runs it to the end of the cell


def _stub_body(name: str, label: str, title: str) -> ast.stmt:
    what = f"Exercise {label}" + (f" ({title})" if title else "") + f": write {name}"
    return ast.parse(f"raise NotImplementedError({what!r})").body[0]


def _stub_def(node, label: str, title: str, prefix: str = ""):
    body = []
    doc = ast.get_docstring(node, clean=False)
    if doc is not None:
        body.append(node.body[0])
    if isinstance(node, ast.ClassDef):
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body.append(_stub_def(item, label, title, f"{prefix}{node.name}."))
        if not body:
            body.append(ast.Pass())
        node.body = body
        return node
    body.append(_stub_body(f"{prefix}{node.name}()", label, title))
    node.body = body
    return node


def make_stub(sources: list[str], label: str, title: str) -> str:
    """The stub that replaces a code solution (see the module docstring)."""
    keep: list[ast.stmt] = []
    names: list[str] = []
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:  # IPython magics etc.: no structure to keep
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                keep.append(node)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(node.name)
                keep.append(_stub_def(node, label, title))
    header = f"# Exercise {label}" + (f": {title}" if title else "") + "."
    parts = [header]
    if names:
        parts.append(f"# Write the body of {', '.join(names)} (the signature is given), then run the cells "
                     "below;\n# a self-check, where there is one, says what is wrong.")
    else:
        parts.append("# Write your code in this cell.")
    body = "\n\n".join(ast.unparse(n) for n in keep)
    if body:
        parts.append(body)
    if not names:  # nothing to fill in: the student writes the cell (a def-stub never raises at top level)
        what = f"Exercise {label}" + (f" ({title})" if title else "") + ": write your code here"
        parts.append(f"raise NotImplementedError({what!r})")
    return "\n".join(parts[:2]) + "\n" + "\n\n".join(parts[2:]) + "\n"


class StubSolutions(Preprocessor):
    """Remove solution markdown and put a stub before each code solution (see the module
    docstring). The solution code cells themselves are left, tagged ``solution``, for
    ``TagRemovePreprocessor``."""

    def preprocess(self, nb, resources):
        titles = {e.label: e.title for e in exercises(nb)}
        code_labels = {b.label for b in solution_blocks(nb) if b.code}
        kinds = {}
        for e in exercises(nb):
            meta = nb.cells[e.cell].get("metadata", {}).get("exercises", {}).get(e.label, {})
            kinds[e.label] = meta.get("kind", "code" if e.label in code_labels else "reason")
        cells = []
        gated: str | None = None
        last_label = ""
        block: list = []  # the code cells of the open gated solution
        stub_at: int | None = None

        def flush():
            nonlocal block, stub_at
            if block:
                label = gated_label
                custom = [c.metadata.get("stub") for c in block if c.metadata.get("stub")]
                src = "\n".join(custom) if custom else make_stub(
                    [_source(c) for c in block], label, titles.get(label, ""))
                stub = nbformat.v4.new_code_cell(src, metadata={"tags": [STUB_TAG], "exercise": label})
                cells.insert(stub_at, stub)
            block, stub_at = [], None

        gated_label = ""
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                text, gated_after, started, ended = _strip_markdown(_source(cell), gated)
                for e in exercises(nbformat.v4.new_notebook(cells=[cell])):
                    last_label = e.label or last_label
                if started:
                    gated_label = started[-1]
                if ended or (gated is not None and gated_after is None):
                    flush()
                gated = gated_after
                start, pieces = 0, []
                lines = text.splitlines(keepends=True)
                for end, label in _exercise_ends(text):  # an answer cell right under its exercise
                    if kinds.get(label, "reason") == "code":
                        continue
                    pieces.append(("".join(lines[start:end]), label))
                    start = end
                pieces.append(("".join(lines[start:]), None))
                n = 0
                for part, label in pieces:
                    if part.strip():
                        piece = copy.deepcopy(cell)
                        piece.source = part.strip("\n")
                        if n and "id" in piece:  # a cell split in pieces: ids stay unique
                            piece.id = f"{cell.id}-{n}"
                        n += 1
                        cells.append(piece)
                    if label is not None:
                        cells.append(answer_cell(label, titles.get(label, "")))
                continue
            if cell.cell_type == "code" and gated is not None and {CHECK_TAG, KEEP_TAG} & set(_tags(cell)):
                cells.append(cell)  # a self-check or a run of the answer: the student's copy keeps it
                continue
            if cell.cell_type == "code" and (gated is not None or SOLUTION_TAG in _tags(cell)):
                cell = copy.deepcopy(cell)
                if SOLUTION_TAG not in _tags(cell):
                    cell.metadata.setdefault("tags", []).append(SOLUTION_TAG)
                if gated is None:  # a solution cell outside a gated block: a stub of its own
                    gated_label = last_label
                    block, stub_at = [cell], len(cells)
                    cells.append(cell)
                    flush()
                    continue
                if stub_at is None:
                    stub_at = len(cells)
                block.append(cell)
                cells.append(cell)
                continue
            cells.append(cell)
        if gated is not None:
            raise ValueError(f"solution-start {gated!r} has no matching solution-end")
        nb.cells = cells
        return nb, resources


def student_copy(nb, chapter: str | None = None):
    """The student copy of a notebook node (the original is not modified). ``chapter`` (the
    notebook's file name without ``.ipynb``) is recorded in the copy's metadata, ``bnbook``, so that
    the grader knows which chapter a submission is."""
    c = Config()
    c.NotebookExporter.default_preprocessors = []
    c.TagRemovePreprocessor.enabled = True  # the pitfall: without this it silently does nothing
    c.TagRemovePreprocessor.remove_cell_tags = {SOLUTION_TAG}
    c.ClearOutputPreprocessor.enabled = True
    exporter = NotebookExporter(config=c)
    exporter.register_preprocessor(StubSolutions, enabled=True)
    exporter.register_preprocessor(TagRemovePreprocessor, enabled=True)
    exporter.register_preprocessor(ClearOutputPreprocessor, enabled=True)
    out, _ = exporter.from_notebook_node(copy.deepcopy(nb))
    result = nbformat.reads(out, as_version=4)
    leftover = [i for i, cell in enumerate(result.cells) if SOLUTION_TAG in _tags(cell)]
    if leftover:  # TagRemovePreprocessor did not run: never hand out solutions
        raise RuntimeError(f"solution cells {leftover} survived: is TagRemovePreprocessor enabled?")
    if chapter:
        result.metadata["bnbook"] = {"chapter": chapter, "student_copy": True}
    return result


def solution_blocks(nb) -> list[SolutionBlock]:
    """The gated solutions of a notebook with their reference code cells, in order."""
    blocks: list[SolutionBlock] = []
    gated = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            _, gated_after, started, _ = _strip_markdown(_source(cell), gated)
            if started:
                blocks.append(SolutionBlock(started[-1], i))
            gated = gated_after
        elif cell.cell_type == "code" and gated is not None and not {CHECK_TAG, KEEP_TAG} & set(_tags(cell)):
            blocks[-1].code.append(cell)
    return blocks


def write_student_copies(paths, out_dir) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        path = Path(path)
        nb = nbformat.read(path, as_version=4)
        student = student_copy(nb, chapter=path.stem)
        target = out_dir / path.name
        nbformat.write(student, target)
        n_ex = len(exercises(nb))
        n_stub = sum(STUB_TAG in _tags(c) for c in student.cells)
        n_answer = sum(ANSWER_TAG in _tags(c) for c in student.cells)
        print(f"{path} -> {target}: {n_ex} exercises, {n_stub} code stubs, {n_answer} answer cells")
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnutils.teaching.student", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="chapter notebooks (default: book/*.ipynb)")
    parser.add_argument("--out", default="_build/student", help="output folder (default: _build/student)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(Path("book").glob("*.ipynb"))
    if not paths:
        parser.error("no notebooks given and none found in book/")
    write_student_copies(paths, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
