"""``make book-robust``: the book at ``book`` scale under every CPU kernel variant this machine can
be forced to, each with seeds nobody picked; a table of the assertions that fail where.

A claim of the book is a claim about batch normalization, not about one CPU: it must survive
other vector kernels (PyTorch's ``ATEN_CPU_CAPABILITY``, MKL's ``MKL_ENABLE_INSTRUCTIONS`` and
oneDNN's ``ONEDNN_MAX_CPU_ISA`` for the matrix products and convolutions) and other seeds
(``BNBOOK_SEED_OFFSET``). Each variant is a real ``jupyter-book build`` into
``_build/robust/<variant>`` with its own joblib cache, with one change to ``_config.yml``: a failing
cell is recorded instead of stopping the build, so that one run lists every failing claim. The
executed notebooks (``_build/jupyter_execute``) are then read for error outputs.

    python -m bench.robust                    # every variant the CPU has, one after the other
    python -m bench.robust --jobs 2           # two builds at once (one torch thread each)
    python -m bench.robust --variants avx2    # one variant

The variants (``avx512`` only where the CPU has AVX-512):

========= ===================== ======================= ================== ===========
variant   ATEN_CPU_CAPABILITY   MKL_ENABLE_INSTRUCTIONS ONEDNN_MAX_CPU_ISA seed offset
========= ===================== ======================= ================== ===========
default   default (no vectors)  SSE4_2                  SSE41              1000
avx2      avx2                  AVX2                    AVX2               2000
avx512    avx512                AVX512                  AVX512_CORE        3000
========= ===================== ======================= ================== ===========

Exit status 0 when every variant built with no failing cell. The report is printed and written to
``_build/robust/report.md`` and ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OUT = ROOT / "_build" / "robust"

VARIANTS = {
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                "ONEDNN_MAX_CPU_ISA": "SSE41", "BNBOOK_SEED_OFFSET": "1000"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2", "BNBOOK_SEED_OFFSET": "2000"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
               "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "BNBOOK_SEED_OFFSET": "3000"},
}


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def available(flags: set[str] | None = None) -> list[str]:
    """The variants this CPU can run: always ``default``; ``avx2`` with AVX2 and FMA; ``avx512``
    with AVX-512 F, BW, VL and DQ (what PyTorch's avx512 kernels need)."""
    flags = cpu_flags() if flags is None else flags
    out = ["default"]
    if {"avx2", "fma"} <= flags:
        out.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        out.append("avx512")
    return out


def robust_config(dest: Path) -> Path:
    """``_config.yml`` with failing cells recorded rather than raised."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg.setdefault("execute", {})["allow_errors"] = True
    cfg.setdefault("sphinx", {}).setdefault("config", {})["nb_execution_raise_on_error"] = False
    # paths in _config.yml are relative to the book's folder, and this copy lives elsewhere
    local = cfg["sphinx"].get("local_extensions") or {}
    cfg["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in local.items()}
    cfg["bibtex_bibfiles"] = [str(ROOT / f) for f in cfg.get("bibtex_bibfiles", [])]
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "_config.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def failures(build: Path) -> list[dict]:
    """Every error output in the executed notebooks: chapter, cell, the failing line, the error."""
    found = []
    for nb in sorted((build / "_build" / "jupyter_execute").rglob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for i, cell in enumerate(cells):
            for out in cell.get("outputs", []):
                if out.get("output_type") != "error":
                    continue
                src = "".join(cell.get("source", ""))
                line = _failing_line(src, out.get("traceback", []))
                found.append({"chapter": nb.stem, "cell": i, "error": out.get("ename", ""),
                              "message": out.get("evalue", "")[:300], "line": line})
    return found


def _failing_line(source: str, traceback: list[str]) -> str:
    """The source line the traceback points at in the cell (ANSI colours stripped), else the
    first assert."""
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(traceback))
    for m in re.finditer(r"^-*>\s*(\d+)\s(.*)$", plain, flags=re.M):
        return m.group(2).strip()
    asserts = [ln.strip() for ln in source.splitlines() if ln.strip().startswith("assert")]
    return asserts[0] if asserts else ""


def fresh_cache(dest: Path) -> bool:
    """What the Makefile's ``fresh-cache`` does before ``make book``: jupyter-cache executes a notebook
    again only when its cells change, not when ``bnutils`` does, so a variant's executed chapters
    (and Sphinx's doctrees) are dropped when the package's source differs from the one they were
    built with, and so are its claims ledgers (every chapter writes its own again). Without it a
    variant built again after a change to ``bnutils`` executed only the chapters whose notebooks had
    changed, and reported the others' old claims. Returns whether it dropped them."""
    import shutil

    from bnutils.experiments import package_version

    version, stamp = package_version(), dest / "_build" / ".bnutils-version"
    stale = not stamp.exists() or stamp.read_text().strip() != version
    if stale:
        for folder in (".jupyter_cache", ".doctrees", "jupyter_execute"):
            shutil.rmtree(dest / "_build" / folder, ignore_errors=True)
        shutil.rmtree(dest / "cache" / "book" / "claims", ignore_errors=True)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(version + "\n")
    return stale


def build(variant: str, log_dir: Path) -> dict:
    dest = OUT / variant
    cfg = robust_config(dest)
    fresh_cache(dest)
    env = {**os.environ, **VARIANTS[variant], "BNBOOK_SCALE": "book",
           "BNBOOK_CACHE": str(dest / "cache"), "BNBOOK_THREADS": os.environ.get("BNBOOK_THREADS", "1")}
    cmd = [str(BIN / "jupyter-book"), "build", str(ROOT), "--path-output", str(dest), "--config", str(cfg),
           "--keep-going"]
    t0 = time.perf_counter()
    with open(log_dir / f"{variant}.log", "w") as log:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - t0
    fails = failures(dest)
    executed = len(list((dest / "_build" / "jupyter_execute").rglob("*.ipynb")))
    return {"variant": variant, "env": VARIANTS[variant], "returncode": rc, "seconds": round(seconds, 1),
            "chapters_executed": executed, "failures": fails, "claims": ledger(dest / "cache" / "book" / "claims")}


def ledger(folder: Path) -> dict:
    """What the chapters' claims ledgers (bnutils.claims) recorded in one variant's build: counts by
    status, and every claim that failed with its measured value and bound. A failed claim also
    fails its cell (and is listed there); the ledger adds the number and the bound."""
    counts, failed = {"holds": 0, "fails": 0, "waits": 0}, []
    for path in sorted(folder.glob("*.json")):
        for c in json.loads(path.read_text()):
            counts[c["status"]] = counts.get(c["status"], 0) + 1
            if c["status"] == "fails":
                failed.append(f"{c['chapter']}.{c['id']}: {c['sentence']!r} measured {c['value']:.3g}, "
                              f"bound low={c['low']} high={c['high']}")
    return {"counts": counts, "failed": failed}


def report(results: list[dict]) -> str:
    lines = ["# make book-robust", "",
             "| variant | ATEN_CPU_CAPABILITY | seed offset | chapters | build exit | time | failing cells "
             "| claims held / failed / not checked |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        n = r.get("claims", {}).get("counts", {})
        lines.append(f"| {r['variant']} | {r['env']['ATEN_CPU_CAPABILITY']} | {r['env']['BNBOOK_SEED_OFFSET']} "
                     f"| {r['chapters_executed']} | {r['returncode']} | {r['seconds'] / 60:.1f} min "
                     f"| {len(r['failures'])} | {n.get('holds', 0)} / {n.get('fails', 0)} / {n.get('waits', 0)} |")
    for r in results:
        for c in r.get("claims", {}).get("failed", []):
            lines.append(f"- **{r['variant']}**, claim {c}")
        for f in r["failures"]:
            lines.append(f"- **{r['variant']}**, `{f['chapter']}` cell {f['cell']}: {f['error']}: "
                         f"`{f['line']}` {f['message']}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="*", help=f"default: every available one ({', '.join(available())})")
    ap.add_argument("--jobs", type=int, default=1, help="builds at once (default 1)")
    args = ap.parse_args(argv)
    variants = args.variants or available()
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    missing = [v for v in variants if v not in available()]
    if missing:
        ap.error(f"this CPU cannot run {missing} (it has {available()})")
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda v: build(v, OUT), variants))
    text = report(results) + f"\nWall time {(time.perf_counter() - t0) / 60:.1f} min, {args.jobs} at once, " \
                             f"{os.cpu_count()} CPUs.\n"
    print(text)
    (OUT / "report.md").write_text(text)
    (OUT / "report.json").write_text(json.dumps(results, indent=1))
    ok = all(r["returncode"] == 0 and not r["failures"] and r["chapters_executed"] > 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
