"""What the measurements cost, against one training step (forward, backward, SGD update) of the same
network on the same batch:

* the ICS probe (``bnutils.ics.ics_probe``, Santurkar et al. Definition 2.1): one pass for G plus
  one per measured layer, so about 1 + (number of layers) passes;
* the landscape probe (``bnutils.landscape.landscape_probe``) over k step sizes: one pass for g plus
  one per step size, so about k + 1 passes. Goal: about k training steps, no more; the table gives
  cost / (k training steps), which the extra pass for g alone puts at (k + 1) / k.
"""

from __future__ import annotations

import copy

import torch

from bnutils import config, data
from bnutils.models import ModelConfig, build_model
from bnutils.train import loss_function

from .common import interleaved, median, paired_ratio, per_call, row

CASES = {
    "mlp": ("Ioffe MLP (BN, sigmoid), batch 60", "mnist5k",
            ModelConfig(hidden=(100, 100, 100), act="sigmoid", norm="bn", init="gaussian", init_scale=0.01), 60, 0.1),
    "cnn": ("small CNN (BN), batch 128", "mnist5k_images", ModelConfig(arch="cnn", norm="bn"), 128, 0.05),
}
MULTIPLIERS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)  # Santurkar et al.'s VGG range, k = 8


def probe_functions():
    """The probes if they exist yet (they are written by other chapters' authors)."""
    found = {}
    try:
        from bnutils.ics import ics_probe
        found["ics"] = ics_probe
    except ImportError:
        pass
    try:
        from bnutils.landscape import landscape_probe
        found["landscape"] = landscape_probe
    except ImportError:
        pass
    return found


def bench_model(label, model, x, y, lr, rounds, device="cpu", min_time=0.1, key="", multipliers=MULTIPLIERS):
    loss_fn = loss_function("cross_entropy")
    probes = probe_functions()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    # the training step runs on a copy, so the probes always measure the same weights
    stepped = copy.deepcopy(model)
    opt = torch.optim.SGD(stepped.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(stepped(x), y).backward()
        opt.step()

    fns = {"train step": step}
    n_layers = sum(isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) for m in model.modules())
    if "ics" in probes:
        fns["ics (all layers)"] = lambda: probes["ics"](model, x, y, lr=lr, loss_fn=loss_fn)
        fns["ics (last layer)"] = lambda: probes["ics"](model, x, y, lr=lr, loss_fn=loss_fn, layers=[-1])
    k = len(multipliers)
    if "landscape" in probes:
        fns[f"landscape (k={k})"] = lambda: probes["landscape"](model, x, y, lr=lr, loss_fn=loss_fn,
                                                                multipliers=multipliers)
    calls = {name: per_call(f, min_time, device) for name, f in fns.items()}
    n = {name: f.n for name, f in calls.items()}
    times = interleaved(calls, rounds=rounds, warmup=0, device=device)
    times = {name: [t / n[name] for t in v] for name, v in times.items()}
    ms_step = 1000 * median(times["train step"])
    rows = []
    prefix = f"{key}: " if key else ""
    if "ics" in probes:
        r = paired_ratio(times, "ics (all layers)", "train step")
        rows.append(row("probes", f"{prefix}ICS, all {n_layers} layers / train step", r,
                        goal=f"<= {1.25 * (n_layers + 1):.2f}",
                        note=f"{n_layers + 1} passes; step {ms_step:.2f} ms; {label}", times_s=times))
        r = paired_ratio(times, "ics (last layer)", "train step")
        rows.append(row("probes", f"{prefix}ICS, one layer / train step", r, goal="<= 2.5", note="2 passes"))
    else:
        rows.append(row("probes", f"{prefix}ICS probe", float("nan"), note="bnutils.ics.ics_probe not written yet"))
    if "landscape" in probes:
        r = paired_ratio(times, f"landscape (k={k})", "train step") / k
        rows.append(row("probes", f"{prefix}landscape (k={k}) / (k train steps)", r, goal="<= 1.25",
                        note=f"{k + 1} passes: ideal about {(k + 1) / k:.3f}", times_s=times))
    else:
        rows.append(row("probes", f"{prefix}landscape probe", float("nan"),
                        note="bnutils.landscape.landscape_probe not written yet"))
    return rows


def run(tiny: bool = False) -> list:
    rows = []
    for key, (label, ds_name, mcfg, bs, lr) in CASES.items():
        ds = data.load(ds_name)
        config.seed_everything(0)
        model = build_model(mcfg, ds.in_shape, ds.out_features)
        b = 8 if tiny else bs
        x, y = ds.x_train[:b], ds.y_train[:b]
        rows += bench_model(label, model, x, y, lr, rounds=1 if tiny else 9,
                            min_time=0.001 if tiny else 0.1, key=key)
    return rows
