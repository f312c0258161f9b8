"""Experiments as data: a frozen :class:`Experiment` names the data, the model, the training and
the probes; :func:`run` trains it once and :func:`sweep` runs many. Results are cached with joblib,
keyed by the full config *and* the version of ``bnutils``' code, so re-running a notebook with
nothing changed does not re-train, and changing one config re-runs just that experiment.

>>> exp = Experiment(model=ModelConfig(norm="bn"), train=TrainConfig(steps=200))
>>> hists = sweep([replace(exp, seed=s) for s in range(3)])  # doctest: +SKIP
>>> table(hists)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import joblib
import torch
import pandas as pd

from . import config as _config
from .data import load as load_data
from .models import ModelConfig, build_model
from .train import History, TrainConfig, loss_function, train

__all__ = ["Experiment", "Probe", "run", "sweep", "seeds", "table", "memory", "code_version", "replace"]

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Probe:
    """A measurement taken during training: ``kind`` names a function in :data:`PROBES`,
    ``params`` its keyword arguments as a tuple of (name, value) pairs (hashable)."""

    kind: str
    params: tuple = ()

    def __post_init__(self):
        if self.kind not in PROBES:
            raise ValueError(f"unknown probe {self.kind!r}; choose one of {', '.join(sorted(PROBES))}")


# kind -> "module:function"; the function is called as f(model, x, y, *, lr, loss_fn, **params)
# and returns plain data (a float, a dict of floats, a list or an array).
PROBES = {
    "ics": "bnutils.metrics:ics_probe",
    "landscape": "bnutils.metrics:landscape_probe",
    "activations": "bnutils.metrics:activation_probe",
    "weight_norms": "bnutils.metrics:weight_norm_probe",
    "grad_norms": "bnutils.metrics:grad_norm_probe",
    "saturation": "bnutils.metrics:saturation_probe",
    "hessian": "bnutils.spectrum:hessian_probe",
}


def _resolve(kind: str):
    module, name = PROBES[kind].split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Experiment:
    """One training run, fully specified."""

    data: str = "mnist5k"  # a name in bnutils.data.LOADERS
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probes: tuple = ()  # Probe instances, run every train.probe_every steps

    @property
    def seed(self) -> int:
        """``train.seed`` seeds both the initialisation and the training."""
        return self.train.seed

    def with_seed(self, seed: int) -> "Experiment":
        return replace(self, train=replace(self.train, seed=seed))

    def label(self) -> str:
        return self.model.norm or "standard"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of every source file of ``bnutils``: part of every cache key."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """``$BNBOOK_CACHE``, else ``_build/cache`` beside the package's checkout."""
    env = os.environ.get("BNBOOK_CACHE")
    return Path(env) if env else PACKAGE_DIR.parent / "_build" / "cache"


def memory(location: str | os.PathLike | None = None) -> joblib.Memory:
    """The joblib cache, one folder per version of ``bnutils``' code (``cache_dir()/<code_version>``),
    so that anything cached with ``memory().cache(fn)`` -- experiments and a notebook's own
    functions alike -- is keyed by its arguments, its own source *and* the package's code.
    ``BNBOOK_CACHE=off`` disables caching."""
    if os.environ.get("BNBOOK_CACHE", "") == "off":
        return _memory(None)
    return _memory(str(location or cache_dir() / code_version()))


@functools.lru_cache(maxsize=None)
def _memory(location: str | None) -> joblib.Memory:
    return joblib.Memory(location, verbose=0)


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _run(exp: Experiment, version: str, device: str, dtype: str = "float32") -> History:
    """Uncached body of :func:`run` (``version`` and ``device`` are only part of the cache key)."""
    ds = load_data(exp.data)
    dev = _config.device() if device == "auto" else device
    _config.seed_everything(exp.seed)
    model = build_model(exp.model, ds.in_shape, ds.out_features).to(device=dev, dtype=DTYPES[dtype])
    probes = None
    if exp.probes:
        loss_fn = loss_function(exp.train.loss)
        probes = {}
        for p in exp.probes:
            fn = _resolve(p.kind)
            probes[p.kind] = functools.partial(fn, lr=exp.train.lr, loss_fn=loss_fn, **dict(p.params))
    extra = {"model": asdict(exp.model), "seed": exp.seed, "probes": [asdict(p) for p in exp.probes],
             "code_version": version}
    if dtype != "float32":
        extra["dtype"] = dtype
    return train(model, _on_device(exp.data, str(dev), dtype), exp.train, probes, config_extra=extra)


@functools.lru_cache(maxsize=8)
def _on_device(name: str, device: str, dtype: str = "float32"):
    return load_data(name).to(device, dtype=DTYPES[dtype] if dtype != "float32" else None)


def run(exp: Experiment, cache: bool = True, dtype: str = "float32") -> History:
    """Train ``exp`` (or load its cached history). A diverging run is returned, not raised.
    ``dtype="float64"`` trains in double precision (the deep linear network needs it)."""
    if not isinstance(exp, Experiment):
        raise TypeError(f"expected an Experiment, got {type(exp).__name__}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dev = str(_config.device())
    if not cache:
        return _run(exp, code_version(), dev, dtype)
    return memory().cache(_run)(exp, code_version(), dev, dtype)


def sweep(experiments: Iterable[Experiment], cache: bool = True) -> list[History]:
    """Run every experiment (each cached on its own) and return their histories in order."""
    experiments = list(experiments)
    if not experiments:
        raise ValueError("sweep needs at least one experiment")
    return [run(e, cache=cache) for e in experiments]


def seeds(exp: Experiment, n: int, start: int = 0) -> list[Experiment]:
    """``exp`` with seeds ``start .. start+n-1``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [exp.with_seed(s) for s in range(start, start + n)]


def table(histories: Sequence[History]) -> pd.DataFrame:
    """One row per run: its config flattened (``model.norm``, ``train.lr``, ...) and its results
    (final loss, final test accuracy, diverged step)."""
    rows = []
    for h in histories:
        row = {}
        for key in ("model", "train"):
            for k, v in h.config.get(key, {}).items():
                row[f"{key}.{k}"] = v if not isinstance(v, (list, tuple)) else str(tuple(v))
        row["data"] = h.config.get("data")
        row["seed"] = h.config.get("seed")
        row["final_loss"] = h.final_loss
        row["final_test_acc"] = h.final_test_acc
        row["final_train_acc"] = float(h.train_acc[-1]) if len(h.train_acc) and not h.diverged else float("nan")
        row["diverged"] = h.diverged
        row["diverged_at"] = h.diverged_at
        row["seconds"] = h.seconds
        rows.append(row)
    return pd.DataFrame(rows)
