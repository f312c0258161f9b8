"""The package's map (issue 20): every module imports on its own, the imports between the modules
have no cycle, the probes are plain functions whose modules the cache key covers, and the module
index (``bnutils/__init__.py``, the README's layout, CONTRIBUTING.md) names every module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bnutils
from bnutils import experiments as E

PACKAGE = Path(bnutils.__file__).resolve().parent
ROOT = PACKAGE.parent


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports(name: str) -> set[str]:
    """The modules of the package that ``name`` imports, anywhere in its source (functions too)."""
    base = name if _is_package(name) else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                target = f"{pkg}.{node.module}" if node.module else pkg
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import config`: the submodule itself
                if f"{target}.{alias.name}" in MODULES:
                    out.add(f"{target}.{alias.name}")
                elif target in MODULES:
                    out.add(target)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in MODULES}
    out.discard(name)
    return out


def _third_party() -> list[str]:
    """The top-level names of what the package imports from outside itself."""
    names = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return sorted(names - {"bnutils", "__future__"})


@pytest.mark.e2e  # about 13 s on 2 cores: the third-party libraries' imports
def test_every_module_imports_in_a_fresh_interpreter():
    """Each module imported first, in its own process (forked from one that holds the third-party
    libraries only, so that no bnutils module is loaded before it): an import order that only
    works when another module came first fails here."""
    script = (
        "import importlib, os, sys, traceback\n"
        f"for lib in {_third_party()!r}:\n"
        "    try:\n"
        "        importlib.import_module(lib)\n"
        "    except ImportError:\n"
        "        pass\n"
        "assert not [m for m in sys.modules if m.startswith('bnutils')]\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except BaseException:\n"
        "            traceback.print_exc()\n"
        "            os._exit(1)\n"
        "        os._exit(0)\n"
        "    if os.waitpid(pid, 0)[1] != 0:\n"
        "        failed.append(name)\n"
        "print(failed)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, *MODULES], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]", f"modules that fail to import on their own: {out.stdout}\n{out.stderr[-3000:]}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    graph = {name: imports(name) for name in MODULES}
    assert graph["bnutils.experiments"] >= {"bnutils.ics", "bnutils.probes", "bnutils.landscape",
                                            "bnutils.curvature"}  # the graph is read at all
    assert _cycles(graph) == [], "import cycles in bnutils"


def test_probes_are_functions_and_the_cache_key_covers_their_modules():
    mods = set(E.result_modules())
    for kind, fn in E.PROBES.items():
        assert callable(fn) and not isinstance(fn, str), kind
        assert fn.__module__.startswith("bnutils."), (kind, fn.__module__)
        assert fn.__module__.split(".")[1] in mods, (kind, fn.__module__, sorted(mods))
        assert fn.__name__ in vars(sys.modules[fn.__module__]), kind  # defined where it says
    # and what those modules import from the package is covered too
    for name in list(mods):
        if name != "__init__":
            assert {m.split(".")[1] for m in imports(f"bnutils.{name}")} <= mods, name


@pytest.mark.parametrize("doc", ["bnutils/__init__.py", "README.md", "CONTRIBUTING.md"])
def test_the_module_index_names_every_module(doc):
    text = (ROOT / doc).read_text()
    top = sorted({name.split(".")[1] for name in MODULES if name != "bnutils"})
    if doc.endswith(".py"):
        missing = [m for m in top if f":mod:`bnutils.{m}`" not in text]
    else:
        missing = [m for m in top if f"`{m}`" not in text and f"`{m}/`" not in text]
    assert not missing, f"{doc} does not list {missing}"
