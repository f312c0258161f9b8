"""Probe results with one value per measured layer, as arrays over runs, checkpoints and layers.

A probe such as ``"ics"`` (:func:`bnutils.ics.ics_probe`) records, at each checkpoint, a list per
quantity with one entry per measured layer (``{"relative": [r1, r2], "cosine": [c1, c2], ...}``).
:func:`bnutils.experiments.probe_array` turns a probe's *single* value per checkpoint into a
(runs x checkpoints) array; :func:`probe_array` here does the same for these per-layer lists (the
rows of :func:`bnutils.experiments.frame`, one per run, step and layer), with a third axis for the
layers. Used around the runs (not in the experiments' cache key).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .experiments import frame
from .train import History


def probe_array(histories: Sequence[History], key: str, probe: str = "ics") -> tuple[np.ndarray, np.ndarray]:
    """One per-layer quantity ``key`` of ``probe`` as (steps, values): ``values`` is runs x probe
    steps x layers, in the order of ``histories``, NaN where a run has no value (it diverged and
    stopped early). ``steps`` are every probe step any of the runs reached, in order. The rows
    come from :func:`bnutils.experiments.frame` (a row per run, step and layer)."""
    df = frame(histories, key, probe=probe)
    if not len(df):
        raise ValueError(f"no run recorded probe {probe!r}: nothing to arrange")
    steps, layers = np.sort(df["step"].unique()), np.sort(df["layer"].unique())
    table = df.pivot(index="run", columns=["step", "layer"], values=key)
    table = table.reindex(index=range(len(histories)), columns=pd.MultiIndex.from_product([steps, layers]))
    return steps, table.to_numpy(dtype=float).reshape(len(histories), len(steps), len(layers))
