"""PyTorch's own BatchNorm tests, ported: each runs against PyTorch's layer and against the
from-scratch one (``bnutils.norms``), the latter by both of its compute routes (the CPU's, and the
GPU's forced on CPU tensors, as in ``tests/test_norms.py``). A comment names the PyTorch test each
comes from: ``test/test_nn.py``, ``test/test_modules.py`` with the BatchNorm entries of
``torch/testing/_internal/common_modules.py``, ``test/nn/test_load_state_dict.py``.

Tests of one implementation's behaviour take the ``lib`` fixture (three runs: torch, ours by the CPU
route, ours by the GPU route); tests that compare ours with torch's take ``route`` (two runs).
The book counts the behaviours checked here (one per test function; see book/batchnorm.ipynb).
"""

import io
import pickle
from collections import OrderedDict
from types import SimpleNamespace

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn

import bnutils.norms as norms

TORCH = SimpleNamespace(name="torch", BatchNorm1d=nn.BatchNorm1d, BatchNorm2d=nn.BatchNorm2d,
                        batch_norm=F.batch_norm)
OURS = SimpleNamespace(name="ours", BatchNorm1d=norms.BatchNorm1d, BatchNorm2d=norms.BatchNorm2d,
                       batch_norm=norms.batch_norm)


@pytest.fixture(autouse=True)
def float64():
    """test_nn.py runs in float64 (``torch.set_default_dtype(torch.double)``); restored afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _force_gpu_route(monkeypatch):
    monkeypatch.setattr(norms, "_gpu_route", lambda t: True)


@pytest.fixture(params=["torch", "ours-cpu-route", "ours-gpu-route"])
def lib(request, monkeypatch):
    if request.param == "ours-gpu-route":
        _force_gpu_route(monkeypatch)
    return TORCH if request.param == "torch" else OURS


@pytest.fixture(params=["cpu-route", "gpu-route"])
def route(request, monkeypatch):
    if request.param == "gpu-route":
        _force_gpu_route(monkeypatch)
    return request.param


def _same(*pairs, **tolerances):
    for a, b in pairs:
        torch.testing.assert_close(a, b, **tolerances)


# ------------------------------------------------------------------------------- test/test_nn.py


def test_raises_error_if_less_than_one_value_per_channel(lib):
    # test_nn.py: test_batchnorm_raises_error_if_less_than_one_value_per_channel
    x = torch.rand(10)[None, :, None]
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                         r"got input size torch.Size\(\[1, 10, 1\]\)"):
        lib.BatchNorm1d(10)(x)


@pytest.mark.parametrize("which", ["running_mean", "running_var", "weight", "bias"])
def test_raises_error_if_buffer_or_parameter_is_not_same_size_as_input(lib, which):
    # test_nn.py: test_batchnorm_raises_error_if_{running_mean,running_var,weight,bias}_is_not_same_size_as_input
    input = torch.rand(2, 10)
    for size in (9, 11):
        args = {"running_mean": torch.rand(10), "running_var": torch.rand(10), which: torch.rand(size)}
        if which in ("weight", "bias"):
            args[which] = nn.Parameter(args[which])
        with pytest.raises(RuntimeError, match=f"{which} should contain 10 elements not {size}"):
            lib.batch_norm(input, args["running_mean"], args["running_var"],
                           weight=args.get("weight"), bias=args.get("bias"))


def test_raises_error_if_running_var_or_running_mean_have_forward_grad(lib):
    # test_nn.py: test_batchnorm_raises_error_if_running_var_or_running_mean_have_forward_grad
    args = (torch.randn(3, 2, 5), torch.randn(2), torch.randn(2))  # input, running_mean, running_var
    for dual_indices in ((0,), (1,), (1, 2), (0, 1), (0, 1, 2)):
        tangents = tuple(torch.rand_like(x) for x in args)
        with fwAD.dual_level():
            duals = [fwAD.make_dual(p, t) if i in dual_indices else p
                     for i, (p, t) in enumerate(zip(args, tangents))]
            if (1 in dual_indices or 2 in dual_indices) and 0 in dual_indices:
                with pytest.raises(RuntimeError, match="batch_norm is not differentiable wrt running_mean and running_var"):
                    lib.batch_norm(*duals, training=False, momentum=-1.2)
            else:
                lib.batch_norm(*duals, training=False, momentum=-1.2)


def test_buffer_update_when_stats_are_not_tracked(lib):
    # test_nn.py: test_batchnorm_buffer_update_when_stats_are_not_tracked
    bn = lib.BatchNorm1d(4, track_running_stats=True)
    bn.track_running_stats = False  # use the buffers for normalization, but do not update them
    before = [t.clone() for t in (bn.num_batches_tracked, bn.running_mean, bn.running_var)]
    bn(torch.rand(32, 4))
    for a, b in zip(before, (bn.num_batches_tracked, bn.running_mean, bn.running_var)):
        assert torch.equal(a, b)


def test_non_contiguous_input_in_eval(lib):
    # test_nn.py: test_batchnorm_non_contig_cpu
    input = torch.arange(6, dtype=torch.float).reshape(1, 3, 2, 1).permute(0, 2, 1, 3)
    bn = lib.BatchNorm2d(2).float().eval()
    with torch.no_grad():
        bn.weight.uniform_()
        bn.bias.uniform_()
    ref = lib.BatchNorm2d(2).float().eval()
    ref.load_state_dict(bn.state_dict())
    out, ref_out = bn(input), ref(input.contiguous())
    assert out.is_contiguous(memory_format=torch.channels_last) and ref_out.is_contiguous()
    _same((out, ref_out))


@pytest.mark.parametrize("dtype, mixed", [(torch.float, False), (torch.bfloat16, False), (torch.bfloat16, True)])
def test_channels_last_training(lib, dtype, mixed):
    # test_nn.py: test_batchnorm_nhwc_cpu (NC11 and N1HW shapes; bfloat16 and mixed bfloat16/float)
    for shape in [(4, 8, 10, 10), (4, 1, 9, 9), (4, 9, 1, 1)]:
        c = shape[1]
        x = torch.randn(shape, dtype=dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
        g = torch.randn(shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
        bn = lib.BatchNorm2d(c).to(dtype)
        with torch.no_grad():
            bn.weight.uniform_()
            bn.bias.uniform_()
        ref = lib.BatchNorm2d(c).to(dtype)
        ref.load_state_dict(bn.state_dict())
        if mixed:
            bn.float(), ref.float()
        x_ref = x.detach().clone().contiguous().requires_grad_()
        out, ref_out = bn(x), ref(x_ref)
        out.backward(g)
        ref_out.backward(g.contiguous())
        assert out.is_contiguous(memory_format=torch.channels_last) and ref_out.is_contiguous()
        # float32 gradients (all of them for float, the parameters' for mixed) are sums over 400
        # values, added in another order for channels_last: PyTorch's own layer differs by up to
        # 3.1e-5 here (AVX2, 300 seeds), above assert_close's float32 default atol (1e-5); CI met
        # 1.6e-5 on a mixed run. bfloat16 tensors keep assert_close's bfloat16 defaults.
        for a, b in [(out, ref_out), (bn.weight.grad, ref.weight.grad), (bn.bias.grad, ref.bias.grad),
                     (x.grad, x_ref.grad)]:
            _same((a, b), **({"atol": 1e-4, "rtol": 1e-5} if a.dtype == torch.float else {}))


def test_simple_average(lib):
    # test_nn.py: test_batchnorm_simple_average (_test_batchnorm_simple_average): momentum=None
    module = lib.BatchNorm1d(3, momentum=None)
    zeros, ones = torch.zeros(3), torch.ones(3)
    _same((module.running_mean, zeros), (module.running_var, ones))
    data1, data2 = torch.rand(4, 3), torch.rand(4, 3)
    module(data1)
    running_mean1, running_var1 = module.running_mean.clone(), module.running_var.clone()
    assert not torch.equal(running_mean1, zeros) and not torch.equal(running_var1, ones)
    module.reset_running_stats()
    _same((module.running_mean, zeros), (module.running_var, ones))
    module(data2)
    running_mean2, running_var2 = module.running_mean.clone(), module.running_var.clone()
    module.reset_running_stats()
    module(data1), module(data2)  # two passes: the cumulative average of the two batches
    _same((module.running_mean, (running_mean1 + running_mean2) / 2),
          (module.running_var, (running_var1 + running_var2) / 2))


def test_update_stats(lib):
    # test_nn.py: test_batchnorm_update_stats (_test_batchnorm_update_stats)
    module = lib.BatchNorm1d(3)
    data = torch.rand(4, 3)
    old = [module.running_mean.clone(), module.running_var.clone(), module.num_batches_tracked.clone()]
    module(data)  # training: all three change
    assert not torch.equal(old[0], module.running_mean) and not torch.equal(old[1], module.running_var)
    assert int(module.num_batches_tracked) == int(old[2]) + 1
    module.eval()
    old = [module.running_mean.clone(), module.running_var.clone(), module.num_batches_tracked.clone()]
    module(data)  # eval: none changes
    for a, b in zip(old, (module.running_mean, module.running_var, module.num_batches_tracked)):
        assert torch.equal(a, b)


def test_gradcheck_and_gradgradcheck_of_functional(lib):
    # test_nn.py: test_batchnorm_grad (_test_batchnorm_grad), with forward-mode AD checked as well
    # (PyTorch's OpInfo for nn.functional.batch_norm has supports_forward_ad=True: test_ops.py TestFwdGradients)
    bs, n_feat, size_feat = 4, 5, 2  # PyTorch's test has size_feat = 6: 3x fewer inputs keep this fast
    input = torch.arange(bs * n_feat * size_feat, dtype=torch.double).view(bs, n_feat, size_feat).requires_grad_()
    weight = torch.arange(1, n_feat + 1, dtype=torch.double, requires_grad=True)
    bias = torch.arange(n_feat, dtype=torch.double, requires_grad=True)
    running_mean = 1 - torch.arange(n_feat, dtype=torch.double)
    running_var = 2 * torch.arange(n_feat, dtype=torch.double)
    for training in (False, True):
        f = lambda x, w, b: lib.batch_norm(x, running_mean.clone(), running_var.clone(), w, b, training, 0.1, 0.0001)
        assert torch.autograd.gradcheck(f, (input, weight, bias), check_forward_ad=True)
        assert torch.autograd.gradgradcheck(f, (input, weight, bias))


def test_eval_mode_is_deterministic_and_untracked_uses_batch_stats(lib):
    # test_nn.py: test_batchnorm_eval (_test_batchnorm_eval)
    module = lib.BatchNorm1d(3).eval()
    data, grad = torch.rand(4, 3, requires_grad=True), torch.rand(4, 3)
    res1 = module(data)
    res1.backward(grad)
    grad1 = data.grad.clone()
    data.grad.zero_()
    res2 = module(data)
    res2.backward(grad)
    _same((res1, res2), (grad1, data.grad))
    module = lib.BatchNorm1d(3, track_running_stats=False)  # batch statistics in both modes
    data = torch.rand(4, 3, requires_grad=True)
    res1 = module(data)
    res1.backward(grad)
    grad1 = data.grad.clone()
    module.eval()
    data.grad.zero_()
    res2 = module(data)
    res2.backward(grad)
    _same((res1, res2), (grad1, data.grad))


def test_affine_false_equals_unit_affine(lib):
    # test_nn.py: test_batchnorm_affine (_test_batchnorm_affine)
    module, module_affine = lib.BatchNorm1d(3, affine=False), lib.BatchNorm1d(3, affine=True)
    with torch.no_grad():
        module_affine.weight.fill_(1.0)
        module_affine.bias.zero_()
    data = torch.rand(4, 3, requires_grad=True)
    res1 = module_affine(data)
    res1.backward(torch.ones_like(data))
    grad1 = data.grad.clone()
    data.grad.zero_()
    res2 = module(data)
    res2.backward(torch.ones_like(data))
    _same((res1, res2), (grad1, data.grad))


def test_empty_batch(lib):
    # test_nn.py: test_BatchNorm_empty (with _test_module_empty_input)
    mod = lib.BatchNorm2d(3)
    inp = torch.randn(0, 3, 2, 2, requires_grad=True)
    out = mod(inp)
    out.backward(torch.rand_like(out))
    assert out.size() == inp.size()
    _same((inp.grad, torch.zeros_like(inp)), (mod.weight.grad, torch.zeros(3)), (mod.bias.grad, torch.zeros(3)),
          (mod.running_mean, torch.zeros(3)), (mod.running_var, torch.ones(3)))
    assert int(mod.num_batches_tracked) == 1  # the empty batch is counted


def test_load_state_dict_without_num_batches_tracked(lib):
    # test_nn.py: test_batchnorm_load_state_dict
    bn = lib.BatchNorm2d(1)
    assert int(bn.state_dict()["num_batches_tracked"]) == 0
    bn.num_batches_tracked = torch.tensor(10)
    assert int(bn.state_dict()["num_batches_tracked"]) == 10
    empty_dict = OrderedDict()
    bn.load_state_dict(empty_dict, strict=False)
    assert int(bn.state_dict()["num_batches_tracked"]) == 10
    # a meta num_batches_tracked is replaced by a real 0 when the state_dict has none
    with torch.device("meta"):
        meta_bn = lib.BatchNorm2d(1)
    assert meta_bn.num_batches_tracked.device == torch.device("meta")
    meta_bn.load_state_dict(empty_dict, assign=True, strict=False)
    got = meta_bn.state_dict()["num_batches_tracked"]
    assert got.device == torch.device("cpu") and int(got) == 0


# ---------------------------------------------------------------- test/nn/test_load_state_dict.py


def test_load_state_dict_BC(lib):
    # test/nn/test_load_state_dict.py: test_load_state_dict_BC (a version-1 checkpoint, from before
    # num_batches_tracked existed, loads with the count 0); and the version written is 2
    bn = lib.BatchNorm2d(3)
    state_dict = bn.state_dict()
    assert state_dict._metadata[""]["version"] == 2
    del state_dict["num_batches_tracked"]
    state_dict._metadata[""]["version"] = 1
    bn.load_state_dict(state_dict)
    assert bn.num_batches_tracked.dtype == torch.long and int(bn.num_batches_tracked) == 0
    del state_dict._metadata[""]["version"]  # no version at all
    bn.load_state_dict(state_dict)
    assert bn.num_batches_tracked.dtype == torch.long and int(bn.num_batches_tracked) == 0


# ------------------------------------------- test/test_modules.py with common_modules' BatchNorm entries

# module_inputs_torch_nn_BatchNorm1d / _BatchNorm2d in common_modules.py: (desc, cls, args, kwargs, input shape)
MODULE_INPUTS = [
    ("1d affine", "BatchNorm1d", (10,), {}, (4, 10)),
    ("1d 3d_input", "BatchNorm1d", (5,), {}, (4, 5, 3)),
    ("1d affine_simple_average", "BatchNorm1d", (10, 1e-3, None), {}, (4, 10)),
    ("1d not_affine", "BatchNorm1d", (10, 1e-3, 0.3, False), {}, (4, 10)),
    ("1d not_tracking_stats", "BatchNorm1d", (10, 1e-3, 0.3, True, False), {}, (4, 10)),
    ("1d 3d_input_not_affine", "BatchNorm1d", (5, 1e-3, 0.3, False), {}, (4, 5, 3)),
    ("1d zero_batch", "BatchNorm1d", (5, 1e-3, 0.3, False), {}, (0, 5, 9)),
    ("1d affine_not_bias", "BatchNorm1d", (10,), {"bias": False}, (4, 10)),
    ("2d", "BatchNorm2d", (3,), {}, (2, 3, 6, 6)),
    ("2d simple_average", "BatchNorm2d", (3, 1e-3, None), {}, (2, 3, 6, 6)),
    ("2d momentum", "BatchNorm2d", (3, 1e-3, 0.8), {}, (2, 3, 6, 6)),
    ("2d not_affine", "BatchNorm2d", (3, 1e-3, 0.8, False), {}, (2, 3, 6, 6)),
    ("2d not_tracking_stats", "BatchNorm2d", (3, 1e-3, 0.8, True, False), {}, (2, 3, 6, 6)),
    ("2d zero_batch", "BatchNorm2d", (5, 1e-3, 0.3, False), {}, (0, 5, 2, 2)),
    ("2d affine_not_bias", "BatchNorm2d", (3,), {"bias": False}, (2, 3, 6, 6)),
]


def _module_pair(cls, args, kwargs):
    ours, ref = getattr(OURS, cls)(*args, **kwargs), getattr(TORCH, cls)(*args, **kwargs)
    with torch.no_grad():  # parameters away from their initial 1 and 0, equal in both
        for p, q in zip(ours.parameters(), ref.parameters()):
            p.uniform_(0.5, 1.5)
            q.copy_(p)
    return ours, ref


@pytest.mark.parametrize("desc, cls, args, kwargs, shape", MODULE_INPUTS, ids=[m[0] for m in MODULE_INPUTS])
def test_module_inputs_forward_backward_buffers_match_torch(route, desc, cls, args, kwargs, shape):
    # test_modules.py: TestModule.test_forward and test_if_train_and_eval_modes_differ over every
    # BatchNorm1d/2d entry of common_modules.py (train_and_eval_differ=True), with torch as the oracle
    ours, ref = _module_pair(cls, args, kwargs)
    for training in (True, True, False):
        ours.train(training), ref.train(training)
        x = torch.randn(shape, requires_grad=True)
        y, y_ref = ours(x), ref(x)
        g = torch.randn(shape)
        inputs = [x, *ours.parameters()]
        grads = torch.autograd.grad(y, inputs, g, allow_unused=True)
        grads_ref = torch.autograd.grad(y_ref, [x, *ref.parameters()], g, allow_unused=True)
        _same((y, y_ref), *zip(grads, grads_ref))
        for (name, b), (name_ref, b_ref) in zip(ours.named_buffers(), ref.named_buffers()):
            assert name == name_ref
            _same((b, b_ref))
    assert repr(ours) == repr(ref).replace("torch.nn.", "")  # test_modules.py: TestModule.test_repr


@pytest.mark.parametrize("eps", [-1.0, 0.0])
def test_errors_eps_must_be_positive(lib, eps):
    # test_modules.py: TestModule.test_errors with module_error_inputs_torch_nn_BatchNorm1d_2d_3d:
    # eps <= 0 is accepted by the constructor and refused by the forward pass in training
    for cls, shape in ((lib.BatchNorm1d, (2, 10)), (lib.BatchNorm2d, (2, 10, 5, 5))):
        m = cls(10, eps=eps)
        with pytest.raises(ValueError, match="eps must be positive"):
            m(torch.randn(shape))


def test_factory_kwargs(lib):
    # test_modules.py: TestModule.test_factory_kwargs (dtype and device of parameters and buffers)
    m = lib.BatchNorm2d(3, dtype=torch.float32, device="cpu")
    assert all(p.dtype == torch.float32 for p in m.parameters())
    assert m.running_mean.dtype == m.running_var.dtype == torch.float32
    assert m.num_batches_tracked.dtype == torch.long
    with torch.device("meta"):
        meta = lib.BatchNorm1d(3)
    assert all(t.device.type == "meta" for t in (*meta.parameters(), *meta.buffers()))


def test_pickle_and_save_load(lib):
    # test_modules.py: TestModule.test_pickle and test_save_load (state_dict round trip)
    m = lib.BatchNorm2d(3)
    m(torch.randn(4, 3, 2, 2))
    m.eval()
    x = torch.randn(4, 3, 2, 2)
    m2 = pickle.loads(pickle.dumps(m))
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m3 = lib.BatchNorm2d(3).eval()
    m3.load_state_dict(torch.load(buf))
    _same((m(x), m2(x)), (m(x), m3(x)))


def test_non_contiguous_tensors(lib):
    # test_modules.py: TestModule.test_non_contiguous_tensors (input and gradient non-contiguous)
    m = lib.BatchNorm2d(3)
    x = torch.randn(4, 3, 4, 2)[:, :, ::2].requires_grad_()  # (4, 3, 2, 2), strided
    g = torch.randn(4, 3, 2, 2).transpose(2, 3)
    assert not x.is_contiguous() and not g.is_contiguous()
    y = m(x)
    (gx,) = torch.autograd.grad(y, x, g)
    m.reset_running_stats()
    xc = x.detach().contiguous().requires_grad_()
    y_c = m(xc)
    (gx_c,) = torch.autograd.grad(y_c, xc, g.contiguous())
    _same((y, y_c), (gx, gx_c))


def test_module_gradcheck_with_forward_ad(lib):
    # test_modules.py: TestModule.test_grad and test_gradgrad (gradcheck of the module in training),
    # forward-mode AD included (test_ops.py TestFwdGradients for nn.functional.batch_norm)
    for cls, shape in ((lib.BatchNorm1d, (5, 3)), (lib.BatchNorm1d, (4, 3, 2)), (lib.BatchNorm2d, (3, 3, 2, 2))):
        m = cls(3, track_running_stats=False)
        x = torch.randn(shape, requires_grad=True)
        f = lambda x, w, b: torch.func.functional_call(m, {"weight": w, "bias": b}, (x,))
        params = (x, m.weight.detach().clone().requires_grad_(), m.bias.detach().clone().requires_grad_())
        assert torch.autograd.gradcheck(f, params, check_forward_ad=True)
        assert torch.autograd.gradgradcheck(f, params)


# --------------------------------------------------------------------- torch as oracle, other sources


def test_forward_ad_matches_torch(route):
    # test_ops.py: TestFwdGradients for nn.functional.batch_norm (supports_forward_ad=True), with
    # both torch.autograd.forward_ad and torch.func.jvp; the module in training mode
    for affine in (True, False):
        for shape, cls in (((6, 3), "BatchNorm1d"), ((4, 3, 2, 2), "BatchNorm2d")):
            x, t = torch.randn(shape), torch.randn(shape)
            ours, ref = _module_pair(cls, (3,), {"affine": affine})
            with fwAD.dual_level():
                d = fwAD.make_dual(x, t)
                y, y_ref = fwAD.unpack_dual(ours(d)), fwAD.unpack_dual(ref(d))
                _same((y.primal, y_ref.primal), (y.tangent, y_ref.tangent))
            ours, ref = _module_pair(cls, (3,), {"affine": affine, "track_running_stats": False})
            _same(*zip(torch.func.jvp(ours, (x,), (t,)), torch.func.jvp(ref, (x,), (t,))))


def test_relu_inplace_after_non_affine_layer(lib):
    # Not one PyTorch test: issue 17's reviewer found it. ReLU(inplace=True) right after a norm layer
    # is how torchvision builds its ResNets; with affine=False the layer's output is the normalised
    # input itself, which must not be needed by the backward pass.
    for shape, cls in (((6, 3), lib.BatchNorm1d), ((4, 3, 2, 2), lib.BatchNorm2d)):
        x = torch.randn(shape, requires_grad=True)
        F.relu(cls(3, affine=False)(x), inplace=True).sum().backward()
        assert x.grad.shape == x.shape


def test_relu_inplace_gradient_matches_torch(route):
    # The same, with torch as the oracle for the gradient
    x = torch.randn(6, 3, requires_grad=True)
    (g,) = torch.autograd.grad(F.relu(norms.BatchNorm1d(3, affine=False)(x), inplace=True).sum(), x)
    (g_ref,) = torch.autograd.grad(F.relu(nn.BatchNorm1d(3, affine=False)(x), inplace=True).sum(), x)
    _same((g, g_ref))


def test_rank_checks_and_words(lib):
    # torch/nn/modules/batchnorm.py: BatchNorm1d/BatchNorm2d._check_input_dim (their words)
    for shape in ((3,), (2, 3, 2, 2)):
        with pytest.raises(ValueError, match=rf"expected 2D or 3D input \(got {len(shape)}D input\)"):
            lib.BatchNorm1d(3)(torch.randn(shape))
    for shape in ((2, 3), (2, 3, 2), (2, 3, 2, 2, 2)):
        with pytest.raises(ValueError, match=rf"expected 4D input \(got {len(shape)}D input\)"):
            lib.BatchNorm2d(3)(torch.randn(shape))


def test_channel_mismatch_and_missing_running_stats_words(lib):
    # test_nn.py's size tests above, met through the module; and the functional form in eval mode
    # without running statistics (aten/src/ATen/native/Normalization.cpp's words)
    with pytest.raises(RuntimeError, match="running_mean should contain 3 elements not 4"):
        lib.BatchNorm1d(4)(torch.randn(4, 3))
    with pytest.raises(RuntimeError, match="weight should contain 3 elements not 4"):
        lib.BatchNorm1d(4, track_running_stats=False)(torch.randn(4, 3))
    for rm, rv, name in ((None, torch.ones(3), "running_mean"), (torch.zeros(3), None, "running_var")):
        with pytest.raises(RuntimeError, match=f"{name} must be defined in evaluation mode"):
            lib.batch_norm(torch.randn(4, 3), rm, rv, training=False)


@pytest.mark.parametrize("dtype, kind", [(torch.long, "Long"), (torch.int32, "Int"), (torch.bool, "Bool"),
                                         (torch.complex64, "ComplexFloat")])
def test_unsupported_dtypes(lib, dtype, kind):
    # test_ops.py: TestCommon.test_dtypes for nn.functional.batch_norm (floating types only)
    with pytest.raises(NotImplementedError, match=f"\"batch_norm\" not implemented for '{kind}'"):
        lib.BatchNorm1d(3)(torch.ones(4, 3, dtype=dtype))


def test_mixed_dtypes(lib):
    # test_nn.py: test_batchnorm_nonaffine_cuda_half_input (a half input meets float32 statistics,
    # output in the input's dtype) and the mixed-dtype rule of Normalization.cpp (check_mixed_data_type)
    for dtype in (torch.float16, torch.bfloat16):
        m = lib.BatchNorm2d(3, affine=False).float()
        x = torch.randn(16, 3, 4, 4).to(dtype)
        assert m(x).dtype == dtype and m.eval()(x).dtype == dtype
    with pytest.raises(RuntimeError, match=r"mixed dtype \(CPU\): all inputs must share same datatype."):
        lib.BatchNorm1d(3).float()(torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"mixed dtype \(CPU\): expect parameter to have scalar type of Float"):
        lib.BatchNorm1d(3).double()(torch.randn(4, 3, dtype=torch.float32))


def test_constructor_accepts_what_torch_accepts(lib):
    # test_nn.py: test_batchnorm_raises_error_if_running_var_or_running_mean_have_forward_grad runs
    # with momentum=-1.2; common_modules.py's error inputs build eps=0 and eps=-1 modules (forward fails)
    for kwargs in ({"eps": 0.0}, {"eps": -1.0}, {"momentum": -1.2}, {"momentum": 1.5}):
        m = lib.BatchNorm1d(3, **kwargs)
        assert all(getattr(m, k) == v for k, v in kwargs.items())
    assert lib.BatchNorm1d(3, eps=0.0).eval()(torch.randn(4, 3)).shape == (4, 3)  # eps = 0 is fine in eval
    m = lib.BatchNorm1d(3, momentum=1.5)
    x = torch.randn(8, 3)
    m(x)
    _same((m.running_mean, 1.5 * x.mean(0)))  # (1 - 1.5) * 0 + 1.5 * mean


def test_reset_parameters_and_bias_keyword(lib):
    # torch/nn/modules/batchnorm.py: _NormBase.reset_parameters and the bias= keyword
    # (common_modules.py's 'affine_not_bias' inputs), with bias= in extra_repr
    m = lib.BatchNorm2d(3)
    with torch.no_grad():
        m.weight.fill_(2.0), m.bias.fill_(3.0)
    m(torch.randn(4, 3, 2, 2))
    m.reset_parameters()
    _same((m.weight, torch.ones(3)), (m.bias, torch.zeros(3)), (m.running_mean, torch.zeros(3)),
          (m.running_var, torch.ones(3)))
    assert int(m.num_batches_tracked) == 0
    nb = lib.BatchNorm1d(3, bias=False)
    assert nb.bias is None and list(nb.state_dict()) == ["weight", "running_mean", "running_var", "num_batches_tracked"]
    assert "bias=False" in nb.extra_repr()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript(lib):
    # test/test_jit.py: the scripted nn modules of common_nn.py's module_tests (BatchNorm1d/2d among them)
    m = lib.BatchNorm2d(3).eval()
    x = torch.randn(4, 3, 2, 2)
    _same((torch.jit.script(m)(x), m(x)))
