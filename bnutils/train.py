"""The training loop, written out: data on the device, batches by slicing, plain data back.

>>> from bnutils import data, models, train
>>> ds = data.mnist5k()
>>> model = models.mlp(784, [100], 10, norm="bn")
>>> hist = train.train(model, ds, train.TrainConfig(lr=0.1, steps=100))  # doctest: +SKIP

A run whose loss becomes NaN or infinite is *not* an error: it stops, and the history records
the step (``diverged_at``) with everything before it intact.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset

OPTIMIZERS = ("sgd", "adam", "adagrad", "rmsprop", "lbfgs")
LOSSES = ("cross_entropy", "mse", "sse")
AUTOCAST = (None, "bfloat16", "float16")


@dataclass(frozen=True)
class TrainConfig:
    """How to train; sweep with ``dataclasses.replace(cfg, lr=...)``."""

    lr: float = 0.1  # learning rate
    steps: int = 1000  # optimisation steps (mini-batches)
    batch_size: int | None = 128  # None: full batch (the deep linear network)
    optimizer: str = "sgd"  # one of OPTIMIZERS ("lbfgs": full batch, strong-Wolfe line search)
    momentum: float = 0.0  # heavy-ball momentum for sgd (alpha for rmsprop)
    weight_decay: float = 0.0  # L2 penalty, as torch.optim applies it
    loss: str = "cross_entropy"  # "cross_entropy", "mse" (mean) or "sse" (summed squared error)
    seed: int = 0  # seeds the batch order and any noise drawn while training
    eval_every: int = 100  # evaluate train/test loss and accuracy every this many steps
    train_eval_size: int = 1000  # training examples used to measure train accuracy
    probe_every: int = 0  # run the probes every this many steps (0: never)
    autocast: str | None = None  # "bfloat16" or "float16": mixed precision (torch.autocast); None: off
    channels_last: bool = False  # convolution weights and images in channels-last memory format
    compile: str | None = None  # a torch.compile backend for the training steps ("inductor" fuses kernels); None: eager

    def __post_init__(self):
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr >= 0):
            raise ValueError(f"Invalid learning rate: {self.lr}")
        for name in ("steps", "eval_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {self.batch_size!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.optimizer == "lbfgs" and (self.batch_size is not None or self.autocast or self.compile):
            raise ValueError("optimizer 'lbfgs' is full-batch and eager: set batch_size=None, autocast=None, "
                             "compile=None")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"Invalid momentum value: {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {self.weight_decay}")
        if self.probe_every < 0:
            raise ValueError(f"probe_every must be >= 0, got {self.probe_every}")
        if self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {', '.join(map(repr, AUTOCAST))}, got {self.autocast!r}")
        if self.compile is not None and self.compile not in torch.compiler.list_backends(exclude_tags=()):
            # torch.compile's own check says: "Invalid backend: 'x', see `torch._dynamo.list_backends()`"
            raise ValueError(f"Invalid backend: {self.compile!r}, see `torch.compiler.list_backends()` "
                             "(e.g. 'inductor'), or None for eager")


@dataclass
class History:
    """What one run produced, as plain data (pickles, caches and plots without the model)."""

    config: dict  # asdict() of every config that produced the run
    loss: np.ndarray  # (steps run,) training-batch loss in train mode, before each update
    eval_steps: np.ndarray  # steps at which the model was evaluated
    train_loss: np.ndarray
    train_acc: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    diverged_at: int | None = None  # first step whose loss was NaN or inf
    probe_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    probes: dict = field(default_factory=dict)  # name -> list of values, one per probe step
    seconds: float = 0.0  # wall-clock time of the loop (not part of equality)
    eval_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))  # training time (evaluations and probes excluded) at each eval step (not part of equality)
    restarts: int = 0  # L-BFGS: how often it was restarted because its direction did not descend
    final: dict = field(default_factory=dict)  # final probe name -> value on the trained model
    state: dict | None = None  # the trained weights (Experiment.keep_state), on the CPU

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def final_loss(self) -> float:
        """Mean training-batch loss over the last tenth of the run (inf if it diverged)."""
        if self.diverged:
            return float("inf")
        k = max(1, len(self.loss) // 10)
        return float(np.mean(self.loss[-k:]))

    @property
    def final_test_acc(self) -> float:
        return float(self.test_acc[-1]) if len(self.test_acc) and not self.diverged else float("nan")

    def __eq__(self, other) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        arrays = ("loss", "eval_steps", "train_loss", "train_acc", "test_loss", "test_acc", "probe_steps")
        return (
            self.config == other.config
            and self.diverged_at == other.diverged_at
            and all(np.array_equal(getattr(self, a), getattr(other, a), equal_nan=True) for a in arrays)
            and _equal_probes(self.probes, other.probes)
            and _equal_probes(self.final, other.final)
        )


def _equal_probes(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(_same(a[k], b[k]) for k in a)


def _same(a, b) -> bool:
    """Equality of plain data: nested dicts, lists and arrays, NaN equal to NaN."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
    except TypeError:  # non-numeric data
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))


def loss_function(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``"cross_entropy"``, ``"mse"`` (mean squared error) or ``"sse"`` (summed squared error)."""
    if name == "cross_entropy":
        return F.cross_entropy
    if name == "mse":
        return F.mse_loss
    if name == "sse":
        return lambda out, y: F.mse_loss(out, y, reduction="sum")
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimiser that ``cfg`` names."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "lbfgs":  # one quasi-Newton step per call, the last 10 curvature pairs
        return torch.optim.LBFGS(params, lr=cfg.lr, max_iter=1, history_size=10, line_search_fn="strong_wolfe")
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


# Evaluation runs in chunks of this many examples. Not for memory: a chunk's activations are freed
# before the next, and on Linux the large ones cost page faults. An output over 32 MB (glibc's
# largest mmap threshold: 1000 images through the CNN's first block, (1000, 16, 28, 28) floats,
# are 50 MB) is a fresh mmap whose pages fault in as they are first written, in every operation;
# a smaller one is reused from the heap. The CNN with BN evaluated 1000 test images in 0.44 s at
# 1000 a chunk and in 0.14-0.16 s at 250 on the 2-core development machine (bench/RESULTS.md,
# eighth session); the MLPs' activations are small either way.
EVAL_CHUNK = 250


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "cross_entropy",
             batch_size: int = EVAL_CHUNK) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for regression) of ``model`` on (x, y) in eval mode, in chunks
    of ``batch_size`` examples (the loss summed over them, so the chunk size changes it only by
    rounding). The model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        total_loss, correct = 0.0, 0
        fn = loss_function(loss)
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size])
            yb = y[i:i + batch_size]
            batch_loss = fn(out, yb)
            total_loss += float(batch_loss) * (1 if loss == "sse" else len(yb))
            if loss == "cross_entropy":
                correct += int((out.argmax(1) == yb).sum())
        mean_loss = total_loss / (1 if loss == "sse" else len(x))
        acc = correct / len(x) if loss == "cross_entropy" else float("nan")
        return mean_loss, acc
    finally:
        model.train(was_training)


def autocast(cfg: TrainConfig, device: torch.device):
    """The :func:`torch.autocast` context that ``cfg.autocast`` asks for on ``device`` (a context
    that does nothing when it is None). Matrix products and convolutions then run in the lower
    precision; losses, reductions and the book's norms (see :func:`bnutils.norms.batch_norm`) in
    float32."""
    if cfg.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, cfg.autocast))


def _progress_enabled() -> bool:
    flag = os.environ.get("BNBOOK_PROGRESS")
    if flag is not None:
        return flag not in ("", "0", "false", "no")
    return sys.stderr.isatty()


Probe = Callable[[nn.Module, torch.Tensor, torch.Tensor], object]


def batches(n: int, batch_size: int | None, steps: int, generator: torch.Generator, device=None):
    """Index slices for ``steps`` mini-batches: a fresh ``randperm`` each epoch, the last partial
    batch dropped. ``batch_size=None`` (or >= n) means the full batch, in order."""
    if batch_size is None or batch_size >= n:
        full = slice(0, n)
        for _ in range(steps):
            yield full
        return
    per_epoch = n // batch_size
    step = 0
    while step < steps:
        perm = torch.randperm(n, generator=generator).to(device)
        for b in range(min(per_epoch, steps - step)):
            yield perm[b * batch_size:(b + 1) * batch_size]
        step += per_epoch


def train(model: nn.Module, data: Dataset, cfg: TrainConfig,
          probes: Mapping[str, Probe] | None = None, config_extra: dict | None = None) -> History:
    """Train ``model`` on ``data`` as ``cfg`` says and return its :class:`History`.

    ``probes`` maps names to functions ``probe(model, x, y) -> value`` that measure something on
    the batch *about to be used* (before its update), every ``cfg.probe_every`` steps; a probe
    must leave the model as it found it. Probes run in full precision even when ``cfg.autocast``
    is set: they measure differences of gradients, which half precision would drown in rounding.
    ``config_extra`` is stored in ``History.config``.

    ``cfg.channels_last`` converts ``model``'s 4D weights (and the images) to channels-last memory
    format in place; ``cfg.autocast="float16"`` scales the loss with :class:`torch.amp.GradScaler`;
    ``cfg.compile`` runs the training steps' forward (and so backward) through :func:`torch.compile`
    with that backend, while evaluation and probes use ``model`` itself (they share its weights).
    """
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a bnutils.data.Dataset, got {type(data).__name__}")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    if probes and cfg.probe_every == 0:
        raise ValueError("probes were given but cfg.probe_every is 0")
    dev = params[0].device
    if data.x_train.device != dev:
        data = data.to(dev)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
        data = data.to(memory_format=torch.channels_last)
    classification = cfg.loss == "cross_entropy"
    if classification != (data.num_classes is not None):
        raise ValueError(f"loss {cfg.loss!r} does not fit {'a classification' if data.num_classes else 'a regression'} "
                         f"data set ({data.name}); use 'cross_entropy' for classes, 'mse' or 'sse' for targets")

    loss_fn = loss_function(cfg.loss)
    opt = make_optimizer(params, cfg)
    amp = autocast(cfg, dev)
    forward = model if cfg.compile is None else torch.compile(model, backend=cfg.compile)
    scaler = torch.amp.GradScaler(dev.type) if cfg.autocast == "float16" else None
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # noise layers and dropout draw from the global generator
    x, y = data.x_train, data.y_train
    x_sub, y_sub = x[:cfg.train_eval_size], y[:cfg.train_eval_size]

    # 0-d loss tensors, stacked when checked and at the end: appending costs nothing per step
    # (indexing into a preallocated tensor is an op, ~10 us), and nothing waits for the device.
    losses: list[torch.Tensor] = []
    eval_steps, tr_loss, tr_acc, te_loss, te_acc = [], [], [], [], []
    probe_steps: list[int] = []
    probe_values: dict[str, list] = {name: [] for name in (probes or {})}
    diverged_at = None
    check_every = min(cfg.eval_every, 25)

    eval_time: list[float] = []
    clock = [0.0, time.perf_counter()]  # training seconds so far, start of the current stretch
    restarts, last_loss = 0, None

    def record_eval(step):
        clock[0] += time.perf_counter() - clock[1]
        eval_time.append(clock[0])
        eval_steps.append(step)
        for (ls, acc), (x_, y_) in (((tr_loss, tr_acc), (x_sub, y_sub)), ((te_loss, te_acc), (data.x_test, data.y_test))):
            with amp:
                l_, a_ = evaluate(model, x_, y_, cfg.loss)
            ls.append(l_)
            acc.append(a_)
        clock[1] = time.perf_counter()

    bar = None
    if _progress_enabled():
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="train", leave=False)
    model.train()
    t0 = time.perf_counter()
    record_eval(0)
    for step, idx in enumerate(batches(len(x), cfg.batch_size, cfg.steps, gen, dev)):
        xb, yb = x[idx], y[idx]
        if probes and step % cfg.probe_every == 0:
            clock[0] += time.perf_counter() - clock[1]
            probe_steps.append(step)
            for name, probe in probes.items():
                probe_values[name].append(probe(model, xb, yb))
            clock[1] = time.perf_counter()
        if cfg.optimizer == "lbfgs":
            # L-BFGS re-evaluates the loss inside its line search: it takes a closure, and the loss
            # it returns is the one before the step
            def closure():
                opt.zero_grad(set_to_none=True)
                loss_ = loss_fn(model(xb), yb)
                loss_.backward()
                return loss_

            loss = opt.step(closure).detach()
            losses.append(loss)
            if not bool(torch.isfinite(loss)):
                diverged_at = step
                break
            if last_loss is not None and float(loss) == last_loss:
                opt.state.clear()  # no move: the direction did not descend; restart from the gradient
                restarts += 1
            last_loss = float(loss)
            if (step + 1) % cfg.eval_every == 0:
                record_eval(step + 1)
            continue
        with amp:
            out = forward(xb)
            loss = loss_fn(out, yb)  # float32 under autocast
        losses.append(loss.detach())
        if (step + 1) % check_every == 0 or step + 1 == cfg.steps:
            window = torch.stack(losses[step + 1 - ((step % check_every) + 1):])
            finite = torch.isfinite(window)
            if not bool(finite.all()):
                diverged_at = step + 1 - len(window) + int((~finite).nonzero()[0, 0])
                break
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:  # float16: scale the loss so that small gradients do not underflow
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        if bar is not None:
            bar.update(1)
        if (step + 1) % cfg.eval_every == 0:
            record_eval(step + 1)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    n_run = diverged_at if diverged_at is not None else cfg.steps
    if diverged_at is not None:
        # evaluations taken after the divergence step are not part of the finite record
        keep = [i for i, s in enumerate(eval_steps) if s < diverged_at]
        eval_steps, tr_loss, tr_acc, te_loss, te_acc = (
            [v[i] for i in keep] for v in (eval_steps, tr_loss, tr_acc, te_loss, te_acc))
        keep_p = [i for i, s in enumerate(probe_steps) if s < diverged_at]
        probe_steps = [probe_steps[i] for i in keep_p]
        probe_values = {k: [v[i] for i in keep_p] for k, v in probe_values.items()}
    config = {"train": asdict(cfg), "data": data.name}
    if config_extra:
        config.update(config_extra)
    return History(
        config=config,
        loss=(torch.stack(losses[:n_run]).cpu().double().numpy() if n_run else np.zeros(0)),
        eval_steps=np.asarray(eval_steps, dtype=np.int64),
        train_loss=np.asarray(tr_loss, dtype=np.float64),
        train_acc=np.asarray(tr_acc, dtype=np.float64),
        test_loss=np.asarray(te_loss, dtype=np.float64),
        test_acc=np.asarray(te_acc, dtype=np.float64),
        diverged_at=diverged_at,
        probe_steps=np.asarray(probe_steps, dtype=np.int64),
        probes=probe_values,
        seconds=seconds,
        eval_seconds=np.asarray(eval_time[:len(eval_steps)], dtype=np.float64),
        restarts=restarts,
    )
