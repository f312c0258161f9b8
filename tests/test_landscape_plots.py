"""The landscape probes of groups of runs: ratios paired by seed, their late geometric mean, and
the figures (on hand-made histories, so the expected numbers are known)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bnutils.landscape_plots import QUANTITIES, geomean, landscape_figure, late_ratio, ratio_figure, ratios  # noqa: E402
from bnutils.train import History  # noqa: E402


def _history(values, diverged_at=None):
    """A run whose landscape probe recorded ``values`` (one per probe at steps 0, 10, 20, ...) for
    every quantity, the random direction's and the gradient norm included."""
    keys = list(QUANTITIES) + ["grad_norm"]
    probes = [{**{k: v for k in keys}, **{"random_" + k: 2 * v for k in keys}} for v in values]
    return History(config={"model": {"norm": None}, "train": {"lr": 0.1}, "seed": 0}, loss=np.ones(10 * len(values)),
                   eval_steps=np.zeros(0), train_loss=np.zeros(0), train_acc=np.zeros(0), test_loss=np.zeros(0),
                   test_acc=np.zeros(0), diverged_at=diverged_at, probe_steps=np.arange(len(values)) * 10,
                   probes={"landscape": probes})


RUNS = {None: [_history([1.0, 4.0, 4.0]), _history([1.0, 8.0, 2.0])],
        "bn": [_history([2.0, 1.0, 1.0]), _history([2.0, 2.0, 8.0])]}


def test_ratios_pair_the_runs_seed_by_seed():
    steps, r = ratios(RUNS, "loss_range")
    assert steps.tolist() == [0, 10, 20]
    np.testing.assert_allclose(r, [[2.0, 0.25, 0.25], [2.0, 0.25, 4.0]])
    with pytest.raises(KeyError, match="l1"):
        ratios(RUNS, "loss_range", norm="l1")


def test_late_ratio_is_the_geometric_mean_after_the_plateau():
    np.testing.assert_allclose(late_ratio(RUNS, "beta_smoothness", after=10), [0.25, 1.0])
    np.testing.assert_allclose(late_ratio(RUNS, "random_beta_smoothness", after=20), [0.25, 4.0])
    assert geomean([0.5, 2.0]) == pytest.approx(1.0)


def test_figures_draw_every_group_and_mark_a_diverged_run():
    runs = {**RUNS, "bn": [_history([2.0, 1.0, float("nan")], diverged_at=15), RUNS["bn"][1]]}
    fig, axes = plt.subplots(1, 3)
    assert landscape_figure(runs, axes, title="t") is None  # a cell ending with it shows the figure once
    crosses = [ln for ln in axes[0].lines if ln.get_marker() == "x"]
    # where it diverged, at its last finite probe value (plot.mark_diverged, as every series)
    assert len(crosses) == 1 and crosses[0].get_xdata()[0] == 15 and crosses[0].get_ydata()[0] == 1.0
    assert fig.get_suptitle() == "t"
    with pytest.raises(ValueError, match="three panels"):
        landscape_figure(runs, axes[:2])
    fig, ax = plt.subplots()
    ratio_figure(RUNS, ax, after=10, keys=("loss_range",))
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "BN / standard"
    plt.close("all")
