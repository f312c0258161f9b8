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
