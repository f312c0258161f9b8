"""Where the book runs: the scale of its experiments and the device.

Every notebook reads one environment variable, ``BNBOOK_SCALE``:

* ``smoke`` -- tests and CI, every notebook in well under a minute;
* ``book``  -- the default, what the published book runs on a laptop CPU;
* ``paper`` -- the papers' own sizes, meant for a GPU.

The same code runs at every scale; only sizes change, through :func:`pick`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

SCALES = ("smoke", "book", "paper")
DEFAULT_SCALE = "book"


def get_scale(value: str | None = None) -> str:
    """The scale named by ``value`` or, if None, by ``$BNBOOK_SCALE`` (default ``book``).

    >>> get_scale("smoke")
    'smoke'
    """
    if value is None:
        value = os.environ.get("BNBOOK_SCALE", DEFAULT_SCALE)
    name = str(value).strip().lower()
    if name not in SCALES:
        raise ValueError(
            f"BNBOOK_SCALE must be one of {', '.join(repr(s) for s in SCALES)}, got {value!r}"
        )
    return name


def pick(smoke, book, paper=None, *, scale: str | None = None):
    """Choose a size by scale: ``steps = pick(smoke=50, book=2000, paper=50000)``.

    ``paper`` defaults to the ``book`` value when a quantity does not change at paper scale.
    """
    scale = get_scale(scale)
    if scale == "smoke":
        return smoke
    if scale == "book" or paper is None:
        return book
    return paper


def device() -> torch.device:
    """CUDA when present (or ``$BNBOOK_DEVICE`` when set), else the CPU."""
    name = os.environ.get("BNBOOK_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(n: int | None = None) -> int:
    """Set PyTorch's CPU threads to ``n`` or ``$BNBOOK_THREADS`` (default 1) and return it.

    The book's networks are small: with more than one thread PyTorch spends more time waking
    threads than multiplying (measured on a 2-core machine: 300 MLP steps took 0.4 s with one
    thread and 20 s with two while anything else ran). ``import bnutils`` calls this once.
    """
    if n is None:
        n = int(os.environ.get("BNBOOK_THREADS", "1"))
    if n < 1:
        raise ValueError(f"BNBOOK_THREADS must be a positive int, got {n}")
    torch.set_num_threads(n)
    return n


def seed_offset(value: str | None = None) -> int:
    """``$BNBOOK_SEED_OFFSET`` (default 0): added to every seed of the book, so that one variable
    re-runs every experiment with seeds nobody picked (``BNBOOK_SEED_OFFSET=1000``: seed 0 becomes
    1000). Each :class:`bnutils.experiments.Experiment` records it, and it is part of the cache key.

    >>> seed_offset("1000")
    1000
    """
    if value is None:
        value = os.environ.get("BNBOOK_SEED_OFFSET", "0")
    try:
        offset = int(str(value).strip() or "0")
    except ValueError:
        raise ValueError(f"BNBOOK_SEED_OFFSET must be a non-negative int, got {value!r}") from None
    if offset < 0:
        raise ValueError(f"BNBOOK_SEED_OFFSET must be a non-negative int, got {value!r}")
    return offset


def cache_dir() -> Path:
    """Where the book keeps what it computed: ``$BNBOOK_CACHE``, else ``_build/cache`` beside the
    package's checkout (also when ``BNBOOK_CACHE=off``, which turns the experiments' cache off
    but not the claims ledgers)."""
    env = os.environ.get("BNBOOK_CACHE", "")
    return Path(env) if env and env != "off" else Path(__file__).resolve().parent.parent / "_build" / "cache"


def claims_dir(scale: str | None = None) -> Path | None:
    """Where the claims ledgers of one scale live (:mod:`bnutils.claims`): ``$BNBOOK_CLAIMS/<scale>``,
    else beside the experiment cache (``<cache>/<scale>/claims``, so that ``make book-robust``'s
    variants keep theirs apart); ``None`` when ``BNBOOK_CLAIMS=off``."""
    scale = get_scale(scale)
    env = os.environ.get("BNBOOK_CLAIMS", "")
    if env == "off":
        return None
    if env:
        return Path(env) / scale
    return cache_dir() / scale / "claims"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) with ``seed + seed_offset()``: a chapter's
    seed 0 is the book's seed ``$BNBOOK_SEED_OFFSET``."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed_exactly(seed + seed_offset())


def seed_exactly(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) with ``seed`` itself (no offset)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
