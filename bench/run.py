"""``make bench``: every CPU benchmark, one table, JSON in ``_build/bench/bench.json``.

    python -m bench.run                 # all sections (a few minutes on 2 cores)
    python -m bench.run --only loop bn  # some sections
    python -m bench.run --tiny          # tiny sizes, for the tests (figures meaningless)

Figures are ratios against a baseline timed in the same run (interleaved rounds, medians of paired
ratios), so they survive a machine that other work is loading; the JSON keeps the raw times and the
machine (CPU, cores, threads, load average when the run started).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from . import bn, cache, loops, probes
from .common import machine, print_table

SECTIONS = {
    "loop": loops.run,
    "bn": bn.run,
    "probes": probes.run,
    "cache": cache.run,
}
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "_build" / "bench" / "bench.json"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run these sections only")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (for tests; the figures mean nothing)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 1)),
                    help="torch threads (default 1: steadier ratios on a shared machine; 0 keeps torch's default)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    threads_before, progress_before = torch.get_num_threads(), os.environ.get("BNBOOK_PROGRESS")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    os.environ["BNBOOK_PROGRESS"] = "0"
    try:
        return _main(args)
    finally:  # leave the process as it was (the tests call main() in pytest's process)
        torch.set_num_threads(threads_before)
        if progress_before is None:
            os.environ.pop("BNBOOK_PROGRESS", None)
        else:
            os.environ["BNBOOK_PROGRESS"] = progress_before


def _main(args) -> dict:
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} with "
          f"{info['torch_threads']} thread(s), load average {info['loadavg_at_start']}", flush=True)
    rows, seconds = [], {}
    for name in args.only or list(SECTIONS):
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        rows += SECTIONS[name](tiny=args.tiny)
        if name == "cache" and not args.tiny:
            rows += cache.dynamo_import()
        seconds[name] = time.perf_counter() - t0
    text = print_table(rows, title=f"bench ({'tiny' if args.tiny else 'full'} sizes); ratios are medians of paired rounds")
    missed = [r.name for r in rows if r.met is False]
    print(f"goals missed: {len(missed)}" + (": " + "; ".join(missed) if missed else ""))
    result = {"machine": info, "tiny": args.tiny, "section_seconds": seconds,
              "rows": [r.as_dict() for r in rows], "table": text}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(f"JSON: {args.out}")
    return result


if __name__ == "__main__":
    main()
