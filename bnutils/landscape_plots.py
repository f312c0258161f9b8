r"""The landscape probes of groups of runs, drawn and compared (Santurkar et al.'s §3.2 figures).

A group of runs is ``{norm: [History, ...]}``, one history per seed, whose ``"landscape"`` probe
(:func:`bnutils.landscape.landscape_probe`) recorded the three quantities of the walk at each
probed step. This module draws them (:func:`landscape_figure`), pairs two groups seed by seed
(:func:`ratios`: normalised / standard), summarises a ratio after a plateau (:func:`late_ratio`)
and draws it (:func:`ratio_figure`). It is used around the runs, never by them: editing it keeps
every cached run.

>>> fig, axes = plot.panels(1, 3)  # doctest: +SKIP
>>> landscape_figure({None: plain, "bn": with_bn}, axes, title="MLP")  # doctest: +SKIP
>>> late_ratio({None: plain, "bn": with_bn}, "loss_range", after=50)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from . import plot
from .experiments import probe_array
from .train import History

__all__ = ["QUANTITIES", "geomean", "landscape_figure", "ratios", "late_ratio", "ratio_figure"]

# The walk's three summaries (keys of the landscape probe), with their names for readers.
QUANTITIES = {"loss_range": "loss variation", "grad_predictiveness": "gradient predictiveness",
              "beta_smoothness": r"effective $\beta$-smoothness"}

Runs = Mapping[object, Sequence[History]]


def geomean(values) -> float:
    """The geometric mean, ``exp(mean(log(values)))`` (for ratios: a factor of 2 up and one of 2
    down average to 1)."""
    return float(np.exp(np.mean(np.log(values))))


def landscape_figure(runs: Runs, axes, prefix: str = "", title: str = "") -> None:
    """Three panels, one per quantity of :data:`QUANTITIES`, into ``axes`` (three axes of one
    figure, e.g. ``plot.panels(1, 3)``: two a row on a phone): mean and band (log scale) over seeds
    at each probed step, one curve per group of ``runs``; a cross marks where a run diverged, at
    its last finite probe (:func:`bnutils.plot.mark_diverged`). ``prefix="random_"`` draws the walk along the random direction. Returns nothing,
    so that a cell ending with it shows the figure once."""
    axes = list(np.ravel(axes))
    if len(axes) < 3:
        raise ValueError(f"landscape_figure draws three panels, got {len(axes)} axes")
    fig = axes[0].figure
    for ax, (key, name) in zip(axes, QUANTITIES.items()):
        for norm, hists in runs.items():
            plot.curves(ax, hists, prefix + key, probe="landscape", label=plot.label(norm), color=plot.color(norm),
                        log=True, marker="o", ms=3)
        ax.set_title(name)
        ax.set_xlabel("training step")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()


def ratios(runs: Runs, key: str, norm="bn", base=None) -> tuple[np.ndarray, np.ndarray]:
    """``runs[norm] / runs[base]`` of one probe quantity, paired by seed, at each probed step:
    (steps, seeds x steps)."""
    for name in (norm, base):
        if name not in runs:
            raise KeyError(f"no group {name!r} in the runs (they have {list(runs)})")
    steps, a = probe_array(runs[norm], key)
    _, b = probe_array(runs[base], key)
    if a.shape != b.shape:
        raise ValueError(f"{norm!r} and {base!r} differ in seeds or probes: {a.shape} and {b.shape}")
    return steps, a / b


def late_ratio(runs: Runs, key: str, norm="bn", base=None, *, after: int) -> np.ndarray:
    """Per seed: the geometric mean of :func:`ratios` over the probes at steps ``>= after`` (past a
    plateau)."""
    steps, r = ratios(runs, key, norm, base)
    return 10 ** np.nanmean(np.log10(r[:, steps >= after]), axis=1)


def ratio_figure(runs: Runs, ax, after: int, keys: Iterable[str] = QUANTITIES, base=None, others=("bn",),
                 prefix: str = "", title: str = "") -> None:
    """:func:`ratios` of each quantity in ``keys`` (and each group in ``others``) against ``base``,
    into ``ax``: mean and band over seeds (log scale), a black line at 1, the steps before ``after``
    shaded. Returns nothing, so that a cell ending with it shows no value after the figure."""
    for key in keys:
        for norm in others:
            steps, r = ratios(runs, prefix + key, norm, base)
            plot.band(ax, steps, r, label=f"{QUANTITIES.get(key, key)}" + (f" ({plot.label(norm)})" if len(others) > 1 else ""),
                      log=True, marker="o", ms=3)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axvspan(0, after, color="0.9", zorder=0)
    ax.set_xlabel("training step")
    ax.set_ylabel("BN / standard")
    ax.set_title(title)
    ax.legend(fontsize=8)
