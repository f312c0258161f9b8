"""Experiments as data: a frozen :class:`Experiment` names the data, the model, the training and
the probes; :func:`run` trains it once and :func:`sweep` runs many. Results are cached with joblib,
keyed by the full config *and* the version of ``bnutils``' code, so re-running a notebook with
nothing changed does not re-train, and changing one config re-runs just that experiment.

>>> exp = Experiment(model=ModelConfig(norm="bn"), train=TrainConfig(steps=200))
>>> hists = sweep([replace(exp, seed=s) for s in range(3)])  # doctest: +SKIP
>>> table(hists)  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import functools
import hashlib
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import torch

from . import config as _config
from .curvature import hessian_probe, spectrum_probe
from .data import load as load_data
from .ics import ics_probe
from .landscape import landscape_probe
from .models import ModelConfig, build_model
from .probes import activation_probe, grad_norm_probe, saturation_probe, weight_norm_probe
from .train import History, TrainConfig, loss_function, train

__all__ = ["Experiment", "Probe", "PROBES", "run", "run_float64", "sweep", "default_jobs", "seeds", "variant", "grid", "table", "frame",
           "wide", "probe_array",
           "trained_model", "memory", "code_version", "platform", "replace"]

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Probe:
    """A measurement taken during training: ``kind`` names a function in :data:`PROBES`,
    ``params`` its keyword arguments as a tuple of (name, value) pairs (hashable).

    ``batch`` says what the probe looks at: ``()`` (the default) the training batch about to be
    used; ``("test", n)`` or ``("train", n)`` the same fixed first ``n`` examples of that split
    every time (how Ioffe & Szegedy watch a unit's input distribution).
    """

    kind: str
    params: tuple = ()
    batch: tuple = ()

    def __post_init__(self):
        if self.kind not in PROBES:
            raise ValueError(f"unknown probe {self.kind!r}; choose one of {', '.join(sorted(PROBES))}")
        if self.batch != ():
            ok = (isinstance(self.batch, tuple) and len(self.batch) == 2 and self.batch[0] in ("train", "test")
                  and isinstance(self.batch[1], int) and not isinstance(self.batch[1], bool) and self.batch[1] > 0)
            if not ok:
                raise ValueError(f"Probe batch must be () or ('train' | 'test', n > 0), got {self.batch!r}")


# kind -> the function, called as f(model, x, y, *, lr, loss_fn, **params); it returns plain data
# (a float, a dict of floats, a list or an array).
PROBES = {
    "ics": ics_probe,
    "landscape": landscape_probe,
    "activations": activation_probe,
    "weight_norms": weight_norm_probe,
    "grad_norms": grad_norm_probe,
    "saturation": saturation_probe,
    "hessian": hessian_probe,
    "spectrum": spectrum_probe,
}


@dataclass(frozen=True)
class Experiment:
    """One training run, fully specified: everything that can change its result is a field (the
    device, dtype, platform and code version join them in the cache key, see :func:`run`)."""

    data: str = "mnist5k"  # a name in bnutils.data.LOADERS
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probes: tuple = ()  # Probe instances, run every train.probe_every steps
    final_probes: tuple = ()  # Probe instances (each with a fixed batch) run once on the trained model
    keep_state: bool = False  # keep the trained weights (History.state) to rebuild the model
    seed_offset: int = field(default_factory=_config.seed_offset)  # $BNBOOK_SEED_OFFSET when made

    def __post_init__(self):
        for p in self.probes + self.final_probes:
            if not isinstance(p, Probe):
                raise TypeError(f"probes must be Probe instances, got {type(p).__name__}")
        for p in self.final_probes:
            if not p.batch:
                raise ValueError(f"final probe {p.kind!r} needs a fixed batch, e.g. batch=('train', 512)")

    @property
    def seed(self) -> int:
        """``train.seed``, the chapter's seed (see :attr:`run_seed`)."""
        return self.train.seed

    @property
    def run_seed(self) -> int:
        """The seed the run uses, for its initialisation, batch order and probes: ``train.seed +
        seed_offset``."""
        return self.train.seed + self.seed_offset

    def with_seed(self, seed: int) -> "Experiment":
        return replace(self, train=replace(self.train, seed=seed))

    def label(self) -> str:
        return self.model.norm or "standard"


def result_modules() -> tuple[str, ...]:
    """The modules of ``bnutils`` a run can execute: this one, every probe's module (the
    functions' ``__module__``), and what they import from the package (read from their
    ``import`` statements, so it cannot drift).
    Drawing, the claims ledger, the theory checks and the teaching tools are not among them:
    editing them keeps every cached run."""
    todo = ["__init__", "experiments"] + [fn.__module__.split(".")[1] for fn in PROBES.values()]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((PACKAGE_DIR / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                todo += [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bnutils."):
                todo.append(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                todo += [a.name.split(".")[1] for a in node.names if a.name.startswith("bnutils.")]
    return tuple(sorted(seen))


def code_of(source: str) -> str:
    """A module's code without its prose: the syntax tree (:func:`ast.dump`, which leaves out
    comments, blank lines and line numbers) with every docstring removed."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the code of :func:`result_modules`, what can change a result: part of every
    cache key. Their docstrings and comments are not part of it (:func:`code_of`), so editing the
    package's prose (its module map in ``__init__``, a function's explanation) keeps every
    cached run."""
    h = hashlib.sha256()
    for name in result_modules():
        h.update(name.encode())
        h.update(code_of((PACKAGE_DIR / f"{name}.py").read_text()).encode())
    return h.hexdigest()[:16]


def package_version() -> str:
    """A hash of every source file of ``bnutils``, subpackages included: what a notebook's output
    can depend on (figures, claims, self-checks). The Makefile drops jupyter-cache's executed
    notebooks when it changes, since jupyter-cache only notices changes to the notebooks."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def memory(location: str | os.PathLike | None = None) -> joblib.Memory:
    """The joblib cache of :func:`run`: one folder per scale and version of ``bnutils``' code
    (``config.cache_dir()/<scale>/<code_version>``), so a smoke-scale run never answers for a book-scale
    one even when their configs agree. ``BNBOOK_CACHE=off`` disables caching. Chapters do not
    cache functions of their own: every training run is an :class:`Experiment`."""
    if os.environ.get("BNBOOK_CACHE", "") == "off":
        return _memory(None)
    return _memory(str(location or _config.cache_dir() / _config.get_scale() / code_version()))


@functools.lru_cache(maxsize=None)
def _memory(location: str | None) -> joblib.Memory:
    return joblib.Memory(location, verbose=0)


def platform(device: str | torch.device | None = None) -> str:
    """What computes the numbers, as part of every cache key: PyTorch's version, the CPU kernels
    it dispatches to (``ATEN_CPU_CAPABILITY``, MKL's and oneDNN's instruction sets) and its thread
    count, or the GPU's name. Two machines that round differently never share a cached result."""
    dev = torch.device(device if device is not None else _config.device())
    parts = [f"torch {torch.__version__}"]
    if dev.type == "cuda":
        parts.append(torch.cuda.get_device_name(dev))
    else:
        parts.append(f"cpu {torch.backends.cpu.get_cpu_capability()}")
        parts += [f"{v}={os.environ[v]}" for v in ("MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")
                  if os.environ.get(v)]
        parts.append(f"threads {torch.get_num_threads()}")
    return ", ".join(parts)


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _probe_fns(probes, data, lr, loss_fn, **extra) -> dict:
    """name -> f(model, x, y) for :func:`bnutils.train.train`; a probe with a fixed ``batch``
    ignores the training batch and looks at its own."""
    fns = {}
    for p in probes:
        fn = functools.partial(PROBES[p.kind], lr=lr, loss_fn=loss_fn, **{**extra, **dict(p.params)})
        if p.batch:
            split, n = p.batch
            xf, yf = getattr(data, f"x_{split}")[:n], getattr(data, f"y_{split}")[:n]
            fn = functools.partial(lambda f, xf, yf, model, x, y: f(model, xf, yf), fn, xf, yf)
        fns[p.kind] = fn
    return fns


def _run(exp: Experiment, version: str, device: str, dtype: str = "float32", platform: str = "") -> History:
    """Uncached body of :func:`run` (``version``, ``device`` and ``platform`` are only part of the
    cache key)."""
    dev = _config.device() if device == "auto" else device
    data = _on_device(exp.data, str(dev), dtype)
    seed = exp.run_seed
    _config.seed_exactly(seed)
    model = build_model(exp.model, data.in_shape, data.out_features).to(device=dev, dtype=DTYPES[dtype])
    loss_fn = loss_function(exp.train.loss)
    probes = _probe_fns(exp.probes, data, exp.train.lr, loss_fn) or None
    extra = {"model": asdict(exp.model), "seed": exp.seed, "seed_offset": exp.seed_offset,
             "probes": [asdict(p) for p in exp.probes], "code_version": version}
    if dtype != "float32":
        extra["dtype"] = dtype
    hist = train(model, data, replace(exp.train, seed=seed), probes, config_extra=extra)
    if exp.final_probes:
        hist.config["final_probes"] = [asdict(p) for p in exp.final_probes]
        final = _probe_fns(exp.final_probes, data, exp.train.lr, loss_fn, seed=seed)
        # a diverged network has nothing left to measure: its final probes are None
        hist.final = {k: None if hist.diverged else f(model, None, None) for k, f in final.items()}
    if exp.keep_state:
        hist.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return hist


@functools.lru_cache(maxsize=8)
def _on_device(name: str, device: str, dtype: str = "float32"):
    return load_data(name).to(device, dtype=DTYPES[dtype] if dtype != "float32" else None)


def run(exp: Experiment, cache: bool = True, dtype: str = "float32") -> History:
    """Train ``exp`` (or load its cached history). A diverging run is returned, not raised.
    ``dtype="float64"`` trains in double precision (the deep linear network needs it).

    The cache key is ``exp`` itself (data, model, training, probes, seed offset), the code
    version of ``bnutils``, the device, the dtype and :func:`platform`; the cache folder is
    separate per scale (:func:`memory`)."""
    if not isinstance(exp, Experiment):
        raise TypeError(f"expected an Experiment, got {type(exp).__name__}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dev = str(_config.device())
    if not cache:
        return _run(exp, code_version(), dev, dtype, platform(dev))
    return memory().cache(_run)(exp, code_version(), dev, dtype, platform(dev))


def run_float64(exp: Experiment, cache: bool = True) -> History:
    """:func:`run` in double precision: for the deep linear network, whose products of 25
    matrices lose float32's precision. Cached the same way."""
    return run(exp, cache=cache, dtype="float64")


def trained_model(exp: Experiment, dtype: str = "float32", device: str | torch.device = "cpu"
                  ) -> tuple[History, torch.nn.Module]:
    """Run ``exp`` with its weights kept (cached like any run) and rebuild the trained network,
    in training mode, on ``device`` (the CPU unless told: the chapters evaluate it on data they
    hold there): ``hist, model = trained_model(exp)``."""
    exp = replace(exp, keep_state=True)
    hist = run(exp, dtype=dtype)
    if hist.state is None:
        raise RuntimeError(f"the run diverged at step {hist.diverged_at} and kept no weights"
                           if hist.diverged else "the run kept no weights")
    data = load_data(exp.data)
    _config.seed_exactly(exp.run_seed)  # the same modules as the run built
    model = build_model(exp.model, data.in_shape, data.out_features)
    model.load_state_dict(hist.state)
    return hist, model.to(device=device, dtype=DTYPES[dtype]).train()


def default_jobs() -> int:
    """How many runs :func:`sweep` trains at once: ``$BNBOOK_JOBS``, else the CPUs this process may
    use on the CPU (each run uses one torch thread, :func:`bnutils.config.set_threads`) and 1 on a
    GPU (one device, shared)."""
    env = os.environ.get("BNBOOK_JOBS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"BNBOOK_JOBS must be a positive int, got {env!r}")
        return n
    if torch.device(_config.device()).type != "cpu":
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _run_cached(exp: Experiment, location: str, version: str, device: str, dtype: str, platform: str) -> None:
    """A worker's part of :func:`sweep`: train ``exp`` into the cache at ``location`` (passed
    explicitly: a reused worker process keeps the environment it started with)."""
    _memory(location).cache(_run)(exp, version, device, dtype, platform)


def sweep(experiments: Iterable[Experiment], cache: bool = True, jobs: int | None = None) -> list[History]:
    """Run every experiment (each cached on its own) and return their histories in order.

    The runs that are not cached yet train in ``jobs`` processes at once (default :func:`default_jobs`:
    one per CPU), each with its own single torch thread; a run computes the same numbers in a
    worker as in this process (same seed, same kernels, one thread), and the cache key is the
    same. Without the cache (``cache=False`` or ``BNBOOK_CACHE=off``) they run here, one by one."""
    experiments = list(experiments)
    if not experiments:
        raise ValueError("sweep needs at least one experiment")
    for e in experiments:
        if not isinstance(e, Experiment):
            raise TypeError(f"expected an Experiment, got {type(e).__name__}")
    n = default_jobs() if jobs is None else jobs
    if n < 1:
        raise ValueError(f"jobs must be >= 1, got {n}")
    mem = memory()
    if cache and n > 1 and mem.location is not None:
        dev = str(_config.device())
        key = (code_version(), dev, "float32", platform(dev))
        cached = mem.cache(_run)
        todo = list(dict.fromkeys(e for e in experiments if not cached.check_call_in_cache(e, *key)))
        if len(todo) > 1:
            joblib.Parallel(n_jobs=min(n, len(todo)))(
                joblib.delayed(_run_cached)(e, str(mem.location), *key) for e in todo
            )
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
        row["seed_offset"] = h.config.get("seed_offset", 0)
        row["final_loss"] = h.final_loss
        row["final_test_acc"] = h.final_test_acc
        row["final_train_acc"] = float(h.train_acc[-1]) if len(h.train_acc) and not h.diverged else float("nan")
        row["diverged"] = h.diverged
        row["diverged_at"] = h.diverged_at
        row["seconds"] = h.seconds
        rows.append(row)
    return pd.DataFrame(rows)


def frame(histories: Sequence[History], key: str = "loss", probe: str | None = None) -> pd.DataFrame:
    """Histories in long form: one row per run and step, with the run's config as columns.

    Columns: ``run`` (the history's index in ``histories``), the config columns of :func:`table`
    (``model.norm``, ``train.lr``, ``seed``, ...), ``diverged`` (the run diverged), ``step`` and
    ``key``'s value. ``key`` is ``"loss"`` (the training-batch loss of every step), an evaluated
    series (``"train_loss"``, ``"train_acc"``, ``"test_loss"``, ``"test_acc"``, at ``eval_steps``),
    or, with ``probe``, a quantity of that probe (a dict key, or ``None`` for a probe that records
    one number) at ``probe_steps``; a probe quantity recorded as one value per measured layer (the
    ICS probe's lists) gives a row per run, step and ``layer`` (arranged by
    :func:`bnutils.layerwise.probe_array`). A run that diverged has rows only for the steps it
    reached, so :func:`wide` pads it with NaN and a band skips it."""
    if not histories:
        raise ValueError("frame needs at least one history")
    config = table(histories)
    config = config[[c for c in config.columns if c.startswith(("model.", "train.")) or c in ("data", "seed", "seed_offset", "diverged")]]
    parts = []
    for i, h in enumerate(histories):
        if probe is not None:
            if probe not in h.probes:
                raise KeyError(f"no probe {probe!r} in history {i} (it has {sorted(h.probes)})")
            records = h.probes[probe]
            if key is not None and records and key not in records[0]:
                raise KeyError(f"probe {probe!r} records no {key!r} (it records {sorted(records[0])})")
            values = [d if key is None else d[key] for d in records]
            steps = np.asarray(h.probe_steps)[:len(values)]
            if values and np.ndim(values[0]) == 1:  # one value per measured layer
                sizes = [len(v) for v in values]
                parts.append(pd.DataFrame({"run": i, "step": np.repeat(np.asarray(steps, dtype=np.int64), sizes),
                                           "layer": np.concatenate([np.arange(n) for n in sizes]),
                                           key or probe: np.concatenate(values).astype(float)}))
                continue
        elif key == "loss":
            values = h.loss
            steps = np.arange(len(values))
        elif key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            values = getattr(h, key)
            steps = np.asarray(h.eval_steps)[:len(values)]
        else:
            raise ValueError(f"key must be 'loss', 'train_loss', 'train_acc', 'test_loss' or 'test_acc' "
                             f"without a probe, got {key!r}")
        parts.append(pd.DataFrame({"run": i, "step": np.asarray(steps, dtype=np.int64),
                                   key or probe: np.asarray(values, dtype=float)}))
    return pd.concat(parts, ignore_index=True).merge(config, left_on="run", right_index=True)


def wide(df: pd.DataFrame, value: str) -> tuple[np.ndarray, np.ndarray]:
    """A long-form :func:`frame` back to arrays: (steps, values), ``values`` runs x steps in the
    order of ``run``, NaN where a run has no row (it diverged and stopped early)."""
    table_ = df.pivot(index="run", columns="step", values=value).sort_index()
    return table_.columns.to_numpy(), table_.to_numpy(dtype=float)


def probe_array(histories: Sequence[History], key: str, probe: str = "landscape") -> tuple[np.ndarray, np.ndarray]:
    """One probe quantity of a group of runs as (steps, values): ``values`` is seeds x probe steps,
    padded with NaN where a run diverged and stopped early (:func:`wide` of :func:`frame`)."""
    return wide(frame(histories, key, probe=probe), key)


_FIELDS = {"model": {f.name for f in fields(ModelConfig)}, "train": {f.name for f in fields(TrainConfig)}}


def variant(exp: Experiment, **changes) -> Experiment:
    """``exp`` with some fields changed, each named by itself whichever config holds it:
    ``variant(exp, norm="bn", lr=0.5)`` is ``replace(exp, model=replace(exp.model, norm="bn"),
    train=replace(exp.train, lr=0.5))``. Experiment's own fields (``data``, ``probes``, ...) work too."""
    top = {name: {} for name in _FIELDS}
    own = {}
    for name, value in changes.items():
        holder = next((k for k, names in _FIELDS.items() if name in names), None)
        if holder is not None:
            top[holder][name] = value
        elif name in {f.name for f in fields(Experiment)}:
            own[name] = value
        else:
            raise TypeError(f"variant() got an unexpected keyword argument {name!r}: not a field of "
                            "Experiment, ModelConfig or TrainConfig")
    for holder, values in top.items():
        if values:
            own[holder] = replace(own.get(holder, getattr(exp, holder)), **values)
    return replace(exp, **own)


def grid(base: Experiment, n_seeds: int | None = None, **axes) -> list[Experiment]:
    """Every combination of the values in ``axes`` (lists, named as in :func:`variant`), in
    :func:`itertools.product` order (the last axis varies fastest), each for ``n_seeds`` seeds
    (innermost) when given: ``sweep(grid(base, n_seeds=3, norm=[None, "bn"], lr=[0.1, 1.0]))``."""
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"grid axis {name!r} must be a list of values, got {type(values).__name__}")
    out = []
    for combo in itertools.product(*(list(v) for v in axes.values())):
        exp = variant(base, **dict(zip(axes, combo)))
        out.extend(seeds(exp, n_seeds) if n_seeds is not None else [exp])
    return out
