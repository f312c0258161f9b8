"""Mixed precision (``TrainConfig.autocast``) and channels-last memory format
(``TrainConfig.channels_last``): the options the paper-scale runs use on a GPU, checked here on the
CPU, where ``torch.autocast`` works the same way (bfloat16 natively, float16 slowly)."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from bnutils import config, data, models
from bnutils.norms import BatchNorm, LpNorm, NoisyBatchNorm, batch_norm
from bnutils.train import TrainConfig, train


@pytest.fixture(scope="module")
def images():
    return data.load("mnist5k_images")


def _cnn(norm, seed=0):
    config.seed_everything(seed)
    return models.build_model(models.ModelConfig(arch="cnn", norm=norm, channels=(8, "M", 16, "M")), (1, 28, 28), 10)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("training", [True, False])
def test_scratch_bn_under_autocast_matches_pytorch(dtype, training):
    """Half-precision input: our layer normalises in float32 and returns the input's dtype, keeps
    float32 running statistics, and agrees with nn.BatchNorm2d to half precision."""
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(16, 4, 5, 5, generator=g) + 2).to(dtype)
    ours, theirs = BatchNorm(4), nn.BatchNorm2d(4)
    with torch.no_grad():
        for layer in (ours, theirs):
            layer.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
            layer.bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(2))
    ours.train(training)
    theirs.train(training)
    y_ours, y_theirs = ours(x), theirs(x)
    assert y_ours.dtype == y_theirs.dtype == dtype
    torch.testing.assert_close(y_ours.float(), y_theirs.float(), atol=3e-2, rtol=3e-2)
    assert ours.running_mean.dtype == torch.float32
    torch.testing.assert_close(ours.running_mean, theirs.running_mean, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(ours.running_var, theirs.running_var, atol=1e-2, rtol=1e-2)


def test_half_input_gives_the_float32_result_rounded():
    """The statistics are computed in float32, so the half-precision result is the float32 one
    rounded once (not an accumulation of rounding errors)."""
    x = torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    w, b = torch.full((3,), 1.5), torch.full((3,), -0.5)
    y_half = batch_norm(x, None, None, w, b, training=True)
    y_ref = batch_norm(x.float(), None, None, w, b, training=True).to(torch.bfloat16)
    assert torch.equal(y_half, y_ref)


@pytest.mark.parametrize("layer", [BatchNorm(3), NoisyBatchNorm(3), LpNorm(3, p=1)], ids=type)
def test_norms_train_under_autocast(layer):
    conv = nn.Conv2d(3, 3, 3, padding=1)
    x = torch.randn(8, 3, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(conv(x))
    assert y.dtype == torch.bfloat16
    y.float().square().mean().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    assert all(b.dtype == torch.float32 for b in layer.buffers() if b.is_floating_point())


def test_bad_autocast_is_clear():
    with pytest.raises(ValueError, match="autocast must be one of None, 'bfloat16', 'float16', got 'fp8'"):
        TrainConfig(autocast="fp8")


@pytest.mark.parametrize("norm", ["bn", "torch_bn"])
def test_bfloat16_training_tracks_float32(images, norm):
    # evaluated at steps 0 and 40 only, on 64 training images (train accuracy is not asserted):
    # evaluation does not change the run, and the 1,000 test images of test_acc[-1] stay
    cfg = TrainConfig(lr=0.1, steps=40, batch_size=64, eval_every=40, train_eval_size=64)
    h32 = train(_cnn(norm), images, cfg)
    h16 = train(_cnn(norm), images, dataclasses.replace(cfg, autocast="bfloat16"))
    assert h16.loss.dtype == np.float64 and np.isfinite(h16.loss).all()
    assert h16.config["train"]["autocast"] == "bfloat16"
    np.testing.assert_allclose(h16.loss[0], h32.loss[0], rtol=1e-2)  # same weights, same batch
    assert h16.final_loss < 0.5 * h16.loss[0]  # it trains
    assert abs(h16.test_acc[-1] - h32.test_acc[-1]) < 0.1


def test_float16_uses_a_grad_scaler_and_trains(monkeypatch):
    steps = []

    class Spy(torch.amp.GradScaler):
        def step(self, optimizer, *args, **kwargs):
            steps.append(1)
            return super().step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", Spy)
    ds = data.digits()
    config.seed_everything(0)
    model = models.mlp(64, [32], 10, norm="bn")
    h = train(model, ds, TrainConfig(lr=0.1, steps=60, batch_size=64, eval_every=30, autocast="float16"))
    assert len(steps) == 60  # every update went through the scaler
    assert not h.diverged and h.final_loss < 0.7 * h.loss[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay float32


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_divergence_under_autocast_is_recorded(dtype):
    config.seed_everything(0)
    model = models.mlp(64, [32], 10, act="identity")
    h = train(model, data.digits(), TrainConfig(lr=1e4, steps=200, eval_every=50, autocast=dtype))
    assert h.diverged and 0 < h.diverged_at < 200
    assert len(h.loss) == h.diverged_at and np.isfinite(h.loss).all()


@pytest.mark.parametrize("norm", ["bn", "torch_bn"])
def test_channels_last_changes_the_layout_not_the_run(images, norm):
    cfg = TrainConfig(lr=0.02, steps=10, batch_size=32, eval_every=5, train_eval_size=64)  # train acc: not asserted
    model = _cnn(norm)
    h_cl = train(model, images, dataclasses.replace(cfg, channels_last=True))
    h = train(_cnn(norm), images, cfg)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    # the same computation in another memory order: equal up to float rounding order
    np.testing.assert_allclose(h_cl.loss, h.loss, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(h_cl.test_acc, h.test_acc, atol=0.02)


def test_channels_last_is_a_no_op_for_vectors():
    ds = data.digits()
    cfg = TrainConfig(lr=0.1, steps=20, batch_size=64, eval_every=10)
    runs = []
    for cl in (False, True):
        config.seed_everything(0)
        runs.append(train(models.mlp(64, [32], 10, norm="bn"), ds, dataclasses.replace(cfg, channels_last=cl)))
    np.testing.assert_array_equal(runs[0].loss, runs[1].loss)


def test_dataset_to_memory_format_converts_images_only(images):
    cl = images.to(memory_format=torch.channels_last)
    assert cl.x_train.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(cl.x_train, images.x_train) and torch.equal(cl.y_train, images.y_train)
    vec = data.digits().to(memory_format=torch.channels_last)
    assert vec.x_train.is_contiguous()


def test_bad_compile_backend_is_clear():
    with pytest.raises(ValueError, match="Invalid backend: 'fast'"):
        TrainConfig(compile="fast")


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_training_matches_eager(backend):
    """torch.compile traces the from-scratch BN's hand-written forward and backward
    (``aot_eager``: traced, run op by op; ``inductor``: fused into generated kernels)."""
    ds = data.digits()
    cfg = TrainConfig(lr=0.1, steps=30, batch_size=64, eval_every=10)
    runs = []
    for compile_ in (None, backend):
        config.seed_everything(0)
        model = models.mlp(64, [32], 10, norm="bn")
        runs.append((train(model, ds, dataclasses.replace(cfg, compile=compile_)), model))
    (h, m), (hc, mc) = runs
    assert hc.config["train"]["compile"] == backend
    np.testing.assert_allclose(hc.loss, h.loss, rtol=1e-4, atol=1e-5)
    bn, bnc = m[1], mc[1]
    torch.testing.assert_close(bnc.running_mean, bn.running_mean, rtol=1e-4, atol=1e-5)
    assert int(bnc.num_batches_tracked) == 30
