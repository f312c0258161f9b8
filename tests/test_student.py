"""Student copies (bnutils.student): no solution leaks, the copy runs up to its first exercise, and
the reference solutions put back pass every self-check.

The generated-notebook tests always run. The real-chapter tests are parametrised over
book/*.ipynb and skip a chapter that has no exercises yet (a placeholder). The chapters themselves
are executed by `make notebooks` (= `make student-check`): nbval over each chapter's checked copy
(bnutils.teaching.checked), which is the student copy with the solutions put back."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from bnutils import student
from bnutils.student import STUB_TAG, exercises, solution_blocks, student_copy
from bnutils.teaching.checked import check_cell, chapter_with_outputs, checked_copy

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


# ------------------------------------------------------------------------------- a sample chapter

def sol(src):
    return new_code_cell(src, metadata={"tags": ["solution"]})


def sample_notebook():
    """A small chapter in the book's exercise format, with every kind of solution."""
    return new_notebook(cells=[
        new_markdown_cell("# A sample chapter\n\nBatch norm, briefly."),
        new_code_cell("import torch\nfrom bnutils import checks\nx = torch.randn(8, 3)"),
        new_markdown_cell("Some prose between the code.\n\n$$y = \\gamma \\hat x + \\beta$$"),
        new_code_cell("y = (x - x.mean(0)) / x.std(0)", outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text="AN OLD OUTPUT\n")], execution_count=3),
        new_markdown_cell("## Exercises\n\n```{exercise} Why the biased variance?\n:label: sample-ex-reason\n"
                          "Why does batch norm normalise with the biased variance?\n```\n\n"
                          "```{solution} sample-ex-reason\n:class: dropdown\n"
                          "LEAKED-REASON: because it is the batch's own variance.\n```"),
        new_markdown_cell("```{exercise} Write the forward pass\n:label: sample-ex-forward\n"
                          "Write `bn_forward(x, gamma, beta, eps=1e-5)`.\n```"),
        new_markdown_cell("```{solution-start} sample-ex-forward\n:class: dropdown\n```"),
        new_markdown_cell("LEAKED-SOLUTION-PROSE: the mean and the variance go over dim 0."),
        sol("import torch\n\n\ndef bn_forward(x: torch.Tensor, gamma, beta, eps=1e-5):\n"
            "    \"\"\"Batch norm in training mode.\"\"\"\n"
            "    leaked_mean_name = x.mean(0)\n"
            "    var = x.var(0, unbiased=False)\n"
            "    return gamma * (x - leaked_mean_name) / torch.sqrt(var + eps) + beta"),
        new_markdown_cell("```{solution-end}\n```"),
        new_code_cell("checks.check_batchnorm_forward(bn_forward)"),
        new_markdown_cell("````{exercise} An optimiser\n:label: sample-ex-sgd\n"
                          "Write `MySGD`, heavy-ball momentum:\n\n```python\nopt = MySGD(params, lr=0.1)\n```\n````"),
        new_markdown_cell(":::{solution-start} sample-ex-sgd\n:class: dropdown\n:::"),
        sol("class MySGD(torch.optim.Optimizer):\n"
            "    def __init__(self, params, lr=0.1, momentum=0.0):\n"
            "        super().__init__(params, dict(lr=lr, momentum=momentum))\n\n"
            "    @torch.no_grad()\n"
            "    def step(self):\n"
            "        for group in self.param_groups:\n"
            "            for p in group['params']:\n"
            "                leaked_velocity = self.state[p].setdefault('v', torch.zeros_like(p))\n"
            "                leaked_velocity.mul_(group['momentum']).add_(p.grad)\n"
            "                p.sub_(leaked_velocity, alpha=group['lr'])"),
        sol("print('LEAKED-EXTRA-CELL')"),
        new_markdown_cell(":::{solution-end}\n:::\n\nText after the gated solution stays."),
        new_code_cell("checks.check_optimizer(MySGD, 'sgd', lr=0.1, momentum=0.9)"),
        new_markdown_cell("````{exercise} An experiment\n:label: sample-ex-run\nRun it at a larger rate.\n````\n\n"
                          "````{solution} sample-ex-run\n:class: dropdown\nLEAKED-FENCED:\n\n"
                          "```python\nleaked_code_in_markdown = 1\n```\n````"),
        new_markdown_cell("```{solution-start} sample-ex-run\n:class: dropdown\n```\n"
                          "LEAKED-GATED-TEXT in the start cell.\n"),
        sol("leaked_rate = 0.5\nprint(leaked_rate * 2)"),
        new_markdown_cell("```{solution-end}\n```"),
        new_markdown_cell(":::{exercise} Open-ended\n:label: sample-ex-open\nInvestigate.\n:::\n\n"
                          ":::{solution} sample-ex-open\n:class: dropdown\nLEAKED-OPEN-ENDED text.\n:::"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def _text(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


def _solution_lines(nb) -> set[str]:
    """Lines that belong to a solution only (not to the rest of the chapter): the bodies of code
    solutions and the text of solution directives, minus signatures, docstrings and imports,
    which the stubs keep on purpose."""
    student_text = {ln.strip() for c in student_copy_without_stubs(nb).cells for ln in c.source.splitlines()}
    lines = set()
    for block in solution_blocks(nb):
        for cell in block.code:
            in_doc = False
            for ln in cell.source.splitlines():
                s = ln.strip()
                if s.startswith(('"""', "'''")):
                    in_doc = not (in_doc or (len(s) > 3 and s.endswith(('"""', "'''"))))
                    continue
                if in_doc or re.match(r"^(def|class|async def|import|from|@)\b", s) or s.startswith("@"):
                    continue
                lines.add(s)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            kept, _, _, _ = student._strip_markdown(cell.source, None)
            lines |= {ln.strip() for ln in cell.source.splitlines()} - {ln.strip() for ln in kept.splitlines()}
    gated = None
    for cell in nb.cells:  # markdown inside gated blocks
        if cell.cell_type == "markdown":
            _, after, started, _ = student._strip_markdown(cell.source, gated)
            if gated is not None and after is not None and not started:
                lines |= {ln.strip() for ln in cell.source.splitlines()}
            gated = after
    return {s for s in lines if len(s) >= 12 and s not in student_text and not s.startswith(("```", ":::", ":class:"))}


def student_copy_without_stubs(nb):
    """The chapter's cells that are not solutions at all (to tell shared lines from solution lines)."""
    out = student_copy(nb)
    out.cells = [c for c in out.cells if STUB_TAG not in c.metadata.get("tags", [])]
    return out


def assert_no_leak(nb, stud):
    text = _text(stud)
    student_lines = {ln.strip() for ln in text.splitlines()}
    for marker in ("{solution}", "{solution-start}", "{solution-end}"):
        assert marker not in text, f"{marker} left in the student copy"
    for cell in stud.cells:
        assert "solution" not in cell.metadata.get("tags", []), cell.source[:80]
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "outputs not cleared"
    for line in _solution_lines(nb):
        assert line not in student_lines, f"solution line leaked into the student copy: {line!r}"


# --------------------------------------------------------------------------- generated notebook

def test_student_copy_of_sample_removes_every_solution():
    nb = sample_notebook()
    stud = student_copy(nb)
    assert_no_leak(nb, stud)
    text = _text(stud)
    assert "LEAKED" not in text and "leaked" not in text
    assert "AN OLD OUTPUT" not in str(stud)
    # Everything else stays: prose, exercises, self-checks, text after a gated solution.
    assert [e.label for e in exercises(stud)] == [e.label for e in exercises(nb)]
    for kept in ("Some prose between the code.", "Text after the gated solution stays.",
                 "checks.check_batchnorm_forward(bn_forward)", "opt = MySGD(params, lr=0.1)"):
        assert kept in text
    assert nb.cells[8].source.count("leaked") > 0, "the original notebook must not be modified"


def test_stubs_keep_signatures_and_say_what_to_write():
    stubs = [c for c in student_copy(sample_notebook()).cells if STUB_TAG in c.metadata.get("tags", [])]
    assert [c.metadata["exercise"] for c in stubs] == ["sample-ex-forward", "sample-ex-sgd", "sample-ex-run"]
    forward, sgd, run = (c.source for c in stubs)
    assert "def bn_forward(x: torch.Tensor, gamma, beta, eps=1e-05):" in forward
    assert '"""Batch norm in training mode."""' in forward
    assert "raise NotImplementedError('Exercise sample-ex-forward (Write the forward pass): write bn_forward()')" in forward
    assert "class MySGD(torch.optim.Optimizer):" in sgd and "def step(self):" in sgd
    # a stub with definitions never raises at top level: filled in, the cell runs cleanly
    for src in (forward, sgd):
        assert "write your code here" not in src
        import torch

        exec(compile(src, "<stub>", "exec"), {"torch": torch})
    assert run.rstrip().endswith("write your code here')")  # nothing to fill in: the student writes the cell
    compile(run, "<stub>", "exec")


def test_answer_cells_and_kept_cells():
    nb = sample_notebook()
    # exercise metadata: sample-ex-run is a change to an experiment, not a code exercise
    nb.cells[17].metadata["exercises"] = {"sample-ex-run": {"points": 2, "kind": "experiment"}}
    # a self-check and a run inside the gated solution of sample-ex-forward stay, in order, after the stub
    nb.cells.insert(9, new_code_cell("checks.check_batchnorm_forward(bn_forward);",
                                     metadata={"tags": ["self-check"], "exercise": "sample-ex-forward"}))
    nb.cells.insert(10, new_code_cell("y = bn_forward(x, 1.0, 0.0)", metadata={"tags": ["student-keep"]}))
    stud = student_copy(nb, chapter="sample")
    assert stud.metadata["bnbook"] == {"chapter": "sample", "student_copy": True}
    answers = [c.metadata["exercise"] for c in stud.cells if "answer" in c.metadata.get("tags", [])]
    assert answers == ["sample-ex-reason", "sample-ex-run", "sample-ex-open"]
    for i, c in enumerate(stud.cells):
        if "answer" in c.metadata.get("tags", []):
            assert c.cell_type == "markdown" and f":label: {c.metadata['exercise']}" in stud.cells[i - 1].source
    srcs = [c.source for c in stud.cells]
    stub = next(i for i, c in enumerate(stud.cells) if c.metadata.get("exercise") == "sample-ex-forward"
                and STUB_TAG in c.metadata.get("tags", []))
    assert srcs[stub + 1] == "checks.check_batchnorm_forward(bn_forward);"
    assert srcs[stub + 2] == "y = bn_forward(x, 1.0, 0.0)"
    assert len({c.id for c in stud.cells}) == len(stud.cells), "cell ids must stay unique"
    # the kept cells are not part of the reference solution
    assert [len(b.code) for b in solution_blocks(nb)][0] == 1


def test_tag_remove_preprocessor_must_be_enabled(monkeypatch):
    """The pitfall: a disabled TagRemovePreprocessor leaves the solution cells in; the command
    refuses to write such a copy."""
    from nbconvert.preprocessors import TagRemovePreprocessor

    monkeypatch.setattr(TagRemovePreprocessor, "preprocess", lambda self, nb, res: (nb, res))
    with pytest.raises(RuntimeError, match="TagRemovePreprocessor"):
        student_copy(sample_notebook())


def test_unterminated_gated_solution_is_an_error():
    nb = new_notebook(cells=[new_markdown_cell("```{solution-start} x\n:class: dropdown\n```"), sol("a = 1")])
    with pytest.raises(ValueError, match="no matching solution-end"):
        student_copy(nb)


def test_command_line(tmp_path, capsys):
    path = tmp_path / "sample.ipynb"
    nbformat.write(sample_notebook(), path)
    assert student.main([str(path), "--out", str(tmp_path / "out")]) == 0
    written = nbformat.read(tmp_path / "out" / "sample.ipynb", as_version=4)
    assert "LEAKED" not in _text(written)
    assert "5 exercises, 3 code stubs" in capsys.readouterr().out


def execute_with_solutions_back(original, stud, cwd, check_stub_fails=False):
    """Run the student copy in one kernel: every cell before the first exercise must run; at each
    stub, run the stub, then the reference solution in its place; every self-check must pass.
    Returns the number of self-checks that printed a pass."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    blocks = {b.label: b for b in solution_blocks(original)}
    stud = copy.deepcopy(stud)
    client = NotebookClient(stud, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    first_exercise = min((e.cell for e in exercises(stud)), default=len(stud.cells))
    passed = 0
    with client.setup_kernel():
        for i, cell in enumerate(stud.cells):
            if cell.cell_type != "code":
                continue
            if STUB_TAG in cell.metadata.get("tags", []):
                assert i > first_exercise
                try:
                    client.execute_cell(cell, i)
                except CellExecutionError as e:
                    assert "NotImplementedError" in str(e)
                if check_stub_fails and "checks.check_" in stud.cells[i + 1].source:
                    probe = copy.deepcopy(stud.cells[i + 1])
                    with pytest.raises(CellExecutionError, match="not written yet"):
                        client.execute_cell(probe, i + 1)
                for ref in blocks[cell.metadata["exercise"]].code:
                    client.execute_cell(copy.deepcopy(ref), i)
                continue
            try:
                client.execute_cell(cell, i)
            except CellExecutionError as e:
                where = "before the first exercise" if i < first_exercise else "with the solutions back"
                raise AssertionError(f"cell {i} failed {where}:\n{cell.source}\n{e}") from None
            if "checks.check_" in cell.source:
                out = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
                assert "✓" in out, f"self-check in cell {i} printed no pass: {out!r}"
                passed += 1
    return passed


@pytest.mark.e2e  # a Jupyter kernel (a fresh interpreter importing torch) runs the copy end to end
def test_sample_runs_and_solutions_pass_self_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("BNBOOK_SCALE", "smoke")
    monkeypatch.setenv("BNBOOK_CLAIMS", "off")  # a student copy's run never writes a ledger
    nb = sample_notebook()
    assert execute_with_solutions_back(nb, student_copy(nb), tmp_path, check_stub_fails=True) == 2


# ---------------------------------------------------------------------------------- real chapters

def _chapter(path):
    nb = nbformat.read(path, as_version=4)
    if not exercises(nb):
        pytest.skip(f"{path.name} has no exercises yet (placeholder or chapter still being written)")
    return nb


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_student_copy_has_no_solutions(path):
    nb = _chapter(path)
    stud = student_copy(nb)
    assert_no_leak(nb, stud)
    assert [e.label for e in exercises(stud)] == [e.label for e in exercises(nb)]
    labels = [e.label for e in exercises(nb)]
    assert all(labels) and len(set(labels)) == len(labels), f"exercise labels must be unique: {labels}"
    for block in solution_blocks(nb):
        assert block.label in labels, f"solution for unknown exercise {block.label!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_exercises_have_points_and_checks(path):
    """Every exercise has a weight and a kind; every code exercise names a check of
    bnutils.teaching.checks, called in a self-check cell right after its solution (the student's
    stub), and every other exercise gets an answer cell in the student copy."""
    from bnutils.teaching.checks import CHECKS
    from bnutils.teaching.student import exercise_specs

    nb = _chapter(path)
    specs = exercise_specs(nb)
    assert list(specs) == [e.label for e in exercises(nb)]
    stud = student_copy(nb, chapter=path.stem)
    answers = [c.metadata["exercise"] for c in stud.cells if "answer" in c.metadata.get("tags", [])]
    assert answers == [s.label for s in specs.values() if s.kind != "code"]
    blocks = {b.label: b for b in solution_blocks(nb)}
    for spec in specs.values():
        assert spec.points > 0
        if spec.kind != "code":
            continue
        assert spec.check in CHECKS and spec.label in blocks
        i = next(i for i, c in enumerate(stud.cells) if STUB_TAG in c.metadata.get("tags", [])
                 and c.metadata["exercise"] == spec.label)
        check = stud.cells[i + 1]
        assert "self-check" in check.metadata["tags"] and check.source.rstrip(";").endswith(spec.call())
        assert "raise NotImplementedError" not in stud.cells[i].source.split("\n    ")[0]
        # the stub, once filled in with the reference, is only definitions: nothing else raises
        from bnutils.teaching.grade import Reference

        ns = {}
        exec(Reference.load(path.parent, path.stem).imports, ns)  # the chapter's imports, as the grader runs them
        exec(compile(stud.cells[i].source, "<stub>", "exec"), ns)
        assert spec.target in ns


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_checked_copy_is_the_chapter_with_stubs(path):
    """`make notebooks` executes each chapter once, as its checked copy under nbval (the student
    copy with the solutions put back), and the strict build reuses that execution: so the copy's
    code, stubs left out, must be the chapter's code in order (checked_copy raises otherwise), and
    everything before the first exercise is the chapter's own."""
    nb = nbformat.read(path, as_version=4)
    checked = checked_copy(nb, path.stem, f"book/{path.name}")
    code = [c for c in checked.cells if c.cell_type == "code"]
    stubs = [i for i, c in enumerate(checked.cells) if c.metadata.get("bnbook_check") == "stub"]
    assert len(stubs) == sum(STUB_TAG in c.metadata.get("tags", []) for c in student_copy(nb).cells)
    first = min((e.cell for e in exercises(checked)), default=len(checked.cells))
    assert all(i > first for i in stubs), "a stub before the first exercise"
    assert all("raises-exception" in checked.cells[i].metadata["tags"] for i in stubs)
    assert checked.metadata["bnbook"]["checked_copy_of"] == f"book/{path.name}"
    executed = copy.deepcopy(checked)
    for n, c in enumerate(code):
        c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"out {n}\n")]
    executed.cells = [c if c.cell_type != "code" else code.pop(0) for c in checked.cells]
    back = chapter_with_outputs(nb, executed)
    assert [c.source for c in back.cells] == [c.source for c in nb.cells]
    assert all(c.outputs for c in back.cells if c.cell_type == "code")


def test_checked_copy_refuses_reordered_code():
    nb = sample_notebook()
    nb.cells.insert(9, new_code_cell("y = bn_forward(x, 1.0, 0.0)", metadata={"tags": ["student-keep"]}))
    checked_copy(nb, "sample")  # a kept cell after the solution's code: the chapter's order
    extra = next(i for i, c in enumerate(nb.cells) if "LEAKED-EXTRA-CELL" in c.source)
    nb.cells.insert(extra, new_code_cell("z = 1", metadata={"tags": ["student-keep"]}))  # between two solution cells
    with pytest.raises(ValueError, match="not the chapter's code in its order"):
        checked_copy(nb, "sample")


def test_check_cell():
    stub = new_code_cell("", metadata={"bnbook_check": "stub"})
    check = new_code_cell("checks.check_x(f)", metadata={"bnbook_check": "self-check"})
    err = nbformat.v4.new_output("error", ename="NotImplementedError", evalue="write it", traceback=[])
    check_cell(stub, [err])
    check_cell(stub, [])
    with pytest.raises(AssertionError, match="only NotImplementedError"):
        check_cell(stub, [nbformat.v4.new_output("error", ename="NameError", evalue="x", traceback=[])])
    check_cell(check, [nbformat.v4.new_output("stream", name="stdout", text="✓ bn_forward matches\n")])
    with pytest.raises(AssertionError, match="printed no pass"):
        check_cell(check, [nbformat.v4.new_output("stream", name="stdout", text="hm\n")])


@pytest.mark.e2e
def test_checked_copy_of_sample_under_nbval(tmp_path):
    """The sample chapter's checked copy under nbval, with the plugin, as `make notebooks` runs the
    chapters: it passes, and the chapter is written with its outputs, stamped, for the build's cache;
    a broken reference solution fails its self-check's item and writes nothing."""
    import subprocess
    import sys

    from bnutils.teaching import checked as checked_module

    book = tmp_path / "book"
    book.mkdir()
    nb = sample_notebook()
    nbformat.write(nb, book / "sample.ipynb")
    broken = sample_notebook()
    broken.cells[8].source = broken.cells[8].source.replace("x.var(0, unbiased=False)", "x.var(0) * 2")
    nbformat.write(broken, book / "broken.ipynb")
    out = tmp_path / "check"
    assert checked_module.main(["copies", str(book / "sample.ipynb"), str(book / "broken.ipynb"),
                                "--out", str(out)]) == 0
    env = dict(os.environ, BNBOOK_SCALE="smoke", BNBOOK_CLAIMS="off", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                           "bnutils.teaching.checked_plugin", "--nbval-lax", "--rootdir", str(tmp_path),
                           str(out / "sample.ipynb"), str(out / "broken.ipynb")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed" in proc.stdout and "broken.ipynb::Cell 4" in proc.stdout, proc.stdout
    assert not (out / "executed" / "broken.ipynb").exists()
    done = nbformat.read(out / "executed" / "sample.ipynb", as_version=4)
    assert [c.source for c in done.cells] == [c.source for c in nb.cells]  # the chapter, not the copy
    assert done.metadata["bnbook_executed"]["scale"] == "smoke"
    outs = {c.source: "".join(o.get("text", "") for o in c.outputs) for c in done.cells if c.cell_type == "code"}
    assert "✓" in outs["checks.check_batchnorm_forward(bn_forward)"]
    assert outs["leaked_rate = 0.5\nprint(leaked_rate * 2)"] == "1.0\n"


def test_grading_never_writes_a_ledger(tmp_path, monkeypatch):
    """A graded submission is a partial run of a chapter: the grader runs with BNBOOK_CLAIMS=off."""
    from bnutils.teaching import grade as G

    seen = []
    real = G._grade
    monkeypatch.setattr(G, "_grade", lambda *a: seen.append(os.environ.get("BNBOOK_CLAIMS")) or real(*a))
    monkeypatch.delenv("BNBOOK_CLAIMS", raising=False)
    (tmp_path / "subs").mkdir()
    G.grade(tmp_path / "subs", tmp_path / "out", chapter="batchnorm", jobs=1, quiet=True)
    assert seen == ["off"]  # the grading run and the children it starts
    assert "BNBOOK_CLAIMS" not in os.environ  # the caller's environment is left as it was


def test_executed_chapters_feed_the_builds_jupyter_cache(tmp_path):
    """What `make book-smoke-build` does with the chapters `make notebooks` executed: each one
    stamped with this scale and package version and with the chapter's code is added to the build's
    jupyter-cache, where myst-nb's `execute_notebooks: cache` finds it (the same match) and takes
    its outputs; one from another scale or package version is not added."""
    from jupyter_cache import get_cache

    from bnutils.teaching.checked import cache_executed, package_version

    path = CHAPTERS[0]
    nb = nbformat.read(path, as_version=4)
    done = copy.deepcopy(nb)
    for n, c in enumerate(c for c in done.cells if c.cell_type == "code"):
        c.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"out {n}\n")]
    executed = tmp_path / "executed"
    executed.mkdir()
    for scale, version in (("book", package_version()), ("smoke", "another version")):
        done.metadata["bnbook_executed"] = {"scale": scale, "package_version": version, "seconds": 1.0}
        nbformat.write(done, executed / path.name)
        assert cache_executed(executed, tmp_path / "build", "smoke") == []
    done.metadata["bnbook_executed"] = {"scale": "smoke", "package_version": package_version(), "seconds": 1.0}
    nbformat.write(done, executed / path.name)
    assert cache_executed(executed, tmp_path / "build", "smoke") == [path.stem]
    cache = get_cache(tmp_path / "build" / "_build" / ".jupyter_cache")
    _, merged = cache.merge_match_into_notebook(nbformat.read(path, as_version=4))  # as myst-nb does
    outs = [o.text for c in merged.cells if c.cell_type == "code" for o in c.outputs]
    assert outs[0] == "out 0\n" and len(outs) == sum(c.cell_type == "code" for c in nb.cells)


def test_a_kernel_that_does_not_answer_is_started_again():
    """Kernels started side by side sometimes lose jupyter_client's race for a port and never answer
    (jupyter/jupyter_client#487): the checked run starts a new one instead of losing the chapter."""
    from bnutils.teaching import checked_plugin

    starts = []

    def kernel(name, cwd=None, startup_timeout=60):
        starts.append((name, cwd))
        if len(starts) < checked_plugin.KERNEL_STARTS:
            raise RuntimeError("Kernel didn't respond in 60 seconds")
        return "kernel"

    with pytest.warns(UserWarning, match="did not start"):
        assert checked_plugin._start(kernel, "python3", cwd="/book") == "kernel"
    assert starts == [("python3", "/book")] * checked_plugin.KERNEL_STARTS

    starts.clear()

    def dead(name, **kw):
        starts.append(name)
        raise RuntimeError("Kernel died before replying to kernel_info")

    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="Kernel died"):
        checked_plugin._start(dead, "python3")
    assert len(starts) == checked_plugin.KERNEL_STARTS


def test_loadgroup_keeps_a_notebook_in_one_worker_and_spreads_the_rest():
    """`make checks` runs the chapters and the unit tests in one `pytest -n 2 --dist loadgroup`:
    a notebook's cells must be one unit of work (they share a kernel), every other test its own.
    pytest-xdist's own loadgroup no longer groups under pytest 9.2 (pytest-dev/pytest-xdist#1386),
    so the plugin supplies the scheduler."""
    from types import SimpleNamespace

    from bnutils.teaching import checked_plugin

    assert checked_plugin.notebook_scope("_build/check/smoke/ics.ipynb::Cell 3") == "_build/check/smoke/ics.ipynb"
    assert checked_plugin.notebook_scope("tests/test_x.py::test_a[ipynb]") is None
    # outside the rootdir pytest drops the file from the name: one notebook there is one scope
    # (two are refused at collection: test_two_notebooks_outside_the_rootdir_are_refused)
    assert checked_plugin.notebook_scope("::Cell 3") == checked_plugin.notebook_scope("::Cell 0") is not None
    config = SimpleNamespace(getvalue=lambda name: "loadfile")
    assert checked_plugin.pytest_xdist_make_scheduler(config, log=None) is None
    sched = object.__new__(checked_plugin.NotebookScheduling)  # _split_scope reads no state
    assert sched._split_scope("_build/check/smoke/ics.ipynb::Cell 3") == "_build/check/smoke/ics.ipynb"
    assert sched._split_scope("tests/test_x.py::test_a") == "tests/test_x.py::test_a"
    assert sched._split_scope("tests/test_x.py::test_b@grp") == "grp"


def test_pending_lists_what_the_build_lacks_longest_first(tmp_path):
    """`make book` executes ahead the chapters its jupyter-cache lacks, in BOOK_ORDER (longest first)."""
    from bnutils.teaching.checked import pending

    nbs = [ROOT / "book" / f"{c}.ipynb" for c in ("batchnorm", "ics", "landscape")]
    got = pending(nbs, tmp_path, first=("landscape", "ics"))
    assert [Path(p).stem for p in got] == ["landscape", "ics", "batchnorm"]


def test_two_notebooks_outside_the_rootdir_are_refused(tmp_path):
    """pytest names their cells alike ("::Cell 0"), and pytest-xdist then loses some of them: the
    plugin stops at collection with what to do instead (and starts no kernel)."""
    for name in ("a", "b"):
        nb = new_notebook(cells=[new_code_cell(f"{name} = 1")])
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    # the repository as rootdir, as when its tests are collected beside the notebooks (`make checks`
    # with copies written elsewhere); alone, the notebooks would make their own folder the rootdir
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                           "-p", "bnutils.teaching.checked_plugin", f"--rootdir={ROOT}",
                           str(tmp_path / "a.ipynb"), str(tmp_path / "b.ipynb")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]  # pytest's usage error
    assert "2 notebooks lie outside pytest's rootdir" in proc.stderr and "--out _build/check/mine" in proc.stderr
