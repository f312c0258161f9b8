"""An interrupted run leaves the cache usable: joblib writes each entry atomically (to a temporary
name, then renamed), so a process killed mid-experiment leaves no half-written entry behind and the
next run simply computes it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bnutils import experiments as E
from bnutils.models import ModelConfig
from bnutils.train import TrainConfig

SCRIPT = textwrap.dedent("""
    import sys, time
    from bnutils import experiments as E
    from bnutils.models import ModelConfig
    from bnutils import train
    from bnutils.train import TrainConfig
    evaluate = train.evaluate

    def announce(*args, **kwargs):  # the first evaluation (step 0): the cached run is under way
        print("training", flush=True)
        train.evaluate = evaluate
        return evaluate(*args, **kwargs)

    train.evaluate = announce
    print("started", flush=True)
    E.run(E.Experiment(data="digits", model=ModelConfig(hidden=(16,)), train=TrainConfig(steps=10**6, eval_every=10**5)))
""")


@pytest.mark.e2e  # a fresh interpreter imports torch and trains until it is killed: make test-e2e
def test_killed_run_leaves_no_entry_and_next_run_computes(tmp_path, monkeypatch):
    env = dict(os.environ, BNBOOK_CACHE=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    assert proc.stdout.readline().strip() == "training"  # inside the cached call, a million steps to go
    time.sleep(0.5)  # some steps taken
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not list(tmp_path.rglob("output.pkl")), "a killed run left a cache entry"
    monkeypatch.setenv("BNBOOK_CACHE", str(tmp_path))
    E._memory.cache_clear()
    try:
        h = E.run(E.Experiment(data="digits", model=ModelConfig(hidden=(16,)), train=TrainConfig(steps=20, eval_every=10)))
        assert len(h.loss) == 20
        assert list(tmp_path.rglob("output.pkl"))
    finally:
        E._memory.cache_clear()


# ----------------------------------------------------------------------------- probes never disturb

import torch
import torch.nn.functional as F

from bnutils import models
from helpers import assert_undisturbed


@pytest.mark.parametrize("kind", sorted(E.PROBES))
@pytest.mark.parametrize("norm", [None, "bn", "noisy_bn"])
def test_every_registered_probe_leaves_everything_as_it_was(kind, norm):
    """The one shared check for every probe the experiments can run: parameters, gradients,
    BN running statistics, train/eval modes, the optimiser's state and the random state."""
    torch.manual_seed(0)
    model = models.mlp(12, [8, 8], 3, act="sigmoid", norm=norm)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))
    F.cross_entropy(model(x), y).backward()
    opt.step()  # momentum buffers exist, and .grad is populated: both must survive the probe
    probe = E.PROBES[kind]
    result = assert_undisturbed(model, lambda: probe(model, x, y, lr=0.1, loss_fn=F.cross_entropy), optimizer=opt)
    assert result is not None


def test_a_sweep_with_diverging_runs_completes():
    exps = [E.Experiment(data="digits", model=ModelConfig(hidden=(16,), act="identity"),
                         train=TrainConfig(lr=lr, steps=100, eval_every=50)) for lr in (0.1, 1e4)]
    hists = E.sweep(exps, cache=False)
    df = E.table(hists)
    assert list(df["diverged"]) == [False, True]
    assert df["diverged_at"].iloc[1] > 0
