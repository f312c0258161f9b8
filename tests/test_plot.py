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
