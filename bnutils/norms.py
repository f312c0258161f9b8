r"""Batch normalization from scratch, and the variants the book studies.

Batch normalization (Ioffe & Szegedy 2015, Algorithm 1) for one unit over a mini-batch
:math:`\{x_1, \dots, x_m\}` (for convolutions: over batch *and* spatial positions, per channel):

.. math::

    \mu_B = \frac1m \sum_i x_i, \qquad
    \sigma_B^2 = \frac1m \sum_i (x_i - \mu_B)^2, \qquad
    \hat x_i = \frac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}}, \qquad
    y_i = \gamma \hat x_i + \beta .

Backward pass, derived by hand (with :math:`g_i = \partial L / \partial y_i`):

.. math::

    \frac{\partial L}{\partial \gamma} = \sum_i g_i \hat x_i, \qquad
    \frac{\partial L}{\partial \beta} = \sum_i g_i, \qquad
    \frac{\partial L}{\partial x_i} = \frac{\gamma}{m \sqrt{\sigma_B^2+\epsilon}}
        \Big( m g_i - \sum_j g_j - \hat x_i \sum_j g_j \hat x_j \Big).

Like PyTorch: normalise with the *biased* variance, store the *unbiased* one
(:math:`\tfrac{m}{m-1}\sigma_B^2`) in ``running_var``; ``momentum=None`` keeps a cumulative average.
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

__all__ = [
    "batch_norm",
    "BatchNorm",
    "BatchNorm1d",
    "BatchNorm2d",
    "NoisyBatchNorm",
    "BatchNoise",
    "LpNorm",
]


_HALF = (torch.float16, torch.bfloat16)  # normalised in float32, see batch_norm


def _check_input(input: torch.Tensor, name: str = "input") -> None:
    # PyTorch fails on a non-tensor with "'list' object has no attribute 'dim'" (an accident, not
    # words of its own); we say what is wrong.
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(input).__name__}")
    if not torch.is_floating_point(input):
        # PyTorch's words: '"batch_norm" not implemented for 'Long'' ('Int', 'Bool', 'ComplexFloat', ...);
        # Tensor.type() names the same scalar type: 'torch.LongTensor'.
        kind = input.new_empty(0).type().rsplit(".", 1)[-1].removesuffix("Tensor")
        raise NotImplementedError(f'"batch_norm" not implemented for {kind!r}')
    if input.dim() < 2:
        # PyTorch: "IndexError: Dimension out of range" from inside the functional (no words of its own).
        raise ValueError(f"expected at least 2D input (N, C, ...), got {input.dim()}D input")


def _check_dtypes(input: torch.Tensor, *params: torch.Tensor | None) -> None:
    """PyTorch's rule (and words) for parameters and buffers of another dtype than the input: only a
    float16/bfloat16 input may meet float32 ones (mixed precision); anything else is an error."""
    mixed = False
    for p in params:
        if p is not None and p.dtype != input.dtype:
            if p.dtype != torch.float32:
                raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float")
            mixed = True
    if mixed and input.dtype not in _HALF:
        raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")


def _has_tangent(t: torch.Tensor | None) -> bool:
    """Whether ``t`` carries a forward-mode tangent (inside :func:`torch.autograd.forward_ad.dual_level`)."""
    return t is not None and fwAD.unpack_dual(t).tangent is not None


def _reduce_dims(input: torch.Tensor) -> list[int]:
    """Every dimension but the channel one: (N,) for (N, C), (N, H, W) for (N, C, H, W)."""
    return [0] + list(range(2, input.dim()))


def _channel_view(t: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    """(C,) -> (1, C, 1, ...) so that it broadcasts against ``input``."""
    return t.view(1, -1, *([1] * (input.dim() - 2)))


def _gpu_route(t: torch.Tensor) -> bool:
    """Whether the two helpers below take their GPU route (a function, so tests can force it)."""
    return t.is_cuda


def _centre_and_var(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x - mean, var, mean)`` per channel, with the biased variance.

    The same quantities (up to float rounding) by two routes, chosen by speed (``bench/bn.py``): on
    a GPU ``torch.var_mean`` is one pass (Welford's algorithm); on a CPU it is 5-15x slower than two
    passes over (N, C, H, W) tensors (7.1 ms against 0.5 ms at (128, 16, 28, 28)), so there: the
    mean, then the mean square of the centred values, which the normalisation needs anyway.
    """
    if _gpu_route(x):
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)
        return x - _channel_view(mean, x), var, mean
    mean = x.mean(dim=dims)
    xc = x - _channel_view(mean, x)
    return xc, (xc * xc).mean(dim=dims), mean


def _scale_shift(t: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``t * scale + shift`` with per-channel ``scale`` and ``shift`` (already shaped (1, C, 1, ...)):
    one ``addcmul`` kernel on a GPU; on a CPU a multiply then an in-place add, because an
    out-of-place ``addcmul`` with broadcast operands is ~7x slower there (1.5 ms against 0.2 ms)."""
    if _gpu_route(t):
        return torch.addcmul(shift, t, scale)
    return (t * scale).add_(shift)


class _BatchNormTrain(torch.autograd.Function):
    r"""Training-mode batch norm with the hand-derived backward pass above, written with as few
    passes over the (N, C, ...) tensors, and as few operations, as plain PyTorch allows (each is a
    kernel launch on a GPU).

    Outputs ``(y, mean, var, xhat, invstd)``; all but ``y`` are statistics (no gradient). ``xhat`` is
    returned, not kept on ``ctx``, because :mod:`torch.func` transforms (``torch.func.jvp``,
    ``torch.func.grad``) need the ``setup_context`` form, which saves only inputs and outputs; it is
    ``None`` when there is no affine map (then ``y`` *is* ``xhat``, and saving it would make
    ``F.relu(y, inplace=True)`` break the backward pass, so the backward recomputes it from ``x``).

    Forward mode (:meth:`jvp`), derived like the backward: with tangents :math:`\dot x, \dot\gamma,
    \dot\beta` and means over the batch (and space) per channel,

    .. math::

        \dot{\hat x} = \frac{1}{\sqrt{\sigma_B^2+\epsilon}}
            \big(\dot x - \overline{\dot x} - \hat x\, \overline{\hat x \dot x}\big), \qquad
        \dot y = \gamma \dot{\hat x} + \dot\gamma \hat x + \dot\beta .
    """

    @staticmethod
    def forward(x, weight, bias, eps):
        dims = _reduce_dims(x)
        xc, var, mean = _centre_and_var(x, dims)  # (N, C, ...), (C,), (C,)
        invstd = torch.rsqrt(var + eps)  # (C,)
        xhat = xc.mul_(_channel_view(invstd, x))  # (x - mean) / sqrt(var + eps), in place
        if weight is not None and bias is not None:
            y = _scale_shift(xhat, _channel_view(weight, x), _channel_view(bias, x))  # gamma xhat + beta
        elif weight is not None:
            y = xhat * _channel_view(weight, x)
        elif bias is not None:
            y = xhat + _channel_view(bias, x)
        else:
            return xhat, mean, var, None, invstd
        return y, mean, var, xhat, invstd

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, eps = inputs
        _, mean, var, xhat, invstd = output
        ctx.save_for_backward(x, xhat, mean, invstd, weight)
        ctx.save_for_forward(x, xhat, mean, invstd, weight)
        ctx.eps = eps
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(*(t for t in (mean, var, xhat, invstd) if t is not None))
        ctx.set_materialize_grads(False)  # the statistics get no gradient: no zero tensors for them

    @staticmethod
    def backward(ctx, grad_y, *_grad_statistics):
        if grad_y is None:
            return None, None, None, None
        x, xhat, mean, invstd, weight = ctx.saved_tensors
        dims = _reduce_dims(grad_y)
        m = x.numel() // x.shape[1]
        if torch.is_grad_enabled():
            # Double backward (create_graph=True, e.g. Hessian-vector products): rebuild xhat and
            # invstd from x, so that second derivatives flow through the batch statistics too.
            xc, var, _ = _centre_and_var(x, dims)
            invstd = torch.rsqrt(var + ctx.eps)
            xhat = xc * _channel_view(invstd, x)
        elif xhat is None:  # no affine map: y was xhat, which the caller may have changed in place
            xhat = (x - _channel_view(mean, x)).mul_(_channel_view(invstd, x))
        sum_g = grad_y.sum(dim=dims)  # (C,)
        sum_gx = (grad_y * xhat).sum(dim=dims)  # (C,)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            # dL/dx_i = s g_i + k sum_g + k sum_gx xhat_i, with s = gamma / sqrt(var + eps), k = -s / m
            scale = invstd if weight is None else weight * invstd  # (C,)
            k = scale * (-1.0 / m)
            view = lambda t: _channel_view(t, grad_y)
            grad_x = _scale_shift(xhat, view(k * sum_gx), view(k * sum_g))
            grad_x.addcmul_(grad_y, view(scale))
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = sum_gx
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = sum_g
        return grad_x, grad_weight, grad_bias, None

    @staticmethod
    def jvp(ctx, dx, dweight, dbias, _deps):
        x, xhat, mean, invstd, weight = ctx.saved_tensors
        if xhat is None:
            xhat = (x - _channel_view(mean, x)) * _channel_view(invstd, x)
        view = lambda t: _channel_view(t, x)
        dy = None
        if dx is not None:
            dims = _reduce_dims(x)
            dxhat = (dx - view(dx.mean(dim=dims))).sub_(xhat * view((xhat * dx).mean(dim=dims)))
            dxhat.mul_(view(invstd))
            dy = dxhat if weight is None else dxhat * view(weight)
        if dweight is not None:
            dy = xhat * view(dweight) if dy is None else dy.addcmul_(xhat, view(dweight))
        if dbias is not None:
            dy = view(dbias).expand_as(x).clone() if dy is None else dy.add_(view(dbias))
        return dy, None, None, None, None


def _apply_train(x, weight, bias, eps):
    """``_BatchNormTrain.apply(x, weight, bias, eps)``, without its per-call cost.

    ``torch.autograd.Function.apply`` binds the arguments to ``forward``'s signature with
    :func:`inspect.signature` on every call once ``setup_context`` is defined: about a fifth of this
    layer's time on the book's (60, 100) MLP batches. All four arguments are positional with no
    defaults, so outside :mod:`torch.func` transforms and :func:`torch.compile` this goes straight
    to the C++ ``apply``, as ``Function.apply`` itself then does; inside them, ``Function.apply``.
    """
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return _BatchNormTrain.apply(x, weight, bias, eps)
    args = torch._functorch.utils.unwrap_dead_wrappers((x, weight, bias, eps))
    return super(torch.autograd.function._SingleLevelFunction, _BatchNormTrain).apply(*args)


def batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    r"""Batch normalization with the signature, semantics and error messages of
    :func:`torch.nn.functional.batch_norm`.

    Args:
        input: (N, C) or (N, C, *) floating-point tensor.
        running_mean, running_var: (C,) buffers, updated in place when ``training``; may be None.
        weight, bias: :math:`\gamma` and :math:`\beta`, shape (C,), or None.
        training: use (and record) the batch statistics; otherwise normalise with the running ones.
        momentum: :math:`r \leftarrow (1-\text{momentum})\,r + \text{momentum}\cdot s`. Any float,
            as in PyTorch, which does not check it.
        eps: added to the variance; must be positive in training and non-negative otherwise.

    Returns:
        A tensor of the same shape and dtype as ``input``. A float16 or bfloat16 input (mixed
        precision, e.g. under :func:`torch.autocast`) is normalised in float32 and the result
        cast back, as PyTorch's own kernels compute the statistics in float32.

    An empty batch (N = 0) in training gives an empty output, zero gradients for ``weight`` and
    ``bias`` and leaves the running statistics as they were, as PyTorch does.

    Where it differs from PyTorch, on purpose: a non-tensor input raises ``TypeError`` and a 0D or
    1D input ``ValueError("expected at least 2D input ...")`` (PyTorch: ``AttributeError`` and
    ``IndexError`` from inside); the dtype errors use PyTorch's CPU words on every device.
    """
    _check_input(input)
    if training:
        size = input.size()
        values = size[0]  # values per channel, as torch.nn.functional._verify_batch_size counts them
        for d in size[2:]:
            values *= d
        if values == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {size}")
        if eps <= 0.0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
    _check_dtypes(input, weight, bias, running_mean, running_var)
    if not training:
        for name, t in (("running_mean", running_mean), ("running_var", running_var)):
            if t is None:
                raise RuntimeError(f"{name} must be defined in evaluation mode")
        if _has_tangent(input) and (_has_tangent(running_mean) or _has_tangent(running_var)):
            raise RuntimeError("batch_norm is not differentiable wrt running_mean and running_var, "
                               "they cannot have forward grad defined")
    if input.dtype in _HALF:
        as_float = lambda t: None if t is None else t.float()  # a differentiable cast for parameters
        y = _batch_norm(input.float(), running_mean, running_var, as_float(weight), as_float(bias),
                        training, momentum, eps)
        return y.to(input.dtype)
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps):
    """:func:`batch_norm` once its arguments are checked."""
    if training:
        if input.numel() == 0:  # empty batch: empty output, zero gradients, statistics untouched
            y = input.clone()
            if weight is not None:
                y = y * _channel_view(weight, input)
            if bias is not None:
                y = y + _channel_view(bias, input)
            return y
        m = input.numel() // input.shape[1]
        y, mean, var, _, _ = _apply_train(input, weight, bias, eps)
        with torch.no_grad():
            if running_mean is not None:
                running_mean.lerp_(mean.to(running_mean.dtype), momentum)  # (1 - momentum) r + momentum mean
            if running_var is not None:
                running_var.lerp_((var * (m / (m - 1))).to(running_var.dtype), momentum)  # unbiased variance
        return y
    # Eval mode is an affine map with fixed statistics; autograd differentiates it exactly (both modes).
    invstd = torch.rsqrt(running_var.to(input.dtype) + eps)
    y = (input - _channel_view(running_mean.to(input.dtype), input)) * _channel_view(invstd, input)
    if weight is not None:
        y = y * _channel_view(weight, input)
    if bias is not None:
        y = y + _channel_view(bias, input)
    return y


class _BatchNorm(nn.Module):
    r"""What :class:`BatchNorm1d`, :class:`BatchNorm2d` and :class:`BatchNorm` share: the arguments,
    defaults, parameters, buffers, ``state_dict`` (with its version, 2) and ``forward`` rules of
    ``torch.nn.modules.batchnorm._BatchNorm``, with the forward and backward pass of
    :func:`batch_norm`. Statistics are chosen by ``self.training``.

    Args:
        num_features: C, the channels (or features) of the input.
        eps: added to the variance (positive for training; checked at the call, as PyTorch does).
        momentum: weight of the newest batch in the running statistics; ``None`` for a cumulative
            average. Any float, as in PyTorch.
        affine: learn :math:`\gamma` (``weight``, initially 1) and :math:`\beta` (``bias``, initially 0).
        track_running_stats: keep ``running_mean``, ``running_var`` and ``num_batches_tracked``; without
            them batch statistics serve in eval mode too.
        bias: (keyword only) with ``affine``, learn :math:`\beta` as well.
    """

    _version = 2  # the state_dict version: 2 added num_batches_tracked, as PyTorch's
    __constants__ = ["track_running_stats", "momentum", "eps", "num_features", "affine"]

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None,
                 *, bias: bool = True):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(num_features, **factory))
            if bias:
                self.bias = nn.Parameter(torch.empty(num_features, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            if self.bias is not None:
                nn.init.zeros_(self.bias)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        raise NotImplementedError

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # A checkpoint of version 1 (or none) has no num_batches_tracked: count 0, as PyTorch does
        # (a fresh 0 rather than a buffer still on the meta device).
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            own = self.num_batches_tracked
            state_dict[key] = (own if own is not None and own.device.type != "meta"
                               else torch.tensor(0, dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not isinstance(input, torch.Tensor):  # PyTorch: AttributeError, "'list' object has no attribute 'dim'"
            raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
        self._check_input_dim(input)  # first, as PyTorch: the rank, then (in batch_norm) the dtype
        return self._normalize(input)

    # TorchScript (torch.jit.script) compiles forward above and calls this one as Python: the custom
    # autograd.Function cannot be compiled. Scripting and running work; saving the result does not.
    # (Unannotated: TorchScript misreads the string annotations of ``from __future__ import annotations``.)
    @torch.jit.ignore
    def _normalize(self, input):
        # The same rules as torch.nn.modules.batchnorm._BatchNorm.forward.
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    r""":class:`torch.nn.BatchNorm1d` from scratch: batch normalization of (N, C) or (N, C, L) inputs.

    Example::

        >>> BatchNorm1d(3)(torch.randn(8, 3)).shape
        torch.Size([8, 3])
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() != 2 and input.dim() != 3:
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    r""":class:`torch.nn.BatchNorm2d` from scratch: batch normalization of (N, C, H, W) inputs, one
    set of statistics per channel over batch and space.

    Example::

        >>> BatchNorm2d(3)(torch.randn(8, 3, 5, 5)).shape
        torch.Size([8, 3, 5, 5])
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")


class BatchNorm(_BatchNorm):
    r"""The book's teaching layer: :class:`BatchNorm1d` on (N, C) and (N, C, L) inputs,
    :class:`BatchNorm2d` on (N, C, H, W) ones, so that one name serves the MLPs and the CNNs.

    That is its one difference from PyTorch, which has a class per rank and rejects the others;
    use :class:`BatchNorm1d` / :class:`BatchNorm2d` for PyTorch's rank checks.

    Example::

        >>> bn = BatchNorm(3)
        >>> bn(torch.randn(8, 3, 5, 5)).shape
        torch.Size([8, 3, 5, 5])
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2D, 3D or 4D input (got {input.dim()}D input)")


def _batch_noise(a: torch.Tensor) -> torch.Tensor:
    r"""Santurkar et al.'s distributional noise (§2.1), fresh at every call.

    For each unit j: :math:`\mu_j \sim U(-0.5, 0.5)`, :math:`\sigma_j \sim U(1, 1.25)`; for each
    sample i (spatial positions count as samples): :math:`m_{ij} \sim U(\mu_j - 0.1, \mu_j + 0.1)`,
    :math:`s_{ij} \sim N(\sigma_j, 0.1^2)`; the output is :math:`s_{ij} a_{ij} + m_{ij}`.
    """
    c = a.shape[1]
    opts = {"device": a.device, "dtype": a.dtype}
    mu = _channel_view(torch.rand(c, **opts) - 0.5, a)  # U(-0.5, 0.5)
    sigma = _channel_view(1.0 + 0.25 * torch.rand(c, **opts), a)  # U(1, 1.25)
    shift = torch.add(mu - 0.1, torch.rand_like(a), alpha=0.2)  # U(mu - 0.1, mu + 0.1), per sample and unit
    scale = torch.add(sigma, torch.randn_like(a), alpha=0.1)  # N(sigma, 0.1^2)
    return torch.addcmul(shift, scale, a)  # scale * a + shift


class NoisyBatchNorm(BatchNorm):
    """:class:`BatchNorm` followed, in training mode, by Santurkar et al.'s noise
    (:func:`_batch_noise`): the activations' distribution changes at every step, on purpose.
    In eval mode it is plain batch norm."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        out = super().forward(input)
        return _batch_noise(out) if self.training else out


class BatchNoise(nn.Module):
    """The same noise as :class:`NoisyBatchNorm` with no normalization before it (training only)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        _check_input(input)
        return _batch_noise(input) if self.training else input

    def extra_repr(self) -> str:
        return str(self.num_features)


class LpNorm(nn.Module):
    r""":math:`\ell_p` batch normalization (Santurkar et al. §3.3): subtract the batch mean of each
    unit, then divide by the average :math:`\ell_p` norm of its centred activations over the batch,

    .. math::

        \hat x_i = \frac{x_i - \mu_B}{\big(\frac1m\sum_j |x_j - \mu_B|^p\big)^{1/p} + \epsilon}
        \quad (p = 1, 2), \qquad
        \hat x_i = \frac{x_i - \mu_B}{\max_j |x_j - \mu_B| + \epsilon} \quad (p = \infty),

    then :math:`\gamma \hat x + \beta`. Running averages of the mean and the norm serve eval mode.
    """

    def __init__(self, num_features: int, p: float = 2, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True):
        super().__init__()
        if p not in (1, 2, float("inf")):
            raise ValueError(f"p must be 1, 2 or inf, got {p}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.num_features, self.p, self.eps, self.momentum = num_features, p, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_norm", torch.ones(num_features))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        _check_input(input)
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"expected {self.num_features} channels in dimension 1, got input of shape "
                f"{tuple(input.shape)}"
            )
        if input.dtype in _HALF:  # mixed precision: statistics in float32, as batch_norm
            return self.forward(input.float()).to(input.dtype)
        dims = _reduce_dims(input)
        if self.training:
            if input.numel() // input.shape[1] <= 1:
                raise ValueError(
                    f"Expected more than 1 value per channel when training, got input size {input.size()}"
                )
            mean = input.mean(dim=dims)
            xc = input - _channel_view(mean, input)
            if self.p == float("inf"):
                norm = xc.abs().amax(dim=dims)
            else:
                norm = xc.abs().pow(self.p).mean(dim=dims).pow(1.0 / self.p)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_norm.lerp_(norm.detach(), self.momentum)
        else:
            mean, norm = self.running_mean, self.running_norm
            xc = input - _channel_view(mean, input)
        y = xc / _channel_view(norm + self.eps, input)
        if self.weight is not None:
            y = y * _channel_view(self.weight, input) + _channel_view(self.bias, input)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, p={self.p}"
