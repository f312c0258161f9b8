"""Wall-clock timing of a piece of code, for the chapters that compare the cost of two
computations (a gradient against a Hessian-vector product, a full-batch step against a
mini-batch one). PyTorch runs on one thread unless ``$BNBOOK_THREADS`` says otherwise
(:func:`bnutils.config.set_threads`), so a time is the cost of the work on one core.

Not a run module: nothing here is part of an experiment's cache key.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["time_per_step"]


def time_per_step(fn: Callable[[], object], number: int = 10, repeats: int = 5, warmup: int = 2) -> float:
    """Seconds per call of ``fn()``: the fastest of ``repeats`` blocks of ``number`` calls
    (the minimum, as ``timeit`` advises, is the least disturbed by other work on the machine)."""
    if number < 1 or repeats < 1:
        raise ValueError(f"number and repeats must be >= 1, got {number} and {repeats}")
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best
