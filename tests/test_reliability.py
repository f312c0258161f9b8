"""An interrupted run leaves the cache usable: joblib writes each entry atomically (to a temporary
name, then renamed), so a process killed mid-experiment leaves no half-written entry behind and the
next run simply computes it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from bnutils import experiments as E
from bnutils.models import ModelConfig
from bnutils.train import TrainConfig

SCRIPT = textwrap.dedent("""
    import sys, time
    from bnutils import experiments as E
    from bnutils.models import ModelConfig
    from bnutils.train import TrainConfig
    print("started", flush=True)
    E.run(E.Experiment(data="digits", model=ModelConfig(hidden=(16,)), train=TrainConfig(steps=10**6, eval_every=10**5)))
""")


def test_killed_run_leaves_no_entry_and_next_run_computes(tmp_path, monkeypatch):
    env = dict(os.environ, BNBOOK_CACHE=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(3)  # training (a million steps) is under way
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not list(tmp_path.rglob("output.pkl")), "a killed run left a cache entry"
    monkeypatch.setenv("BNBOOK_CACHE", str(tmp_path))
    E.memory.cache_clear()
    try:
        h = E.run(E.Experiment(data="digits", model=ModelConfig(hidden=(16,)), train=TrainConfig(steps=20, eval_every=10)))
        assert len(h.loss) == 20
        assert list(tmp_path.rglob("output.pkl"))
    finally:
        E.memory.cache_clear()
