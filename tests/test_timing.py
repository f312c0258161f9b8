"""bnutils.timing.time_per_step on torch.utils.benchmark.Timer: seconds per call, the fastest block,
on the thread count in force; the path without a GPU here, the synchronised one where CUDA is."""

import os
import subprocess
import sys
import time

import pytest
import torch

from bnutils.timing import time_per_step


def test_seconds_per_call_the_fastest_block():
    t = time_per_step(lambda: time.sleep(0.004), number=3, repeats=3, warmup=0)
    assert 0.004 <= t < 0.04  # a sleep of 4 ms is at least 4 ms a call, and never ten times that


def test_calls_and_arguments():
    calls = []
    time_per_step(lambda: calls.append(1), number=3, repeats=2, warmup=1)
    assert len(calls) == 1 + 2 * (3 + 2)  # warm-up, then each block after the Timer's own two
    with pytest.raises(ValueError, match="number and repeats"):
        time_per_step(lambda: None, number=0)
    with pytest.raises(ValueError, match="warmup"):
        time_per_step(lambda: None, warmup=-1)


def test_without_cuda_on_the_threads_in_force():
    # CUDA hidden: the Timer reads the clock without synchronising anything, on the torch thread
    # count the caller set (torch's Timer alone would time on one thread), and leaves it set
    code = (
        "import torch\n"
        "from bnutils.timing import time_per_step\n"
        "torch.set_num_threads(2)\n"
        "seen = set()\n"
        "a = torch.randn(64, 64)\n"
        "t = time_per_step(lambda: seen.add(torch.get_num_threads()) or a @ a, number=5, repeats=2)\n"
        "assert not torch.cuda.is_available() and not torch.accelerator.is_available()\n"
        "assert 0 < t < 1, t\n"
        "print(sorted(seen), torch.get_num_threads())\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[2]", "2"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_kernels_are_waited_for():
    # a kernel that spins for 2e7 cycles (about 10 ms) returns to Python at once: only a timer that
    # synchronises the GPU before reading the clock sees its cost
    torch.cuda.init()
    t = time_per_step(lambda: torch.cuda._sleep(20_000_000), number=3, repeats=2)
    assert t > 2e-3
