r"""Grade a folder of submitted chapters: ``make grade SUBMISSIONS=dir [CHAPTER=name]``.

    python -m bnutils.teaching.grade SUBMISSIONS [--chapter batchnorm] [--out _build/grades]
                                     [--jobs 2] [--timeout 60]

``SUBMISSIONS`` holds one notebook per student, either as ``<student>.ipynb`` or as a folder
``<student>/`` with the chapter's notebook somewhere inside (``<student>/batchnorm.ipynb``, or
nbgrader's and most LMS exports' ``<student>/<assignment>/batchnorm.ipynb``). The chapter is
``--chapter``, else the one the student copy records in its metadata (``make student`` writes it),
else the notebook's file name.

For each submission, in a process of its own (forked from a parent that has already imported
PyTorch, so that a class of 30 does not pay 30 imports), at most ``--jobs`` at a time and each
killed after ``--timeout`` seconds:

* every **code exercise** is graded by running, in a fresh namespace, the *imports* of the reference
  chapter (never the submission's), then the student's code for the exercise (the stub cell
  ``make student`` made, any other cell that defines the exercise's function, and the cells that
  only import and define functions or classes, such as a student's helpers), then the
  exercise's check from :mod:`bnutils.teaching.checks`, named in the *reference* chapter's
  metadata and taken from the grader's own copy of the checks. The self-check cells in the
  submission, which a student could edit, are never run; nor is the rest of the chapter: grading
  needs only the function, and a chapter's experiments take a minute even at smoke scale.
* every **other exercise** (reason, experiment, open-ended) is a row for grading by hand, with
  the text of its answer cell: blank points, or 0 when the answer cell is empty or unchanged.

The student's code runs with the working directory in a scratch folder of its own, so a notebook
that deletes or writes files does so there. Whatever happens -- an exception, ``exit()``,
``os._exit``, an infinite loop, a missing module, a notebook that is not JSON, a student folder
without the notebook -- it becomes a row with a message, and the run goes on.

Written to ``--out`` (default ``_build/grades``):

* ``grades.csv``: one row per student and exercise: student, chapter, exercise, kind, points,
  max_points, message (blank points: to grade by hand);
* ``feedback/<student>.html``: one page per student: each exercise, its points and message, the
  answers to grade by hand;
* ``summary.csv`` and ``summary.md``: per exercise, the number of submissions, the mean, the
  distribution of points and the most common messages;
* ``work/<student>/``: the scratch folder each submission ran in, with its printed output
  (``output.txt``).
"""

from __future__ import annotations

import argparse
import ast
import csv
import html
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from .student import ANSWER_TAG, CHECK_TAG, KEEP_TAG, STUB_TAG, ExerciseSpec, answer_cell, exercise_specs

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("student", "chapter", "exercise", "kind", "points", "max_points", "message")


@dataclass
class Row:
    student: str
    chapter: str
    exercise: str
    kind: str
    points: float | None  # None: to grade by hand
    max_points: float
    message: str
    answer: str = ""  # the text of a reasoning exercise's answer cell (feedback page only)


@dataclass
class Submission:
    student: str
    path: Path | None  # None: no notebook found for this student
    problem: str = ""  # why there is no notebook


# ---------------------------------------------------------------------------------- finding work

def find_submissions(folder: Path, chapter: str | None) -> list[Submission]:
    """``<student>.ipynb`` files and ``<student>/`` folders of ``folder``, sorted by student."""
    subs = []
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            subs.append(Submission(entry.stem, entry))
        elif entry.is_dir():
            found = sorted(p for p in entry.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
            if chapter:  # the chapter's notebook, or the folder's only notebook whatever its name
                named = [p for p in found if p.stem == chapter]
                if named or len(found) != 1:
                    found = named
            if len(found) == 1:
                subs.append(Submission(entry.name, found[0]))
            elif not found:
                what = f"{chapter}.ipynb" if chapter else "a notebook"
                subs.append(Submission(entry.name, None, f"no {what} in the submission folder {entry.name}/"))
            else:
                names = ", ".join(str(p.relative_to(entry)) for p in found)
                subs.append(Submission(entry.name, None, f"several notebooks in {entry.name}/ ({names}); "
                                                          "name the chapter with CHAPTER="))
    return subs


def chapter_of(sub: Submission, chapter: str | None, book: Path) -> str | None:
    if chapter:
        return chapter
    if sub.path is None:
        return None
    try:
        meta = json.loads(sub.path.read_text(encoding="utf-8")).get("metadata", {})
        name = meta.get("bnbook", {}).get("chapter")
    except (OSError, ValueError, AttributeError):
        name = None
    if name and (book / f"{name}.ipynb").exists():
        return name
    return sub.path.stem if (book / f"{sub.path.stem}.ipynb").exists() else None


@dataclass
class Reference:
    """What the grader takes from the reference chapter: the exercises and the chapter's imports."""

    chapter: str
    specs: dict[str, ExerciseSpec]
    imports: str

    @classmethod
    def load(cls, book: Path, chapter: str) -> Reference:
        nb = nbformat.read(book / f"{chapter}.ipynb", as_version=4)
        lines: list[str] = []
        for cell in nb.cells:
            if cell.cell_type != "code" or {STUB_TAG, CHECK_TAG, KEEP_TAG, "solution"} & set(cell.metadata.get("tags", [])):
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    src = ast.unparse(node)
                    if src not in lines:
                        lines.append(src)
        return cls(chapter, exercise_specs(nb), "\n".join(lines))


# ------------------------------------------------------------------ grading one submission (child)

class _TimeUp(BaseException):
    """Raised in the child by SIGALRM: the submission's time is up."""


class _Shell:
    """``get_ipython()`` for code with magics or shell escapes: they do nothing when grading."""

    def run_line_magic(self, *args, **kwargs):
        return None

    run_cell_magic = system = getoutput = run_line_magic


def _python(source: str) -> str:
    """A cell's source as plain Python (IPython's own transformation of magics and ``!``)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _defines(source: str, name: str) -> bool:
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name
               or isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)
               for n in tree.body)


def _only_definitions(source: str) -> bool:
    """Whether a cell only imports and defines functions and classes (cheap to run: no experiment)."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return False
    return bool(tree.body) and all(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
                                                  ast.ImportFrom)) or isinstance(n, ast.Expr)
                                   and isinstance(n.value, ast.Constant) for n in tree.body)


def _student_cells(nb, spec: ExerciseSpec) -> list[tuple[int, str]]:
    """The submission's code for a code exercise, in notebook order: its stub cell, every other code
    cell that defines the exercise's function, and every cell that only imports and defines
    functions or classes (a student's helpers); never the self-check or kept cells."""
    out, found = [], False
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & {CHECK_TAG, KEEP_TAG}:
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        stub = STUB_TAG in tags and cell.get("metadata", {}).get("exercise") == spec.label
        if stub or (spec.target and _defines(src, spec.target)):
            out.append((i, src))
            found = True
        elif _only_definitions(src):
            out.append((i, src))
    return out if found else []  # [] : the exercise's cell was deleted and nothing defines its function


_NAME_HINT = (" (the grader runs your exercise's cells with the chapter's imports only, not the whole chapter: "
              "define everything your function needs in it, or in a cell of functions and imports)")


def _short(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text if len(text) < 400 else text[:400] + " ..."


def _answer_rows(nb, sub: Submission, ref: Reference) -> list[Row]:
    rows = []
    answers: dict[str, list[str]] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        if ANSWER_TAG in meta.get("tags", []) and meta.get("exercise"):
            src = cell.get("source", "")
            answers.setdefault(meta["exercise"], []).append("".join(src) if isinstance(src, list) else src)
    for spec in ref.specs.values():
        if spec.kind == "code":
            continue
        template = answer_cell(spec.label, spec.title).source.strip()
        texts = [t.strip() for t in answers.get(spec.label, []) if t.strip() and t.strip() != template]
        if spec.label not in answers:
            rows.append(Row(sub.student, ref.chapter, spec.label, spec.kind, 0.0, spec.points,
                            "no answer cell for this exercise (deleted?)"))
        elif not texts:
            rows.append(Row(sub.student, ref.chapter, spec.label, spec.kind, 0.0, spec.points,
                            "no answer: the answer cell is empty or unchanged"))
        else:
            text = "\n\n".join(texts)
            rows.append(Row(sub.student, ref.chapter, spec.label, spec.kind, None, spec.points,
                            f"to grade by hand: an answer of {len(text.split())} words", text))
    return rows


def _grade_code(nb, sub: Submission, ref: Reference, spec: ExerciseSpec, checks: dict, note: str) -> Row:
    def row(points, message):
        return Row(sub.student, ref.chapter, spec.label, spec.kind, points, spec.points, message + note)

    cells = _student_cells(nb, spec)
    if not cells:
        return row(0.0, f"no code for this exercise: no cell defines {spec.target} (was the exercise's cell deleted?)")
    ns: dict = {"__name__": "__main__", "get_ipython": lambda: _Shell()}
    try:
        exec(compile(ref.imports, f"<{ref.chapter}: the chapter's imports>", "exec"), ns)
    except Exception as e:  # noqa: BLE001 -- the grader's environment is broken: say so in the row
        return row(0.0, f"the grader could not run the chapter's imports ({_short(e)}); not your fault: "
                        "tell your instructor")
    for i, src in cells:
        try:
            code = compile(_python(src), f"<your cell {i}>", "exec")
        except SyntaxError as e:
            return row(0.0, f"your cell {i} is not valid Python: {_short(e)}")
        try:
            exec(code, ns)
        except _TimeUp:
            raise
        except SystemExit as e:
            return row(0.0, f"your cell {i} called exit() (SystemExit: {e}); grading needs the cell to run to its end")
        except BaseException as e:  # noqa: BLE001 -- anything the student's cell raises is a row
            hint = " (this package is not installed where the class is graded: use only the chapter's imports)" \
                if isinstance(e, ModuleNotFoundError) else ""
            hint += _NAME_HINT if isinstance(e, NameError) else ""
            return row(0.0, f"your cell {i} raised {_short(e)}{hint}")
    fn = ns.get(spec.target)
    if fn is None:
        return row(0.0, f"your cells ran but did not define {spec.target}")
    check = checks[spec.check]
    try:
        result = check(fn, points=spec.points, raises=False, **spec.kwargs)
    except _TimeUp:
        raise
    except BaseException as e:  # noqa: BLE001 -- e.g. exit() or a RecursionError inside the student's function
        return row(0.0, f"the check could not run your {spec.target}: {_short(e)}")
    hint = _NAME_HINT if not result.passed and "NameError" in result.message else ""
    return row(result.points, ("✓ " if result.passed else "") + result.message + hint)


def _child(sub: Submission, ref: Reference, checks: dict, work: Path, result_path: Path, soft: float) -> None:
    """Grade one submission, writing each row to ``result_path`` as soon as it is known; an error of
    the grader itself is written there too, so that it is not blamed on the student."""
    try:
        _grade_submission(sub, ref, checks, work, result_path, soft)
    except BaseException:  # noqa: BLE001
        with open(result_path, "a") as f:
            f.write(json.dumps({"grader_error": traceback.format_exc(limit=3)}) + "\n")
        raise


def _grade_submission(sub: Submission, ref: Reference, checks: dict, work: Path, result_path: Path,
                      soft: float) -> None:
    os.setsid()  # its own process group: the parent kills it and anything it started
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    out = open(work / "output.txt", "w", buffering=1)  # noqa: SIM115 -- lives as long as the process
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    sys.stdout = sys.stderr = out
    results = open(result_path, "a", buffering=1)  # noqa: SIM115

    def emit(r: Row):
        results.write(json.dumps(asdict(r)) + "\n")
        results.flush()

    def time_up(signum, frame):
        raise _TimeUp()

    signal.signal(signal.SIGALRM, time_up)
    try:
        nb = nbformat.read(sub.path, as_version=4)
    except Exception as e:  # noqa: BLE001 -- an unreadable notebook is a row per exercise
        for spec in ref.specs.values():
            emit(Row(sub.student, ref.chapter, spec.label, spec.kind, 0.0, spec.points,
                     f"could not read the notebook {sub.path.name}: {_short(e)}"))
        return
    kernel = nb.metadata.get("kernelspec", {}).get("name", "")
    note = f" (the notebook's kernel was {kernel!r}; it was graded with the class's Python kernel)" \
        if kernel and kernel != "python3" else ""
    for r in _answer_rows(nb, sub, ref):
        emit(r)
    for spec in ref.specs.values():
        if spec.kind != "code":
            continue
        signal.setitimer(signal.ITIMER_REAL, soft)
        try:
            r = _grade_code(nb, sub, ref, spec, checks, note)
        except _TimeUp:
            r = Row(sub.student, ref.chapter, spec.label, spec.kind, 0.0, spec.points,
                    f"time limit exceeded: your code ran for more than {soft:g} s (an infinite loop?)" + note)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        emit(r)


# ---------------------------------------------------------------------------------- the grading run

def grade(submissions: Path, out: Path, chapter: str | None = None, jobs: int | None = None,
          timeout: float = 60.0, book: Path | None = None, quiet: bool = False) -> list[Row]:
    """Grade every submission of ``submissions``; write the CSV, the feedback pages and the summary
    to ``out``; return the rows."""
    # a submission is a partial run of a chapter: it must never replace the chapter's claims ledger
    # (bnutils.claims), so the children inherit BNBOOK_CLAIMS=off; the caller's value is restored
    before = os.environ.get("BNBOOK_CLAIMS")
    os.environ["BNBOOK_CLAIMS"] = "off"
    try:
        return _grade(submissions, out, chapter, jobs, timeout, book, quiet)
    finally:
        if before is None:
            os.environ.pop("BNBOOK_CLAIMS", None)
        else:
            os.environ["BNBOOK_CLAIMS"] = before


def _grade(submissions, out, chapter, jobs, timeout, book, quiet) -> list[Row]:
    from . import checks as checks_module

    checks = dict(checks_module.CHECKS)  # the grader's own references, taken before any student code
    book = Path(book) if book else ROOT / "book"
    out = Path(out).resolve()  # absolute: each child changes into its own scratch folder
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs or len(os.sched_getaffinity(0))
    if chapter and not (book / f"{chapter}.ipynb").exists():
        names = ", ".join(sorted(p.stem for p in book.glob("*.ipynb")))
        raise ValueError(f"no chapter {chapter!r} in {book}; the chapters are {names}")
    subs = find_submissions(Path(submissions), chapter)
    refs: dict[str, Reference] = {}
    rows: list[Row] = []
    todo = []
    for sub in subs:
        ch = chapter_of(sub, chapter, book)
        if sub.path is None or ch is None:
            problem = sub.problem or (f"{sub.path.name}: not a chapter of the book; name it with CHAPTER="
                                      if sub.path else "no notebook")
            specs = refs[ch].specs if ch in refs else (Reference.load(book, ch).specs if ch else {})
            if not specs:
                rows.append(Row(sub.student, ch or "", "", "", 0.0, 0.0, problem))
            for s in specs.values():
                rows.append(Row(sub.student, ch, s.label, s.kind, 0.0, s.points, problem))
            continue
        if ch not in refs:
            refs[ch] = Reference.load(book, ch)
        todo.append((sub, refs[ch]))
    _warm(refs.values())
    scratch = out / "work"
    ctx = multiprocessing.get_context("fork")
    running: list[tuple] = []
    start = time.monotonic()
    pending = list(todo)
    with tempfile.TemporaryDirectory() as tmp:
        while pending or running:
            while pending and len(running) < jobs:
                sub, ref = pending.pop(0)
                result_path = Path(tmp) / f"{len(pending)}-{sub.student}.jsonl"
                soft = max(1.0, timeout - 2.0)
                p = ctx.Process(target=_child, args=(sub, ref, checks, scratch / sub.student, result_path, soft),
                                daemon=False)
                p.start()
                running.append((p, sub, ref, result_path, time.monotonic()))
            time.sleep(0.05)
            for item in list(running):
                p, sub, ref, result_path, t0 = item
                timed_out = time.monotonic() - t0 > timeout
                if p.is_alive() and not timed_out:
                    continue
                if p.is_alive():
                    _kill(p)
                p.join()
                running.remove(item)
                rows.extend(_collect(sub, ref, result_path, p.exitcode, timed_out, timeout))
                if not quiet:
                    print(f"graded {sub.student} ({ref.chapter}) in {time.monotonic() - t0:.1f} s", flush=True)
    elapsed = time.monotonic() - start
    write_outputs(rows, out)
    if not quiet:
        print(summary_markdown(rows))
        print(f"{len(subs)} submissions graded in {elapsed:.1f} s with {jobs} processes at a time; "
              f"grades in {out / 'grades.csv'}, feedback in {out / 'feedback'}")
    return rows


def _warm(refs) -> None:
    """Import, once in the parent, what the children need, so that each fork starts warm."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch  # noqa: F401

    for ref in refs:
        try:
            exec(compile(ref.imports, "<warm>", "exec"), {"__name__": "__grade_warm__"})
        except Exception:  # noqa: BLE001 -- a broken import is reported per submission, in its row
            traceback.print_exc()
        _python("x = 1")  # IPython's transformer, imported once


def _kill(p) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        p.kill()


def _collect(sub: Submission, ref: Reference, path: Path, exitcode: int | None, timed_out: bool,
             timeout: float) -> list[Row]:
    got: dict[str, Row] = {}
    grader_error = ""
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                data = json.loads(line)
                if "grader_error" in data:
                    grader_error = data["grader_error"].strip().splitlines()[-1]
                    continue
                r = Row(**data)
            except (ValueError, TypeError):
                continue
            got[r.exercise] = r
    rows = []
    for spec in ref.specs.values():
        if spec.label in got:
            rows.append(got[spec.label])
            continue
        if grader_error:
            msg = f"the grader failed ({grader_error}); not your fault: tell your instructor"
        elif timed_out:
            msg = f"time limit of {timeout:g} s exceeded while grading this exercise (an infinite loop?)"
        elif exitcode is not None and exitcode < 0:
            msg = (f"the grading process was killed by {signal.Signals(-exitcode).name} while running your code "
                   "for this exercise")
        else:
            msg = (f"the grading process stopped (exit code {exitcode}) while running your code for this "
                   "exercise: does it call os._exit() or kill its own process?")
        rows.append(Row(sub.student, ref.chapter, spec.label, spec.kind, 0.0, spec.points, msg))
    return rows


# ---------------------------------------------------------------------------------------- outputs

def _points(p: float | None) -> str:
    return "" if p is None else f"{p:g}"


def write_outputs(rows: list[Row], out: Path) -> None:
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for r in rows:
            w.writerow([r.student, r.chapter, r.exercise, r.kind, _points(r.points), _points(r.max_points), r.message])
    fb = out / "feedback"
    fb.mkdir(exist_ok=True)
    by_student: dict[str, list[Row]] = {}
    for r in rows:
        by_student.setdefault(r.student, []).append(r)
    for student, rs in by_student.items():
        (fb / f"{student}.html").write_text(feedback_html(student, rs), encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(rows), encoding="utf-8")
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(("chapter", "exercise", "kind", "max_points", "submissions", "graded", "mean", "distribution",
                    "to_grade_by_hand"))
        for s in summarize(rows):
            w.writerow([s["chapter"], s["exercise"], s["kind"], _points(s["max_points"]), s["n"], s["graded"],
                        "" if s["mean"] is None else f"{s['mean']:.2f}", s["distribution"], s["manual"]])


def feedback_html(student: str, rows: list[Row]) -> str:
    auto = [r for r in rows if r.points is not None]
    got, of = sum(r.points for r in auto), sum(r.max_points for r in rows)
    manual = [r for r in rows if r.points is None]
    e = html.escape
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>Feedback: {e(student)}</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{border:1px solid #ccc;"
             "padding:.3em .6em;vertical-align:top}table{border-collapse:collapse}pre{white-space:pre-wrap;"
             "background:#f6f6f6;padding:.6em}</style></head><body>",
             f"<h1>Feedback for {e(student)}</h1>",
             f"<p>Points so far: <strong>{got:g}</strong> of {of:g}"
             + (f"; {len(manual)} answer(s) still to be graded by hand." if manual else ".") + "</p>",
             "<table><tr><th>chapter</th><th>exercise</th><th>kind</th><th>points</th><th>message</th></tr>"]
    for r in rows:
        pts = "by hand" if r.points is None else f"{r.points:g} / {r.max_points:g}"
        parts.append(f"<tr><td>{e(r.chapter)}</td><td>{e(r.exercise)}</td><td>{e(r.kind)}</td><td>{pts}</td>"
                     f"<td>{e(r.message)}</td></tr>")
    parts.append("</table>")
    for r in rows:
        if r.answer:
            parts.append(f"<h2>{e(r.exercise)}: your answer</h2><pre>{e(r.answer)}</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def summarize(rows: list[Row]) -> list[dict]:
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        if r.exercise:
            groups.setdefault((r.chapter, r.exercise), []).append(r)
    out = []
    for (chapter, exercise), rs in groups.items():
        pts = [r.points for r in rs if r.points is not None]
        dist = Counter(pts)
        messages = Counter(r.message.split(" (the notebook's kernel")[0] for r in rs if r.points is not None
                           and r.points < r.max_points)
        out.append({"chapter": chapter, "exercise": exercise, "kind": rs[0].kind, "max_points": rs[0].max_points,
                    "n": len(rs), "graded": len(pts), "mean": sum(pts) / len(pts) if pts else None,
                    "distribution": ", ".join(f"{k:g}: {v}" for k, v in sorted(dist.items())),
                    "manual": len(rs) - len(pts), "messages": messages.most_common(3)})
    return out


def summary_markdown(rows: list[Row]) -> str:
    lines = ["| chapter | exercise | kind | max | submissions | mean | distribution (points: count) | by hand |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    common = []
    for s in summarize(rows):
        mean = "" if s["mean"] is None else f"{s['mean']:.2f}"
        lines.append(f"| {s['chapter']} | {s['exercise']} | {s['kind']} | {s['max_points']:g} | {s['n']} | {mean} | "
                     f"{s['distribution']} | {s['manual']} |")
        for msg, n in s["messages"]:
            common.append(f"- {s['exercise']}, {n}×: {msg[:160]}")
    if common:
        lines += ["", "Most common reasons for lost points:", ""] + common
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnutils.teaching.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", type=Path, help="folder of <student>.ipynb files or <student>/ folders")
    parser.add_argument("--chapter", help="the chapter graded (default: from each notebook's metadata or name)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "grades", help="output folder")
    parser.add_argument("--jobs", type=int, default=None, help="submissions graded at a time (default: the cores)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per submission (default 60)")
    parser.add_argument("--book", type=Path, default=None, help="folder of the reference chapters (default: book/)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    try:
        grade(args.submissions, args.out, args.chapter, args.jobs, args.timeout, args.book)
    except ValueError as e:
        parser.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
