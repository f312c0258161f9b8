"""Wall-clock timing of a piece of code, for the chapters that compare the cost of two
computations (a gradient against a Hessian-vector product, a full-batch step against a
mini-batch one), by PyTorch's benchmark timer (:class:`torch.utils.benchmark.Timer`): it warms
up before each block and, when a GPU (any accelerator) is present, synchronises it before
reading the clock, so that asynchronous kernels are counted where they run. PyTorch runs on one
thread unless ``$BNBOOK_THREADS`` says otherwise (:func:`bnutils.config.set_threads`), and the
timer keeps the thread count it finds, so a time is the cost of the work on one core.

Not a run module: nothing here is part of an experiment's cache key.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils import benchmark

__all__ = ["time_per_step"]


def time_per_step(fn: Callable[[], object], number: int = 10, repeats: int = 5, warmup: int = 2) -> float:
    """Seconds per call of ``fn()``: the fastest of ``repeats`` blocks of ``number`` calls
    (the minimum, as ``timeit`` advises, is the least disturbed by other work on the machine).

    ``fn`` is first called ``warmup`` times untimed; :meth:`torch.utils.benchmark.Timer.timeit`
    then times each block, after its own warm-up of ``max(number // 100, 2)`` calls, on the torch
    thread count in force when ``time_per_step`` is called (the Timer's default would be one)."""
    if number < 1 or repeats < 1:
        raise ValueError(f"number and repeats must be >= 1, got {number} and {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return min(timer.timeit(number).times[0] for _ in range(repeats))
