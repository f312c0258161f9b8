"""The from-scratch batch norm against PyTorch's, in float64, in every mode, by both of its routes
(the GPU's one-pass statistics and ``addcmul``, forced here on CPU tensors, and the CPU's)."""

import pytest
import torch
from torch import nn

import bnutils.norms
from bnutils.norms import BatchNorm, LpNorm, batch_norm


@pytest.fixture(autouse=True, params=["cpu-route", "gpu-route"])
def route(request, monkeypatch):
    """Every test below runs twice: once as on a CPU, once with the GPU's operations."""
    if request.param == "gpu-route":
        monkeypatch.setattr(bnutils.norms, "_gpu_route", lambda t: True)
    return request.param


@pytest.fixture(autouse=True)
def float64():
    """Compare in float64 (restored afterwards, so other test modules are unaffected)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)

SHAPES = [(8, 3), (8, 3, 5), (6, 3, 4, 4)]


def _pair(shape, **kw):
    torch.manual_seed(0)
    ours = BatchNorm(3, **kw)
    ref = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(3, **kw)
    if ours.affine:
        with torch.no_grad():
            ours.weight.uniform_(0.5, 1.5)
            ours.bias.normal_()
            ref.weight.copy_(ours.weight)
            ref.bias.copy_(ours.bias)
    return ours, ref


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
def test_matches_torch_in_every_mode(shape, momentum, affine, track):
    ours, ref = _pair(shape, momentum=momentum, affine=affine, track_running_stats=track)
    gen = torch.Generator().manual_seed(1)
    for step in range(3):  # several steps: running statistics accumulate
        x = (torch.randn(*shape, generator=gen) * 2 + 1).requires_grad_()
        y, y_ref = ours(x), ref(x)
        torch.testing.assert_close(y, y_ref)
        g = torch.randn(*shape, generator=gen)
        inputs = [x] + ([ours.weight, ours.bias] if affine else [])
        inputs_ref = [x] + ([ref.weight, ref.bias] if affine else [])
        for a, b in zip(torch.autograd.grad(y, inputs, g), torch.autograd.grad(y_ref, inputs_ref, g)):
            torch.testing.assert_close(a, b)
    if track:
        torch.testing.assert_close(ours.running_mean, ref.running_mean)
        torch.testing.assert_close(ours.running_var, ref.running_var)
        assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 3
    else:
        assert ours.running_mean is None and ref.running_mean is None
    # eval mode: running statistics (or batch statistics when not tracked)
    ours.eval(), ref.eval()
    x = torch.randn(*shape, generator=gen, requires_grad=True)
    torch.testing.assert_close(ours(x), ref(x))
    g = torch.randn(*shape, generator=gen)
    torch.testing.assert_close(torch.autograd.grad(ours(x), x, g)[0], torch.autograd.grad(ref(x), x, g)[0])


def test_state_dict_keys_match_torch_and_round_trip():
    ours, ref = BatchNorm(4), nn.BatchNorm1d(4)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref(torch.randn(10, 4))
    ours.load_state_dict(ref.state_dict())
    torch.testing.assert_close(ours.running_var, ref.running_var)


def test_running_var_is_unbiased_and_normalisation_biased():
    x = torch.randn(16, 2)
    bn = BatchNorm(2, momentum=1.0)
    y = bn(x)
    torch.testing.assert_close(bn.running_var, x.var(0, unbiased=True))
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)


def test_cumulative_average_with_momentum_none():
    bn = BatchNorm(2, momentum=None)
    xs = [torch.randn(8, 2) for _ in range(4)]
    for x in xs:
        bn(x)
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in xs]).mean(0))


def test_statistics_are_per_channel_over_batch_and_space():
    x = torch.randn(4, 3, 5, 5) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1)
    y = BatchNorm(3, eps=1e-12)(x)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-10, rtol=0)
    torch.testing.assert_close(y.var((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3, rtol=0)


def test_gradcheck_of_the_hand_derived_backward():
    torch.manual_seed(0)
    for shape in SHAPES:
        x = torch.randn(*shape, requires_grad=True)
        w = torch.rand(3, requires_grad=True)
        b = torch.randn(3, requires_grad=True)
        f = lambda x, w, b: batch_norm(x, None, None, w, b, training=True)
        assert torch.autograd.gradcheck(f, (x, w, b))


def test_identity_recovered_with_gamma_sigma_beta_mu():
    """Ioffe & Szegedy / Santurkar Observation 4.3: gamma = sqrt(var + eps), beta = mean gives x back."""
    x = torch.randn(32, 4) * 3 + 2
    bn = BatchNorm(4)
    with torch.no_grad():
        bn.weight.copy_(torch.sqrt(x.var(0, unbiased=False) + bn.eps))
        bn.bias.copy_(x.mean(0))
    torch.testing.assert_close(bn(x), x)


def test_works_in_float32_and_on_models():
    x = torch.randn(8, 3, dtype=torch.float32)
    bn = BatchNorm(3, dtype=torch.float32)
    assert bn(x).dtype == torch.float32


# ----------------------------------------------------------------------------- bad input


def test_one_value_per_channel_in_training_is_pytorchs_error():
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input size torch.Size\(\[1, 3\]\)"):
        BatchNorm(3)(torch.randn(1, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(torch.randn(1, 3))  # the same words as PyTorch
    bn = BatchNorm(3).eval()
    assert bn(torch.randn(1, 3)).shape == (1, 3)  # fine in eval mode


def test_bad_inputs_are_clear():
    """PyTorch's words where PyTorch has them (tests/test_norms_pytorch.py checks each against torch);
    our own where PyTorch fails by accident (a non-tensor, a 1D input to the functional form)."""
    with pytest.raises(ValueError, match=r"expected 2D, 3D or 4D input \(got 5D input\)"):
        BatchNorm(3)(torch.randn(2, 3, 2, 2, 2))
    with pytest.raises(ValueError, match="expected at least 2D input"):
        batch_norm(torch.randn(5), None, None, training=True)
    with pytest.raises(NotImplementedError, match="\"batch_norm\" not implemented for 'Long'"):
        BatchNorm(3)(torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(RuntimeError, match="running_mean should contain 5 elements not 3"):
        BatchNorm(3)(torch.randn(4, 5))
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        batch_norm(torch.randn(4, 3), torch.zeros(4), torch.ones(4), training=True)
    with pytest.raises(ValueError, match="batch_norm eps must be positive during training, but got 0"):
        BatchNorm(3, eps=0)(torch.randn(4, 3))
    assert BatchNorm(3, eps=0).eval()(torch.randn(4, 3)).shape == (4, 3)  # eps = 0 is fine in eval mode
    assert BatchNorm(3, momentum=1.5).momentum == 1.5  # unchecked, as in PyTorch
    with pytest.raises(TypeError, match="input must be a Tensor"):
        BatchNorm(3)([[1.0, 2.0, 3.0]])
    with pytest.raises(RuntimeError, match="running_mean must be defined in evaluation mode"):
        batch_norm(torch.randn(4, 3), None, None, training=False)


def test_lp_norm_definitions():
    x = torch.randn(64, 3) * 4 + 1
    for p, norm in ((1, lambda c: c.abs().mean(0)), (2, lambda c: c.pow(2).mean(0).sqrt()),
                    (float("inf"), lambda c: c.abs().amax(0))):
        layer = LpNorm(3, p=p)
        c = x - x.mean(0)
        torch.testing.assert_close(layer(x), c / (norm(c) + layer.eps))
    with pytest.raises(ValueError, match="p must be 1, 2 or inf"):
        LpNorm(3, p=3)


def test_second_derivatives_match_torch():
    """Hessian-vector products (double backward) go through the batch statistics as PyTorch's do."""
    from bnutils.curvature import hvp

    torch.manual_seed(0)
    for shape, ref_cls in (((16, 5), nn.BatchNorm1d), ((6, 5, 3, 3), nn.BatchNorm2d)):
        ours, ref = BatchNorm(5), ref_cls(5)
        with torch.no_grad():
            ours.weight.uniform_(0.5, 1.5)
            ref.weight.copy_(ours.weight)
        x = torch.randn(*shape, requires_grad=True)
        target = torch.randn(*shape)
        for mod in (ours, ref):
            mod.train()
        params_o, params_r = [x, ours.weight, ours.bias], [x, ref.weight, ref.bias]
        v = torch.randn(sum(p.numel() for p in params_o))
        loss = lambda mod: ((mod(x) - target) ** 3).sum()
        torch.testing.assert_close(hvp(lambda: loss(ours), params_o, v), hvp(lambda: loss(ref), params_r, v))
    xg = torch.randn(6, 3, requires_grad=True)
    wg = torch.rand(3, requires_grad=True)
    bg = torch.randn(3, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, w, b: batch_norm(a, None, None, w, b, training=True), (xg, wg, bg))
