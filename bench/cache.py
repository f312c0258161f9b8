"""The experiment cache: a notebook-like group of experiments (three seeds of the Ioffe MLP) run
through ``bnutils.experiments.sweep`` with the joblib cache in a fresh temporary directory. The
first run trains; running it again with nothing changed must load, not train (goal: >= 10x faster);
changing one experiment's config must re-train that one only."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import replace

import torch

from bnutils import experiments as E
from bnutils.models import ModelConfig
from bnutils.train import TrainConfig

from .common import row


def _forget_memory():
    """Make bnutils read $BNBOOK_CACHE again (older versions kept memory() in an lru_cache)."""
    clear = getattr(E.memory, "cache_clear", None)
    if clear is not None:
        clear()


def notebook_experiments(steps: int) -> list:
    exp = E.Experiment(
        data="mnist5k",
        model=ModelConfig(hidden=(100, 100, 100), act="sigmoid", norm="bn", init="gaussian", init_scale=0.01),
        train=TrainConfig(lr=1.0, steps=steps, batch_size=60, eval_every=max(1, steps // 5)),
    )
    return E.seeds(exp, 3)


def run(tiny: bool = False) -> list:
    steps = 20 if tiny else 500
    exps = notebook_experiments(steps)
    old = os.environ.get("BNBOOK_CACHE")
    with tempfile.TemporaryDirectory(prefix="bnbook-bench-cache-") as tmp:
        os.environ["BNBOOK_CACHE"] = tmp
        _forget_memory()
        try:
            # Once per process, whatever the loop: the data set is loaded, and the first torch.optim
            # optimiser imports torch._dynamo (seconds). Done before timing, so the ratio is about
            # training versus loading from the cache, not about imports.
            E.load_data(exps[0].data)
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
            t0 = time.perf_counter()
            first = E.sweep(exps)
            cold = time.perf_counter() - t0
            warm_times = []
            for _ in range(3 if tiny else 7):
                t0 = time.perf_counter()
                again = E.sweep(exps)
                warm_times.append(time.perf_counter() - t0)
            warm = statistics.median(warm_times)
            identical = all(a == b for a, b in zip(first, again))
            # change one experiment: only it is trained again
            changed = list(exps)
            changed[1] = replace(changed[1], train=replace(changed[1].train, lr=0.5))
            cached_fn = E.memory().cache(E._run)
            dev = str(E._config.device())
            in_cache = [cached_fn.check_call_in_cache(e, E.code_version(), dev, "float32", E.platform(dev))
                        for e in changed]
            t0 = time.perf_counter()
            E.sweep(changed)
            one_changed = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("BNBOOK_CACHE", None)
            else:
                os.environ["BNBOOK_CACHE"] = old
            _forget_memory()
    speedup = cold / warm
    retrained = in_cache.count(False)
    return [
        row("cache", "re-run unchanged (3 x Ioffe MLP) : first run / re-run", speedup, goal=">= 10",
            note=f"first {cold:.2f} s, re-run {1000 * warm:.0f} ms (median of {len(warm_times)}); "
                 f"{'identical' if identical else 'DIFFERENT'} histories; {steps} steps each",
            cold_s=cold, warm_s=warm_times, identical=identical),
        row("cache", "one config changed: experiments re-trained", retrained, unit="of 3", goal="<= 1",
            note=f"took {one_changed:.2f} s ({one_changed / cold:.2f} of the first run)",
            in_cache=in_cache, seconds=one_changed),
    ]


def dynamo_import(repeats: int = 3) -> list:
    """Seconds that the first ``torch.optim`` optimiser of a process spends importing
    ``torch._dynamo``, against ``import torch`` itself (median of fresh processes)."""
    import subprocess
    import sys

    code = ("import time; t0 = time.perf_counter(); import torch; t1 = time.perf_counter(); "
            "torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1); t2 = time.perf_counter(); "
            "print(t1 - t0, t2 - t1)")
    pairs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        pairs.append(tuple(float(v) for v in out.stdout.split()))
    imp = statistics.median(p[0] for p in pairs)
    opt = statistics.median(p[1] for p in pairs)
    return [row("cache", "first optimiser of a process (imports torch._dynamo) / import torch", opt / imp,
                note=f"{opt:.1f} s vs {imp:.1f} s, median of {repeats} processes; paid once per notebook "
                     "kernel that trains, not by a cached re-run", seconds=pairs)]
