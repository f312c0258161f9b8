"""The chapters read like lectures (issue 20; QuantEcon's lectures average about 6 lines a cell):
the code a reader sees comes in short cells of one idea each, imported once, with the machinery in
``bnutils``. "Shown" is every code cell the book displays, solutions in their dropdowns included:
all but those tagged ``remove-cell`` or ``remove-input``."""

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
MEAN_LINES, MAX_LINES = 10, 25
HIDDEN = {"remove-cell", "remove-input"}


def shown_cells(path):
    cells = json.loads(path.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "code" and not HIDDEN & set(cell.get("metadata", {}).get("tags", [])):
            yield "".join(cell["source"])


def lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip())


def imports(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a cell with IPython magics (the Colab install cell) imports nothing of the lecture
        return False
    return any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body)


def only_glue(source: str) -> bool:
    """Every statement is a glue(...) or a ledger.<method>(...) call: the prose's numbers, not a lesson."""
    tree = ast.parse(source)
    calls = [s.value for s in tree.body if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)]
    if not tree.body or len(calls) != len(tree.body):
        return False
    names = [ast.unparse(c.func) for c in calls]
    return all(n == "glue" or n.startswith("ledger.") for n in names)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_shown_cells_are_of_lecture_length(path):
    sizes = [lines(s) for s in shown_cells(path)]
    assert sizes, f"{path.name} shows no code"
    mean = sum(sizes) / len(sizes)
    assert mean <= MEAN_LINES, f"{path.name}: shown code cells average {mean:.1f} lines (at most {MEAN_LINES})"
    long = [n for n in sizes if n > MAX_LINES]
    assert not long, f"{path.name}: shown code cells of {long} lines (at most {MAX_LINES}): split them or move machinery to bnutils"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_one_import_cell_and_no_shown_glue_only_cells(path):
    shown = list(shown_cells(path))
    importing = [s.splitlines()[0] for s in shown if imports(s)]
    assert len(importing) == 1, f"{path.name}: imports in {len(importing)} shown cells (one import cell): {importing}"
    glue_only = [s.splitlines()[0] for s in shown if only_glue(s)]
    assert not glue_only, f"{path.name}: cells that only glue numbers are shown (tag them remove-cell): {glue_only}"
