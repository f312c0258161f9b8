"""One house style for every figure: seaborn's, with curves drawn as a mean and a band over seeds,
and diverged runs marked where they stopped (a cross), never silently dropped."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .experiments import frame, wide
from .language import edition, translate
from .train import History

# One colour, line style and marker per normalisation, the same in every figure of the book.
# The colours are Okabe & Ito's and Paul Tol's colour-blind-safe sets, picked and assigned so that
# the normalisations that share a figure stay apart under protanopia and deuteranopia (CIEDE2000,
# Machado et al.'s simulation) and every colour has at least 3:1 contrast on white (WCAG's
# threshold for graphics); tests/test_plot.py checks both. The line style and marker are a second
# cue, so that colour is never the only one. "x" is kept for diverged runs.
PALETTE = {
    "standard": "#0072B2",  # Okabe-Ito blue
    None: "#0072B2",
    "bn": "#000000",  # black
    "torch_bn": "#000000",  # the same layer, PyTorch's implementation: BN's colour, dashed
    "noisy_bn": "#009E73",  # Okabe-Ito bluish green
    "noise": "#332288",  # Tol indigo
    "l1": "#CC79A7",  # Okabe-Ito reddish purple
    "l2": "#AA3377",  # Tol purple
    "linf": "#999933",  # Tol olive
    "layer": "#EE6677",  # Tol red
    "group": "#117733",  # Tol green
}
STYLES = {  # (line style, marker)
    "standard": ("-", "o"),
    None: ("-", "o"),
    "bn": ("-", "s"),
    "torch_bn": ("--", "D"),
    "noisy_bn": ("--", "^"),
    "noise": (":", "v"),
    "l1": ("-.", "P"),
    "l2": ("--", "*"),
    "linf": (":", "h"),
    "layer": ("-.", "<"),
    "group": ((0, (5, 1, 1, 1)), ">"),
}
# Lines that are not a normalisation (a cycle of greys with their own dashes), so that no other
# figure borrows a normalisation's colour.
OTHER = ["#333333", "#777777", "#555555", "#999999"]

LABELS = {None: "standard", "standard": "standard", "bn": "BN", "torch_bn": "BN (PyTorch)",
          "noisy_bn": "noisy BN", "noise": "noise, no BN", "l1": "$\\ell_1$ norm", "l2": "$\\ell_2$ norm",
          "linf": "$\\ell_\\infty$ norm", "layer": "LayerNorm", "group": "GroupNorm"}


def set_style() -> None:
    """Seaborn's whitegrid on an opaque white figure, so figures read in light and dark themes;
    figures in notebooks at twice the pixel density (the inline backend's "retina" PNGs), so that
    they stay sharp on phones and high-density screens."""
    from cycler import cycler

    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({
        "figure.figsize": (6.4, 3.6),
        "figure.dpi": 100,
        "savefig.dpi": 200,
        "figure.facecolor": "white",
        "savefig.facecolor": "white",
        "axes.facecolor": "white",
        "legend.frameon": False,
        "axes.prop_cycle": cycler(color=OTHER) + cycler(linestyle=["-", "--", "-.", ":"]),
    })
    try:
        from IPython import get_ipython

        if get_ipython() is not None:
            from matplotlib_inline.backend_inline import set_matplotlib_formats

            set_matplotlib_formats("retina")
            _record_layout(get_ipython())
    except ImportError:  # plotting outside IPython: nothing to set
        pass
    set_edition(edition())


# ----- layouts that stay legible on a phone ----------------------------------------------------
#
# A notebook figure is one PNG, shown at its own width or the page's, whichever is smaller: on a
# 390 px phone the text column is about 360 CSS px wide. A row of four or five panels shrinks there
# to 70-90 px a panel, with tick labels a few pixels high. ``panels`` keeps the grid a chapter asks
# for (its ``axes[r, c]``) but lays it out at most ``MAX_COLS`` panels a row, each about
# ``PANEL`` inches wide, so that every panel keeps at least PHONE_PANEL_PX CSS px on a phone;
# tests/browser/test_figures.py measures it in Chromium at 390 px, from the panel count each
# figure's output records (``panels_per_row``, below).
MAX_COLS = 2
PANEL = (3.4, 2.6)  # inches (100 CSS px an inch at figure.dpi 100)
PHONE_PANEL_PX = 150
# A figure wider than two panels (6.8 in) is shrunk further on a phone, and its text with it: at
# 390 px a 10 in figure's tick labels are about 5 px high. No figure is wider than MAX_WIDTH, and
# every figure's tick labels keep at least PHONE_FONT_PX CSS px there (the browser test measures
# it from ``font_pt``, the smallest tick-label size each figure records next to panels_per_row).
MAX_WIDTH = MAX_COLS * PANEL[0]
PHONE_FONT_PX = 7


def panels(nrows: int, ncols: int, panel: tuple[float, float] = PANEL, max_cols: int = MAX_COLS,
           sharex=False, sharey=False, squeeze: bool = True, **subplot_kw):
    """``plt.subplots(nrows, ncols)`` for a grid that must read on a phone: the same ``axes``
    (indexed ``[r, c]`` as asked, squeezed like ``plt.subplots``), laid out with at most
    ``max_cols`` panels a row (the logical grid read row by row), each ``panel`` (width, height)
    inches. ``sharex``/``sharey``: False, True or "all", "row" or "col", over the logical grid.
    Other keywords go to every ``fig.add_subplot`` (``projection="3d"``).

    >>> fig, axes = panels(1, 5)   # five histograms: three rows of two, the last alone
    >>> axes.shape, [a.get_subplotspec().rowspan.start for a in axes]
    ((5,), [0, 0, 1, 1, 2])
    """
    n = nrows * ncols
    cols = max(1, min(max_cols, ncols, n))
    rows = -(-n // cols)
    fig = plt.figure(figsize=(cols * panel[0], rows * panel[1]))
    spec = fig.add_gridspec(rows, cols)
    grid = np.empty((nrows, ncols), dtype=object)
    for k in range(n):
        grid[k // ncols, k % ncols] = fig.add_subplot(spec[k // cols, k % cols], **subplot_kw)
    for share, axis in ((sharex, "x"), (sharey, "y")):
        if share in (False, None, "none"):
            continue
        for (r, c), ax in np.ndenumerate(grid):
            lead = {"row": grid[r, 0], "col": grid[0, c]}.get(share, grid[0, 0])
            if ax is not lead:
                getattr(ax, f"share{axis}")(lead)
    if not squeeze:
        return fig, grid
    if n == 1:
        return fig, grid[0, 0]
    if nrows == 1 or ncols == 1:
        return fig, grid.ravel()
    return fig, grid


def legend_below(fig, ax=None, ncol: int = 2, **kw):
    """One legend for the whole figure, centred under its panels (``ax``'s entries, by default the
    first panel's that has any): a legend inside a phone-sized panel hides its curves. Call it
    after ``fig.tight_layout()``; the notebook's PNG (``bbox_inches="tight"``) grows to hold it."""
    axes = [ax] if ax is not None else fig.get_axes()
    for a in axes:
        handles, labels = a.get_legend_handles_labels()
        if handles:
            break
    kw.setdefault("frameon", False)
    return fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, **kw)


def panels_per_row(fig) -> int:
    """The most panels side by side in ``fig`` (colour bars and twin axes not counted)."""
    boxes = []
    for ax in fig.get_axes():
        if not ax.get_visible() or hasattr(ax, "_colorbar"):
            continue
        b = ax.get_position()
        box = (round(b.x0, 3), round(b.y0, 3), round(b.x1, 3), round(b.y1, 3))
        if box not in boxes:
            boxes.append(box)
    if not boxes:
        return 0
    return max(sum(1 for o in boxes if o[1] <= (b[1] + b[3]) / 2 <= o[3]) for b in boxes)


def tick_font_pt(fig) -> float | None:
    """The smallest font size (points) of the visible tick labels of ``fig`` (None: no ticks)."""
    sizes = [t.get_fontsize() for ax in fig.get_axes() if ax.get_visible()
             for axis in (ax.xaxis, ax.yaxis, getattr(ax, "zaxis", None)) if axis is not None
             for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
    return float(min(sizes)) if sizes else None


def _record_layout(shell) -> None:
    """Each figure a notebook shows records how many panels it has side by side in its output's
    metadata (``image/png`` -> ``panels_per_row``) and the smallest size of its tick labels
    (``font_pt``), next to the width and height the retina PNG records; myst-nb ignores the keys,
    the phone-layout test reads them."""
    from matplotlib.figure import Figure

    formatter = shell.display_formatter.formatters["image/png"]
    retina = formatter.lookup_by_type(Figure)
    if getattr(retina, "records_layout", False):
        return

    def png(fig):
        out = retina(fig)
        data, meta = out if isinstance(out, tuple) else (out, {})
        if data is None:
            return None
        return data, {**(meta or {}), "panels_per_row": panels_per_row(fig), "font_pt": tick_font_pt(fig)}

    png.records_layout = True
    formatter.for_type(Figure, png)


def color(norm) -> str:
    """The colour of normalisation ``norm``; a grey of :data:`OTHER` for anything else (never a
    norm's colour), picked by a CRC-32 of ``str(norm)``: the same grey in every process (Python's
    own ``hash`` of a string changes with ``PYTHONHASHSEED``, so a figure would change between
    builds)."""
    import zlib

    return PALETTE.get(norm) or OTHER[zlib.crc32(str(norm).encode()) % len(OTHER)]


def style(norm) -> dict:
    """Keyword arguments for ``ax.plot``: the colour, line style and marker of ``norm``."""
    ls, marker = STYLES[norm]
    return {"color": PALETTE[norm], "linestyle": ls, "marker": marker}


def label(norm) -> str:
    return LABELS.get(norm, str(norm))


# A curve drawn in a normalisation's colour gets its line style and marker too (``band`` and
# ``curves`` look the colour up), so every figure that colours by ``plot.color`` has both cues.
_BY_COLOR = {}
for _norm, _c in PALETTE.items():
    _BY_COLOR.setdefault(_c.lower(), _norm)


def _cues(color, line_kw: dict, n_points: int) -> dict:
    norm = _BY_COLOR.get(color.lower(), "?") if isinstance(color, str) else "?"
    if norm == "?":
        return line_kw
    ls, marker = STYLES[norm]
    out = dict(line_kw)
    if not {"ls", "linestyle"} & out.keys():
        out["linestyle"] = ls
    if "marker" not in out:
        out.update(marker=marker, markevery=max(1, n_points // 8), markersize=5)
    return out


def band(ax, x, values, label=None, color=None, kind: str = "std", log: bool = False, **line_kw):
    """Draw the mean of ``values`` (seeds x points) against ``x`` with a band.

    ``kind``: ``"std"`` (mean +- one standard deviation), ``"minmax"`` (range over seeds) or
    ``"ci"`` (a 95% normal interval of the mean). NaNs (a diverged seed) are ignored pointwise.
    With ``log=True`` the mean and band are taken of log10(values) (for log-scale axes).

    The standard deviation is the sample one over seeds (``ddof=1``), as seaborn's
    ``lineplot(errorbar="sd")`` computes it: the captions' "mean ± one standard deviation over
    seeds" means this one in every figure. Where a single seed is left (one seed, or the others
    diverged) there is no band. Points where every seed is NaN leave a gap (``lineplot`` would
    join the line across them); see :func:`curves` for why this is not drawn by seaborn.
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
                sd = np.nanstd(v, axis=0, ddof=1)
                if kind == "ci":
                    sd = 1.96 * sd / np.sqrt(np.maximum(1, np.sum(np.isfinite(v), axis=0)))
                elif kind != "std":
                    raise ValueError(f"kind must be 'std', 'minmax' or 'ci', got {kind!r}")
                lo, hi = mean - sd, mean + sd
    if log:
        mean, lo, hi = 10 ** mean, 10 ** lo, 10 ** hi
        ax.set_yscale("log")
    line_kw = _cues(color, line_kw, len(x))
    (line,) = ax.plot(x, mean, label=label, color=color, **line_kw)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average (window 1 leaves ``y`` as it is)."""
    y = np.asarray(y, dtype=float)
    if window <= 1 or len(y) < window:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    head = c[1:window] / np.arange(1, window)
    return np.concatenate([head, (c[window:] - c[:-window]) / window])


def curves(ax, histories: Sequence[History], key: str | None = "loss", label=None, color=None,
           smooth_window: int = 1, log: bool = False, kind: str = "std", probe: str | None = None, **line_kw):
    """Mean and band over seeds of one quantity of a group of histories (``line_kw``: the mean
    line's matplotlib keywords, e.g. ``marker="o"``).

    ``key``: ``"loss"`` (per-step training loss, optionally smoothed) or one of the evaluated
    series ``"train_loss"``, ``"train_acc"``, ``"test_loss"``, ``"test_acc"``; with ``probe``, a
    quantity of that probe (as :func:`bnutils.experiments.frame` reads it). A run that diverged
    is drawn up to its last finite point and marked with a cross at the step it diverged
    (:func:`mark_diverged`).

    The histories go through the long-form :func:`~bnutils.experiments.frame` and back to runs x
    steps (:func:`~bnutils.experiments.wide`), and :func:`band` draws them: on a linear axis the
    same mean and sample-standard-deviation band as seaborn's ``lineplot(errorbar="sd")`` (a test
    checks the numbers against seaborn's), drawn directly because ``lineplot`` aggregates each
    step in Python: 0.6 s a curve of 300 steps and 1.8 s of 2,000 against 5-10 ms (measured on
    the 2-core machine, 2026-12-01), and the book draws a few hundred curves. Returns the mean's line.
    """
    if not histories:
        raise ValueError("curves needs at least one history")
    df = frame(histories, key, probe=probe)
    value = key or probe
    if smooth_window > 1:
        df[value] = df.groupby("run")[value].transform(lambda y: smooth(y.to_numpy(), smooth_window))
    x, v = wide(df, value)
    line = band(ax, x, v, label=label, color=color, log=log, kind=kind, **line_kw)
    mark_diverged(ax, histories, key, color=line.get_color(), probe=probe)
    return line


def mark_diverged(ax, histories: Sequence[History], key: str | None = "loss", color=None,
                  probe: str | None = None) -> int:
    """Put a cross, for each run that diverged, at the step where it diverged and the last finite
    value of its series: ``key`` of its history, or with ``probe`` the probe's quantity ``key``
    (as :func:`bnutils.experiments.frame` reads both), so that every series, probes included,
    marks its diverged runs the same way. A run without a finite value is marked at the top of
    the axis. Returns how many were marked."""
    if not any(h.diverged for h in histories):
        return 0
    df = frame(histories, key, probe=probe)
    value = key or probe
    finite = df[np.isfinite(df[value].to_numpy(dtype=float))].sort_values(["run", "step"])
    last = finite.groupby("run")[value].last()
    n = 0
    for i, h in enumerate(histories):
        if not h.diverged:
            continue
        y = last[i] if i in last.index else ax.get_ylim()[1]
        ax.plot([h.diverged_at], [y], marker="x", color=color or "k", markersize=9, mew=2,
                linestyle="none", label="diverged" if n == 0 else None)
        n += 1
    return n


def sweep_plot(ax, df, x: str, y: str, hue: str, log_x: bool = True, diverged_y=None):
    """A sweep's result (a :func:`bnutils.experiments.table`) as mean and band of ``y`` against
    ``x`` per ``hue`` group; diverged runs are drawn as crosses at ``diverged_y`` (default: the top
    of the axis) so a reader sees where a setting blew up.

    Drawn with :func:`band`, not seaborn's ``lineplot``: a setting where every seed diverged has no
    mean and must leave a gap in the line, which ``lineplot`` (it drops missing values and joins
    the points either side) would hide."""
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


def table(df, digits: int = 3, missing: str = "diverged", names: dict | None = None):
    """``df`` as readers should see it: words for code names (``model.norm`` -> "normalization",
    ``None`` -> "standard", ``"bn"`` -> "BN"), ``digits`` significant digits, ``missing``
    ("diverged") for inf and NaN, every word in Chinese in the Chinese edition. Every DataFrame a
    chapter displays goes through it; see :func:`bnutils.tables.readable`."""
    from .tables import readable

    return readable(df, digits=digits, missing=missing, names=names)


# ----- the Chinese edition: labels and fonts -----------------------------------------------------
#
# ``make book-zh`` executes the chapters with ``BNBOOK_LANG=zh``. ``set_style()`` then translates
# every text matplotlib draws (axis labels, titles, legend entries, annotations) through
# ``bnutils.language.translate`` and ``bnutils.plot_zh`` (the one place the Chinese labels live)
# by wrapping ``Text.set_text``, so the chapters' code is the same in both editions, and sets Noto
# Sans CJK (Debian's fonts-noto-cjk, installed by ``make browser-deps``) as matplotlib's fallback
# font for the CJK glyphs DejaVu Sans lacks. tests/test_plot_zh.py draws through it and fails on a missing glyph.
CJK_FONT = "Noto Sans CJK SC"
_SET_TEXT = None


def has_cjk_font() -> bool:
    """Whether matplotlib knows :data:`CJK_FONT`; a font installed after matplotlib built its
    font cache is added from the system's font folders first (Debian: fonts-noto-cjk's .ttc)."""
    from matplotlib import font_manager as fm

    def known():
        return any(f.name == CJK_FONT for f in fm.fontManager.ttflist)

    if not known():
        for path in fm.findSystemFonts():
            if "SansCJK" in path.replace(" ", ""):
                fm.fontManager.addfont(path)
    return known()


def set_edition(lang: str) -> None:
    """Draw figures for edition ``lang`` ("en" or "zh"): in Chinese, every text through
    :func:`bnutils.language.translate` and the CJK font as fallback; in English, as matplotlib does."""
    global _SET_TEXT
    from matplotlib.text import Text

    if _SET_TEXT is None:
        _SET_TEXT = Text.set_text
    if lang == "zh":
        original = _SET_TEXT

        def set_text(self, s):
            return original(self, translate(s, "zh"))

        set_text.__doc__ = original.__doc__
        Text.set_text = set_text
        from matplotlib import font_manager

        has_cjk_font()
        latin = font_manager.get_font(font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]))).family_name
        # Noto Sans CJK first, its own Latin glyphs for the rest: matplotlib's mathtext draws the
        # words around the maths of a label ("批大小 $m$") in the first family alone, with no
        # fallback (boxes and a logged "does not have a glyph" with the Latin font first)
        plt.rcParams["font.family"] = [CJK_FONT] + ([latin] if latin != CJK_FONT else [])
    else:
        Text.set_text = _SET_TEXT
