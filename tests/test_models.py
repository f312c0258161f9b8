import pytest
import torch
from torch import nn

from bnutils import models
from bnutils.norms import BatchNorm, LpNorm, NoisyBatchNorm


def test_mlp_layer_order_linear_norm_act():
    m = models.mlp(784, [100, 50], 10, act="sigmoid", norm="bn")
    kinds = [type(l) for l in m]
    assert kinds == [nn.Linear, BatchNorm, nn.Sigmoid, nn.Linear, BatchNorm, nn.Sigmoid, nn.Linear]
    assert m(torch.randn(4, 784)).shape == (4, 10)
    assert isinstance(models.mlp(5, [3], 2, norm="torch_bn")[1], nn.BatchNorm1d)
    assert isinstance(models.mlp(5, [3], 2, norm="noisy_bn")[1], NoisyBatchNorm)
    assert isinstance(models.mlp(5, [3], 2, norm="linf")[1], LpNorm)
    assert len(models.mlp(5, [3], 2, norm=None)) == 3


@pytest.mark.parametrize("norm", list(models.NORMS))
def test_every_norm_builds_and_runs(norm):
    x = torch.randn(4, 1, 28, 28)
    c = models.cnn(norm=norm)
    assert c(x).shape == (4, 10)
    assert models.mlp(784, [16], 10, norm=norm)(x.flatten(1)).shape == (4, 10)


def test_vgg11_on_cifar_shapes():
    m = models.cnn(3, 10, "vgg11", image_size=32, norm="bn")
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert sum(isinstance(l, nn.Conv2d) for l in m) == 8


def test_deep_linear_network():
    m = models.deep_linear(10, 25, norm="bn")
    assert sum(isinstance(l, nn.Linear) for l in m) == 25
    assert sum(isinstance(l, BatchNorm) for l in m) == 24
    assert all(l.bias is None for l in m if isinstance(l, nn.Linear))


def test_build_model_and_init():
    torch.manual_seed(0)
    m = models.build_model(models.ModelConfig(init="gaussian", init_scale=0.01), (784,), 10)
    assert abs(float(m[0].weight.detach().std()) - 0.01) < 1e-3
    m = models.build_model(models.ModelConfig(arch="cnn"), (1, 28, 28), 10)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    m = models.build_model(models.ModelConfig(), (1, 8, 8), 10)  # images into an MLP are flattened
    assert m(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    g1 = models.build_model(models.ModelConfig(init="glorot", init_scale=1.0), (100,), 10)
    g10 = models.build_model(models.ModelConfig(init="glorot", init_scale=10.0), (100,), 10)
    assert 5 < float(g10[0].weight.detach().std() / g1[0].weight.detach().std()) < 20


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="unknown activation 'gelu'; choose one of 'relu', 'sigmoid', 'tanh', 'identity'"):
        models.mlp(4, [3], 2, act="gelu")
    with pytest.raises(ValueError, match="unknown norm 'batch'; choose one of None, 'bn'"):
        models.mlp(4, [3], 2, norm="batch")
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        models.build_model(models.ModelConfig(arch="resnet"), (4,), 2)
    with pytest.raises(ValueError, match="unknown init scheme 'xavier'"):
        models.init_weights(nn.Linear(2, 2), "xavier")
    with pytest.raises(ValueError, match="unknown CNN configuration 'vgg99'"):
        models.cnn(channels="vgg99")
    with pytest.raises(ValueError, match="hidden must be positive ints"):
        models.mlp(4, [0], 2)
    with pytest.raises(ValueError, match="the CNN expects images"):
        models.build_model(models.ModelConfig(arch="cnn"), (784,), 10)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        models.mlp(4, [3], 2, dropout=1.5)
