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
from torch import nn

__all__ = [
    "batch_norm",
    "BatchNorm",
    "NoisyBatchNorm",
    "BatchNoise",
    "LpNorm",
]


_HALF = (torch.float16, torch.bfloat16)  # normalised in float32, see batch_norm


def _check_input(input: torch.Tensor, name: str = "input") -> None:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(input).__name__}")
    if not torch.is_floating_point(input):
        # PyTorch's own words for the same call: '"batch_norm" not implemented for 'Long''.
        raise NotImplementedError(
            f'"batch_norm" not implemented for {str(input.dtype).replace("torch.", "")!r}: '
            "expected a floating-point input"
        )
    if input.dim() < 2:
        raise ValueError(f"expected at least 2D input (N, C, ...), got {input.dim()}D input")


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
    """Training-mode batch norm with the hand-derived backward pass above, written with as few
    passes over the (N, C, ...) tensors, and as few operations, as plain PyTorch allows (each is a
    kernel launch on a GPU)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        dims = _reduce_dims(x)
        m = x.numel() // x.shape[1]
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
            y = xhat
        ctx.save_for_backward(x, xhat, invstd, weight)
        ctx.m, ctx.eps = m, eps
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(mean, var)
        ctx.set_materialize_grads(False)  # mean and var get no gradient: no zero tensors for them
        return y, mean, var

    @staticmethod
    def backward(ctx, grad_y, _grad_mean, _grad_var):
        if grad_y is None:
            return None, None, None, None
        x, xhat, invstd, weight = ctx.saved_tensors
        dims = _reduce_dims(grad_y)
        if torch.is_grad_enabled():
            # Double backward (create_graph=True, e.g. Hessian-vector products): rebuild xhat and
            # invstd from x, so that second derivatives flow through the batch statistics too.
            xc, var, _ = _centre_and_var(x, dims)
            invstd = torch.rsqrt(var + ctx.eps)
            xhat = xc * _channel_view(invstd, x)
        sum_g = grad_y.sum(dim=dims)  # (C,)
        sum_gx = (grad_y * xhat).sum(dim=dims)  # (C,)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            # dL/dx_i = s g_i + k sum_g + k sum_gx xhat_i, with s = gamma / sqrt(var + eps), k = -s / m
            scale = invstd if weight is None else weight * invstd  # (C,)
            k = scale * (-1.0 / ctx.m)
            view = lambda t: _channel_view(t, grad_y)
            grad_x = _scale_shift(xhat, view(k * sum_gx), view(k * sum_g))
            grad_x.addcmul_(grad_y, view(scale))
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = sum_gx
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = sum_g
        return grad_x, grad_weight, grad_bias, None


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
    r"""Batch normalization with the signature and semantics of
    :func:`torch.nn.functional.batch_norm`.

    Args:
        input: (N, C) or (N, C, *) floating-point tensor.
        running_mean, running_var: (C,) buffers, updated in place when ``training``; may be None.
        weight, bias: :math:`\gamma` and :math:`\beta`, shape (C,), or None.
        training: use (and record) the batch statistics; otherwise normalise with the running ones.
        momentum: :math:`r \leftarrow (1-\text{momentum})\,r + \text{momentum}\cdot s`.
        eps: added to the variance for numerical stability.

    Returns:
        A tensor of the same shape and dtype as ``input``. A float16 or bfloat16 input (mixed
        precision, e.g. under :func:`torch.autocast`) is normalised in float32 and the result
        cast back, as PyTorch's own kernels compute the statistics in float32.
    """
    _check_input(input)
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:
            # PyTorch: "running_mean should contain 3 elements not 4"
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
    if input.dtype in _HALF:
        y = batch_norm(input.float(), running_mean, running_var, weight, bias, training, momentum, eps)
        return y.to(input.dtype)
    if training:
        m = input.numel() // c
        if m <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {input.size()}"
            )
        y, mean, var = _BatchNormTrain.apply(input, weight, bias, eps)
        with torch.no_grad():
            if running_mean is not None:
                running_mean.lerp_(mean.to(running_mean.dtype), momentum)  # (1 - momentum) r + momentum mean
            if running_var is not None:
                running_var.lerp_((var * (m / (m - 1))).to(running_var.dtype), momentum)  # unbiased variance
        return y
    if running_mean is None or running_var is None:
        raise ValueError("running_mean and running_var must be given when training=False")
    # Eval mode is an affine map with fixed statistics; autograd differentiates it exactly.
    invstd = torch.rsqrt(running_var + eps)
    y = (input - _channel_view(running_mean, input)) * _channel_view(invstd, input)
    if weight is not None:
        y = y * _channel_view(weight, input)
    if bias is not None:
        y = y + _channel_view(bias, input)
    return y


class BatchNorm(nn.Module):
    r"""Batch normalization over (N, C), (N, C, L) or (N, C, H, W) inputs, per channel.

    Behaves like :class:`torch.nn.BatchNorm1d` / :class:`torch.nn.BatchNorm2d` (same arguments,
    defaults, buffers and ``state_dict`` keys), with the forward and backward pass of
    :func:`batch_norm` above. Statistics are chosen by ``self.training``.

    Example::

        >>> bn = BatchNorm(3)
        >>> bn(torch.randn(8, 3, 5, 5)).shape
        torch.Size([8, 3, 5, 5])
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None):
        super().__init__()
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
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

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2D, 3D or 4D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        _check_input(input)
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"expected {self.num_features} channels in dimension 1, got input of shape "
                f"{tuple(input.shape)}"
            )
        # The same rules as torch.nn.modules.batchnorm._BatchNorm.forward.
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
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
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


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
