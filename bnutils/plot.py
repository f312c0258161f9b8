"""One house style for every figure: seaborn's, with curves drawn as a mean and a band over seeds,
and diverged runs marked where they stopped (a cross), never silently dropped."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .train import History

PALETTE = {
    "standard": "#4C72B0",
    None: "#4C72B0",
    "bn": "#DD8452",
    "torch_bn": "#DD8452",
    "noisy_bn": "#55A868",
    "noise": "#8172B3",
    "l1": "#C44E52",
    "l2": "#937860",
    "linf": "#DA8BC3",
    "layer": "#8C8C8C",
    "group": "#CCB974",
}

LABELS = {None: "standard", "standard": "standard", "bn": "BN", "torch_bn": "BN (PyTorch)",
          "noisy_bn": "noisy BN", "noise": "noise, no BN", "l1": "$\\ell_1$ norm", "l2": "$\\ell_2$ norm",
          "linf": "$\\ell_\\infty$ norm", "layer": "LayerNorm", "group": "GroupNorm"}


def set_style() -> None:
    """Seaborn's whitegrid on an opaque white figure, so figures read in light and dark themes."""
    sns.set_theme(style="whitegrid", context="notebook", palette="deep")
    plt.rcParams.update({
        "figure.figsize": (6.4, 3.6),
        "figure.dpi": 100,
        "savefig.dpi": 120,
        "figure.facecolor": "white",
        "savefig.facecolor": "white",
        "axes.facecolor": "white",
        "legend.frameon": False,
    })


def color(norm) -> str:
    return PALETTE.get(norm, None) or sns.color_palette()[hash(str(norm)) % 10]


def label(norm) -> str:
    return LABELS.get(norm, str(norm))


def band(ax, x, values, label=None, color=None, kind: str = "std", log: bool = False, **line_kw):
    """Draw the mean of ``values`` (seeds x points) against ``x`` with a band.

    ``kind``: ``"std"`` (mean +- one standard deviation), ``"minmax"`` (range over seeds) or
    ``"ci"`` (a 95% normal interval of the mean). NaNs (a diverged seed) are ignored pointwise.
    With ``log=True`` the mean and band are taken of log10(values) (for log-scale axes).
    """
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[None, :]
    x = np.asarray(x)
    if v.shape[1] != len(x):
        raise ValueError(f"values have {v.shape[1]} points but x has {len(x)}")
    if log:
        v = np.log10(np.where(v > 0, v, np.nan))
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(v, axis=0)
            if kind == "minmax":
                lo, hi = np.nanmin(v, axis=0), np.nanmax(v, axis=0)
            else:
                sd = np.nanstd(v, axis=0)
                if kind == "ci":
                    sd = 1.96 * sd / np.sqrt(np.maximum(1, np.sum(np.isfinite(v), axis=0)))
                elif kind != "std":
                    raise ValueError(f"kind must be 'std', 'minmax' or 'ci', got {kind!r}")
                lo, hi = mean - sd, mean + sd
    if log:
        mean, lo, hi = 10 ** mean, 10 ** lo, 10 ** hi
        ax.set_yscale("log")
    (line,) = ax.plot(x, mean, label=label, color=color, **line_kw)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def _stack(series: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Pad runs that stopped early (diverged) with NaN so they stack into seeds x points."""
    out = np.full((len(series), length), np.nan)
    for i, s in enumerate(series):
        s = np.asarray(s, dtype=float)[:length]
        out[i, :len(s)] = s
    return out


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average (window 1 leaves ``y`` as it is)."""
    y = np.asarray(y, dtype=float)
    if window <= 1 or len(y) < window:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    head = c[1:window] / np.arange(1, window)
    return np.concatenate([head, (c[window:] - c[:-window]) / window])


def curves(ax, histories: Sequence[History], key: str = "loss", label=None, color=None,
           smooth_window: int = 1, log: bool = False, kind: str = "std"):
    """Mean and band over seeds of one quantity of a group of histories.

    ``key``: ``"loss"`` (per-step training loss, optionally smoothed) or one of the evaluated
    series ``"train_loss"``, ``"train_acc"``, ``"test_loss"``, ``"test_acc"``. A run that diverged
    is drawn up to its last finite point and marked with a cross at the step it diverged.
    """
    if not histories:
        raise ValueError("curves needs at least one history")
    if key == "loss":
        length = max(h.config["train"]["steps"] for h in histories)
        x = np.arange(length)
        series = [smooth(h.loss, smooth_window) for h in histories]
    else:
        longest = max(histories, key=lambda h: len(h.eval_steps))
        x = longest.eval_steps
        length = len(x)
        series = [getattr(h, key) for h in histories]
    v = _stack(series, length)
    line = band(ax, x, v, label=label, color=color, log=log, kind=kind)
    mark_diverged(ax, histories, key, color=line.get_color())
    return line


def mark_diverged(ax, histories: Sequence[History], key: str = "loss", color=None) -> int:
    """Put a cross at the step where each diverged run stopped, at its last finite value.
    Returns how many were marked."""
    n = 0
    for h in histories:
        if not h.diverged:
            continue
        series = h.loss if key == "loss" else getattr(h, key)
        finite = np.asarray(series, dtype=float)
        finite = finite[np.isfinite(finite)]
        y = finite[-1] if len(finite) else (ax.get_ylim()[1])
        ax.plot([h.diverged_at], [y], marker="x", color=color or "k", markersize=9, mew=2,
                linestyle="none", label="diverged" if n == 0 else None)
        n += 1
    return n


def sweep_plot(ax, df, x: str, y: str, hue: str, log_x: bool = True, diverged_y=None):
    """A sweep's result (a :func:`bnutils.experiments.table`) as mean and band of ``y`` against
    ``x`` per ``hue`` group; diverged runs are drawn as crosses at ``diverged_y`` (default: the top
    of the axis) so a reader sees where a setting blew up."""
    import pandas as pd

    for name, g in df.groupby(hue, dropna=False, sort=False):
        key = None if (isinstance(name, float) and np.isnan(name)) else name
        xs = np.sort(g[x].unique())
        vals = np.full((g.groupby(x).size().max(), len(xs)), np.nan)
        for j, xv in enumerate(xs):
            col = g.loc[(g[x] == xv) & (~g["diverged"]), y].to_numpy(dtype=float)
            vals[:len(col), j] = col
        line = band(ax, xs, vals, label=label(key), color=color(key), marker="o")
        dv = g[g["diverged"]]
        if len(dv):
            yv = diverged_y if diverged_y is not None else np.nanmax(df.loc[~df["diverged"], y]) if (~df["diverged"]).any() else 1.0
            ax.plot(dv[x], np.full(len(dv), yv), "x", color=line.get_color(), markersize=9, mew=2)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    return ax
