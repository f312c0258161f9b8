"""Every chapter of the book, executed as plain Python processes (no Jupyter), in parallel.

    python bench/gpu_book.py                                  # all chapters of _toc.yml, $BNBOOK_* as set
    BNBOOK_DEVICE=cuda python bench/gpu_book.py --scale book --time-limit 300
    python bench/gpu_book.py --scale smoke --device cpu ics summary --jobs 2

Made for the lent GPU machine, whose Python has PyTorch and the scientific stack but no Jupyter,
nbformat, nbclient, ipykernel or myst_nb (bench/gpu_session.sh runs it there): the book's claims are
its notebooks' ``remove-cell`` assertions, and they must hold on CUDA too. Each chapter runs in its
own process, the way a Jupyter kernel runs it:

* the notebook is read as JSON at run time (so it is always the working tree's version), and its
  code cells are ``exec``-ed in order in one namespace, with the notebook's folder as the working
  directory and first on ``sys.path``; each cell's source is registered with :mod:`linecache` under
  an ipykernel-style file name, so tracebacks show the line and joblib keys functions defined in the
  notebook by their code, as under ipykernel;
* matplotlib uses Agg, and figures are closed after each cell, as the inline backend does;
* ``myst_nb`` is replaced by a shim whose ``glue(name, variable, display=True)`` records the value
  (numbers as numbers, anything else as its repr) into the chapter's JSON; ``display`` is a builtin,
  as in a kernel, that prints the objects' reprs (no chapter uses it at present). No ``IPython``
  module is faked: tqdm and matplotlib probe for one to detect a notebook. A line that is an IPython
  magic or shell escape (``%...``, ``!...``) fails its cell with a message (no chapter has one);
* cells tagged ``skip-execution`` are skipped and ``raises-exception`` cells may fail, as in
  myst-nb; every other cell, solutions included, runs, as in the book's build.

The chapters share one fresh joblib cache (``BNBOOK_CACHE``: a new temporary folder, removed at the
end, unless ``--cache``), like a cold ``make book``. ``BNBOOK_SCALE``, ``BNBOOK_DEVICE`` and every
other ``BNBOOK_*`` variable pass through (``--scale``/``--device`` set the first two).

Output: a table on stdout, and in ``--out`` (default ``$OUT``, else ``_build/bench``)
``book-<scale>.json`` (per chapter: status ``ok``/``failed``/``timeout``/``crashed``/``not run``,
seconds, seconds per cell, cells done, the glued values, and for a failure the cell, the failing
statement's source, the innermost frame and the message), ``book-<scale>.txt`` (the table) and
``book-<scale>-logs.txt`` (each chapter's output). Exit status 0 when every chapter passed.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import linecache
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL = 200_000  # characters of a chapter's output kept in the combined log
MAGIC = re.compile(r"^\s*[%!]")


# --------------------------------------------------------------------------- the chapters


def chapters(root: Path) -> list[Path]:
    """The notebooks named by ``root/_toc.yml`` (root and chapters, in order) that exist."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    names.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    paths = [root / (n if n.endswith(".ipynb") else n + ".ipynb") for n in names]
    return [p for p in dict.fromkeys(paths) if p.exists()]


# --------------------------------------------------------------------------- one chapter (child)


def _jsonable(value):
    """A glued value as JSON: numbers and strings as they are, a one-element tensor or array as its
    number, anything else as its type and repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    numel = value.numel() if hasattr(value, "numel") else (size if isinstance(size, int) else None)
    if callable(item) and numel == 1:
        try:
            return item()
        except Exception:
            pass
    text = repr(value)
    return {"type": type(value).__name__, "repr": text if len(text) <= 300 else text[:300] + "..."}


def _shims(glued: dict) -> None:
    """``myst_nb.glue`` recording into ``glued``; ``display`` as a builtin."""
    mod = types.ModuleType("myst_nb")

    def glue(name: str, variable=None, display: bool = True) -> None:
        """Shim of ``myst_nb.glue``: records ``variable`` under ``name`` (no output is made)."""
        glued[name] = _jsonable(variable)

    mod.glue = glue
    mod.__version__ = "shim (bench/gpu_book.py)"
    sys.modules["myst_nb"] = mod

    def display(*objs, **kwargs):
        for obj in objs:
            print(repr(obj))

    builtins.display = display  # ipykernel makes display a builtin


def _statement(source: str, lineno: int) -> str:
    """The source of the innermost statement of ``source`` that contains line ``lineno`` (a whole
    multi-line ``assert``), else that line."""
    lines = source.splitlines()
    best = None
    try:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.stmt) and node.lineno <= lineno <= (node.end_lineno or node.lineno):
                if best is None or (node.end_lineno - node.lineno) <= (best.end_lineno - best.lineno):
                    best = node
    except SyntaxError:
        pass
    if best is not None:
        text = "\n".join(lines[best.lineno - 1:best.end_lineno])
    else:
        text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    text = text.strip("\n")
    return text if len(text) <= 1500 else text[:1500] + " ..."


def _failure(exc: BaseException, cell: int, cell_files: dict, sources: list[str], tags) -> dict:
    """Where a cell failed: the deepest frame in a notebook cell (its statement), the innermost
    frame anywhere, and the message."""
    frames = traceback.extract_tb(exc.__traceback__)
    in_cells = [f for f in frames if f.filename in cell_files]
    info = {"cell": cell, "tags": tags, "type": type(exc).__name__, "message": str(exc)[:4000]}
    if in_cells:
        f = in_cells[-1]
        c = cell_files[f.filename]
        info.update(line_cell=c, lineno=f.lineno, line=(f.line or "").strip(),
                    statement=_statement(sources[c], f.lineno))
    elif isinstance(exc, SyntaxError) and exc.lineno:
        info.update(line_cell=cell, lineno=exc.lineno, line=(exc.text or "").strip(),
                    statement=(exc.text or "").strip())
    if frames:
        f = frames[-1]
        info["innermost"] = f"{f.filename}:{f.lineno} in {f.name}"
    info["traceback"] = "".join(traceback.format_exception(exc))[-6000:]
    return info


def run_chapter(nb_path: Path, result_path: Path) -> int:
    """Execute one notebook's code cells in order; write (and keep updating) ``result_path``."""
    t_start = time.perf_counter()
    os.environ.setdefault("MPLBACKEND", "Agg")
    nb_path = nb_path.resolve()
    os.chdir(nb_path.parent)
    sys.path.insert(0, str(nb_path.parent))
    sys.argv = [str(nb_path)]
    glued: dict = {}
    result = {"chapter": nb_path.stem, "path": str(nb_path), "status": "running", "cells": 0, "cells_done": 0,
              "cell_seconds": [], "glue": glued, "failure": None, "skipped_cells": [], "allowed_errors": []}

    def save():
        result["seconds"] = round(time.perf_counter() - t_start, 3)
        tmp = result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=repr))
        os.replace(tmp, result_path)

    try:
        nb = json.loads(nb_path.read_text())
        cells = [c for c in nb["cells"] if c.get("cell_type") == "code"]
    except Exception as exc:  # an unreadable notebook is the chapter's failure, not the runner's
        result.update(status="error", failure={"cell": None, "type": type(exc).__name__, "message": str(exc)})
        save()
        return 1
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]
    result["cells"] = len(cells)
    _shims(glued)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = {"__name__": "__main__", "__builtins__": builtins}
    kernel_dir = os.path.join(tempfile.gettempdir(), f"ipykernel_{os.getpid()}")
    cell_files: dict[str, int] = {}
    save()
    for i, (cell, src) in enumerate(zip(cells, sources)):
        tags = cell.get("metadata", {}).get("tags", [])
        t0 = time.perf_counter()
        if "skip-execution" in tags:
            result["skipped_cells"].append(i)
        else:
            # ipykernel's naming (a folder ipykernel_<pid>, a file named by a hash of the code)
            filename = os.path.join(kernel_dir, f"{zlib.crc32(src.encode()):08x}{i:03d}.py")
            cell_files[filename] = i
            linecache.cache[filename] = (len(src), None, src.splitlines(keepends=True), filename)
            try:
                try:
                    code = compile(src, filename, "exec")
                except SyntaxError:
                    magic = next((ln for ln in src.splitlines() if MAGIC.match(ln)), None)
                    if magic is None:
                        raise
                    raise SyntaxError(f"IPython magic or shell escape, which needs Jupyter: {magic.strip()!r}") from None
                exec(code, ns)
            except BaseException as exc:  # noqa: BLE001 -- a chapter may fail in any way; report it
                if isinstance(exc, KeyboardInterrupt):
                    raise
                if "raises-exception" in tags and not isinstance(exc, SystemExit):
                    result["allowed_errors"].append({"cell": i, "type": type(exc).__name__, "message": str(exc)[:500]})
                else:
                    result["cell_seconds"].append(round(time.perf_counter() - t0, 3))
                    result.update(status="failed", failure=_failure(exc, i, cell_files, sources, tags))
                    print(f"[gpu_book] {nb_path.stem}: cell {i} failed", file=sys.stderr, flush=True)
                    traceback.print_exc()
                    save()
                    return 1
            finally:
                plt.close("all")
        result["cell_seconds"].append(round(time.perf_counter() - t0, 3))
        result["cells_done"] = i + 1
        save()
    result["status"] = "ok"
    save()
    return 0


# --------------------------------------------------------------------------- all chapters (parent)


def _kill(proc: subprocess.Popen) -> None:
    """End a chapter's process group (it was started in a session of its own)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _row_failure(r: dict) -> str:
    f = r.get("failure")
    if r["status"] == "timeout":
        return f"time limit reached in cell {r.get('cells_done', 0)} of {r.get('cells', '?')}"
    if r["status"] == "crashed":
        return f"process exit {r.get('returncode')} in cell {r.get('cells_done', 0)} (see the log)"
    if not f:
        return ""
    where = f"cell {f.get('cell')}" + (f" (line {f['lineno']} of cell {f['line_cell']})" if "lineno" in f else "")
    line = " ".join((f.get("statement") or f.get("line") or "").split())
    msg = " ".join(f.get("message", "").split())
    return f"{where}: {f.get('type')}: {msg[:160]}" + (f" | {line[:160]}" if line else "")


def table(results: list[dict], header: str) -> str:
    head = ("chapter", "status", "seconds", "cells", "glued", "failure")
    body = [(r["chapter"], r["status"], f"{r.get('seconds', 0):.1f}", f"{r.get('cells_done', 0)}/{r.get('cells', '?')}",
             str(len(r.get("glue") or {})), _row_failure(r)) for r in results]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = [header, "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(x.ljust(w) for x, w in zip(b, widths)).rstrip() for b in body]
    for r in results:
        f = r.get("failure")
        if f and f.get("statement"):
            lines += ["", f"{r['chapter']}, cell {f['cell']} ({', '.join(f.get('tags') or []) or 'no tags'}): "
                          f"{f['type']}: {f.get('message', '')[:1000]}",
                      "    " + f["statement"].replace("\n", "\n    ")]
            if f.get("innermost"):
                lines.append(f"    innermost frame: {f['innermost']}")
    return "\n".join(lines)


def machine() -> dict:
    info = {"python": sys.version.split()[0], "cores": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
    except Exception as exc:  # the table is still worth having
        info["torch"] = f"unavailable: {exc!r}"
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


AFTER = {"summary"}  # chapters that read the others' claims ledgers (bnutils.claims): run last


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="chapters to run (file stems, e.g. ics summary); default: every chapter")
    ap.add_argument("--root", type=Path, default=ROOT, help="the book's root, holding _toc.yml (default: this checkout)")
    ap.add_argument("--scale", help="BNBOOK_SCALE for the chapters (default: $BNBOOK_SCALE, else the book's default)")
    ap.add_argument("--device", help="BNBOOK_DEVICE for the chapters (default: $BNBOOK_DEVICE, else CUDA when present)")
    ap.add_argument("--jobs", type=int, default=None, help="chapters at once (default: all)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds for the whole run; chapters still running then are stopped and reported")
    ap.add_argument("--cache", type=Path, default=None,
                    help="BNBOOK_CACHE to use as it is (default: a fresh temporary folder, removed at the end)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the JSON, table and logs "
                    "(default: $OUT, else _build/bench)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return run_chapter(args.child, args.result)

    t_start = time.perf_counter()
    nbs = chapters(args.root)
    if args.names:
        by_stem = {p.stem: p for p in nbs}
        unknown = [n for n in args.names if n not in by_stem]
        if unknown:
            ap.error(f"no chapter named {', '.join(unknown)} in {args.root / '_toc.yml'}; "
                     f"choose from {', '.join(by_stem)}")
        nbs = [by_stem[n] for n in args.names]
    jobs = args.jobs or len(nbs)
    if jobs < 1:
        ap.error(f"--jobs must be >= 1, got {jobs}")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env.setdefault("BNBOOK_PROGRESS", "0")
    if args.scale:
        env["BNBOOK_SCALE"] = args.scale
    if args.device:
        env["BNBOOK_DEVICE"] = args.device
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    scale = env.get("BNBOOK_SCALE", "book")
    work = Path(tempfile.mkdtemp(prefix="gpu-book-"))
    cache = args.cache.resolve() if args.cache else work / "cache"
    env["BNBOOK_CACHE"] = str(cache)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "_build" / "bench")
    out.mkdir(parents=True, exist_ok=True)
    deadline = t_start + args.time_limit if args.time_limit else None
    settings = {k: v for k, v in env.items() if k.startswith("BNBOOK_")}
    print(f"[gpu_book] {len(nbs)} chapters, {jobs} at a time, {settings}", file=sys.stderr, flush=True)

    pending = list(nbs)
    running: dict[Path, tuple[subprocess.Popen, float, object]] = {}
    done: dict[Path, dict] = {}

    def collect(nb: Path, status: str | None = None, returncode: int | None = None):
        proc, t0, log = running.pop(nb)
        log.close()
        res_file = work / f"{nb.stem}.json"
        r = json.loads(res_file.read_text()) if res_file.exists() else {"chapter": nb.stem, "cells_done": 0, "glue": {}}
        if status is not None:
            r["status"] = status
        elif r.get("status") in (None, "running"):
            r["status"] = "crashed"
        r["returncode"] = returncode
        r["process_seconds"] = round(time.perf_counter() - t0, 3)
        r.setdefault("seconds", r["process_seconds"])
        done[nb] = r
        print(f"[gpu_book] {nb.stem}: {r['status']} in {r['process_seconds']:.1f} s", file=sys.stderr, flush=True)

    try:
        while pending or running:
            while pending and len(running) < jobs and (deadline is None or time.perf_counter() < deadline):
                # the summary reads every other chapter's claims ledger: it starts when they are done
                others_left = bool(running) or any(p.stem not in AFTER for p in pending)
                ready = [p for p in pending if p.stem not in AFTER or not others_left]
                if not ready:
                    break
                nb = ready[0]
                pending.remove(nb)
                log = open(work / f"{nb.stem}.log", "w")
                cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(nb), "--result",
                       str(work / f"{nb.stem}.json")]
                proc = subprocess.Popen(cmd, cwd=nb.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                running[nb] = (proc, time.perf_counter(), log)
            for nb in list(running):
                rc = running[nb][0].poll()
                if rc is not None:
                    collect(nb, returncode=rc)
            if deadline is not None and time.perf_counter() >= deadline:
                for nb in list(running):
                    _kill(running[nb][0])
                    collect(nb, status="timeout", returncode=running[nb][0].returncode)
                for nb in pending:
                    done[nb] = {"chapter": nb.stem, "status": "not run", "cells_done": 0, "glue": {}, "seconds": 0.0}
                pending = []
            time.sleep(0.2)
    finally:
        for nb in list(running):
            _kill(running[nb][0])
            collect(nb, status="timeout", returncode=None)

    results = [done[nb] for nb in nbs]
    wall = time.perf_counter() - t_start
    info = machine()
    where = info.get("gpu") or info.get("cpu", "?")
    n_ok = sum(r["status"] == "ok" for r in results)
    header = (f"The book at scale {scale!r} on {env.get('BNBOOK_DEVICE') or 'the default device'} ({where}, torch "
              f"{info.get('torch')}): {n_ok} of {len(results)} chapters passed; wall {wall:.1f} s with {jobs} at a "
              f"time; chapters' own times add up to {sum(r.get('seconds', 0) for r in results):.1f} s")
    text = table(results, header)
    print(text, flush=True)
    logs = []
    for nb in nbs:
        path = work / f"{nb.stem}.log"
        body = path.read_text(errors="replace") if path.exists() else "(no output)\n"
        if len(body) > LOG_TAIL:
            body = f"... ({len(body) - LOG_TAIL} characters left out)\n" + body[-LOG_TAIL:]
        logs.append(f"===== {nb.stem} ({done[nb]['status']}) =====\n{body}")
    stem = f"book-{scale}"
    (out / f"{stem}-logs.txt").write_text("\n".join(logs))
    (out / f"{stem}.txt").write_text(text + "\n")
    (out / f"{stem}.json").write_text(json.dumps(
        {"machine": info, "settings": settings, "jobs": jobs, "time_limit_s": args.time_limit,
         "wall_s": round(wall, 3), "chapters": results, "table": text}, indent=1, default=repr))
    print(f"JSON: {out / (stem + '.json')}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)  # the fresh cache too; a --cache folder is left as it is
    return 0 if n_ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
