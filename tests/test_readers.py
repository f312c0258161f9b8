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
