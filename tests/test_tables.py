"""bnutils.tables' sweep summaries: a normalization's name for readers and each network at its own
best rate of a learning-rate grid (the benefits chapter's table), on small hand-made sweeps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bnutils.tables import best_over_grid, norm_label


def test_norm_label_reads_a_table_column():
    col = pd.Series([None, "bn", float("nan"), "layer"], dtype=object)
    assert list(col.map(norm_label)) == ["standard", "BN", "standard", "LayerNorm"]


def _sweep(rows):
    df = pd.DataFrame(rows, columns=["norm", "train.lr", "seed", "final_loss", "final_test_acc", "diverged"])
    return df


def test_best_over_grid_means_over_seeds_and_leaves_out_diverged_rates():
    df = _sweep([
        # standard: rate 0.1 best loss (mean 0.5), rate 1.0 best accuracy (mean 0.85); rate 10 diverged on one seed
        ("standard", 0.1, 0, 0.4, 0.80, False), ("standard", 0.1, 1, 0.6, 0.80, False),
        ("standard", 1.0, 0, 0.7, 0.90, False), ("standard", 1.0, 1, 0.7, 0.80, False),
        ("standard", 10.0, 0, 0.01, 0.99, False), ("standard", 10.0, 1, math.inf, float("nan"), True),
        # BN: best loss and accuracy at 10
        ("BN", 0.1, 0, 0.3, 0.90, False), ("BN", 0.1, 1, 0.3, 0.90, False),
        ("BN", 10.0, 0, 0.1, 0.95, False), ("BN", 10.0, 1, 0.1, 0.97, False),
    ])
    best = best_over_grid(df)
    assert list(best.index) == ["standard", "BN"]  # in the order the networks appear
    assert list(best.columns) == ["best final loss", "rate (loss)", "best test accuracy", "rate (accuracy)"]
    assert best.loc["standard"].tolist() == pytest.approx([0.5, 0.1, 0.85, 1.0])
    assert best.loc["BN"].tolist() == pytest.approx([0.1, 10.0, 0.96, 10.0])
    assert all(best.dtypes == np.float64)


def test_best_over_grid_a_network_that_always_diverged_has_no_best():
    df = _sweep([("standard", 1.0, 0, math.inf, float("nan"), True),
                 ("BN", 1.0, 0, 0.2, 0.9, False)])
    best = best_over_grid(df)
    assert best.loc["standard"].isna().all()
    assert best.loc["BN"].tolist() == pytest.approx([0.2, 1.0, 0.9, 1.0])


def test_best_over_grid_names_missing_columns():
    with pytest.raises(KeyError, match="norm"):
        best_over_grid(_sweep([]).drop(columns="norm"))
