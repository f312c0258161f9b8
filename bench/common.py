"""Timing helpers shared by the benchmarks.

Timings on a shared machine are noisy, so nothing here reports a bare time as the result: every
variant is timed in interleaved rounds (the order rotates each round) and a variant's figure is the
median over rounds of its time *divided by the baseline's time in the same round*.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch


def sync(device=None) -> None:
    """Wait for queued GPU work (a no-op on the CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1,
                setup: Callable[[str], object] | None = None, device=None) -> dict[str, list[float]]:
    """Seconds per call of each function, ``rounds`` times each, interleaved.

    ``setup(name)`` (untimed) runs before each timed call, e.g. to build a fresh model.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            if setup is not None:
                setup(name)
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            if setup is not None:
                setup(name)
            sync(device)
            t0 = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def per_call(fn: Callable[[], object], min_time: float = 0.05, device=None) -> Callable[[], float]:
    """Wrap a fast ``fn`` so that one call runs it ``n`` times (``n`` chosen once so that a call
    takes about ``min_time`` seconds); the timed call's result divided by ``n`` is seconds per ``fn``."""
    fn()
    sync(device)
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync(device)
        t = time.perf_counter() - t0
        if t >= min_time or n >= 1 << 16:
            break
        n *= 2

    def many():
        for _ in range(n):
            fn()

    many.n = n  # type: ignore[attr-defined]
    return many


def paired_ratio(times: Mapping[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of ``times[name][r] / times[base][r]``."""
    return statistics.median(a / b for a, b in zip(times[name], times[base]))


def median(values) -> float:
    return statistics.median(values)


def machine() -> dict:
    """What ran the benchmark: CPU model, cores, torch, threads, load when it started, GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@dataclass
class Row:
    """One line of the results table."""

    section: str  # "loop", "bn", "probes", "cache", "book", "gpu"
    name: str  # what was measured
    value: float  # the figure (usually a ratio)
    unit: str = "x"  # "x" for a ratio, "ms", "s", "img/s", ...
    goal: str = ""  # e.g. "<= 1.05"; empty: reported, no goal
    met: bool | None = None  # None: no goal
    note: str = ""  # what the ratio is against, medians, etc.
    extra: dict = field(default_factory=dict)  # raw times and details for the JSON

    def as_dict(self) -> dict:
        return asdict(self)


def check(value: float, goal: str) -> bool | None:
    """``goal`` like ``"<= 1.05"``, ``"< 1"``, ``">= 10"``; None when there is no goal."""
    if not goal:
        return None
    op, bound = goal.split()
    bound = float(bound)
    return {"<=": value <= bound, "<": value < bound, ">=": value >= bound, ">": value > bound}[op]


def row(section, name, value, unit="x", goal="", note="", **extra) -> Row:
    return Row(section, name, float(value), unit, goal, check(float(value), goal), note, extra)


def fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.3f}x"
    if unit in ("img/s", "steps/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:.4g} {unit}"


def print_table(rows: list[Row], title: str = "") -> str:
    """The rows as one plain-text table (also returned)."""
    head = ("section", "measurement", "value", "goal", "status", "note")
    body = []
    for r in rows:
        status = "-" if r.met is None else ("ok" if r.met else "MISSED")
        body.append((r.section, r.name, fmt(r.value, r.unit), r.goal or "-", status, r.note))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(str(h).ljust(w) for h, w in zip(head, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(b, widths)).rstrip())
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def write_json(name: str, result: dict) -> Path:
    """Write ``result`` as ``$OUT/<name>`` when ``$OUT`` is set (the GPU machine sends back what is
    there), else ``_build/bench/<name>``; returns the path."""
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).resolve().parent.parent / "_build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(result, indent=1, default=str))
    return path
