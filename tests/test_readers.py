"""Every way a reader installs the book: `make setup`, Binder and Colab (issue 18).

Nothing here downloads anything: the Makefile's commands are read with ``make -n``, pip resolves
Binder's requirements only where the CPU wheel is already on the machine, and the Colab cell runs
with a simulated ``google.colab`` module and a recording ``subprocess.run``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from tests.helpers import sphinx_build

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch's CPU wheel index ("Get started")


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file (names lower-cased), in order."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: {line!r} is not pinned with =="
            out[name.strip().lower()] = version.strip()
    return out


def options(path: Path) -> list[str]:
    return [l.strip() for l in path.read_text().splitlines() if l.strip().startswith("-")]


REQ = pins(ROOT / "requirements.txt")
TORCH = REQ["torch"]


# ----- Python 3.11 ---------------------------------------------------------------------------


def test_python_311_everywhere():
    # numpy, pandas, scipy, matplotlib and scikit-learn as pinned need Python >= 3.11 (their
    # Requires-Python); every place that states a version says so.
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11 or later is needed" in readme and "3.10" not in readme
    running = (BOOK / "running.md").read_text()
    assert "Python 3.11 or later" in running and "3.10" not in running
    workflow = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert 'python-version: "3.11"' in workflow


def _fake_python(tmp_path: Path, version: tuple[int, int, int]) -> Path:
    """A `python` that runs ``-c CODE`` with ``sys.version_info`` set to ``version``."""
    fake = tmp_path / "python-old"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\ncode = sys.argv[2]\n"
        f"sys.version_info = {tuple(version) + ('final', 0)!r}\nexec(code)\n"
    )
    fake.chmod(0o755)
    return fake


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_setup_stops_early_on_python_310(tmp_path):
    venv = tmp_path / "venv"
    fake = _fake_python(tmp_path, (3, 10, 12))
    r = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "setup", f"VENV={venv}", f"PYTHON={fake}"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0
    assert "this book needs Python 3.11 or later" in r.stderr and "is Python 3.10" in r.stderr
    assert "make setup PYTHON=python3.11" in r.stderr
    assert not venv.exists()  # it stopped before making the venv or installing anything


# ----- PyTorch's CPU build -------------------------------------------------------------------


def _setup_commands(**variables) -> str:
    args = [f"{k}={v}" for k, v in variables.items()]
    r = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), ".venv/.installed", *args],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return r.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_setup_installs_the_cpu_build_from_pytorchs_index():
    cpu = _setup_commands(TORCH="cpu")
    target = f'"torch=={TORCH}+cpu"'
    # offline first (a wheel pip's --find-links already holds), else PyTorch's CPU index; the
    # CPU torch is installed before requirements.txt, whose torch==X it then satisfies
    assert f"--no-deps --no-index {target}" in cpu
    assert f"--no-deps --index-url {CPU_INDEX} {target}" in cpu
    assert cpu.index(CPU_INDEX) < cpu.index("-r requirements.txt")
    cuda = _setup_commands(TORCH="cuda")
    assert 'if [ "cuda" = cpu ]' in cuda and "-r requirements.txt" in cuda


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("nvidia-smi") is not None,
                    reason="the CPU default is for Linux machines without an NVIDIA GPU")
def test_cpu_build_is_the_default_on_linux_without_a_gpu():
    assert 'if [ "cpu" = cpu ]' in _setup_commands()


def test_binder_pins_the_same_versions_as_requirements():
    binder = ROOT / "binder" / "requirements.txt"
    got = pins(binder)
    assert got.keys() == REQ.keys(), set(got) ^ set(REQ)
    for name, version in REQ.items():
        want = f"{version}+cpu" if name == "torch" else version
        assert got[name] == want, f"binder/requirements.txt: {name}=={got[name]}, not {want}"
    assert options(binder) == [f"--extra-index-url {CPU_INDEX}"]
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post and os.access(ROOT / "binder" / "postBuild", os.X_OK)
    # with a binder/ folder repo2docker ignores the root's configuration files
    assert not (ROOT / "postBuild").exists() and not (ROOT / "runtime.txt").exists()


def _pip(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.e2e
def test_pip_resolves_binders_requirements_to_the_cpu_build(tmp_path):
    """pip reads binder/requirements.txt (its index option included) and picks torch X+cpu and
    every pin for this Python; only where the CPU wheel is on this machine, so nothing is fetched."""
    local = _pip("install", "--dry-run", "--no-index", "--no-deps", "--ignore-installed", "-q",
                 f"torch=={TORCH}+cpu", timeout=120)
    if local.returncode != 0:
        pytest.skip(f"torch=={TORCH}+cpu is not on this machine (pip --find-links); not downloading it")
    report = tmp_path / "report.json"
    r = _pip("install", "--dry-run", "--no-deps", "--ignore-installed", "--retries", "0",
             "--timeout", "5", "-q", "--report", str(report), "-r", str(ROOT / "binder" / "requirements.txt"))
    assert r.returncode == 0, r.stderr[-2000:]
    resolved = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}
    want = {n.replace("_", "-"): v for n, v in pins(ROOT / "binder" / "requirements.txt").items()}
    assert resolved == want
    assert resolved["torch"] == f"{TORCH}+cpu"


def test_publishing_workflow_uses_make_setup_on_linux():
    # GitHub's ubuntu runners have no GPU: `make book` sets up .venv with TORCH=cpu by default
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    assert workflow["jobs"]["build"]["runs-on"].startswith("ubuntu")
    assert any(s.get("run") == "make book" for s in steps)
    assert not any("pip install" in s.get("run", "") for s in steps)  # no second install route


def test_running_pages_commands_match_the_pins():
    # running.md is plain Markdown (nothing to glue from): its install commands are checked here
    running = (BOOK / "running.md").read_text()
    assert f'--index-url {CPU_INDEX} "torch=={TORCH}+cpu"' in running
    assert f'"torch=={TORCH}"' in running
    assert "jupyter lab book" not in running  # whichever jupyter is on PATH; .venv's instead
    assert ".venv/bin/jupyter lab" in running


# ----- Colab: the first code cell of every chapter ---------------------------------------------

CHAPTERS = sorted(BOOK.glob("*.ipynb"))
COLAB_ONLY = {"myst_nb": "myst-nb", "docutils": "docutils", "mnist1d": "mnist1d", "mlxtend": "mlxtend"}


def colab_cell(path: Path) -> dict:
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    return cells[0]


def _bnutils_from_repository() -> str:
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return f"bnutils @ git+{repo['url']}@{repo['branch']}"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_chapter_starts_with_the_colab_cell(path):
    cell, first = colab_cell(path), colab_cell(CHAPTERS[0])
    assert "google.colab" in "".join(cell["source"]), f"{path.name}: first code cell is not the Colab cell"
    assert cell["source"] == first["source"], f"{path.name}: Colab cell differs from {CHAPTERS[0].name}'s"
    assert "remove-cell" in cell["metadata"].get("tags", [])  # kept out of the HTML
    assert cell["outputs"] == [] and cell["execution_count"] is None


def _run_colab_cell(monkeypatch, on_colab: bool, missing: set[str]):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    real_find_spec = __import__("importlib.util").util.find_spec
    monkeypatch.setattr("importlib.util.find_spec",
                        lambda name, *a: None if name in missing else real_find_spec(name, *a))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    source = "".join(colab_cell(CHAPTERS[0])["source"])
    assert source.lstrip().startswith("# On Colab only"), "book/*.ipynb have no Colab cell yet"
    exec(source, {"__name__": "__main__"})
    return calls


def test_colab_cell_installs_what_colab_lacks_pinned(monkeypatch):
    calls = _run_colab_cell(monkeypatch, on_colab=True, missing=set(COLAB_ONLY))
    assert len(calls) == 1
    cmd, kw = calls[0]
    wanted = [f"{name}=={REQ[name]}" for name in COLAB_ONLY.values()]
    assert cmd == [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *wanted,
                   _bnutils_from_repository()]
    assert kw == {"check": True}
    # PyTorch, numpy, pandas, ... are Colab's own: never reinstalled (a CUDA torch is GBs)
    assert not any(a.startswith(("torch", "numpy", "pandas")) for a in cmd)


def test_colab_cell_skips_what_colab_has(monkeypatch):
    calls = _run_colab_cell(monkeypatch, on_colab=True, missing={"myst_nb", "mnist1d"})
    cmd = calls[0][0]
    assert cmd[6:] == [f"myst-nb=={REQ['myst-nb']}", f"mnist1d=={REQ['mnist1d']}", _bnutils_from_repository()]


def test_colab_cell_does_nothing_elsewhere(monkeypatch):
    assert _run_colab_cell(monkeypatch, on_colab=False, missing=set(COLAB_ONLY)) == []


def test_glue_needs_only_what_colab_has():
    """The cell installs myst-nb with --no-deps: `myst_nb.glue` must work without Sphinx,
    myst-parser, jupyter-cache and nbclient (it needs IPython, nbformat and docutils)."""
    code = (
        "import importlib.abc, sys\n"
        "blocked = {'sphinx', 'myst_parser', 'jupyter_cache', 'nbclient', 'markdown_it', 'jupyter_book'}\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in blocked: raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from myst_nb import glue\n"
        "glue('x', 1.5, display=False)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


# ----- Figures: a caption and an alt text on every figure (issue 18) ------------------------------

import ast

# What starts a new figure. A cell draws one when its own top-level code does this, or calls a
# function of the same notebook whose body does (``sweep_figure(...)``, ``landscape_figure(...)``).
FIGURE_CALL = re.compile(r"\bplt\.(subplots|figure|subplot_mosaic)\(|\bsns\.(relplot|catplot|displot|"
                         r"jointplot|pairplot|lmplot|clustermap)\(|\bplot\.panels\(")
PATH_LIKE = re.compile(r"(^|[\s/\\])[\w.-]+\.(png|svg|jpe?g|gif|pdf)\b|^[./\\]|^_build|^data:", re.I)


def _code(source: str) -> ast.Module | None:
    lines = [l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _code_trees(nb: dict):
    """(cell index, parsed code) for each code cell of ``nb`` that parses."""
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and (tree := _code("".join(cell["source"]))) is not None:
            yield i, tree


def figure_cells(nb: dict) -> list[int]:
    """Indices of the code cells of ``nb`` that draw a figure."""
    drawers: set[str] = set()
    out = []
    for i, tree in _code_trees(nb):
        defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        drawers |= {d.name for d in defs if FIGURE_CALL.search(ast.unparse(d))}
        top = ast.Module(body=[n for n in tree.body if not isinstance(n, ast.FunctionDef)], type_ignores=[])
        called = {n.func.id for n in ast.walk(top) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        if FIGURE_CALL.search(ast.unparse(top)) or called & drawers:
            out.append(i)
    return out


def test_figure_cells_are_found():
    nb = {"cells": [
        {"cell_type": "code", "source": "def draw(x):\n    fig, ax = plt.subplots()\n    return fig\n"},
        {"cell_type": "code", "source": "y = 1\ndraw(y);\n"},
        {"cell_type": "code", "source": "fig = plt.figure(figsize=(3, 2))\n"},
        {"cell_type": "code", "source": "plot.band(ax, x, v)  # into an existing axis\n"},
        {"cell_type": "markdown", "source": "plt.subplots() in prose"},
    ]}
    assert figure_cells(nb) == [1, 2]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_figure_has_a_caption_and_alt_text(path):
    """myst-nb's cell metadata ``mystnb: {figure: {caption, name}, image: {alt}}`` on every cell
    that draws a figure: the caption says what is plotted and how to read it, the alt text the
    result, for a reader who cannot see it (never a file path, as without it)."""
    nb = json.loads(path.read_text())
    drawing = figure_cells(nb)
    for i in drawing:
        cell = nb["cells"][i]
        where = f"{path.name}, cell {i} ({''.join(cell['source'])[:60]!r}...)"
        meta = cell["metadata"].get("mystnb", {})
        caption = meta.get("figure", {}).get("caption", "")
        alt = meta.get("image", {}).get("alt", "")
        assert len(caption.split()) >= 8, f"{where}: no caption (metadata.mystnb.figure.caption)"
        assert len(alt.split()) >= 8, f"{where}: no alt text (metadata.mystnb.image.alt)"
        assert not PATH_LIKE.search(alt), f"{where}: the alt text looks like a path: {alt!r}"
        # no figure `name`: myst-nb gives it to every display output of the cell, so a cell that
        # also shows a value (a trailing `ax.legend()`) would make Sphinx warn of a duplicate target
        assert set(meta) <= {"figure", "image"} and set(meta["figure"]) == {"caption"}, meta
        assert "$" not in alt and "{" not in alt, f"{where}: alt text is read as plain text, no markup"
    # no caption left on a cell that no longer draws (it would caption a table or a number)
    stale = [i for i, c in enumerate(nb["cells"]) if "mystnb" in c["metadata"] and i not in drawing]
    assert stale == [], f"{path.name}: figure metadata on cells that draw no figure: {stale}"


def _png(tmp_path: Path, name: str, color: str) -> str:
    import base64

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], color=color)
    fig.savefig(tmp_path / name)
    plt.close(fig)
    return base64.b64encode((tmp_path / name).read_bytes()).decode()


def test_captions_wrap_figures_only(tmp_path):
    """The book's extension (_ext/book_html.py) on a notebook with myst-nb's figure metadata: a
    value shown by a captioned cell is not made a figure, and a cell's two images share one figure
    with one caption; alt texts reach the <img>."""
    import nbformat

    png_a, png_b = _png(tmp_path, "a.png", "k"), _png(tmp_path, "b.png", "b")
    meta = {"mystnb": {"figure": {"caption": "Two panels of a thing."}, "image": {"alt": "What the figure shows."}}}
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Figures"),
        nbformat.v4.new_code_cell("draw()\n{'a': 1}", metadata=meta, outputs=[
            nbformat.v4.new_output("execute_result", {"text/plain": "{'a': 1}"}, execution_count=1),
            nbformat.v4.new_output("display_data", {"image/png": png_a, "text/plain": "<Figure>"}),
            nbformat.v4.new_output("display_data", {"image/png": png_b, "text/plain": "<Figure>"}),
        ]),
    ]
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(nb, src / "index.ipynb")
    (src / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / '_ext')!r})\n"
        "extensions = ['myst_nb', 'book_html']\n"
        "nb_execution_mode = 'off'\n"
        "mathjax_path = 'mathjax/tex-mml-chtml.js'\n"
    )
    out = tmp_path / "html"
    assert sphinx_build("-q", "-b", "html", "-W", str(src), str(out)) == 0
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((out / "index.html").read_text(), "html.parser")
    figures = soup.select("figure")
    assert len(figures) == 1, [str(f)[:200] for f in figures]
    assert len(figures[0].select("img")) == 2 and len(figures[0].select("figcaption")) == 1
    assert "Two panels of a thing." in figures[0].figcaption.get_text()
    assert [i["alt"] for i in soup.select("img")] == ["What the figure shows."] * 2
    shown = soup.select(".cell_output pre")
    assert any("{'a': 1}" in p.get_text() for p in shown) and not any(p.find_parent("figure") for p in shown)


# ----- Figures legible on a phone: panels through plot.panels, nothing wider than two (issue 18) ----

def _const(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _kwarg(call: ast.Call, name: str, position: int | None = None):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def illegible_layouts(source: str) -> list[str]:
    """What in ``source`` draws a figure that a phone would shrink: several panels laid out by
    matplotlib itself (``plt.subplots(1, 2)``, ``plt.figure`` + ``add_subplot``, ``plt.subplot``,
    ``subplot_mosaic``, a gridspec) instead of ``plot.panels``, or a figure wider than
    ``plot.MAX_WIDTH`` inches (a figure's text shrinks with it)."""
    from bnutils import plot

    tree = _code(source)
    out = []
    for node in ast.walk(tree) if tree is not None else []:
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        text = ast.unparse(node)
        if name in ("plt.subplots", "plt.subplot_mosaic") or name.endswith((".subplots", ".subplot_mosaic")):
            if name.endswith("subplot_mosaic"):
                out.append(f"{text}: a mosaic (use plot.panels)")
                continue
            rows, cols = (_kwarg(node, "nrows", 0), _kwarg(node, "ncols", 1))
            rows, cols = (1 if rows is None else _const(rows)), (1 if cols is None else _const(cols))
            if rows != 1 or cols != 1:
                out.append(f"{text}: several panels laid out by matplotlib (use plot.panels)")
        elif name in ("plt.subplot", "plt.axes") or name.endswith((".add_subplot", ".add_gridspec", ".add_axes")):
            out.append(f"{text}: panels placed by hand (use plot.panels)")
        elif name in ("plot.panels", "panels"):
            ncols, panel = _kwarg(node, "ncols", 1), _kwarg(node, "panel", 2)
            width = (_const(panel) or plot.PANEL)[0] if panel is not None else plot.PANEL[0]
            ncols = _const(ncols) if ncols is not None else None
            cols = plot.MAX_COLS if ncols is None else min(plot.MAX_COLS, ncols)
            if _kwarg(node, "max_cols", 3) is not None:
                out.append(f"{text}: max_cols changes the phone layout")
            elif width * cols > plot.MAX_WIDTH + 1e-9:
                out.append(f"{text}: {width * cols:g} in wide, more than {plot.MAX_WIDTH:g}")
        figsize = _kwarg(node, "figsize") if name.endswith(("subplots", "figure")) else None
        if figsize is not None and (size := _const(figsize)) is not None and size[0] > plot.MAX_WIDTH + 1e-9:
            out.append(f"{text}: {size[0]:g} in wide, more than {plot.MAX_WIDTH:g} (its text shrinks on a phone)")
    return out


def test_illegible_layouts_are_found():
    bad = {
        "fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))": "several panels",
        "fig, axes = plt.subplots(ncols=3)": "several panels",
        "fig, ax = plt.subplots(figsize=(9, 3))": "9 in wide",
        "fig = plt.figure(figsize=(6, 5))\nax = fig.add_subplot(2, 2, 1, projection='3d')": "by hand",
        "fig, axes = plot.panels(1, 3, panel=(4.5, 2))": "9 in wide",
        "fig, axes = plot.panels(1, 4, max_cols=4)": "max_cols",
        "fig, ax = plt.subplot_mosaic('AB')": "mosaic",
    }
    for source, why in bad.items():
        found = illegible_layouts(source)
        assert any(why in f for f in found), (source, found)
    for good in ("fig, ax = plt.subplots()", "fig, ax = plt.subplots(figsize=(6.4, 3.4))",
                 "fig, axes = plot.panels(1, 2, panel=(3.4, 2.8), sharey=True)",
                 "fig, axes = plot.panels(len(NORMS), 4, panel=(3.4, 2.2))",
                 "fig, axes = plot.panels(2, 2, panel=(3.2, 2.8), projection='3d')"):
        assert illegible_layouts(good) == [], good


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_figure_is_laid_out_for_a_phone(path):
    """Every multi-panel figure of a chapter comes from ``plot.panels`` (at most two panels a row,
    each ``plot.PANEL`` wide) and no figure is wider than ``plot.MAX_WIDTH`` (6.8 in): at 390 px a
    ``plt.subplots(1, 2, figsize=(10, ...))`` has tick labels about 5 px high. The browser test
    (tests/browser/test_figures.py) measures what a phone shows."""
    nb = json.loads(path.read_text())
    found = [f"cell {i}: {why}" for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             for why in illegible_layouts("".join(c["source"]))]
    assert found == [], f"{path.name}: {found}"


# ----- JupyterLab and Colab: the glued numbers under each paragraph (issue 18) -------------------

from bnutils import glued


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_paragraph_with_glued_numbers_shows_them_in_jupyter(path):
    """Outside the book nothing resolves ``{glue:text}`` (jupyterlab-myst shows the key, Colab the
    raw role): under each markdown cell that cites glued numbers a hidden cell shows them
    (bnutils.glued), in step with the prose. After a change to the prose:
    ``.venv/bin/python -m bnutils.glued book/*.ipynb``."""
    nb = json.loads(path.read_text())
    assert glued.sync(nb, path.stem)["cells"] == nb["cells"], (
        f"{path.name}: the glued-number cells are not in step with the markdown; "
        f"run `.venv/bin/python -m bnutils.glued {path.relative_to(ROOT)}`")
    ours = [c for c in nb["cells"] if glued._is_ours(c)]
    assert all(c["metadata"].get("tags") == ["remove-cell"] and c["outputs"] == [] for c in ours)
    if any(glued.GLUE_ROLE.search("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "markdown"):
        assert "".join(ours[0]["source"]) == glued.watch_source(path.stem)


def test_glued_cells_follow_the_markdown():
    md = lambda s: {"cell_type": "markdown", "metadata": {}, "source": s}
    code = lambda s: {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s}
    nb = {"cells": [md("# T"), code("# colab"), code("x = 1"), md("A {glue:text}`a:.2f` and {glue}`b` and {glue:text}`a:.2f`."),
                    md("No numbers."), md("Twice {glue:text}`c`."), md("Twice {glue:text}`c`.")]}
    out = glued.sync(nb)
    sources = ["".join(c["source"]) for c in out["cells"]]
    assert sources == ["# T", "# colab", glued.watch_source(), "x = 1", sources[4], 'glued.show("a:.2f", "b")',
                       "No numbers.", sources[7], 'glued.show("c")', sources[9], 'glued.show("c")']
    assert out["cells"][5]["metadata"] == {"tags": ["remove-cell"]}
    assert glued.sync(out) == out  # in step: nothing to do
    assert glued.sync({"cells": [md("none"), code("x")]})["cells"] == [md("none"), code("x")]
    # roles quoted as code are not numbers to show; a directive's body is prose
    quoted = "Write `{glue:text}` roles, ``{glue:text}`k` ``.\n~~~md\n{glue:text}`x`\n~~~\n```{note}\n{glue:text}`y`\n```"
    assert glued.keys_of(quoted) == ("y",)


@pytest.mark.parametrize("text, spec", [("0.123456", ".2f"), ("12", ""), ("'BN'", "s"), ("3.0", "d"),
                                        ("0.04567", ".1%"), ("1.5e-07", ".0e"), ("7", ".3g"), ("'x'", "")])
def test_glued_formats_as_the_book(text, spec):
    from myst_nb.core.variables import format_plain_text

    try:
        want = format_plain_text(text, spec)
    except (TypeError, ValueError) as exc:
        want = type(exc)
    try:
        got = glued.format_plain_text(text, spec)
    except (TypeError, ValueError) as exc:
        got = type(exc)
    assert got == want


def test_glued_values_are_shown_and_filled_in_later(monkeypatch, tmp_path):
    """In IPython: show() tabulates what glue() recorded, and a row glued later fills in."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from myst_nb import glue

    InteractiveShell.instance()
    monkeypatch.setattr(glued, "_values", {})
    monkeypatch.setattr(glued, "_waiting", [])
    monkeypatch.setenv("BNBOOK_CLAIMS", str(tmp_path))
    monkeypatch.setattr(glued, "_store", [None])
    with capture_output() as cap:
        assert glued.watch("chapter")
        glue("ratio", 0.123456, display=False)
        glue("name", "BN", display=False)
        glued.show("ratio:.2f", "name", "later:.1f")
        first, first_html = cap.outputs[-1].data["text/plain"], cap.outputs[-1].data["text/html"]
        glue("later", 2.25, display=False)
    assert "ratio:.2f  0.12" in first and "name       BN" in first and glued.MISSING in first
    assert "<td><code>ratio:.2f</code></td><td>0.12</td>" in first_html
    texts = [o.data.get("text/plain", "") for o in cap.outputs]
    assert any("later:.1f  2.2" in t and glued.MISSING not in t for t in texts), texts  # the update
    assert glued._waiting == []
    # another notebook (the summary) reads the chapter's values from its file, at this scale
    assert glued.formatted("chapter.ipynb::ratio:.3f") == "0.123"
    assert "run that chapter first" in glued.formatted("other.ipynb::ratio:.3f")


# ----- Tables: every DataFrame a chapter shows goes through plot.table (issue 18) ------------------

FRAME = re.compile(r"\bpd\.(DataFrame|Series)\(|\.groupby\(|\.unstack\(|\.pivot(_table)?\(|\.set_index\(|"
                   r"\.style\b|\.round\(|\bDataFrame\(|\btable\(|\.T\b|\.describe\(|\.melt\(")


def shown_frames(nb: dict) -> list[tuple[int, str]]:
    """(cell index, expression) for each cell whose displayed value is a DataFrame or Series,
    judged from the code: an expression that builds one, or a name assigned from one."""
    frames: set[str] = set()
    out = []
    for i, tree in _code_trees(nb):
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and FRAME.search(ast.unparse(node.value)):
                frames |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):  # a module again (`checks`)
                frames -= {(a.asname or a.name).split(".")[0] for a in node.names}
        last = tree.body[-1] if tree.body else None
        if not isinstance(last, ast.Expr):
            continue
        value = last.value
        text = ast.unparse(value)
        if isinstance(value, ast.Call):  # a frame's method or constructor, not a function given one
            head = value.func
            while isinstance(head, ast.Call):
                head = head.func
            if not isinstance(head, ast.Attribute):
                if FRAME.search(ast.unparse(head)) and not text.startswith("plot.table("):
                    out.append((i, text))
                continue
            text_head = ast.unparse(head)
            root = head
            while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
                root = root.func if isinstance(root, ast.Call) else root.value
            if text_head.startswith(("plot.table", "pd.DataFrame", "pd.Series")) or (
                    isinstance(root, ast.Name) and root.id in frames) or FRAME.search(text_head):
                out.append((i, text))
        elif isinstance(value, (ast.Name, ast.Attribute, ast.Subscript)):
            names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
            if names & frames:
                out.append((i, text))
    return out


def test_shown_frames_are_found():
    nb = {"cells": [{"cell_type": "code", "source": "df = pd.DataFrame({'a': [1]})\nx = 1"},
                    {"cell_type": "code", "source": "df.round(3)"},
                    {"cell_type": "code", "source": "x"},
                    {"cell_type": "code", "source": "plot.table(df)"}]}
    assert [i for i, _ in shown_frames(nb)] == [1, 3]


@pytest.mark.parametrize("path", [p for p in CHAPTERS if p.stem != "summary"], ids=lambda p: p.stem)
def test_every_table_goes_through_the_formatter(path):
    """Readers see names they understand, sensible digits and "diverged", never `model.norm`, six
    decimals, `inf` or `NaN` (bnutils.tables). The summary chapter's ledger is formatted by
    bnutils.claims."""
    raw = [(i, t) for i, t in shown_frames(json.loads(path.read_text())) if not t.startswith("plot.table(")]
    assert raw == [], f"{path.name}: shown without plot.table(...): {raw}"


# ----- The PDF: Chinese in a CJK font (issue 18) ----------------------------------------------------

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
PREAMBLE = CONFIG["sphinx"]["config"]["latex_elements"]["preamble"]


def test_pdf_sets_chinese_in_noto_cjk():
    assert CONFIG["latex"]["latex_engine"] == "xelatex"
    assert "\\usepackage{xeCJK}" in PREAMBLE
    # captioned figures are not floated: a float inside an exercise's solution stops XeLaTeX
    assert CONFIG["sphinx"]["config"]["latex_elements"]["figure_align"] == "H"
    fonts = re.findall(r"\\setCJK(main|sans|mono)font\{([^}]+)\}", PREAMBLE)
    assert {k for k, _ in fonts} == {"main", "sans", "mono"}
    assert all(name.startswith("Noto") and name.endswith("CJK SC") for _, name in fonts)
    # `make pdf-deps` installs what the preamble needs: xeCJK and the fonts, from Debian
    make = (ROOT / "Makefile").read_text()
    packages = re.search(r"^TEX_PACKAGES := ((?:.*\\\n)*.*)$", make, re.M).group(1)
    for package in ("texlive-xetex", "texlive-lang-cjk", "texlive-lang-chinese", "fonts-noto-cjk"):
        assert package in packages, package  # xeCJK, its ctexhook.sty, the fonts
    assert "kpsewhich xeCJK.sty ctexhook.sty" in make  # a TeX Live without xeCJK is completed, not used as is


def _tex_ready() -> str | None:
    if not (shutil.which("xelatex") and shutil.which("latexmk") and shutil.which("kpsewhich")):
        return "XeLaTeX and latexmk are not installed (`make pdf-deps`)"
    if subprocess.run(["kpsewhich", "xeCJK.sty", "ctexhook.sty"], capture_output=True).returncode != 0:
        return "xeCJK is not installed (Debian's texlive-lang-cjk and -chinese, `make pdf-deps`)"
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    if "CJK SC" not in out:
        return "Noto CJK is not installed (Debian's fonts-noto-cjk)"
    return None


@pytest.mark.skipif(_tex_ready() is not None, reason=str(_tex_ready()))
@pytest.mark.e2e  # sphinx then latexmk/XeLaTeX end to end (several xelatex passes): make test-e2e
def test_pdf_typesets_chinese(tmp_path):
    """The book's LaTeX settings on a page with the survey's title: XeLaTeX sets every Chinese
    character (no "Missing character" in its log) in Noto CJK (embedded in the PDF)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.rst").write_text("Glossary\n========\n\n《批标准化如何帮助神经网络》: batch normalization (批标准化).\n")
    (src / "conf.py").write_text(
        "project = 'cjk'\n"
        f"latex_engine = {CONFIG['latex']['latex_engine']!r}\n"
        f"latex_elements = {CONFIG['sphinx']['config']['latex_elements']!r}\n"
        "latex_documents = [('index', 'book.tex', 'cjk', 'a', 'manual')]\n"
    )
    out = tmp_path / "latex"
    assert sphinx_build("-q", "-b", "latex", str(src), str(out)) == 0
    r = subprocess.run(["latexmk", "-xelatex", "-interaction=nonstopmode", "-halt-on-error", "book.tex"],
                       cwd=out, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    log = (out / "book.log").read_text(errors="replace")
    assert "Missing character" not in log, [l for l in log.splitlines() if "Missing character" in l][:5]
    import zlib

    pdf = (out / "book.pdf").read_bytes()
    streams = [pdf]  # the font dictionaries sit in compressed object streams
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            streams.append(zlib.decompressobj().decompress(m.group(1)))
        except zlib.error:
            pass
    fonts = set(re.findall(rb"/BaseFont\s*/[A-Z]{6}\+([\w-]+)", b"".join(streams)))
    assert any(f.startswith(b"NotoSerifCJK") for f in fonts), f"no Noto CJK font embedded: {fonts}"
