"""Plots show diverged runs as such, and bands over seeds."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from bnutils import data, models, plot
from bnutils.experiments import table
from bnutils.train import TrainConfig, train


@pytest.fixture(scope="module")
def histories():
    ds = data.digits()
    out = []
    for lr in (0.1, 1e4):
        for seed in (0, 1):
            torch.manual_seed(seed)
            out.append(train(models.mlp(64, [16], 10, act="identity"), ds,
                             TrainConfig(lr=lr, steps=100, eval_every=25, seed=seed)))
    return out


def test_curves_band_and_diverged_crosses(histories):
    ok, bad = histories[:2], histories[2:]
    assert not any(h.diverged for h in ok) and all(h.diverged for h in bad)
    fig, ax = plt.subplots()
    line = plot.curves(ax, ok, "loss", label="fine")
    assert len(line.get_xdata()) == 100 and len(ax.collections) == 1  # the band
    plot.curves(ax, bad, "loss", label="blew up")
    crosses = [l for l in ax.lines if l.get_marker() == "x"]
    assert len(crosses) == 2  # one cross per diverged run, at the step it diverged
    assert sorted(int(c.get_xdata()[0]) for c in crosses) == sorted(h.diverged_at for h in bad)
    plot.curves(ax, bad, "test_acc")  # evaluated series of diverged runs plot too
    plt.close(fig)


def test_sweep_plot_marks_diverged(histories):
    df = table(histories)
    fig, ax = plt.subplots()
    plot.sweep_plot(ax, df.assign(norm="standard"), "train.lr", "final_loss", hue="norm")
    crosses = [l for l in ax.lines if l.get_marker() == "x"]
    assert crosses and len(crosses[0].get_xdata()) == 2
    plt.close(fig)


def test_band_rejects_mismatched_lengths():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="values have 3 points but x has 2"):
        plot.band(ax, [0, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="curves needs at least one history"):
        plot.curves(ax, [])
    plt.close(fig)


# ----- the palette: colour-blind safe, legible on white, a second cue besides colour -----------

import itertools
import re
import subprocess
import sys

import colour

# The normalisations that share a figure in the book (ICS and landscape chapters; beyond: BN
# against the lp norms, and against LayerNorm and GroupNorm).
FIGURE_GROUPS = [("standard", "bn", "noisy_bn", "noise"), ("bn", "l1", "l2", "linf"),
                 ("standard", "bn", "layer", "group")]
VISIONS = [None, "Protanomaly", "Deuteranomaly"]  # severity 1: protanopia, deuteranopia
SRGB = colour.RGB_COLOURSPACES["sRGB"]
D65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]


def _linear(hex_color: str) -> np.ndarray:
    return colour.models.eotf_sRGB(np.array(colour.notation.HEX_to_RGB(hex_color)))


def _lab(hex_color: str, vision) -> np.ndarray:
    rgb = _linear(hex_color)
    if vision is not None:  # Machado, Oliveira & Fernandes (2009), in linear sRGB
        rgb = np.clip(colour.matrix_cvd_Machado2009(vision, 1.0) @ rgb, 0, 1)
    return colour.XYZ_to_Lab(colour.RGB_to_XYZ(rgb, SRGB, apply_cctf_decoding=False), D65)


def _min_delta_e(norms) -> float:
    colors = sorted({plot.PALETTE[n] for n in norms})
    return min(float(colour.delta_E(_lab(a, v), _lab(b, v), method="CIE 2000"))
               for v in VISIONS for a, b in itertools.combinations(colors, 2))


def test_palette_apart_under_colour_blindness():
    norms = [n for n in plot.PALETTE if n is not None]
    # every two distinct colours, with normal vision, protanopia and deuteranopia
    assert _min_delta_e(norms) >= 10
    # the normalisations that share a figure, further apart
    for group in FIGURE_GROUPS:
        assert _min_delta_e(group) >= 15, group
    # one colour per normalisation (BN's two implementations share it, told apart by style)
    assert len(set(plot.PALETTE.values())) == len(norms) - 1


def test_palette_contrast_on_white():
    def luminance(c):
        return float(_linear(c) @ [0.2126, 0.7152, 0.0722])  # WCAG 2's relative luminance

    for norm, c in plot.PALETTE.items():
        ratio = 1.05 / (luminance(c) + 0.05)
        assert ratio >= 3.0, f"{norm}: {c} has contrast {ratio:.2f}:1 on white (WCAG 1.4.11: 3:1)"


def test_every_normalisation_has_its_own_style():
    norms = [n for n in plot.PALETTE if n is not None]
    assert plot.STYLES.keys() == plot.PALETTE.keys()
    styles = [plot.STYLES[n] for n in norms]
    assert len({str(s) for s in styles}) == len(norms)  # line style and marker: a second cue
    assert len({m for _, m in styles}) == len(norms) and "x" not in {m for _, m in styles}
    assert not set(plot.OTHER) & set(plot.PALETTE.values())  # other lines never look like a norm


def test_band_draws_a_norms_style():
    fig, ax = plt.subplots()
    line = plot.band(ax, np.arange(40), np.ones((2, 40)), color=plot.color("noisy_bn"))
    assert (line.get_linestyle(), line.get_marker()) == ("--", "^")
    own = plot.band(ax, np.arange(40), np.ones((2, 40)), color=plot.color("bn"), ls=":", marker="o")
    assert (own.get_linestyle(), own.get_marker()) == (":", "o")  # the caller's choice wins
    assert plot.color("something else") in plot.OTHER
    plt.close(fig)


def test_notebook_figures_at_twice_the_pixels():
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "import matplotlib; matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "shell = InteractiveShell.instance()\n"
        "from bnutils import plot\n"
        "plot.set_style()\n"
        "fig, ax = plt.subplots(); ax.plot([0, 1])\n"
        "printer = shell.display_formatter.formatters['image/png'].type_printers[type(fig)]\n"
        "data, meta = printer(fig)\n"  # what a notebook shows for the figure
        "import base64, struct\n"
        "png = base64.b64decode(data) if isinstance(data, str) else data\n"
        "print(struct.unpack('>I', png[16:20])[0], meta['width'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    pixels, shown = map(int, r.stdout.split())
    assert pixels == 2 * shown  # shown at its size, drawn with twice the pixels (bbox "tight")


# ----- tables: names readers understand, sensible digits, "diverged" for inf/NaN --------------

import pandas as pd


def test_table_renames_code_to_words():
    df = pd.DataFrame({"final_loss": [0.26634, 0.0074], "final_test_acc": [0.8998, 0.9535]},
                      index=pd.Index([None, "bn"], name="model.norm"))
    t = plot.table(df)
    assert t.index.name == "normalization" and list(t.index) == ["standard", "BN"]
    assert list(t.columns) == ["final training loss", "test accuracy"]
    assert t.loc["standard", "final training loss"] == "0.266" and t.loc["BN", "final training loss"] == "0.00740"
    # a norm's name only where the level is the normalization: "l2" elsewhere is a quantity
    mi = pd.DataFrame([[1.0, 2.0]], columns=pd.MultiIndex.from_tuples(
        [("l2", "l2"), ("l2", "noisy_bn")], names=["quantity", "norm"]))
    assert list(plot.table(mi).columns) == [("l2", "\u2113\u2082 norm"), ("l2", "noisy BN")]
    assert plot.table(mi).columns.names == ["quantity", "normalization"]
    # parameters as written in the text: 0.1, 1, 30 (not 0.100000, 1.0)
    lr = pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=pd.Index([0.1, 1.0, 30.0], name="train.lr"))
    assert list(plot.table(lr).index) == ["0.1", "1", "30"] and plot.table(lr).index.name == "learning rate"


def test_table_digits_and_diverged():
    df = pd.DataFrame({"a": [0.123456, 12.3456, 42941.3488, 7.6e-05, 0.0, -1.5],
                       "b": [1.25, np.inf, -np.inf, np.nan, None, 2.0],
                       "iterations": [27.0, 2531.0, np.inf, 12.0, 1.0, 3.0],
                       "ok": [True, False, True, True, False, True]})
    t = plot.table(df)
    assert list(t["a"]) == ["0.123", "12.3", "42,941", "7.60e-05", "0", "-1.50"]
    assert list(t["b"]) == ["1.25", "diverged", "diverged", "diverged", "diverged", "2.00"]
    assert list(t["iterations"]) == ["27", "2,531", "diverged", "12", "1", "3"]  # whole numbers whole
    assert list(t["ok"]) == ["yes", "no", "yes", "yes", "no", "yes"]
    assert list(plot.table(df, digits=2)["a"])[:2] == ["0.12", "12"]
    assert plot.table(df[["b"]], missing="not reached")["b"].iloc[1] == "not reached"
    # nothing a reader should not see, in the HTML and the text a PDF shows
    for text in (t.to_html(), t.to_string()):
        assert not re.search(r"\binf\b|\bnan\b|NaN|None|e\+0|\.0{4,}", text)


def test_table_of_a_series_and_multiindex_rows():
    s = pd.Series({("bn", 0.1): 2.1457, ("standard", 0.1): 7.6e-05}).rename_axis(["norm", "train.lr"])
    t = plot.table(s.rename("ratio"))
    assert list(t.index) == [("BN", "0.1"), ("standard", "0.1")]
    assert t.index.names == ["normalization", "learning rate"] and list(t["ratio"]) == ["2.15", "7.60e-05"]


# ----- layouts that stay legible on a phone -------------------------------------------------------


def test_panels_keeps_the_grid_and_puts_two_a_row():
    fig, axes = plot.panels(4, 4, sharex="row")
    assert axes.shape == (4, 4) and plot.panels_per_row(fig) == 2
    # the logical grid read row by row: row r of four is two physical rows of two
    rows = [[a.get_subplotspec().rowspan.start for a in axes[r]] for r in range(4)]
    assert rows[1] == [2, 2, 3, 3]
    assert axes[1, 3].get_shared_x_axes().joined(axes[1, 3], axes[1, 0])
    assert not axes[1, 3].get_shared_x_axes().joined(axes[1, 3], axes[0, 0])
    width, height = fig.get_size_inches()
    assert width == pytest.approx(2 * plot.PANEL[0]) and height == pytest.approx(8 * plot.PANEL[1])
    plt.close(fig)
    fig, axes = plot.panels(1, 5, sharey=True)  # five histograms: 2 + 2 + 1
    assert axes.shape == (5,) and len(fig.get_axes()) == 5
    assert axes[4].get_shared_y_axes().joined(axes[4], axes[0])
    plt.close(fig)
    fig, ax = plot.panels(1, 1)
    assert not isinstance(ax, np.ndarray)
    plt.close(fig)


def test_every_panel_wide_enough_on_a_phone():
    # at figure.dpi 100 an inch is 100 CSS px; a phone's text column is about 360 px, and a figure
    # wider than that is scaled down: two panels of PANEL inches keep PHONE_PANEL_PX each
    column = 358
    scale = min(1.0, column / (plot.MAX_COLS * plot.PANEL[0] * 100))
    assert scale * plot.PANEL[0] * 100 >= plot.PHONE_PANEL_PX


def test_panels_per_row():
    import seaborn as sns

    fig, axes = plt.subplots(2, 3)
    assert plot.panels_per_row(fig) == 3
    plt.close(fig)
    fig, ax = plt.subplots()
    sns.heatmap(np.eye(3), ax=ax)  # the colour bar is not a panel
    ax.twinx()  # nor is a twin axis
    assert plot.panels_per_row(fig) == 1
    plt.close(fig)


def test_notebook_figures_record_their_panels():
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "import matplotlib; matplotlib.use('Agg')\n"
        "shell = InteractiveShell.instance()\n"
        "from bnutils import plot\n"
        "plot.set_style(); plot.set_style()\n"  # twice: wrapped once
        "fig, axes = plot.panels(1, 3)\n"
        "data, meta = shell.display_formatter.format(fig)\n"
        "print(meta['image/png']['panels_per_row'], meta['image/png']['width'] > 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "True"]
