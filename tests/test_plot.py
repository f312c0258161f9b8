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
import json
import os
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


# One fresh interpreter (importing bnutils takes seconds) answers the three questions a fresh process
# is needed for: the colour of a name under another hash seed (PYTHONHASHSEED is fixed at start-up),
# and what a notebook shows for a figure (IPython's formatter after plot.set_style()). Each test
# below asserts on its own line of the output, as when each ran its own process.
FRESH = """
import json
from bnutils import plot
names = {names!r}
colours = [plot.color(n) for n in names]  # before set_style, as a chapter's first call may be
from IPython.core.interactiveshell import InteractiveShell
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
shell = InteractiveShell.instance()
plot.set_style()
fig, ax = plt.subplots(); ax.plot([0, 1])
printer = shell.display_formatter.formatters['image/png'].type_printers[type(fig)]
data, meta = printer(fig)  # what a notebook shows for the figure
import base64, struct
png = base64.b64decode(data) if isinstance(data, str) else data
pixels = [struct.unpack('>I', png[16:20])[0], meta['width']]
plot.set_style()  # twice: wrapped once
fig, axes = plot.panels(1, 3)
data, meta = shell.display_formatter.format(fig)
panels = [meta['image/png']['panels_per_row'], meta['image/png']['width'] > 0]
print(json.dumps({{"colours": colours, "pixels": pixels, "panels": panels}}))
"""
OTHER_NAMES = ('relu', 'sgd', 'x', 'lr=0.1', 'weight norm')


@pytest.fixture(scope="module")
def fresh():
    seed = "1" if os.environ.get("PYTHONHASHSEED") == "0" else "0"  # another process, another seed
    r = subprocess.run([sys.executable, "-c", FRESH.format(names=OTHER_NAMES)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": seed})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_notebook_figures_at_twice_the_pixels(fresh):
    pixels, shown = fresh["pixels"]
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


def test_notebook_figures_record_their_panels(fresh):
    assert fresh["panels"] == [2, True]


# ----- one way to mark diverged runs, probes included; seaborn's band numbers; a stable grey -------------


def _weight_probe():
    # the summed |weights| before each probed step; NaN at the third probe of each run, so that the
    # cross has to find the last *finite* value
    calls = []

    def probe(model, x, y):
        calls.append(1)
        total = float(sum(p.detach().abs().sum() for p in model.parameters()))
        return {"w": float("nan") if len(calls) == 3 else total}

    return probe


@pytest.fixture(scope="module")
def probed():
    ds = data.digits()
    out = []
    for lr in (0.1, 1e4):
        torch.manual_seed(0)
        out.append(train(models.mlp(64, [16], 10, act="identity"), ds,
                         TrainConfig(lr=lr, steps=40, eval_every=20, probe_every=1, seed=0),
                         probes={"weights": _weight_probe()}))
    return out


def test_mark_diverged_on_a_probe_series(probed):
    ok, bad = probed
    assert not ok.diverged and bad.diverged and len(bad.probes["weights"]) >= 4
    fig, ax = plt.subplots()
    assert plot.mark_diverged(ax, probed, "w", probe="weights", color="C1") == 1
    (cross,) = ax.lines
    values = [p["w"] for p in bad.probes["weights"]]
    last_finite = [v for v in values if np.isfinite(v)][-1]
    assert cross.get_marker() == "x" and cross.get_label() == "diverged"
    assert cross.get_xdata()[0] == bad.diverged_at and cross.get_ydata()[0] == last_finite
    # the same function for the loss: the last finite loss, at the same step
    assert plot.mark_diverged(ax, probed, "loss") == 1
    assert ax.lines[-1].get_xdata()[0] == bad.diverged_at
    assert ax.lines[-1].get_ydata()[0] == [v for v in bad.loss if np.isfinite(v)][-1]
    assert plot.mark_diverged(ax, [ok]) == 0
    plt.close(fig)


def test_curves_of_a_probe_mark_its_diverged_runs(probed):
    fig, ax = plt.subplots()
    plot.curves(ax, probed, "w", probe="weights", color=plot.color("bn"))
    crosses = [l for l in ax.lines if l.get_marker() == "x"]
    assert len(crosses) == 1 and crosses[0].get_xdata()[0] == probed[1].diverged_at
    plt.close(fig)


def test_curves_band_is_seaborns_sample_sd(histories):
    import seaborn as sns

    from bnutils.experiments import frame

    ok = histories[:2]
    fig, ax = plt.subplots()
    line = plot.curves(ax, ok, "test_acc", label="BN", color=plot.color("bn"))
    (poly,) = ax.collections
    # seaborn's lineplot(errorbar="sd") of the same long-form frame: the same mean and band
    df = frame(ok, "test_acc")
    fig2, ax2 = plt.subplots()
    sns.lineplot(data=df, x="step", y="test_acc", estimator="mean", errorbar="sd", ax=ax2)
    np.testing.assert_allclose(line.get_xdata(), ax2.lines[0].get_xdata())
    np.testing.assert_allclose(line.get_ydata(), ax2.lines[0].get_ydata())
    ours, theirs = (p.get_paths()[0].vertices for p in (poly, ax2.collections[0]))
    np.testing.assert_allclose(np.sort(ours[:, 1]), np.sort(theirs[:, 1]))
    # the house style: BN's line style and markers, the label, no legend or axis labels
    assert (line.get_linestyle(), line.get_marker(), line.get_label()) == ("-", "s", "BN")
    assert ax.get_legend() is None and ax.get_xlabel() == "" and ax.get_ylabel() == ""
    plt.close(fig)
    plt.close(fig2)


def test_curves_without_a_colour_take_the_cycle_as_band_does(histories):
    plot.set_style()
    drawn = []
    for log in (False, True):
        fig, ax = plt.subplots()
        for _ in range(3):
            plot.curves(ax, histories[:2], "test_acc", log=log)
        drawn.append([(l.get_color(), l.get_linestyle()) for l in ax.lines if l.get_marker() != "x"])
        plt.close(fig)
    assert drawn[0] == drawn[1] and len(set(drawn[0])) == 3  # linear and log axes: one cycle entry each


def test_other_colours_are_the_same_in_every_process(fresh):
    here = " ".join(plot.color(n) for n in OTHER_NAMES)  # this process: a random hash seed, unless set
    assert fresh["colours"] == here.split()  # the fresh process ran under another hash seed
    assert all(c in plot.OTHER for c in here.split())
