"""The grader (bnutils.teaching.grade) on a generated class: about 30 submissions of the batchnorm
chapter made from its student copy -- correct answers, each typical mistake, empty stubs, a crash,
a process that kills itself, infinite loops, a missing import, an edited self-check, a wrong kernel
name, deleted cells and files, an unreadable notebook, a folder without a notebook -- and every
other chapter's reference solution. Every row of the grade table is checked.

One grading run (a module fixture), at smoke scale, each submission in its own process, 2 at a
time, with a 10-second limit: about a minute on 2 cores."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import nbformat
import pytest

from bnutils.teaching import grade as grader
from bnutils.teaching.student import ANSWER_TAG, CHECK_TAG, STUB_TAG, exercise_specs, solution_blocks, student_copy

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTER = "batchnorm"
TIMEOUT = 10.0

HEAD = "def bn_forward_2d(x, gamma, beta, eps=1e-5):\n"
STATS = ("    mu = x.mean(dim=(0, 2, 3), keepdim=True)\n"
         "    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)\n")
G, B = "gamma.view(1, -1, 1, 1)", "beta.view(1, -1, 1, 1)"


def body(expr: str, stats: str = STATS) -> str:
    return HEAD + stats + f"    return {expr}\n"


CORRECT = body(f"{G} * (x - mu) / torch.sqrt(var + eps) + {B}")

# (student, code for the stub cell, expected points of the code exercise, words in the message)
MISTAKES = [
    ("unbiased", body(f"{G} * (x - mu) / torch.sqrt(var + eps) + {B}",
                      "    mu = x.mean(dim=(0, 2, 3), keepdim=True)\n"
                      "    var = x.var(dim=(0, 2, 3), unbiased=True, keepdim=True)\n"), "unbiased variance"),
    ("no-eps", body(f"{G} * (x - mu) / torch.sqrt(var) + {B}"), "you left eps out"),
    ("eps-outside", body(f"{G} * (x - mu) / (torch.sqrt(var) + eps) + {B}"), "outside the square root"),
    ("by-variance", body(f"{G} * (x - mu) / (var + eps) + {B}"), "divide by the variance"),
    ("no-affine", body("(x - mu) / torch.sqrt(var + eps)"), "scale it by gamma"),
    ("swapped", body(f"{B} * (x - mu) / torch.sqrt(var + eps) + {G}"), "swapped gamma and beta"),
    ("no-centring", body(f"{G} * x / torch.sqrt(var + eps) + {B}"), "forgot to subtract the batch mean"),
    ("whole-tensor", body(f"{G} * (x - mu) / torch.sqrt(var + eps) + {B}",
                          "    mu = x.mean()\n    var = x.var(unbiased=False)\n"), "one mean and variance"),
    ("batch-only", body(f"{G} * (x - mu) / torch.sqrt(var + eps) + {B}",
                        "    mu = x.mean(0, keepdim=True)\n    var = x.var(0, unbiased=False, keepdim=True)\n"),
     "all spatial positions"),
    ("in-place", HEAD + STATS + f"    x -= mu\n    return {G} * x / torch.sqrt(var + eps) + {B}\n", "in place"),
    ("wrong-shape", body("(x - mu).mean(dim=(2, 3))"), "expected shape"),
]


def _cells(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def _with_code(base, code):
    nb = copy.deepcopy(base)
    _cells(nb, STUB_TAG)[0].source = code
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Write the class, grade it once, return (rows by student and exercise, the output folder, the
    expectations)."""
    root = tmp_path_factory.mktemp("class")
    subs, out = root / "submissions", root / "grades"
    subs.mkdir()
    ref = nbformat.read(BOOK / f"{CHAPTER}.ipynb", as_version=4)
    base = student_copy(ref, chapter=CHAPTER)
    expect: dict[str, tuple[float | None, str]] = {}  # student -> (points of the code exercise, words)

    def write(student, nb, points, words, name=None):
        path = subs / (name or f"{student}.ipynb")
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        expect[student] = (points, words)

    reference = "\n\n".join(c.source for c in solution_blocks(ref)[0].code)
    write("correct-reference", _with_code(base, reference), 3, "✓")
    write("correct-own", _with_code(base, CORRECT), 3, "✓")
    helper = _with_code(base, "def bn_forward_2d(x, gamma, beta, eps=1e-5):\n    return _bn(x, gamma, beta, eps)\n")
    i = nb_index = helper.cells.index(_cells(helper, STUB_TAG)[0])
    helper.cells.insert(nb_index, nbformat.v4.new_code_cell(
        "import torch\n\ndef _bn(x, g, b, eps):\n    d = (0, 2, 3)\n"
        "    return g[None, :, None, None] * (x - x.mean(d, keepdim=True)) / "
        "(x.var(d, unbiased=False, keepdim=True) + eps).sqrt() + b[None, :, None, None]\n"))
    del i
    write("helper-in-other-cell", helper, 3, "✓")  # cells that only define things are run too
    global_state = _with_code(base, "def bn_forward_2d(x, gamma, beta, eps=1e-5):\n    return MY_BN(x)\n")
    global_state.cells.insert(3, nbformat.v4.new_code_cell("MY_BN = torch.nn.BatchNorm2d(5)"))
    write("needs-chapter-state", global_state, 0, "chapter's imports only")
    for name, code, words in MISTAKES:
        write(name, _with_code(base, code), 0, words)
    write("empty-stub", copy.deepcopy(base), 0, "not written yet")
    write("crash", _with_code(base, CORRECT + "\n1 / 0\n"), 0, "ZeroDivisionError")
    write("kills-itself", _with_code(base, CORRECT + "\nimport os\nos._exit(3)\n"), 0, "exit code 3")
    write("loop-in-cell", _with_code(base, CORRECT + "\nwhile True:\n    pass\n"), 0, "time limit")
    write("loop-in-function", _with_code(base, HEAD + "    while True:\n        pass\n"), 0, "time limit")
    write("missing-import", _with_code(base, "import bnutils_solutions\n" + CORRECT), 0, "No module named")
    write("calls-exit", _with_code(base, CORRECT + "\nimport sys\nsys.exit(0)\n"), 0, "exit()")
    write("syntax-error", _with_code(base, HEAD + "    return (x\n"), 0, "not valid Python")
    write("magics", _with_code(base, "%matplotlib inline\n!echo hi\n" + CORRECT), 3, "✓")
    edited = _with_code(base, body("x * 0"))  # wrong, and the self-check edited to pass anyway
    _cells(edited, CHECK_TAG)[0].source = 'print("✓ batch-norm forward (training mode) is correct")'
    write("edited-check", edited, 0, "wrong")
    patched = _with_code(base, "from bnutils import checks\nchecks.check_batchnorm_forward = lambda *a, **k: None\n"
                         "checks.CHECKS['check_batchnorm_forward'] = lambda *a, **k: None\n" + body("x * 0"))
    write("patched-check", patched, 0, "wrong")
    kernel = _with_code(base, CORRECT)
    kernel.metadata["kernelspec"] = {"name": "python3-custom", "display_name": "My env", "language": "python"}
    write("wrong-kernel", kernel, 3, "'python3-custom'")
    deletes = _with_code(base, "import os, shutil\nfor f in os.listdir('.'):\n"
                               "    shutil.rmtree(f) if os.path.isdir(f) else os.remove(f)\n" + CORRECT)
    write("deletes-files", deletes, 3, "✓")
    no_stub = copy.deepcopy(base)
    no_stub.cells.remove(_cells(no_stub, STUB_TAG)[0])
    write("deleted-stub-cell", no_stub, 0, "no cell defines bn_forward_2d")
    # the answers: written, deleted, left as they were
    answered = _with_code(base, CORRECT)
    for c in _cells(answered, ANSWER_TAG):
        c.source = "BN subtracts the batch mean, so a constant bias cancels."
    write("answers-written", answered, 3, "✓")
    no_answers = _with_code(base, CORRECT)
    no_answers.cells = [c for c in no_answers.cells if ANSWER_TAG not in c.metadata.get("tags", [])]
    write("answer-cells-deleted", no_answers, 3, "✓")
    write("nbgrader-layout", _with_code(base, CORRECT), 3, "✓", name="nbgrader-layout/batchnorm/batchnorm.ipynb")
    (subs / "not-json.ipynb").write_text("{ this is not a notebook")
    expect["not-json"] = (0, "could not read the notebook")
    (subs / "empty-folder").mkdir()
    expect["empty-folder"] = (0, "no batchnorm.ipynb in the submission folder")
    assert len(expect) >= 30

    rows = grader.grade(subs, out, chapter=CHAPTER, jobs=2, timeout=TIMEOUT, quiet=True)
    table = {}
    for r in rows:
        assert (r.student, r.exercise) not in table, f"two rows for {r.student}, {r.exercise}"
        table[r.student, r.exercise] = r
    return table, out, expect, base


@pytest.mark.e2e
def test_every_row(graded):
    table, out, expect, base = graded
    specs = exercise_specs(nbformat.read(BOOK / f"{CHAPTER}.ipynb", as_version=4))
    code = [s for s in specs.values() if s.kind == "code"]
    assert len(code) == 1
    code = code[0]
    assert {s for s, _ in table} == set(expect)
    for student, (points, words) in expect.items():
        for spec in specs.values():
            r = table[student, spec.label]
            assert r.max_points == spec.points and r.kind == spec.kind and r.chapter == CHAPTER
            if spec is code or student in ("not-json", "empty-folder"):
                assert r.points == points, (student, spec.label, r.message)
                assert words in r.message, (student, spec.label, r.message)
            elif student == "answers-written":
                assert r.points is None and "to grade by hand" in r.message and "constant bias" in r.answer
            elif student == "answer-cells-deleted":
                assert r.points == 0 and "no answer cell" in r.message
            else:
                assert r.points == 0 and "empty or unchanged" in r.message, (student, r.message)


@pytest.mark.e2e
def test_outputs(graded):
    table, out, expect, base = graded
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == grader.FIELDS
    assert len(rows) == len(table)
    by = {(r["student"], r["exercise"]): r for r in rows}
    assert by["correct-own", "batchnorm-ex-code"]["points"] == "3"
    assert by["answers-written", "batchnorm-ex-bias"]["points"] == ""
    for student in expect:
        page = (out / "feedback" / f"{student}.html").read_text()
        assert student in page and "batchnorm-ex-code" in page
    page = (out / "feedback" / "answers-written.html").read_text()
    assert "constant bias cancels" in page and "still to be graded by hand" in page
    summary = (out / "summary.md").read_text()
    n_full = sum(1 for p, _ in expect.values() if p == 3)
    assert f"3: {n_full}" in summary and f"0: {len(expect) - n_full}" in summary
    assert "Most common reasons for lost points" in summary
    assert (out / "summary.csv").exists()
    # the scratch folder of the notebook that deleted its files is its own; the book is intact
    assert (BOOK / f"{CHAPTER}.ipynb").exists()
    assert (out / "work" / "deletes-files").is_dir()


def test_every_chapter_reference_gets_full_points(tmp_path):
    """Each chapter's student copy with its reference solution put back: full points for every code
    exercise (the chapter found from the copy's metadata, no CHAPTER given)."""
    subs = tmp_path / "subs"
    subs.mkdir()
    chapters = []
    for path in sorted(BOOK.glob("*.ipynb")):
        ref = nbformat.read(path, as_version=4)
        blocks = {b.label: b for b in solution_blocks(ref)}
        if not blocks:
            continue
        stud = student_copy(ref, chapter=path.stem)
        for c in _cells(stud, STUB_TAG):
            c.source = "\n\n".join(x.source for x in blocks[c.metadata["exercise"]].code
                                   if "solution" in x.metadata.get("tags", []))
        nbformat.write(stud, subs / f"ref-{path.stem}.ipynb")
        chapters.append(path.stem)
    nbformat.write(nbformat.v4.new_notebook(), subs / "mystery.ipynb")  # no chapter in its metadata or name
    rows = grader.grade(subs, tmp_path / "out", jobs=2, timeout=60, quiet=True)
    mystery = [r for r in rows if r.student == "mystery"]
    assert len(mystery) == 1 and "not a chapter of the book" in mystery[0].message and mystery[0].points == 0
    code = [r for r in rows if r.kind == "code"]
    assert sorted(r.chapter for r in code) == sorted(chapters)
    for r in code:
        assert r.points == r.max_points, (r.chapter, r.message)
