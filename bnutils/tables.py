"""Tables for readers: every DataFrame a chapter shows goes through :func:`readable` (``plot.table``).

It renames the columns, index levels and labels that are code (``model.norm``, ``train.lr``,
``final_test_acc``, the norm ``None`` or ``"bn"``) to the words the text uses ("normalization",
"learning rate", "test accuracy", "standard", "BN"), writes every number to a few significant
digits (thousands separated, no trailing ``.0`` on whole numbers), and shows an infinite or missing
value as a word ("diverged" by default; "not reached" where that is what it means) instead of
``inf`` or ``NaN``. The result is a DataFrame of strings: it reads the same in the HTML book, the
PDF (its ``text/plain``), JupyterLab and Colab.

:func:`format_bytes` writes a size in bytes for readers the same way (``'122.5 ZB'``);
:func:`norm_label` a normalization's name (``df["model.norm"].map(norm_label)``); and
:func:`best_over_grid` reads a learning-rate sweep's table as each network at its own best rate.

In the Chinese edition (``language.edition() == "zh"``, ``make book-zh``) every header, index label and
word it writes ("diverged", "not reached", "yes", ...) goes through ``language.translate``, so the
Chinese words live with the figures' labels in ``bnutils.plot_zh`` (a table word missing there is
listed like a figure's, ``BNBOOK_LABELS_MISSING``).

Not a run module: nothing here is part of an experiment's cache key.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from . import language

# Column and index-level names: code -> words. Anything else is kept as it is.
NAMES = {
    "norm": "normalization",
    "model.norm": "normalization",
    "network": "normalization",
    "train.lr": "learning rate",
    "lr": "learning rate",
    "train.batch_size": "batch size",
    "model.init_scale": "initial scale (x Glorot)",
    "model.act": "activation",
    "model.arch": "network",
    "train.steps": "steps",
    "seed": "seed",
    "final_loss": "final training loss",
    "final_train_loss": "final training loss (full set)",
    "final_test_loss": "final test loss",
    "final_train_acc": "training accuracy",
    "final_test_acc": "test accuracy",
    "diverged": "share diverged",
    "gap": "train - test accuracy",
    "std": "sd",
}
# Normalisations as the book names them (plot.LABELS without TeX, which a table does not typeset).
NORMS = {
    "standard": "standard",
    "bn": "BN",
    "torch_bn": "BN (PyTorch)",
    "noisy_bn": "noisy BN",
    "noise": "noise, no BN",
    "l1": "\u2113\u2081 norm",
    "l2": "\u2113\u2082 norm",
    "linf": "\u2113\u221e norm",
    "layer": "LayerNorm",
    "group": "GroupNorm",
}
# Index levels / columns whose missing label means "no normalization".
NORM_LEVELS = {"norm", "model.norm", "network", "normalization"}


def number(x, digits: int = 3, missing: str = "diverged", whole: bool = False) -> str:
    """One value as text: ``digits`` significant digits (numbers of ``digits`` digits or more, and
    every number when ``whole``, in full with thousands separators; scientific notation below
    0.001), ``missing`` for inf and NaN, yes/no for booleans."""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if x is None or x is pd.NA or x is pd.NaT:
        return missing
    if not isinstance(x, numbers.Number):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return missing
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude >= digits - 1 or (whole and x == round(x)):
        return f"{x:,.0f}"  # 42,941 and 27 (not 27.0), no digits past the decimal point
    if magnitude >= -3:
        return f"{x:.{digits - 1 - magnitude}f}"
    return f"{x:.{digits - 1}e}"


def label(value, level_name=None, names: dict | None = None) -> str:
    """An index or column label as text: a normalisation's name, a name of ``names`` (default
    :data:`NAMES`), a parameter with ``:g``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "standard" if level_name in NORM_LEVELS else ""
    if isinstance(value, str):
        if level_name in NORM_LEVELS:  # "l2" is the l2 norm only where the level is the normalization
            return NORMS.get(value, value)
        return (NAMES if names is None else names).get(value, value)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Number):
        return f"{float(value):,g}" if abs(float(value)) < 1e6 else f"{float(value):,.0f}"
    return str(value)


def _index(index: pd.Index, names: dict, words=lambda text: text) -> pd.Index:
    """``index`` with its level names renamed and its labels as text, each through ``words``."""
    level_names = list(index.names)
    titles = [words(names.get(n, n)) if n is not None else None for n in level_names]
    if isinstance(index, pd.MultiIndex):
        tuples = [tuple(words(label(v, n, names)) for v, n in zip(t, level_names)) for t in index]
        return pd.MultiIndex.from_tuples(tuples, names=titles)
    return pd.Index([words(label(v, level_names[0], names)) for v in index], name=titles[0])


def format_bytes(n: float) -> str:
    """``1.5e9`` -> ``'1.5 GB'`` (decimal units, up to yottabytes).

    >>> format_bytes(4e6), format_bytes(1.225e23)
    ('4 MB', '122.5 ZB')
    """
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g} {units[i]}"


def readable(df, digits: int = 3, missing: str = "diverged", names: dict | None = None,
             lang: str | None = None) -> pd.DataFrame:
    """``df`` (or a Series) for readers: words for code names, ``digits`` significant digits,
    ``missing`` ("diverged") for inf and NaN. ``names`` adds or overrides renamings. ``lang``
    (default: the edition being built, ``language.edition()``): "zh" translates every header, label
    and word through ``language.translate``; numbers are written the same in both editions.

    >>> readable(pd.DataFrame({"final_loss": [0.26634, float("inf")]},
    ...                       index=pd.Index([None, "bn"], name="model.norm")))  # doctest: +NORMALIZE_WHITESPACE
                  final training loss
    normalization
    standard                    0.266
    BN                       diverged
    """
    zh = (lang or language.edition()) == "zh"
    if isinstance(df, pd.Series):
        df = df.to_frame(name=df.name if df.name is not None else "value")
    all_names = {**NAMES, **(names or {})}
    words = (lambda text: language.translate(text, "zh")) if zh else (lambda text: text)
    out = df.copy().astype(object)
    for j in range(df.shape[1]):
        column = df.iloc[:, j]
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        # a column of whole numbers (iterations, counts) is shown whole: 27, not 27.0
        whole = column.dtype != bool and len(finite) > 0 and bool(np.all(finite == np.round(finite))) \
            and bool(np.all(np.abs(finite) < 1e15))
        out.iloc[:, j] = [words(number(v, digits, missing, whole)) for v in column]
    out.index = _index(df.index, all_names, words)
    out.columns = _index(df.columns, all_names, words)
    return out


def norm_label(norm) -> str:
    """A normalization's name for readers: "standard" for none (``None``, or the NaN pandas puts in a
    table's ``model.norm`` column), "BN" for ``"bn"``, and so on (:data:`NORMS`). For a column of
    names: ``df["norm"] = df["model.norm"].map(norm_label)``."""
    return label(norm, "model.norm")


def best_over_grid(df: pd.DataFrame, by: str = "norm") -> pd.DataFrame:
    """Each network of a learning-rate sweep at its own best rate of the grid.

    ``df`` is a sweep's :func:`bnutils.experiments.table` with a column ``by`` naming the network
    (e.g. ``norm``, from :func:`norm_label`). Per network (in the order they first appear): the
    best mean final training loss over the grid's rates and the rate where it occurs, the best mean
    test accuracy and its rate; means are over seeds, and a rate at which any seed diverged is left
    out. A network that diverged at every rate has NaN in its row."""
    needed = [by, "train.lr", "final_loss", "final_test_acc", "diverged"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise KeyError(f"best_over_grid needs the columns {needed}; {missing} missing "
                       "(a sweep's experiments.table, with a column naming the network)")
    g = df.groupby([by, "train.lr"]).agg(loss=("final_loss", "mean"), acc=("final_test_acc", "mean"),
                                         diverged=("diverged", "any"))
    g = g[~g["diverged"]]
    rows = {}
    for n in pd.unique(df[by]):
        gn = g.loc[n] if n in g.index.get_level_values(0) else g.iloc[:0].droplevel(0)
        rows[n] = {"best final loss": gn["loss"].min(), "rate (loss)": gn["loss"].idxmin() if len(gn) else np.nan,
                   "best test accuracy": gn["acc"].max(), "rate (accuracy)": gn["acc"].idxmax() if len(gn) else np.nan}
    return pd.DataFrame(rows).T
