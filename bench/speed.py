"""How fast this machine is right now, measured on the book's own kinds of run.

The 2-core development machine is a virtual machine whose speed changes between sittings, and not by
one factor for every workload (bench/RESULTS.md, 2026-12-01, seventh session): the same deep linear
network run (1,000 steps) took 10.9 s, and 40 minutes later 20.8 s, while an MLP run took 1.49 s and
1.60 s; the same pip install took 128 s and, right after, 170 s. So a book or test time says little
on its own, and the next regression could hide in that noise.
``make bench-book`` therefore times three short reference runs before and after its commands, one of
each kind the book trains, and records them beside its times. Two times of the book can be compared
when their reference runs agree too.

    python -m bench.speed          # prints {"mlp_bn": s, "cnn_bn": s, "dln_bn": s} as JSON

Each run is one :class:`bnutils.experiments.Experiment` trained without the cache (one torch thread,
as in the book), after a ten-step warm-up of the same kind; the figure is the time of its training
loop (``History.seconds``: its steps, and its evaluations at the first and the last step). The CNN's
two evaluations of 2,000 images were about a third of its time until evaluation ran in chunks of
250 (``bnutils.train.EVAL_CHUNK``, eighth session: 2.45-2.79 s before, 1.95 s after), so its times
compare only within one version of the code.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnutils.experiments import Experiment, sweep  # noqa: E402
from bnutils.models import ModelConfig  # noqa: E402
from bnutils.train import TrainConfig  # noqa: E402

# one run of each kind, 1-3 s each on the development machine
REFERENCE = {
    # the MLP of benefits' rate sweep, with BN: matrix products of a useful size
    "mlp_bn": Experiment(data="mnist5k", model=ModelConfig(norm="bn"),
                         train=TrainConfig(lr=0.1, steps=300, eval_every=300)),
    # the small CNN, channels-last as in the book: oneDNN's convolutions and pooling
    "cnn_bn": Experiment(data="mnist5k_images", model=ModelConfig(arch="cnn", norm="bn"),
                         train=TrainConfig(lr=0.05, steps=20, eval_every=20, channels_last=True)),
    # the deep linear network with BN: 10 x 10 matrices, so per-operation overhead, not arithmetic
    "dln_bn": Experiment(data="gaussian_linear", model=ModelConfig(arch="deep_linear", init="glorot", norm="bn"),
                         train=TrainConfig(lr=2e-8, steps=100, batch_size=None, loss="sse", eval_every=100)),
}


def _with_steps(exp: Experiment, steps: int) -> Experiment:
    return replace(exp, train=replace(exp.train, steps=steps, eval_every=steps))


def measure(fraction: float = 1.0) -> dict[str, float]:
    """Training seconds of each reference run, at ``fraction`` of its steps (tests use a small one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    out = {}
    for name, exp in REFERENCE.items():
        steps = max(1, round(exp.train.steps * fraction))
        sweep([_with_steps(exp, min(10, steps))], cache=False, jobs=1)  # data loaded, kernels chosen
        (hist,) = sweep([_with_steps(exp, steps)], cache=False, jobs=1)
        out[name] = hist.seconds
    return out


def main() -> int:
    print(json.dumps(measure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
