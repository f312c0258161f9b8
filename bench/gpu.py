"""The papers' scale on one GPU: VGG-11 with batch norm on CIFAR-shaped data.

    python bench/gpu.py            # on a CUDA machine: a few minutes on one H100/H200
    python bench/gpu.py --tiny     # anywhere (CPU): tiny sizes, to check that it runs

CIFAR-10 cannot be fetched on the GPU machines, so the data are ``bnutils.data.synthetic_images``
(random 3x32x32 images, random labels): the same shapes, hence the same speed. Measured:

* images/s of a plain PyTorch loop (data on the GPU, batches by slicing, one evaluation at step 0 as
  ``bnutils.train`` does) and of ``bnutils.train`` on the same model, at batch 128 in float32 and batch
  512 under bf16 autocast with channels-last memory format (``TrainConfig(autocast="bfloat16",
  channels_last=True)``; the plain loop does the same by hand), for the from-scratch BN (``norm="bn"``, what the book runs) and
  ``torch.nn.BatchNorm2d`` (``norm="torch_bn"``). Goal: ``bnutils.train`` >= 0.9x the plain loop;
  reference (issue 9): a plain loop at about 33,600 img/s (fp32, b128) and 126,000 img/s (bf16, b512)
  on an H200.
* the ICS and landscape probes against one training step of the same network;
* from these, an estimate of the paper-scale Santurkar suite (standard, BN, noisy BN at two learning
  rates, 15,000 steps each, probes every ``--probe-every`` steps). Goal: under 10 minutes.

Prints one table; writes ``$OUT/gpu.json`` when ``$OUT`` is set (else ``_build/bench/gpu.json``).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bn as bn_bench  # noqa: E402
from bench.common import interleaved, machine, median, paired_ratio, print_table, row, write_json  # noqa: E402
from bench.probes import bench_model  # noqa: E402
from bnutils import config, data  # noqa: E402
from bnutils.models import ModelConfig, build_model  # noqa: E402
from bnutils.train import TrainConfig, evaluate, train  # noqa: E402

REFERENCE = {("float32", 128): 33_600, ("bfloat16", 512): 126_000}  # plain loop, H200 (issue 9)


def autocast(dtype, device):
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def plain_loop(model, ds, steps, batch_size, lr, dtype, channels_last=False):
    """What a reader would write for speed: data on the device, randperm, slices; autocast and
    channels-last if asked."""
    dev = next(model.parameters()).device
    if channels_last:
        model.to(memory_format=torch.channels_last)
        ds = ds.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    x, y = ds.x_train, ds.y_train
    with autocast(dtype, dev):
        evaluate(model, x[:1000], y[:1000])
        evaluate(model, ds.x_test, ds.y_test)
    model.train()
    n = len(x)
    per_epoch = n // batch_size
    step = 0
    while step < steps:
        perm = torch.randperm(n, generator=gen).to(dev)
        for b in range(min(per_epoch, steps - step)):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            with autocast(dtype, dev):
                loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        step += per_epoch


def book_loop(model, ds, steps, batch_size, lr, dtype, channels_last=False):
    """``bnutils.train`` (evaluation at step 0 only), with its own autocast and channels-last options."""
    cfg = TrainConfig(lr=lr, steps=steps, batch_size=batch_size, eval_every=steps + 1,
                      autocast=None if dtype == torch.float32 else str(dtype).replace("torch.", ""),
                      channels_last=channels_last)
    train(model, ds, cfg)


def loops(ds, dev, batch_size, dtype, steps, rounds, norms, channels="vgg11", channels_last=False):
    """Images/s of the plain loop and bnutils.train for each norm, interleaved."""
    protos = {}
    for norm in norms:
        config.seed_everything(0)
        protos[norm] = build_model(ModelConfig(arch="cnn", channels=channels, norm=norm), ds.in_shape, 10).to(dev)
    models, norm_of, fns = {}, {}, {}
    for norm in norms:
        for kind, loop in (("plain", plain_loop), ("bnutils.train", book_loop)):
            name = f"{kind}[{norm}]"
            norm_of[name] = norm
            fns[name] = (lambda loop=loop, name=name: loop(models[name], ds, steps, batch_size, 0.1, dtype,
                                                           channels_last))

    def setup(name):
        models[name] = copy.deepcopy(protos[norm_of[name]])

    times = interleaved(fns, rounds=rounds, warmup=1, setup=setup, device=dev)
    ips = {k: steps * batch_size / median(v) for k, v in times.items()}
    return times, ips


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on any device (checks that it runs)")
    ap.add_argument("--steps", type=int, default=None, help="steps per timed run (default 150; tiny 2)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; tiny 1)")
    ap.add_argument("--probe-every", type=int, default=100, help="probe interval assumed by the suite estimate")
    ap.add_argument("--no-bf16", action="store_true", help="skip the batch-512 bf16 autocast runs")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    dev = config.device()
    if dev.type != "cuda" and not args.tiny:
        print("no CUDA device: run with --tiny to check the script on the CPU", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True  # both loops alike
    tiny = args.tiny
    steps = args.steps or (2 if tiny else 150)
    rounds = args.rounds or (1 if tiny else 3)
    channels = (4, "M") if tiny else "vgg11"
    info = machine()
    print(f"device: {info.get('gpu', info['cpu'])}; torch {info['torch']}", flush=True)

    n = 80 if tiny else 16_000  # 12,800 train (100 batches of 128) / 3,200 test
    ds = data.synthetic_images(n=n).to(dev)
    rows = []
    raw = {}
    # (dtype, batch, channels-last): the reference's two settings
    groups = [(torch.float32, 8 if tiny else 128, False)]
    if not args.no_bf16 and (dev.type == "cuda" and torch.cuda.is_bf16_supported() or tiny):
        groups.append((torch.bfloat16, 16 if tiny else 512, True))
    step_ms = {}
    for dtype, bs, cl in groups:
        dname = str(dtype).replace("torch.", "")
        norms = ["bn", "torch_bn"] + ([None, "noisy_bn"] if dtype == torch.float32 else [])
        print(f"[gpu] loops {dname} batch {bs} channels-last {cl} ...", file=sys.stderr, flush=True)
        times, ips = loops(ds, dev, bs, dtype, steps, rounds, norms, channels, channels_last=cl)
        dname = dname + (" channels-last" if cl else "")
        raw[f"{dname}_b{bs}"] = {"times_s": times, "images_per_s": ips, "steps": steps}
        ref = REFERENCE.get((str(dtype).replace("torch.", ""), bs))
        for norm in ("bn", "torch_bn"):
            p, t = f"plain[{norm}]", f"bnutils.train[{norm}]"
            rows.append(row("gpu", f"{dname} b{bs} plain loop, norm={norm}", ips[p], unit="img/s",
                            note=(f"reference plain loop (H200, nn.BatchNorm2d): {ref:,} img/s" if ref and norm == "torch_bn" else "")))
            rows.append(row("gpu", f"{dname} b{bs} bnutils.train / plain, norm={norm}",
                            paired_ratio(times, t, p), goal=">= 0.9", note=f"{ips[t]:,.0f} img/s"))
        rows.append(row("gpu", f"{dname} b{bs} plain: scratch BN / nn.BatchNorm2d (time)",
                        paired_ratio(times, "plain[bn]", "plain[torch_bn]"), note="from-scratch BN's cost"))
        if dtype == torch.float32:
            for norm in ("bn", None, "noisy_bn"):
                step_ms[norm] = 1000 * median(times[f"plain[{norm}]"]) / steps

    # probes against one training step, VGG-11 with the from-scratch BN, batch 128, float32
    print("[gpu] probes ...", file=sys.stderr, flush=True)
    config.seed_everything(0)
    model = build_model(ModelConfig(arch="cnn", channels=channels, norm="bn"), ds.in_shape, 10).to(dev)
    bs = 8 if tiny else 128
    prow = bench_model("VGG-11 (BN), batch 128, fp32", model, ds.x_train[:bs], ds.y_train[:bs], 0.1,
                       rounds=1 if tiny else 5, device=dev, min_time=0.001 if tiny else 0.2, key="vgg11")
    rows += [r for r in prow]
    ptimes = next((r.extra["times_s"] for r in prow if "times_s" in r.extra), {})

    # BN layer alone at VGG-11's shapes
    print("[gpu] batch norm layer ...", file=sys.stderr, flush=True)
    for r in bn_bench.run(tiny=tiny, device=dev, shapes=bn_bench.VGG_SHAPES):
        r.section = "gpu"
        rows.append(r)

    # the paper-scale Santurkar suite, estimated from the step times above
    if step_ms and ptimes:
        runs_steps = 15_000
        probe_ms = sum(1000 * median(v) for k, v in ptimes.items() if k.startswith(("ics (all", "landscape")))
        per_lr = sum(runs_steps * step_ms[nm] for nm in step_ms) / 1000
        probes_s = 3 * (runs_steps // args.probe_every) * probe_ms / 1000
        est = 2 * (per_lr + probes_s)
        rows.append(row("gpu", "Santurkar suite at paper scale (estimate)", est, unit="s", goal="<= 600",
                        note=f"6 runs x 15,000 steps (std {step_ms[None]:.2f}, BN {step_ms['bn']:.2f}, "
                             f"noisy {step_ms['noisy_bn']:.2f} ms/step) + ICS (all layers) and landscape "
                             f"every {args.probe_every} steps; excludes evaluation and start-up"))

    text = print_table(rows, title=f"gpu bench ({'tiny' if tiny else 'full'}) on {info.get('gpu', info['cpu'])}")
    result = {"machine": info, "tiny": tiny, "steps": steps, "rounds": rounds, "rows": [r.as_dict() for r in rows],
              "raw": raw, "table": text, "seconds": time.perf_counter() - t_start}
    print(f"JSON: {write_json('gpu.json', result)}; {result['seconds']:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
