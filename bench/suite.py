"""The paper-scale Santurkar et al. suite, run end to end and timed (issue 9's goal: under 10 minutes
on one H100 or H200).

    python -m bench.suite                         # CUDA: the real thing, one run at a time
    python -m bench.suite --jobs 3                # three runs at a time on the one GPU
    python -m bench.suite --autocast bfloat16 --channels-last --compile inductor
    python -m bench.suite --tiny                  # anywhere (CPU): tiny sizes, checks that it runs

The suite is what the ICS and landscape chapters measure, at the paper's sizes: VGG-11 on CIFAR-10,
plain SGD, batch 128, 15,000 steps, for the standard network, BN and noisy BN at learning rates 0.1
and 0.5 (six runs), with the ICS probe (Definition 2.1, every layer) and the landscape probe (step
sizes 0.5..4 x the rate) every 100 steps. Each run is ``bnutils.experiments.run`` of an
:class:`~bnutils.experiments.Experiment`, uncached: the book's own code path, nothing special-cased
(cuDNN's autotuner stays off, as in the book, whose runs must repeat exactly).

CIFAR-10 cannot be fetched on the lent GPU machines, so by default the data are random images of
CIFAR-10's shape and sizes (``synthetic_cifar10``: 48,000 train, 12,000 test), which cost the same
time; ``--data cifar10`` uses the real set where it is on disk. ``--jobs N`` runs N experiments at
once in separate processes (joblib): a VGG-11 step at batch 128 leaves a large GPU partly idle
while Python launches kernels, and independent runs fill those gaps.

Prints one table; writes ``$OUT/suite.json`` when ``$OUT`` is set (else ``_build/bench/suite.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, print_table, row, write_json  # noqa: E402
from bnutils import config  # noqa: E402
from bnutils.experiments import Experiment, Probe, run  # noqa: E402
from bnutils.landscape import VGG_MULTIPLIERS  # noqa: E402
from bnutils.models import ModelConfig  # noqa: E402
from bnutils.train import TrainConfig  # noqa: E402

GOAL_S = 600


def suite(*, tiny: bool = False, data: str = "synthetic_cifar10", steps: int = 15_000, probe_every: int = 100,
          lrs=(0.1, 0.5), norms=(None, "bn", "noisy_bn"), autocast: str | None = None,
          channels_last: bool = False, compile: str | None = None) -> list[Experiment]:
    """The suite's experiments, in the order they are run."""
    model = ModelConfig(arch="cnn", channels=(4, "M", 8, "M") if tiny else "vgg11")
    train = TrainConfig(lr=0.1, steps=steps, batch_size=8 if tiny else 128, probe_every=probe_every,
                        eval_every=max(1, steps // 10), train_eval_size=64 if tiny else 1000,
                        autocast=autocast, channels_last=channels_last, compile=compile)
    probes = (Probe("ics"), Probe("landscape", (("multipliers", VGG_MULTIPLIERS),)))
    return [Experiment(data=data, model=replace(model, norm=norm), train=replace(train, lr=lr), probes=probes)
            for lr in lrs for norm in norms]


def timed_run(exp: Experiment) -> dict:
    """Train one experiment uncached; what it cost and what it reached (plain data, for joblib)."""
    t0 = time.perf_counter()
    h = run(exp, cache=False)
    return {"label": exp.label(), "lr": exp.train.lr, "steps_run": len(h.loss), "diverged_at": h.diverged_at,
            "loop_s": h.seconds, "wall_s": time.perf_counter() - t0, "final_loss": h.final_loss,
            "final_test_acc": h.final_test_acc, "probe_steps": len(h.probe_steps)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on any device (checks that it runs)")
    ap.add_argument("--data", default=None, help="data set name (default synthetic_cifar10; tiny: synthetic_images)")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default 15,000; tiny 6)")
    ap.add_argument("--probe-every", type=int, default=None, help="probe interval (default 100; tiny 3)")
    ap.add_argument("--jobs", type=int, default=1, help="experiments run at once (processes)")
    ap.add_argument("--autocast", choices=("bfloat16", "float16"), default=None, help="mixed precision")
    ap.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    ap.add_argument("--compile", default=None, metavar="BACKEND",
                    help="torch.compile backend for the training steps, e.g. inductor (fuses the BN's kernels)")
    args = ap.parse_args(argv)
    dev = config.device()
    if dev.type != "cuda" and not args.tiny:
        print("no CUDA device: run with --tiny to check the script on the CPU", file=sys.stderr)
        return 2
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    tiny = args.tiny
    exps = suite(tiny=tiny, data=args.data or ("synthetic_images" if tiny else "synthetic_cifar10"),
                 steps=args.steps or (6 if tiny else 15_000), probe_every=args.probe_every or (3 if tiny else 100),
                 autocast=args.autocast, channels_last=args.channels_last, compile=args.compile)
    info = machine()
    where = info.get("gpu", info["cpu"])
    print(f"[suite] {len(exps)} runs x {exps[0].train.steps} steps on {where}, {args.jobs} at a time", file=sys.stderr,
          flush=True)
    t0 = time.perf_counter()
    if args.jobs == 1:
        results = []
        for e in exps:
            results.append(timed_run(e))
            print(f"[suite] {results[-1]['label']} lr {e.train.lr}: {results[-1]['wall_s']:.1f} s", file=sys.stderr,
                  flush=True)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=args.jobs, backend="loky")(delayed(timed_run)(e) for e in exps)
    total = time.perf_counter() - t0

    rows = []
    for r in results:
        steps = r["steps_run"]
        note = (f"{1000 * r['loop_s'] / max(steps, 1):.2f} ms/step with probes; final test acc "
                f"{r['final_test_acc']:.3f}" + (f"; diverged at step {r['diverged_at']}" if r["diverged_at"] else ""))
        rows.append(row("suite", f"{r['label']} lr {r['lr']}: {steps} steps, {r['probe_steps']} probe steps",
                        r["wall_s"], unit="s", note=note))
    settings = (f"{len(exps)} runs x {exps[0].train.steps} steps, {args.jobs} at a time, autocast "
                f"{args.autocast}, channels-last {args.channels_last}, compile {args.compile}, data {exps[0].data}")
    rows.append(row("suite", "Santurkar suite, end to end (wall clock)", total, unit="s",
                    goal="" if tiny else f"<= {GOAL_S}", note=settings))
    text = print_table(rows, title=f"Santurkar suite ({'tiny' if tiny else 'paper scale'}) on {where}")
    result = {"machine": info, "tiny": tiny, "jobs": args.jobs, "experiments": [asdict(e) for e in exps],
              "runs": results, "rows": [r.as_dict() for r in rows], "table": text, "seconds": total}
    print(f"JSON: {write_json('suite.json', result)}; {total:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
