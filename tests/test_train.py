import dataclasses

import numpy as np
import pytest
import torch

from bnutils import data, models
from bnutils.train import History, TrainConfig, evaluate, train


@pytest.fixture(scope="module")
def digits():
    return data.digits()


def _model(norm=None, seed=0):
    torch.manual_seed(seed)
    return models.mlp(64, [32], 10, norm=norm)


def test_training_reduces_the_loss_and_records_history(digits):
    cfg = TrainConfig(lr=0.1, steps=60, batch_size=64, eval_every=20)
    h = train(_model("bn"), digits, cfg)
    assert isinstance(h, History)
    assert len(h.loss) == 60 and list(h.eval_steps) == [0, 20, 40, 60]
    assert h.loss[-10:].mean() < h.loss[:10].mean()
    assert h.test_acc[-1] > h.test_acc[0]
    assert h.config["train"]["lr"] == 0.1 and h.config["data"] == "digits"
    assert not h.diverged and np.isfinite(h.final_loss)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "deep_linear"])
def test_same_seed_gives_bit_identical_history(arch):
    from bnutils.experiments import Experiment, run

    ds, model_cfg, cfg = {
        "mlp": ("digits", models.ModelConfig(hidden=(16,), norm="noisy_bn"), TrainConfig(steps=20, eval_every=10)),
        "cnn": ("mnist5k_images", models.ModelConfig(arch="cnn", norm="bn", channels=(4, "M")), TrainConfig(steps=5, eval_every=5, lr=0.05, batch_size=16)),
        "deep_linear": ("gaussian_linear", models.ModelConfig(arch="deep_linear", norm="bn", depth=5),
                        TrainConfig(steps=10, eval_every=5, lr=1e-4, loss="sse", batch_size=None)),
    }[arch]
    exp = Experiment(data=ds, model=model_cfg, train=cfg)
    a, b = run(exp, cache=False), run(exp, cache=False)
    assert a == b
    assert np.array_equal(a.loss, b.loss)
    c = run(exp.with_seed(1), cache=False)
    assert not np.array_equal(a.loss, c.loss)


def test_divergence_is_recorded_not_raised(digits):
    torch.manual_seed(0)
    model = models.mlp(64, [32], 10, act="identity")
    h = train(model, digits, TrainConfig(lr=1e4, steps=200, eval_every=50))
    assert h.diverged and 0 < h.diverged_at < 200
    assert len(h.loss) == h.diverged_at and np.isfinite(h.loss).all()
    assert np.isfinite(h.test_loss).all() and all(s < h.diverged_at for s in h.eval_steps)
    assert h.final_loss == float("inf") and np.isnan(h.final_test_acc)


def test_evaluate_restores_mode(digits):
    m = _model("bn")
    m.train()
    loss, acc = evaluate(m, digits.x_test, digits.y_test)
    assert m.training and 0 <= acc <= 1 and loss > 0


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "sse"])
def test_evaluate_in_chunks_is_one_pass_up_to_rounding(digits, loss):
    """Evaluation's chunks (EVAL_CHUNK, for speed on a CPU) change the mean loss only by rounding,
    and the accuracy not at all, whether the last chunk is full or not."""
    m = _model("bn")
    x, y = digits.x_test[:360], digits.y_test[:360]
    if loss != "cross_entropy":
        y = torch.nn.functional.one_hot(y, 10).float()
    whole = evaluate(m, x, y, loss, batch_size=len(x))
    for chunk in (250, 100, 7):
        got = evaluate(m, x, y, loss, batch_size=chunk)
        assert got[0] == pytest.approx(whole[0], rel=1e-6)
        assert got[1] == whole[1] or (np.isnan(got[1]) and np.isnan(whole[1]))


def test_probes_run_on_the_batch_about_to_be_used(digits):
    seen = []
    h = train(_model(), digits, TrainConfig(steps=10, eval_every=5, probe_every=4),
              probes={"n": lambda m, x, y: seen.append(len(x)) or float(len(x))})
    assert list(h.probe_steps) == [0, 4, 8] and h.probes["n"] == [128.0] * 3


def test_full_batch_and_regression():
    ds = data.gaussian_linear(n=64, dim=4)
    torch.manual_seed(0)
    m = models.deep_linear(4, 3)
    h = train(m, ds, TrainConfig(lr=1e-3, steps=30, loss="mse", batch_size=None, eval_every=10))
    assert h.loss[-1] < h.loss[0] and np.isnan(h.test_acc).all()


def test_bad_configs_are_clear(digits):
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="Invalid learning rate: nan"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="steps must be a positive int"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int or None"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'; choose one of sgd, adam, adagrad, rmsprop"):
        TrainConfig(optimizer="sgdd")
    with pytest.raises(ValueError, match="Invalid momentum value"):
        TrainConfig(momentum=1.0)
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="does not fit a classification data set"):
        train(_model(), digits, TrainConfig(loss="mse", steps=1))
    with pytest.raises(TypeError, match="data must be a bnutils.data.Dataset"):
        train(_model(), (digits.x_train, digits.y_train), TrainConfig(steps=1))
    with pytest.raises(ValueError, match="the model has no trainable parameters"):
        train(torch.nn.Sequential(torch.nn.Flatten()), digits, TrainConfig(steps=1))
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        train(models.mlp(63, [4], 10), digits, TrainConfig(steps=1))
    with pytest.raises(ValueError, match="probes were given but cfg.probe_every is 0"):
        train(_model(), digits, TrainConfig(steps=1), probes={"x": lambda m, x, y: 0})
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
