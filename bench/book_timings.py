"""``make bench-book``: how long the whole book takes, on this machine.

1. a cold ``make book`` at ``book`` scale (empty jupyter-cache and joblib cache; the chapters
   executed ahead two at a time, then the build), goal < 10 min;
2. the same build again with nothing changed, goal < 1 min;
3. ``make test`` at ``smoke`` scale with an empty joblib cache and an empty smoke build, goal < 5 min
   (the environment already installed), timed part by part, in its order: ``make checks`` (the
   unit tests and nbval over the chapters' checked copies, which is also the student-copy check,
   in one two-worker run), ``make smoke-builds`` (the strict English and Chinese builds side by side, reusing those
   executions) and ``make browser-run``;
   the sum is ``make test``'s time (``--whole-test`` times ``make test`` in one piece instead);

and each chapter's execution time from the cold build. Before and after the commands, the three
reference runs of ``bench.speed`` (an MLP, a CNN and a deep linear network, each with BN) say how fast
the machine was then: compare a time with an earlier one only where those agree too.

Nothing shared is touched: the builds go to a temporary folder (or ``--dir``), with ``BNBOOK_CACHE``
pointing inside it and ``make test`` given ``JB_SMOKE`` there. Run it on a quiet machine (it takes as
long as the three commands); the machine's cores and load average are recorded with the times in
``_build/bench/book_timings.json``.

    python -m bench.book_timings            # all three
    python -m bench.book_timings --skip-test
    python -m bench.book_timings --skip-book   # make test's parts only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import print_table, row  # noqa: E402

BIN = ROOT / ".venv" / "bin"
# `make test`'s parts, in its order (Makefile: test = checks (unit + notebooks), smoke-builds, browser-run)
TEST_PARTS = ("checks", "smoke-builds", "browser-run")


def timed(cmd, env, log):
    print(f"[bench-book] {' '.join(map(str, cmd))}", file=sys.stderr, flush=True)
    load = os.getloadavg()
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - t0, rc, load


def chapter_times(build_dir: Path) -> dict:
    """Execution seconds per notebook, from the build's jupyter-cache."""
    try:
        from jupyter_cache import get_cache

        cache = get_cache(build_dir / "_build" / ".jupyter_cache")
        return {Path(r.uri).name: round(float(r.data.get("execution_seconds", float("nan"))), 1)
                for r in cache.list_cache_records()}
    except Exception as exc:  # the timings are a bonus; never fail the benchmark on them
        return {"error": repr(exc)}


def executed_times(check_dir: Path) -> dict:
    """Seconds per chapter of `make notebooks` (nbval over the checked copies; stamped by
    bnutils.teaching.checked on each chapter it wrote with its outputs)."""
    out = {}
    for path in sorted((check_dir / "executed").glob("*.ipynb")):
        out[path.stem] = json.loads(path.read_text()).get("metadata", {}).get("bnbook_executed", {}).get("seconds")
    return out


def reference_speed() -> dict:
    """``bench.speed``'s reference runs, in a fresh process (as a chapter's kernel would be)."""
    proc = subprocess.run([str(BIN / "python"), "-m", "bench.speed"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:  # the reference is context, not a result: record why it is missing
        return {"error": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def speed_rows(before: dict, after: dict) -> list:
    """One row per reference run: its seconds before the commands, and after them in the note."""
    if "error" in before or "error" in after:
        return []
    return [row("speed", f"reference run {name} (seconds of its training loop, before the commands)", before[name], unit="s",
                note=f"after them: {after[name]:.2f} s ({after[name] / before[name]:.2f}x)")
            for name in before]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, help="where to build, inside the repository (default: a temporary folder in _build, removed after)")
    ap.add_argument("--skip-book", action="store_true")
    ap.add_argument("--skip-test", action="store_true")
    ap.add_argument("--whole-test", action="store_true", help="time `make test` in one piece, not by parts")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "bench" / "book_timings.json")
    args = ap.parse_args(argv)
    # inside the repository: pytest names a test outside its rootdir without its file ("::Cell 3"),
    # and `make checks` keeps a notebook in one worker by that name
    (ROOT / "_build").mkdir(exist_ok=True)
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-book-", dir=ROOT / "_build"))
    work.mkdir(parents=True, exist_ok=True)
    logs = ROOT / "_build" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    base = dict(os.environ, BNBOOK_PROGRESS="0")
    rows, raw = [], {"cores": os.cpu_count(), "dir": str(work), "speed_before": reference_speed()}
    try:
        if not args.skip_book:
            out = work / "book"
            env = dict(base, BNBOOK_SCALE="book", BNBOOK_CACHE=str(work / "cache-book"))
            cmd = ["make", "--no-print-directory", "book", f"BOOK_OUT={out}", f"BOOK_CHECK={work / 'ahead'}"]
            cold, rc1, load1 = timed(cmd, env, logs / "book_cold.log")
            raw["chapters_s"] = chapter_times(out)
            again, rc2, load2 = timed(cmd, env, logs / "book_rebuild.log")
            raw.update(book_cold_s=cold, book_rebuild_s=again, rc=[rc1, rc2], load=[load1, load2])
            slowest = sorted(((v, k) for k, v in raw["chapters_s"].items() if isinstance(v, float)), reverse=True)[:3]
            rows.append(row("book", "make book, cold (book scale)", cold, unit="s", goal="< 600",
                            note=f"exit {rc1}; load {load1[0]:.1f}; slowest: "
                                 + ", ".join(f"{k} {v:.0f} s" for v, k in slowest)))
            rows.append(row("book", "make book again, nothing changed", again, unit="s", goal="< 60",
                            note=f"exit {rc2}; load {load2[0]:.1f}; {cold / max(again, 1e-9):.0f}x faster than cold"))
        if not args.skip_test:
            env = dict(base, BNBOOK_CACHE=str(work / "cache-test"))
            where = [f"JB_SMOKE={work / 'smoke'}", f"CHECK={work / 'check'}"]
            parts = [("make test", ["make", "test"])] if args.whole_test else [
                (f"make {t}", ["make", "--no-print-directory", t]) for t in TEST_PARTS]
            total, rcs = 0.0, []
            for name, cmd in parts:
                t, rc, load = timed(cmd + where, env, logs / f"{name.replace(' ', '_')}.log")
                total += t
                rcs.append(rc)
                raw.setdefault("make_test_parts", {})[name] = {"s": t, "rc": rc, "load": load}
                rows.append(row("test", f"{name} (smoke scale, cold caches)", t, unit="s",
                                note=f"exit {rc}; load {load[0]:.1f}; log _build/bench/{name.replace(' ', '_')}.log"))
            raw.update(make_test_s=total, make_test_rc=rcs, test_chapters_s=executed_times(work / "check"))
            if not args.whole_test:
                rows.append(row("test", "make test (sum of its parts)", total, unit="s", goal="< 300",
                                note=f"exits {rcs}; {os.cpu_count()} cores"))
            else:
                rows[-1] = row("test", "make test (smoke scale, cold caches)", total, unit="s", goal="< 300",
                               note=rows[-1].note)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    raw["speed_after"] = reference_speed()
    rows = speed_rows(raw["speed_before"], raw["speed_after"]) + rows
    text = print_table(rows, title=f"whole-book timings on {os.cpu_count()} cores (logs in _build/bench/)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": [r.as_dict() for r in rows], "raw": raw, "table": text},
                                   indent=1, default=str))
    print(f"JSON: {args.out}")
    failed = [rc for rc in raw.get("make_test_rc", []) + raw.get("rc", []) if rc]  # a part that failed is no time
    return 0 if all(r.met is not False for r in rows) and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
