"""``bnutils.train`` against two hand-written loops over the same model, data, optimiser and steps:

* **minimal**: data as tensors, ``torch.randperm`` per epoch, batches by slicing (what
  ``bnutils.train`` does, with nothing else: no loss record, no divergence check, no history);
* **DataLoader**: ``DataLoader(TensorDataset(x, y), batch_size, shuffle=True, drop_last=True)``, the
  loop most users would write.

All three evaluate once, at step 0 (``bnutils.train`` always does; ``eval_every`` is set past the last
step so it evaluates nowhere else), so evaluation is equal in all three. Figures are seconds per
epoch, as paired ratios against the minimal loop. The minimal loop draws the same batches as
``bnutils.train`` (same generator, same seed), so their trained weights must agree exactly: that is
checked, and shows the two do the same work.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from bnutils import config, data
from bnutils.models import ModelConfig, build_model
from bnutils.train import TrainConfig, evaluate, train

from .common import interleaved, median, paired_ratio, row


@dataclass(frozen=True)
class Case:
    name: str
    data: str
    model: ModelConfig
    batch_size: int
    lr: float


CASES = {
    # Ioffe & Szegedy's MNIST network: 784-100-100-100-10, sigmoid, BN, small Gaussian init, batch 60
    "mlp": Case("Ioffe MLP (BN, sigmoid) on mnist5k, batch 60", "mnist5k",
                ModelConfig(hidden=(100, 100, 100), act="sigmoid", norm="bn", init="gaussian", init_scale=0.01),
                60, 1.0),
    # the book's small CNN (conv 16-32-64, max-pools), BN, batch 128
    "cnn": Case("small CNN (BN) on mnist5k_images, batch 128", "mnist5k_images",
                ModelConfig(arch="cnn", norm="bn"), 128, 0.05),
    # a stress test, not a goal: one linear layer, so a step is tiny and per-step overhead shows
    "linear": Case("softmax regression on mnist5k, batch 60 (overhead stress test)", "mnist5k",
                   ModelConfig(hidden=()), 60, 0.1),
}
GOALS = ("mlp", "cnn")  # the goals are for the book's networks


def minimal_loop(model, ds, cfg: TrainConfig):
    """The loop written out with nothing but what training needs (plus the step-0 evaluation)."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    x, y = ds.x_train, ds.y_train
    evaluate(model, x[:cfg.train_eval_size], y[:cfg.train_eval_size])
    evaluate(model, ds.x_test, ds.y_test)
    model.train()
    n, bs = len(x), cfg.batch_size
    per_epoch = n // bs
    for _ in range(cfg.steps // per_epoch):
        perm = torch.randperm(n, generator=gen)
        for b in range(per_epoch):
            idx = perm[b * bs:(b + 1) * bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


def dataloader_loop(model, ds, cfg: TrainConfig):
    """The loop most users would write: a DataLoader over a TensorDataset."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    evaluate(model, ds.x_train[:cfg.train_eval_size], ds.y_train[:cfg.train_eval_size])
    evaluate(model, ds.x_test, ds.y_test)
    loader = DataLoader(TensorDataset(ds.x_train, ds.y_train), batch_size=cfg.batch_size,
                        shuffle=True, drop_last=True, generator=gen)
    model.train()
    for _ in range(cfg.steps // len(loader)):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


def bench_case(key: str, epochs: int, rounds: int, n_train: int | None = None) -> list:
    case = CASES[key]
    ds = data.load(case.data)
    if n_train is not None:  # tiny runs for the tests
        ds = data.Dataset(ds.name, ds.x_train[:n_train], ds.y_train[:n_train],
                          ds.x_test[:n_train], ds.y_test[:n_train], ds.num_classes)
    per_epoch = len(ds.x_train) // case.batch_size
    steps = epochs * per_epoch
    cfg = TrainConfig(lr=case.lr, steps=steps, batch_size=case.batch_size, eval_every=steps + 1)
    config.seed_everything(0)
    proto = build_model(case.model, ds.in_shape, ds.out_features)

    # Same work: the minimal loop and bnutils.train end at identical weights.
    a, b = copy.deepcopy(proto), copy.deepcopy(proto)
    minimal_loop(a, ds, cfg)
    train(b, ds, cfg)
    same = all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))

    models = {}

    def setup(name):
        models[name] = copy.deepcopy(proto)

    fns = {
        "minimal": lambda: minimal_loop(models["minimal"], ds, cfg),
        "bnutils.train": lambda: train(models["bnutils.train"], ds, cfg),
        "DataLoader": lambda: dataloader_loop(models["DataLoader"], ds, cfg),
    }
    times = interleaved(fns, rounds=rounds, warmup=1, setup=setup)
    ms = {k: 1000 * median(v) / epochs for k, v in times.items()}
    r_train = paired_ratio(times, "bnutils.train", "minimal")
    r_dl = paired_ratio(times, "DataLoader", "minimal")
    r_train_dl = paired_ratio(times, "bnutils.train", "DataLoader")
    raw = {"times_s": times, "epochs_per_round": epochs, "steps_per_epoch": per_epoch,
           "ms_per_epoch_median": ms, "same_weights_as_minimal": same}
    note = f"{rounds} rounds x {epochs} epochs; minimal {ms['minimal']:.0f} ms/epoch"
    return [
        row("loop", f"{key}: bnutils.train / minimal loop", r_train, goal="<= 1.05" if key in GOALS else "",
            note=note + ("; same weights" if same else "; WEIGHTS DIFFER"), case=case.name, **raw),
        row("loop", f"{key}: bnutils.train / DataLoader loop", r_train_dl, goal="< 1" if key in GOALS else "",
            note=f"DataLoader {ms['DataLoader']:.0f} ms/epoch"),
        row("loop", f"{key}: DataLoader loop / minimal loop", r_dl, note="for reference"),
    ]


def run(tiny: bool = False) -> list:
    rows = []
    for key in CASES:
        if tiny:
            rows += bench_case(key, epochs=1, rounds=1, n_train=4 * CASES[key].batch_size)
        else:
            rows += bench_case(key, epochs={"mlp": 4, "cnn": 1, "linear": 10}[key],
                               rounds={"mlp": 9, "cnn": 7, "linear": 9}[key])
    return rows
