r"""Self-checks: one call that tells a student whether the code they wrote is right, and if not,
the *first* thing that is wrong, in words ("gradient wrong for gamma at index 3: expected ...,
got ...", "your running_var uses the biased estimator: ...").

Every check runs the student's code and a reference (PyTorch, or :mod:`bnutils`) on the same small
float64 inputs drawn from a private generator (the global random state is untouched). A check
that passes prints one line starting with ``✓`` and returns a :class:`CheckResult` with its points
(``points=``, 1 by default); one that fails raises :class:`CheckFailed` (an ``AssertionError``)
whose message says what is wrong, or, with ``raises=False`` (how the grader,
:mod:`bnutils.teaching.grade`, calls it), returns a :class:`CheckResult` with 0 points and that
message. Where the wrong answer matches a typical
mistake (the unbiased variance, ``eps`` outside the square root, statistics over the wrong
dimension, a gradient that treats the batch mean as a constant, ...), the message names the mistake.

=================================== ===============================================================
:func:`check_batchnorm_forward`      ``fn(x, gamma, beta[, eps]) -> y``, training mode
:func:`check_batchnorm_eval`         ``fn(x, gamma, beta, running_mean, running_var[, eps]) -> y``
:func:`check_batchnorm_backward`     ``fn(x, gamma, beta, grad_out[, eps]) -> (dx, dgamma, dbeta)``
:func:`check_running_stats`          ``fn(running_mean, running_var, x, momentum) -> (mean, var)``
:func:`check_batch_norm`             the signature of ``torch.nn.functional.batch_norm``
:func:`check_batchnorm_module`       a module class like ``nn.BatchNorm1d`` / ``nn.BatchNorm2d``
:func:`check_optimizer`              a ``torch.optim``-style optimiser: SGD (momentum), AdaGrad,
                                     RMSProp, Adam, against ``torch.optim``
:func:`check_ics`                    an ICS measurement, against :func:`bnutils.ics.ics`
:func:`check_landscape`              a landscape probe, against :mod:`bnutils.landscape`
:func:`check_conv_scale_invariance`  ``fn(a) -> dict`` of three relative differences (benefits)
:func:`check_recalibrate`            ``fn(model, x, batch_size) -> model``, BN statistics re-estimated
:func:`check_input_shift`            ``fn(model, x, y, lr, index) -> (mean_shift, std_shift)`` (ics)
:func:`check_against_loss`           ``fn(hists, key, window) -> (losses, values)`` (landscape)
=================================== ===============================================================

>>> import torch
>>> def bn(x, gamma, beta, eps=1e-5):
...     mu, var = x.mean(0), x.var(0, unbiased=False)
...     return gamma * (x - mu) / torch.sqrt(var + eps) + beta
>>> result = check_batchnorm_forward(bn, points=3)
✓ batch-norm forward (training mode) is correct: output matches torch.nn.functional.batch_norm on (8, 5) inputs
>>> result.passed, result.points
(True, 3.0)
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..norms import _channel_view as _view  # (C,) -> (1, C, 1, ...)
from ..norms import _reduce_dims as _dims  # every dimension but the channel one

__all__ = [
    "CheckFailed",
    "CheckResult",
    "check_batchnorm_forward",
    "check_batchnorm_eval",
    "check_batchnorm_backward",
    "check_running_stats",
    "check_batch_norm",
    "check_batchnorm_module",
    "check_optimizer",
    "check_ics",
    "check_landscape",
    "check_conv_scale_invariance",
    "check_recalibrate",
    "check_input_shift",
    "check_against_loss",
    "CHECKS",
]

RTOL, ATOL = 1e-4, 1e-6


class CheckFailed(AssertionError):
    """Raised by a self-check: the message says the first thing that is wrong."""


# ---------------------------------------------------------------------------------------------
# Helpers: comparing, diagnosing, calling the student's code
# ---------------------------------------------------------------------------------------------

_LAST_PASSED: list[str] = []


def _passed(message: str) -> None:
    _LAST_PASSED.append(message)
    print(f"✓ {message}")


@dataclass(frozen=True)
class CheckResult:
    """What a check returns: whether it passed, the points it gives out of ``max_points`` (the
    ``points=`` the check was called with, 1 by default), and its message (the ✓ line without the
    ✓, or the first thing that is wrong)."""

    check: str
    passed: bool
    points: float
    max_points: float
    message: str

    def __bool__(self) -> bool:
        return self.passed


def _graded(check: Callable) -> Callable:
    """Give a check two keyword arguments: ``points`` (its weight, 1 by default) and ``raises``
    (True: a failure raises :class:`CheckFailed`, for students; False: it returns a failed
    :class:`CheckResult` with 0 points, for the grader). A pass returns a :class:`CheckResult`."""

    @functools.wraps(check)
    def wrapper(*args, points: float = 1.0, raises: bool = True, **kwargs) -> CheckResult:
        _LAST_PASSED.clear()
        try:
            check(*args, **kwargs)
        except CheckFailed as e:
            if raises:
                raise
            return CheckResult(check.__name__, False, 0.0, float(points), str(e))
        message = _LAST_PASSED[-1] if _LAST_PASSED else f"{check.__name__} passed"
        return CheckResult(check.__name__, True, float(points), float(points), message)

    return wrapper


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _index(flat: int, shape) -> str:
    idx = []
    for s in reversed(tuple(shape)):
        idx.append(flat % s)
        flat //= s
    idx = tuple(reversed(idx))
    return str(idx[0]) if len(idx) == 1 else str(idx)


def _as_tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            return torch.from_numpy(value)
    except ImportError:  # pragma: no cover
        pass
    raise CheckFailed(f"{what}: expected a tensor, got {type(value).__name__}")


def _close(a: torch.Tensor, b: torch.Tensor, rtol=RTOL, atol=ATOL) -> bool:
    return a.shape == b.shape and torch.allclose(a.to(b.dtype), b, rtol=rtol, atol=atol)


def _compare(expected: torch.Tensor, got, what: str, rtol=RTOL, atol=ATOL) -> None:
    """Raise ``CheckFailed('{what} at index i: expected e, got g')`` at the first mismatch."""
    got = _as_tensor(got, what)
    expected = expected.detach()
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckFailed(f"{what}: expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}")
    if not (torch.is_floating_point(got) or torch.is_complex(got)):
        raise CheckFailed(f"{what}: expected a floating-point tensor, got dtype {got.dtype}")
    got = got.to(expected.dtype)
    bad = ~torch.isclose(got, expected, rtol=rtol, atol=atol)
    if bad.any():
        i = int(bad.flatten().nonzero()[0])
        e, g = float(expected.flatten()[i]), float(got.flatten()[i])
        raise CheckFailed(f"{what} at index {_index(i, expected.shape)}: expected {_fmt(e)}, got {_fmt(g)}")


def _diagnose(got, candidates: Mapping[str, torch.Tensor], rtol=RTOL, atol=ATOL) -> None:
    """If ``got`` matches one of the typical mistakes in ``candidates``, raise its message."""
    if not isinstance(got, torch.Tensor):
        return
    got = got.detach()
    for message, wrong in candidates.items():
        if wrong is not None and _close(got, wrong.detach(), rtol, atol):
            raise CheckFailed(message)


def _accepts(fn: Callable, name: str, position: int) -> str | None:
    """'kw' if ``fn`` takes ``name`` as a keyword, 'pos' if it takes a positional at ``position``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return "pos"
    params = list(sig.parameters.values())
    if any(p.name == name for p in params) or any(p.kind is p.VAR_KEYWORD for p in params):
        return "kw"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) > position or any(p.kind is p.VAR_POSITIONAL for p in params):
        return "pos"
    return None


def _call(fn: Callable, what: str, *args, **kwargs):
    """Call the student's function; an exception becomes a message that says where it came from."""
    try:
        return fn(*args, **kwargs)
    except CheckFailed:
        raise
    except NotImplementedError as e:
        raise CheckFailed(f"{what} is not written yet: it raised NotImplementedError({e})") from e
    except Exception as e:  # noqa: BLE001 -- any error in student code is reported, not hidden
        raise CheckFailed(f"{what} raised {type(e).__name__}: {e}") from e


def _with_eps(fn: Callable, args: tuple, eps: float, what: str):
    mode = _accepts(fn, "eps", len(args))
    if mode == "kw":
        return _call(fn, what, *args, eps=eps)
    if mode == "pos":
        return _call(fn, what, *args, eps)
    return _call(fn, what, *args)


def _first(out):
    """``y`` from ``y`` or from ``(y, cache)``."""
    if isinstance(out, (tuple, list)) and out:
        return out[0]
    return out


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _bn_inputs(spatial: bool, seed: int = 0):
    """float64 inputs that separate the typical mistakes: features of very different means and
    scales (one tiny, so that eps matters), N != C, random gamma and beta."""
    g = _generator(seed)
    n, c = 8, 5
    shape = (n, c, 3, 2) if spatial else (n, c)
    scale = torch.tensor([1.0, 3.0, 0.5, 1e-3, 7.0], dtype=torch.float64)
    shift = torch.tensor([0.5, -2.0, 4.0, 1.0, 10.0], dtype=torch.float64)
    view = (1, c, 1, 1) if spatial else (1, c)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale.view(view) + shift.view(view)
    gamma = 0.5 + torch.rand(c, generator=g, dtype=torch.float64)
    beta = torch.randn(c, generator=g, dtype=torch.float64)
    return x, gamma, beta


def _bn_variants(x, gamma, beta, eps) -> dict[str, torch.Tensor]:
    """The output of batch norm done wrong in the usual ways, keyed by the message for each."""
    d = _dims(x)
    mu = x.mean(d, keepdim=True)
    var = x.var(d, unbiased=False, keepdim=True)
    var_u = x.var(d, unbiased=True, keepdim=True)
    g, b = _view(gamma, x), _view(beta, x)
    out = {
        "you normalise with the unbiased variance (dividing by m - 1); batch norm normalises with "
        "the biased one, sigma_B^2 = (1/m) * sum_i (x_i - mu_B)^2 (unbiased=False)":
            g * (x - mu) / torch.sqrt(var_u + eps) + b,
        "you left eps out: divide by sqrt(sigma_B^2 + eps)":
            g * (x - mu) / torch.sqrt(var) + b,
        "you added eps outside the square root: divide by sqrt(sigma_B^2 + eps), not sqrt(sigma_B^2) + eps":
            g * (x - mu) / (torch.sqrt(var) + eps) + b,
        "you divide by the variance; divide by the standard deviation sqrt(sigma_B^2 + eps)":
            g * (x - mu) / (var + eps) + b,
        "you compute the statistics over each sample's features (dim=1); batch norm takes each "
        "feature's statistics over the batch (dim=0)":
            g * (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + eps) + b,
        "you compute one mean and variance over the whole tensor; batch norm computes them per "
        "feature (per channel)":
            g * (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps) + b,
        "your output is x_hat: scale it by gamma and shift it by beta (y = gamma * x_hat + beta)":
            (x - mu) / torch.sqrt(var + eps),
        "you swapped gamma and beta: y = gamma * x_hat + beta":
            b * (x - mu) / torch.sqrt(var + eps) + g,
        "you forgot to subtract the batch mean before dividing":
            g * x / torch.sqrt(var + eps) + b,
    }
    if x.dim() > 2:
        out["your statistics are over the batch only, one per channel *and position*; for "
            "convolutions batch norm takes each channel's statistics over the batch and all "
            "spatial positions (dims 0, 2, 3)"] = (
            g * (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, unbiased=False, keepdim=True) + eps) + b)
    return out


# ---------------------------------------------------------------------------------------------
# Batch norm as functions
# ---------------------------------------------------------------------------------------------

def check_batchnorm_forward(fn: Callable, *, eps: float = 1e-5, spatial: bool = False) -> None:
    r"""Check a training-mode batch-norm forward pass ``fn(x, gamma, beta[, eps]) -> y``.

    ``x`` is (N, C) (or (N, C, H, W) with ``spatial=True``), ``gamma`` and ``beta`` are (C,);
    ``y = gamma * (x - mu_B) / sqrt(sigma_B^2 + eps) + beta`` with the batch's *biased* variance.
    ``fn`` may also return ``(y, cache)``.
    """
    what = "your batch-norm forward"
    for seed in (0, 1):
        x, gamma, beta = _bn_inputs(spatial, seed)
        x0 = x.clone()
        got = _first(_with_eps(fn, (x, gamma, beta), eps, what))
        if not torch.equal(x, x0):
            raise CheckFailed("your batch-norm forward changed its input x in place; compute a new tensor")
        expected = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
        got_t = _as_tensor(got, "the output of your batch-norm forward")
        if not _close(got_t, expected):
            _diagnose(got_t, _bn_variants(x, gamma, beta, eps))
        _compare(expected, got_t, "output of your batch-norm forward wrong")
    shape = "(8, 5, 3, 2)" if spatial else "(8, 5)"
    _passed(f"batch-norm forward (training mode) is correct: output matches "
            f"torch.nn.functional.batch_norm on {shape} inputs")


def check_batchnorm_eval(fn: Callable, *, eps: float = 1e-5, spatial: bool = False) -> None:
    r"""Check an inference-mode batch norm
    ``fn(x, gamma, beta, running_mean, running_var[, eps]) -> y``:
    ``y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta``."""
    what = "your eval-mode batch norm"
    x, gamma, beta = _bn_inputs(spatial, 2)
    g = _generator(3)
    c = gamma.numel()
    rm = torch.randn(c, generator=g, dtype=torch.float64)
    rv = 0.5 + torch.rand(c, generator=g, dtype=torch.float64)
    rv[3] = 1e-6  # a tiny variance, so that eps matters
    rm0, rv0 = rm.clone(), rv.clone()
    got = _as_tensor(_first(_with_eps(fn, (x, gamma, beta, rm, rv), eps, what)), "the output of " + what)
    if not (torch.equal(rm, rm0) and torch.equal(rv, rv0)):
        raise CheckFailed("your eval-mode batch norm changed running_mean or running_var; at inference "
                          "the running statistics are only read")
    expected = F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=eps)
    gv, bv, mv, vv = (_view(t, x) for t in (gamma, beta, rm, rv))
    if not _close(got, expected):
        _diagnose(got, {
            "in eval mode you normalise with the batch's statistics; use running_mean and running_var":
                F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps),
            "you divide by running_var + eps; divide by its square root, sqrt(running_var + eps)":
                gv * (x - mv) / (vv + eps) + bv,
            "you left eps out: divide by sqrt(running_var + eps)": gv * (x - mv) / torch.sqrt(vv) + bv,
            "you added eps outside the square root: divide by sqrt(running_var + eps)":
                gv * (x - mv) / (torch.sqrt(vv) + eps) + bv,
            "your output is x_hat: scale it by gamma and shift it by beta":
                (x - mv) / torch.sqrt(vv + eps),
        })
    _compare(expected, got, "output of your eval-mode batch norm wrong")
    _passed("eval-mode batch norm is correct: it normalises with the running statistics")


def _unpack_grads(out, what: str):
    if isinstance(out, Mapping):
        keys = {k.lower(): k for k in out}
        picks = []
        for names in (("dx", "grad_x", "x", "input"), ("dgamma", "grad_gamma", "gamma", "weight"),
                      ("dbeta", "grad_beta", "beta", "bias")):
            k = next((keys[n] for n in names if n in keys), None)
            if k is None:
                raise CheckFailed(f"{what} returned a dict without {names[0]!r} (keys: {list(out)})")
            picks.append(out[k])
        return picks
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed(f"{what} should return three gradients (dx, dgamma, dbeta), got "
                          f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    return list(out)


def _bn_grads(x, gamma, beta, grad_out, eps):
    xr, gr, br = (t.clone().requires_grad_(True) for t in (x, gamma, beta))
    y = F.batch_norm(xr, None, None, gr, br, training=True, eps=eps)
    return torch.autograd.grad(y, (xr, gr, br), grad_out)


def check_batchnorm_backward(fn: Callable, *, eps: float = 1e-5, spatial: bool = False) -> None:
    r"""Check a hand-written batch-norm backward pass
    ``fn(x, gamma, beta, grad_out[, eps]) -> (grad_x, grad_gamma, grad_beta)`` (a tuple, or a dict
    with keys ``dx``, ``dgamma``, ``dbeta``) against autograd through
    ``torch.nn.functional.batch_norm`` in training mode."""
    what = "your batch-norm backward"
    x, gamma, beta = _bn_inputs(spatial, 4)
    grad_out = torch.randn(x.shape, generator=_generator(5), dtype=torch.float64)
    dx, dgamma, dbeta = _unpack_grads(_with_eps(fn, (x, gamma, beta, grad_out), eps, what), what)
    ex, egamma, ebeta = _bn_grads(x, gamma, beta, grad_out, eps)
    d = _dims(x)
    mu = x.mean(d, keepdim=True)
    std = torch.sqrt(x.var(d, unbiased=False, keepdim=True) + eps)
    xhat = (x - mu) / std
    g = _view(gamma, x)
    # gamma and beta first: they are the easier ones, and dx often builds on them.
    dgamma_t = _as_tensor(dgamma, "the gradient for gamma")
    if not _close(dgamma_t, egamma):
        _diagnose(dgamma_t, {
            "gradient wrong for gamma: you summed grad_out alone; dL/dgamma = sum_i grad_out_i * x_hat_i":
                grad_out.sum(d),
            "gradient wrong for gamma: you multiplied grad_out by x instead of x_hat":
                (grad_out * x).sum(d),
            "gradient wrong for gamma: you averaged over the batch; the gradient sums, "
            "dL/dgamma = sum_i grad_out_i * x_hat_i": (grad_out * xhat).mean(d),
        })
    _compare(egamma, dgamma_t, "gradient wrong for gamma")
    dbeta_t = _as_tensor(dbeta, "the gradient for beta")
    if not _close(dbeta_t, ebeta):
        _diagnose(dbeta_t, {
            "gradient wrong for beta: you averaged over the batch; dL/dbeta = sum_i grad_out_i":
                grad_out.mean(d),
        })
    _compare(ebeta, dbeta_t, "gradient wrong for beta")
    dx_t = _as_tensor(dx, "the gradient for x")
    if not _close(dx_t, ex):
        _diagnose(dx_t, {
            "gradient wrong for x: you treat the batch mean and variance as constants "
            "(grad_x = gamma * grad_out / sigma); they depend on every x_i, which adds two terms: "
            "grad_x = gamma / (m sigma) * (m g_i - sum_j g_j - x_hat_i sum_j g_j x_hat_j)":
                g * grad_out / std,
            "gradient wrong for x: you dropped the term that comes through the variance "
            "(- x_hat_i * sum_j g_j x_hat_j)":
                g / std * (grad_out - grad_out.mean(d, keepdim=True)),
            "gradient wrong for x: you dropped the term that comes through the mean (- sum_j g_j)":
                g / std * (grad_out - xhat * (grad_out * xhat).mean(d, keepdim=True)),
            "gradient wrong for x: you left out the factor gamma": ex / g,
        })
    _compare(ex, dx_t, "gradient wrong for x")
    _passed("batch-norm backward is correct: the gradients for x, gamma and beta match autograd")


def _running_variants(rm, rv, mean, var_b, var_u, momentum):
    m = momentum
    return {
        "mean": {
            "running_mean was not updated": rm,
            "running_mean was replaced by the batch mean; average it in: "
            "running_mean = (1 - momentum) * running_mean + momentum * batch_mean": mean,
            "you weighted the old running_mean by momentum; the convention (PyTorch's) is "
            "running_mean = (1 - momentum) * running_mean + momentum * batch_mean": m * rm + (1 - m) * mean,
        },
        "var": {
            "running_var was not updated": rv,
            "running_var was replaced by the batch variance; average it in: "
            "running_var = (1 - momentum) * running_var + momentum * unbiased_batch_var": var_u,
            "you weighted the old running_var by momentum; the convention (PyTorch's) is "
            "running_var = (1 - momentum) * running_var + momentum * unbiased_batch_var":
                m * rv + (1 - m) * var_u,
            "running_var holds standard deviations; it holds variances":
                (1 - m) * rv + m * var_u.sqrt(),
        },
        "biased": (1 - m) * rv + m * var_b,
    }


def _check_running(rm, rv, x, momentum, got_mean, got_var) -> None:
    d = _dims(x)
    mean = x.mean(d)
    var_b = x.var(d, unbiased=False)
    var_u = x.var(d, unbiased=True)
    exp_mean = (1 - momentum) * rm + momentum * mean
    exp_var = (1 - momentum) * rv + momentum * var_u
    v = _running_variants(rm, rv, mean, var_b, var_u, momentum)
    got_mean = _as_tensor(got_mean, "running_mean")
    if not _close(got_mean, exp_mean):
        _diagnose(got_mean, v["mean"])
    _compare(exp_mean, got_mean, "running_mean wrong")
    got_var = _as_tensor(got_var, "running_var")
    if not _close(got_var, exp_var):
        if _close(got_var, v["biased"]):
            m = x.numel() // x.shape[1]
            raise CheckFailed(
                f"your running_var uses the biased estimator: expected {_fmt(float(exp_var[0]))}, "
                f"got {_fmt(float(got_var[0]))} at index 0. Normalise with the biased variance but "
                f"store the unbiased one, m/(m-1) * sigma_B^2 (here m = {m})")
        _diagnose(got_var, v["var"])
    _compare(exp_var, got_var, "running_var wrong")


def check_running_stats(fn: Callable, *, momentum: float = 0.1, spatial: bool = False) -> None:
    r"""Check an update of the running statistics
    ``fn(running_mean, running_var, x, momentum) -> (running_mean, running_var)``
    (returned, or updated in place and returned as None):
    ``running = (1 - momentum) * running + momentum * batch_stat``, with the *unbiased* batch
    variance in ``running_var``."""
    x, _, _ = _bn_inputs(spatial, 6)
    g = _generator(7)
    c = x.shape[1]
    rm = torch.randn(c, generator=g, dtype=torch.float64)
    rv = 0.5 + torch.rand(c, generator=g, dtype=torch.float64)
    rm_in, rv_in = rm.clone(), rv.clone()
    out = _call(fn, "your running-statistics update", rm_in, rv_in, x, momentum)
    if out is None:
        got_mean, got_var = rm_in, rv_in
    elif isinstance(out, (tuple, list)) and len(out) == 2:
        got_mean, got_var = out
    else:
        raise CheckFailed("your running-statistics update should return (running_mean, running_var) "
                          "or update them in place and return None")
    _check_running(rm, rv, x, momentum, got_mean, got_var)
    _passed(f"running statistics are correct: exponential average with momentum={momentum}, "
            "unbiased variance")


def check_batch_norm(fn: Callable, *, spatial: bool = False) -> None:
    r"""Check a function with the signature and semantics of ``torch.nn.functional.batch_norm``:
    ``fn(input, running_mean, running_var, weight, bias, training, momentum, eps)``, which in
    training mode normalises with the batch statistics and updates the running ones in place, and in
    eval mode normalises with the running statistics."""
    what = "your batch_norm"
    eps, momentum = 1e-5, 0.1
    x, gamma, beta = _bn_inputs(spatial, 8)
    c = x.shape[1]
    rm, rv = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    for step in range(2):
        xs = x + step
        rm0, rv0 = rm.clone(), rv.clone()
        y = _call(fn, what, xs, rm, rv, gamma, beta, True, momentum, eps)
        y = _as_tensor(y, "the output of " + what)
        expected = F.batch_norm(xs, None, None, gamma, beta, training=True, eps=eps)
        if not _close(y, expected):
            _diagnose(y, {"in training mode you normalise with the running statistics; use the batch's":
                          F.batch_norm(xs, rm0, rv0, gamma, beta, training=False, eps=eps)})
            _diagnose(y, _bn_variants(xs, gamma, beta, eps))
        _compare(expected, y, "output of your batch_norm (training=True) wrong")
        _check_running(rm0, rv0, xs, momentum, rm, rv)
    rm0, rv0 = rm.clone(), rv.clone()
    y = _as_tensor(_call(fn, what, x, rm, rv, gamma, beta, False, momentum, eps), "the output of " + what)
    if not (torch.equal(rm, rm0) and torch.equal(rv, rv0)):
        raise CheckFailed("your batch_norm updated the running statistics with training=False; "
                          "in eval mode they are only read")
    expected = F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=eps)
    if not _close(y, expected):
        _diagnose(y, {"with training=False you normalise with the batch's statistics; use "
                      "running_mean and running_var": F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)})
    _compare(expected, y, "output of your batch_norm (training=False) wrong")
    _passed("batch_norm is correct: training mode, running statistics and eval mode match "
            "torch.nn.functional.batch_norm")


# ---------------------------------------------------------------------------------------------
# Batch norm as a module
# ---------------------------------------------------------------------------------------------

def _param(module: nn.Module, names: tuple[str, ...], what: str) -> nn.Parameter:
    params = dict(module.named_parameters(recurse=False))
    for n in names:
        if n in params:
            return params[n]
    raise CheckFailed(f"your module has no parameter for {what} (looked for {', '.join(names)}; "
                      f"found {', '.join(params) or 'none'}): make it an nn.Parameter")


def check_batchnorm_module(cls: Callable[..., nn.Module], *, spatial: bool = False) -> None:
    r"""Check a batch-norm layer ``cls(num_features)`` against ``nn.BatchNorm1d`` (``nn.BatchNorm2d``
    with ``spatial=True``): its parameters and buffers (in ``state_dict``), the output and the
    gradients for the input, gamma and beta in training mode, the running statistics over several
    steps, the choice of statistics by ``self.training`` (not by ``torch.is_grad_enabled()``), and
    eval mode."""
    x, gamma, beta = _bn_inputs(spatial, 9)
    c = x.shape[1]
    mod = _call(cls, "creating your module", c)
    if not isinstance(mod, nn.Module):
        raise CheckFailed(f"{getattr(cls, '__name__', 'your class')}({c}) should be an nn.Module, "
                          f"got {type(mod).__name__}")
    state = mod.state_dict()
    for name, init in (("running_mean", 0.0), ("running_var", 1.0)):
        if name not in state:
            raise CheckFailed(
                f"{name} is not in your module's state_dict, so it would not be saved with the model: "
                f"create it with self.register_buffer({name!r}, torch.{'zeros' if init == 0 else 'ones'}(num_features))")
        if not torch.allclose(state[name].double(), torch.full((c,), init, dtype=torch.float64)):
            raise CheckFailed(f"{name} should start at {'zeros' if init == 0 else 'ones'}, got {state[name]}")
    w = _param(mod, ("weight", "gamma"), "gamma (weight)")
    b = _param(mod, ("bias", "beta"), "beta (bias)")
    if not (torch.allclose(w.detach().double(), torch.ones(c, dtype=torch.float64))
            and torch.allclose(b.detach().double(), torch.zeros(c, dtype=torch.float64))):
        raise CheckFailed("gamma should start at ones and beta at zeros, so that a new layer only normalises")
    mod = mod.double().train()
    ref = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(c).double().train()
    w, b = _param(mod, ("weight", "gamma"), "gamma"), _param(mod, ("bias", "beta"), "beta")
    with torch.no_grad():
        for p, q in ((w, ref.weight), (b, ref.bias)):
            p.copy_(gamma if p is w else beta)
            q.copy_(gamma if q is ref.weight else beta)
    eps, momentum = ref.eps, ref.momentum
    grad_out = torch.randn(x.shape, generator=_generator(10), dtype=torch.float64)
    for step in range(3):
        xs = (x * (1 + 0.5 * step) + step).requires_grad_(True)
        xr = xs.detach().clone().requires_grad_(True)
        rm0 = ref.running_mean.clone()
        rv0 = ref.running_var.clone()
        for p in (w, b, ref.weight, ref.bias):
            p.grad = None
        y = _call(mod, "your module's forward (training mode)", xs)
        y = _first(y)
        yr = ref(xr)
        y_t = _as_tensor(y, "the output of your module")
        if not _close(y_t, yr):
            _diagnose(y_t, {"in training mode you normalise with the running statistics; use the batch's":
                            F.batch_norm(xs.detach(), rm0, rv0, gamma, beta, training=False, eps=eps)})
            _diagnose(y_t, _bn_variants(xs.detach(), gamma, beta, eps))
        _compare(yr, y_t, f"output of your module (training mode, step {step + 1}) wrong")
        if not y.requires_grad:
            raise CheckFailed("your module's output does not require grad: it must be computed from the "
                              "input and the parameters with torch operations (no .detach(), .item() or numpy)")
        y.backward(grad_out)
        yr.backward(grad_out)
        for name, p, q in (("gamma", w, ref.weight), ("beta", b, ref.bias), ("x", xs, xr)):
            if p.grad is None:
                raise CheckFailed(f"no gradient reached {name}: is it used in the forward pass?")
            _compare(q.grad, p.grad, f"gradient wrong for {name}")
        _check_running(rm0, rv0, xs.detach(), momentum, mod.state_dict()["running_mean"],
                       mod.state_dict()["running_var"])
    # Training mode under no_grad: still batch statistics (the torch.is_grad_enabled() pitfall).
    with torch.no_grad():
        y = _as_tensor(_first(_call(mod, "your module's forward", x)), "the output of your module")
        yr = ref(x)
    if not _close(y, yr):
        raise CheckFailed("in training mode under torch.no_grad() your module does not normalise with the "
                          "batch statistics: choose the statistics by self.training, not by "
                          "torch.is_grad_enabled()")
    # Eval mode: running statistics, and no update.
    mod.eval()
    ref.eval()
    rm0 = mod.state_dict()["running_mean"].clone()
    rv0 = mod.state_dict()["running_var"].clone()
    y = _as_tensor(_first(_call(mod, "your module's forward (eval mode)", x)), "the output of your module")
    yr = ref(x)
    if not (torch.equal(mod.state_dict()["running_mean"], rm0) and torch.equal(mod.state_dict()["running_var"], rv0)):
        raise CheckFailed("your module updated its running statistics in eval mode; in eval mode they "
                          "are only read")
    if not _close(y, yr.detach()):
        _diagnose(y, {"in eval mode your module normalises with the batch's statistics; use "
                      "running_mean and running_var":
                      F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)})
    _compare(yr.detach(), y, "output of your module (eval mode) wrong")
    _passed(f"{getattr(cls, '__name__', 'your module')} is correct: parameters, buffers, output, "
            "gradients, running statistics and eval mode match "
            f"nn.BatchNorm{'2' if spatial else '1'}d")


# ---------------------------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------------------------

_TORCH_OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
}


def _optimizer_variants(kind: str, hp: dict, grads: list[list[torch.Tensor]], params0) -> dict:
    """Trajectories (per step, per parameter) of the optimiser done wrong in the usual ways."""
    lr = hp.get("lr", 1e-2)

    def run(update, init):
        ws = [p.clone() for p in params0]
        states = [init(p) for p in ws]
        traj = []
        for gs in grads:
            for i, g in enumerate(gs):
                ws[i] = update(ws[i], g, states[i])
            traj.append([w.clone() for w in ws])
        return traj

    out = {}
    if kind == "sgd":
        mu = hp.get("momentum", 0.0)

        def dampened(w, g, s):
            s["v"] = mu * s["v"] + (1 - mu) * g
            return w - lr * s["v"]

        def plain(w, g, s):
            return w - lr * g

        def nesterov(w, g, s):
            s["v"] = mu * s["v"] + g
            return w - lr * (g + mu * s["v"])

        def ascent(w, g, s):
            s["v"] = mu * s["v"] + g
            return w + lr * s["v"]

        zero = lambda p: {"v": torch.zeros_like(p)}  # noqa: E731
        if mu and hp.get("nesterov"):
            def heavy_ball(w, g, s):
                s["v"] = mu * s["v"] + g
                return w - lr * s["v"]

            # first: at step 1 (v = g) heavy ball and plain SGD take the same step
            out["your step is heavy-ball momentum's, w -= lr * v (at the first step, where v = g, the "
                "same as plain SGD); Nesterov's step looks ahead, w -= lr * (g + momentum * v)"] = \
                run(heavy_ball, zero)
        if mu:
            out["your momentum dampens the gradient, v = momentum * v + (1 - momentum) * g; "
                "torch.optim.SGD adds the full gradient, v = momentum * v + g"] = run(dampened, zero)
            out["your update ignores momentum: keep a velocity v = momentum * v + g and step "
                "w = w - lr * v"] = run(plain, zero)
            if not hp.get("nesterov"):
                out["you used Nesterov's momentum (w -= lr * (g + momentum * v)); heavy-ball "
                    "momentum steps w -= lr * v"] = run(nesterov, zero)
        out["your step goes uphill: w = w - lr * (update), not w + lr * (update)"] = run(ascent, zero)
    elif kind == "adagrad":
        eps = hp.get("eps", 1e-10)

        def no_accum(w, g, s):
            return w - lr * g / (g.abs() + eps)

        def no_sqrt(w, g, s):
            s["G"] = s["G"] + g * g
            return w - lr * g / (s["G"] + eps)

        zero = lambda p: {"G": torch.zeros_like(p)}  # noqa: E731
        out["your AdaGrad does not accumulate: G must be the running *sum* of squared gradients "
            "over all steps, G = G + g * g"] = run(no_accum, zero)
        out["you divide by the sum of squared gradients; AdaGrad divides by its square root, "
            "w -= lr * g / (sqrt(G) + eps)"] = run(no_sqrt, zero)
    elif kind == "rmsprop":
        alpha, eps = hp.get("alpha", 0.99), hp.get("eps", 1e-8)

        def swapped(w, g, s):
            s["v"] = (1 - alpha) * s["v"] + alpha * g * g
            return w - lr * g / (s["v"].sqrt() + eps)

        def summed(w, g, s):
            s["v"] = s["v"] + g * g
            return w - lr * g / (s["v"].sqrt() + eps)

        def no_sqrt(w, g, s):
            s["v"] = alpha * s["v"] + (1 - alpha) * g * g
            return w - lr * g / (s["v"] + eps)

        zero = lambda p: {"v": torch.zeros_like(p)}  # noqa: E731
        out["you swapped alpha and 1 - alpha: v = alpha * v + (1 - alpha) * g * g"] = run(swapped, zero)
        out["your RMSProp sums the squared gradients like AdaGrad; it keeps a moving average, "
            "v = alpha * v + (1 - alpha) * g * g"] = run(summed, zero)
        out["you divide by v; RMSProp divides by its square root, w -= lr * g / (sqrt(v) + eps)"] = run(no_sqrt, zero)
    elif kind == "adam":
        b1, b2 = hp.get("betas", (0.9, 0.999))
        eps = hp.get("eps", 1e-8)

        def no_bias_correction(w, g, s):
            s["m"] = b1 * s["m"] + (1 - b1) * g
            s["v"] = b2 * s["v"] + (1 - b2) * g * g
            return w - lr * s["m"] / (s["v"].sqrt() + eps)

        zero = lambda p: {"m": torch.zeros_like(p), "v": torch.zeros_like(p)}  # noqa: E731
        out["your Adam has no bias correction: divide m by (1 - beta1^t) and v by (1 - beta2^t)"] = \
            run(no_bias_correction, zero)
    return out


def _make_optimizer(factory: Callable, params: list, hp: dict):
    try:
        sig = inspect.signature(factory)
        names = set(sig.parameters)
        takes_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        passed = {k: v for k, v in hp.items() if takes_kw or k in names}
    except (TypeError, ValueError):
        passed = dict(hp)
    return _call(factory, "creating your optimiser", params, **passed)


def check_optimizer(factory: Callable, kind: str, steps: int = 5, **hparams) -> None:
    r"""Check an optimiser with the ``torch.optim`` interface against ``torch.optim``.

    ``factory(params, **hparams)`` builds it (a class such as ``MySGD``, or a function; hyper-
    parameters it does not take are not passed, so ``lambda p: MySGD(p, lr=0.1)`` works too); its
    ``step()`` reads each ``p.grad`` and updates ``p`` in place. ``kind`` is ``"sgd"``,
    ``"adagrad"``, ``"rmsprop"`` or ``"adam"``; ``hparams`` (``lr``, ``momentum``, ``alpha``,
    ``eps``, ...) go to both. The gradients are fixed random tensors written into ``p.grad``,
    for ``steps`` steps, for a matrix and a vector parameter.

    >>> _ = check_optimizer(torch.optim.SGD, "sgd", lr=0.1, momentum=0.9)
    ✓ your sgd optimiser is correct: 5 steps match torch.optim.SGD(lr=0.1, momentum=0.9)
    """
    kind = kind.lower()
    if kind not in _TORCH_OPTIMIZERS:
        raise ValueError(f"kind must be one of {', '.join(_TORCH_OPTIMIZERS)}, got {kind!r}")
    hp = dict(hparams)
    hp.setdefault("lr", 0.1 if kind == "sgd" else 0.01)
    g = _generator(11)
    params0 = [torch.randn(3, 4, generator=g, dtype=torch.float64),
               torch.randn(4, generator=g, dtype=torch.float64)]
    grads = [[torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params0] for _ in range(steps)]
    ref_params = [nn.Parameter(p.clone()) for p in params0]
    ref = _TORCH_OPTIMIZERS[kind](ref_params, **hp)
    params = [nn.Parameter(p.clone()) for p in params0]
    opt = _make_optimizer(factory, params, hp)
    if not callable(getattr(opt, "step", None)):
        raise CheckFailed(f"your optimiser ({type(opt).__name__}) has no step() method")
    variants = _optimizer_variants(kind, hp, grads, params0)
    for t, gs in enumerate(grads, start=1):
        for p, q, gi in zip(params, ref_params, gs):
            p.grad = gi.clone()
            q.grad = gi.clone()
        before = [p.detach().clone() for p in params]
        _call(opt.step, "your optimiser's step()")
        ref.step()
        if all(torch.equal(a, p.detach()) for a, p in zip(before, params)):
            raise CheckFailed(
                f"step {t} did not change the parameters: update each p in place "
                "(with torch.no_grad(): p -= ...), reading its gradient from p.grad")
        for i, (p, q) in enumerate(zip(params, ref_params)):
            if not _close(p.detach(), q.detach(), 1e-6, 1e-9):
                for message, traj in variants.items():
                    if _close(p.detach(), traj[t - 1][i], 1e-6, 1e-9):
                        raise CheckFailed(f"after step {t}: {message}")
                _compare(q.detach(), p.detach(), f"after step {t}, parameter {i} wrong", 1e-6, 1e-9)
    args = ", ".join(f"{k}={v}" for k, v in hp.items())
    _passed(f"your {kind} optimiser is correct: {steps} steps match "
            f"torch.optim.{_TORCH_OPTIMIZERS[kind].__name__}({args})")


# ---------------------------------------------------------------------------------------------
# Measurements: ICS and the loss landscape
# ---------------------------------------------------------------------------------------------

def _tiny_model(norm: str | None, seed: int = 0):
    from ..models import mlp

    g = torch.random.fork_rng()
    with g:
        torch.manual_seed(seed)
        model = mlp(6, [8, 8, 8], 3, act="relu", norm=norm).double()
        x = torch.randn(16, 6, dtype=torch.float64)
        y = torch.randint(0, 3, (16,))
    return model, x, y


_DISTURBED = {  # what a student's measurement changed (bnutils.state.changed) -> what to do about it
    "params": "changed the model's parameters; a measurement must put them back "
              "(copy them first, or use bnutils.state.preserved)",
    "buffers": "changed the model's buffers (BN running statistics); a measurement "
               "must leave them as they were (bnutils.state.preserved restores them)",
    "modes": "left the model in a different train/eval mode",
}


def _undisturbed(model: nn.Module, fn: Callable, what: str):
    from ..state import changed, fingerprint

    before = fingerprint(model)
    out = fn()
    for part, _ in changed(before, fingerprint(model)):
        if part in _DISTURBED:  # gradients and the random state are the student's own business here
            raise CheckFailed(f"{what} {_DISTURBED[part]}")
    return out


def _compare_numbers(expected, got, what: str, rtol=1e-4, atol=1e-8) -> None:
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            raise CheckFailed(f"{what}: expected a dict with keys {sorted(expected)}, got {type(got).__name__}")
        for k in expected:
            if k not in got:
                raise CheckFailed(f"{what}: the result has no {k!r} (keys: {sorted(got)})")
            _compare_numbers(expected[k], got[k], f"{what}, {k}", rtol, atol)
        return
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise CheckFailed(f"{what}: expected {len(expected)} values, got {got!r}")
        for i, (e, g) in enumerate(zip(expected, got)):
            _compare_numbers(e, g, f"{what} [{i}]", rtol, atol)
        return
    e = torch.as_tensor(expected, dtype=torch.float64)
    try:
        gt = torch.as_tensor(got.detach() if isinstance(got, torch.Tensor) else got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailed(f"{what}: expected a number, got {type(got).__name__}") from None
    if e.shape != gt.shape:
        raise CheckFailed(f"{what}: expected shape {tuple(e.shape)}, got {tuple(gt.shape)}")
    both_nan = torch.isnan(e) & torch.isnan(gt)
    bad = ~(torch.isclose(gt, e, rtol=rtol, atol=atol) | both_nan)
    if bad.any():
        i = int(bad.flatten().nonzero()[0])
        where = "" if e.dim() == 0 else f" at index {_index(i, e.shape)}"
        raise CheckFailed(f"{what} wrong{where}: expected {_fmt(float(e.flatten()[i]))}, "
                          f"got {_fmt(float(gt.flatten()[i]))}")


def _fields(out, names: tuple[str, ...], what: str) -> dict:
    """Pull ``names`` out of a dict, an object with attributes, or a tuple in that order."""
    if isinstance(out, (list, tuple)) and len(out) == 1 and not isinstance(out[0], (int, float)):
        out = out[0]  # [LayerICS]
    if isinstance(out, Mapping):
        got = {n: out[n] for n in names if n in out}
    elif isinstance(out, (tuple, list)):
        if len(out) != len(names):
            raise CheckFailed(f"{what} should return {len(names)} values ({', '.join(names)}), got {len(out)}")
        got = dict(zip(names, out))
    else:
        got = {n: getattr(out, n) for n in names if hasattr(out, n)}
    if not got:
        raise CheckFailed(f"{what} should return {', '.join(names)} (a tuple, a dict or an object "
                          f"with those attributes), got {type(out).__name__}")
    return got


def _grads_at(model, params, x, y, loss_fn):
    return torch.autograd.grad(loss_fn(model(x), y), params)


def _ics_variants(model, x, y, lr, layer, loss_fn) -> dict:
    """(l2, cosine) of G - G' when the wrong set of parameters takes the step."""
    from ..models import weighted_layers
    from ..state import preserved

    params = [p for p in model.parameters() if p.requires_grad]
    k = next(j for j, p in enumerate(params) if p is weighted_layers(model)[layer].weight)
    rules = {
        "you updated every layer before computing G', including layer i itself and those after it; "
        "only the layers *before* layer i take their step": lambda j: True,
        "you updated the layers *after* layer i; G' moves the layers before it (1..i-1)": lambda j: j > k,
        "your G' equals G: the layers before layer i must take their SGD step (w -= lr * grad) "
        "before you compute G'": lambda j: False,
        "you moved the earlier layers uphill (w + lr * grad); the step is w - lr * grad": None,
    }
    out = {}
    with preserved(model):
        model.train()
        g_all = _grads_at(model, params, x, y, loss_fn)
        start = [p.detach().clone() for p in params]
        for message, rule in rules.items():
            with torch.no_grad():
                for j, (p, g) in enumerate(zip(params, g_all)):
                    if rule is None:
                        if j < k:
                            p.add_(g, alpha=lr)
                    elif rule(j):
                        p.sub_(g, alpha=lr)
            (g_new,) = _grads_at(model, params[k:k + 1], x, y, loss_fn)
            with torch.no_grad():
                for p, v in zip(params, start):
                    p.copy_(v)
            a, b = g_all[k].double().flatten(), g_new.detach().double().flatten()
            cos = float(a @ b) / float(a.norm() * b.norm()) if a.norm() > 0 and b.norm() > 0 else float("nan")
            out[message] = {"l2": float((a - b).norm()), "cosine": cos}
    return out


def check_ics(fn: Callable, *, lr: float = 0.1, layers=(1, 2), loss_fn: Callable = F.cross_entropy) -> None:
    r"""Check an internal-covariate-shift measurement (Santurkar et al., Definition 2.1) against
    :func:`bnutils.ics.ics`, on a small ReLU MLP with and without batch norm.

    ``fn(model, x, y, lr, layer)`` measures the weighted layer ``layer`` (an index into
    :func:`bnutils.models.weighted_layers`) and returns :math:`\|G - G'\|_2` and
    :math:`\cos(G, G')`: a tuple ``(l2, cosine)``, a dict or an object with ``l2`` and ``cosine``
    (a :class:`~bnutils.ics.LayerICS` will do). It must leave the model as it found it.
    """
    from ..ics import ics

    what = "your ICS measurement"
    for norm in (None, "bn"):
        label = "with batch norm" if norm else "without batch norm"
        model, x, y = _tiny_model(norm)
        for layer in layers:
            (ref,) = ics(model, x, y, lr, loss_fn, layers=[layer])
            expected = {"l2": ref.l2, "cosine": ref.cosine}
            out = _undisturbed(model, lambda: _call(fn, what, model, x, y, lr, layer), what)
            got = _fields(out, ("l2", "cosine"), what)
            try:
                _compare_numbers({k: expected[k] for k in got}, got, f"{what} ({label}, layer {layer})")
            except CheckFailed:
                for message, wrong in _ics_variants(model, x, y, lr, layer, loss_fn).items():
                    try:
                        _compare_numbers({k: wrong[k] for k in got}, got, "")
                    except CheckFailed:
                        continue
                    raise CheckFailed(f"{what} ({label}, layer {layer}): {message}") from None
                raise
            missing = {"l2", "cosine"} - set(got)
            if missing:
                raise CheckFailed(f"{what} should also return {', '.join(sorted(missing))}")
    _passed("ICS measurement is correct: ||G - G'|| and cos(G, G') match bnutils.ics.ics with "
            "and without batch norm, and the model is left untouched")


_LANDSCAPE_NAMES = ("losses", "grad_diffs", "loss_range", "grad_predictiveness", "beta_smoothness")


def _landscape_numbers(out, what: str) -> dict:
    if isinstance(out, (tuple, list)) and len(out) == 3:
        return dict(zip(_LANDSCAPE_NAMES[2:], out))
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return dict(zip(_LANDSCAPE_NAMES[:2], out))
    got = _fields(out, _LANDSCAPE_NAMES, what)
    return {k: (list(v) if k in _LANDSCAPE_NAMES[:2] else v) for k, v in got.items()}


def _landscape_summary(etas, losses, diffs, gnorm) -> dict:
    import numpy as np

    etas, losses, diffs = (np.asarray(v, dtype=float) for v in (etas, losses, diffs))
    return {"losses": list(losses), "grad_diffs": list(diffs),
            "loss_range": float(losses.max() - losses.min()), "grad_predictiveness": float(diffs.max()),
            "beta_smoothness": float((diffs / (etas * gnorm)).max())}


def check_landscape(fn: Callable, *, etas=(0.05, 0.1, 0.2, 0.4), loss_fn: Callable = F.cross_entropy) -> None:
    r"""Check a loss-landscape walk (Santurkar et al. §3.2) against
    :func:`bnutils.landscape.landscape`, on a small ReLU MLP with and without batch norm.

    ``fn(model, x, y, etas)`` walks from the weights :math:`w` along the gradient :math:`g` to
    :math:`w - \eta g` for each step size and returns any of: ``(losses, grad_diffs)`` (one entry per
    :math:`\eta`), ``(loss_range, grad_predictiveness, beta_smoothness)``, or a dict / object with
    some of the keys ``losses``, ``grad_diffs``, ``loss_range``, ``grad_predictiveness``,
    ``beta_smoothness`` (a :class:`~bnutils.landscape.LandscapeResult` will do). It must leave the
    model as it found it.
    """
    from ..landscape import landscape

    what = "your landscape measurement"
    etas = [float(e) for e in etas]
    for norm in (None, "bn"):
        label = "with batch norm" if norm else "without batch norm"
        model, x, y = _tiny_model(norm)
        model.train()
        ref = landscape(model, x, y, etas, loss_fn=loss_fn)
        expected = _landscape_summary(etas, ref.losses, ref.grad_diffs, ref.grad_norm)
        out = _undisturbed(model, lambda: _call(fn, what, model, x, y, etas), what)
        got = _landscape_numbers(out, what)
        try:
            _compare_numbers({k: expected[k] for k in got}, got, f"{what} ({label})")
        except CheckFailed:
            for message, wrong in _landscape_variants(model, x, y, etas, loss_fn).items():
                try:
                    _compare_numbers({k: wrong[k] for k in got}, got, "")
                except CheckFailed:
                    continue
                raise CheckFailed(f"{what} ({label}): {message}") from None
            raise
    _passed("landscape measurement is correct: it matches bnutils.landscape.landscape with and "
            "without batch norm, and leaves the model untouched")


def _landscape_variants(model, x, y, etas, loss_fn) -> dict:
    """The walk's numbers when it is done wrong in the usual ways, keyed by the message."""
    from ..state import preserved

    params = [p for p in model.parameters() if p.requires_grad]
    cumulative = [sum(etas[:i + 1]) for i in range(len(etas))]
    walks = {
        "you walked uphill, to w + eta * g; the walk goes downhill, to w - eta * g": [-e for e in etas],
        "your steps accumulate: every point is w - eta * g from the *same* starting weights w, "
        "so put the weights back before the next eta": cumulative,
        "correct": list(etas),
    }
    out = {}
    with preserved(model):
        g = _grads_at(model, params, x, y, loss_fn)
        gnorm = float(torch.sqrt(sum((t * t).sum() for t in g)))
        w0 = [p.detach().clone() for p in params]
        with torch.no_grad():
            loss0 = float(loss_fn(model(x), y))
        for message, steps in walks.items():
            losses, diffs = [], []
            for step in steps:
                with torch.no_grad():
                    for p, p0, gi in zip(params, w0, g):
                        p.copy_(p0).sub_(gi, alpha=step)
                loss = loss_fn(model(x), y)
                ge = torch.autograd.grad(loss, params)
                losses.append(float(loss.detach()))
                diffs.append(float(torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(g, ge)))))
            out[message] = _landscape_summary(etas, losses, diffs, gnorm)
    right = out.pop("correct")
    out["your beta-smoothness divides by eta; divide by the length of the step, ||eta * g||"] = dict(
        right, beta_smoothness=max(d / e for d, e in zip(right["grad_diffs"], etas)))
    out["your gradient predictiveness is the change in the loss; it is the change in the gradient, "
        "||g - grad L(w - eta g)||"] = dict(
        right, grad_predictiveness=max(abs(v - loss0) for v in right["losses"]))
    return out


# ---------------------------------------------------------------------------------------------
# The chapters' code exercises that are not a piece of batch norm
# ---------------------------------------------------------------------------------------------

_CONV_KEYS = ("output", "grad of conv 1", "a * grad of scaled conv 2")


def check_conv_scale_invariance(fn: Callable, *, a: float = 10.0, tol: float = 1e-9) -> None:
    r"""Check ``fn(a) -> {"output": r1, "grad of conv 1": r2, "a * grad of scaled conv 2": r3}``
    (the chapter *benefits*, exercise ``benefits-ex-code``): three relative differences between the
    small BN CNN and the same network with its second convolution's weights multiplied by ``a``.
    With BN after that convolution all three are rounding errors in float64 with ``eps = 1e-12``
    (about 1e-12, below ``tol``); the typical mistakes leave one of them of order 1 (a missing factor
    ``a``, the wrong convolution scaled), of order ``eps`` (BN's default ``eps``: about 1e-5) or of
    float32's rounding (4e-7 to 2e-6, depending on the CPU's kernels: why ``tol`` is not 1e-6)."""
    what = "your conv_scale_check"
    out = _call(fn, what, a)
    if not isinstance(out, Mapping):
        raise CheckFailed(f"{what} should return a dict with keys {list(_CONV_KEYS)}, got {type(out).__name__}")
    missing = [k for k in _CONV_KEYS if k not in out]
    if missing:
        raise CheckFailed(f"{what} returned a dict without {missing[0]!r} (keys: {list(out)}); "
                          f"return {{{', '.join(repr(k) for k in _CONV_KEYS)}: ...}}")
    vals = {}
    for k in _CONV_KEYS:
        try:
            vals[k] = float(out[k])
        except (TypeError, ValueError):
            raise CheckFailed(f"{what}: {k!r} should be a number (a relative difference), "
                              f"got {type(out[k]).__name__}") from None
        if not math.isfinite(vals[k]) or vals[k] < 0:
            raise CheckFailed(f"{what}: {k!r} is {vals[k]}; a relative difference ||p - q|| / ||q|| is a "
                              "finite number >= 0")
    r_out, r_g1, r_g2 = (vals[k] for k in _CONV_KEYS)
    if all(v == 0.0 for v in vals.values()):
        raise CheckFailed(f"{what}: all three differences are exactly 0, so the two runs were the same network: "
                          "multiply the second convolution's weight by a (with torch.no_grad(): "
                          "conv.weight.mul_(a)) before the second run")
    if math.isclose(r_g2, abs(1 / a - 1), rel_tol=1e-3) and r_out < tol:
        raise CheckFailed(f"{what}: 'a * grad of scaled conv 2' is {_fmt(r_g2)} = |1/a - 1|: you compared the "
                          "gradient of the scaled weights without the factor a; the gradient of aW is "
                          "1/a times the gradient of W, so compare a * grad(aW) with grad(W)")
    if math.isclose(r_g1, abs(1 / a - 1), rel_tol=1e-3):
        raise CheckFailed(f"{what}: the gradient of conv 1 changed by the factor 1/a: you scaled the first "
                          "convolution; scale the second one (the exercise asks why conv 1's gradient does "
                          "not change)")
    if math.isclose(r_g2, abs(a - 1), rel_tol=1e-3) or math.isclose(r_g2, abs(a * a - 1), rel_tol=1e-3):
        raise CheckFailed(f"{what}: 'a * grad of scaled conv 2' is {_fmt(r_g2)}: the gradient of aW is 1/a "
                          "times the gradient of W, so multiply the scaled run's gradient by a (not divide, "
                          "and not the unscaled run's)")
    big = [k for k in _CONV_KEYS if vals[k] >= tol]
    if big:
        k = big[0]
        if vals[k] < 1e-2:
            raise CheckFailed(f"{what}: {k!r} is {_fmt(vals[k])}, more than rounding error (< {tol:g}): "
                              "run the network in float64 (.double() on the model and the data) and set "
                              "every BN layer's eps to 1e-12; eps breaks the scale invariance slightly")
        raise CheckFailed(f"{what}: {k!r} is {_fmt(vals[k])}, expected below {tol:g}: with BN after the "
                          "second convolution, scaling its weights changes neither the output nor conv 1's "
                          "gradient, and the scaled weights' gradient is 1/a times the original")
    _passed(f"conv_scale_check is correct: all three relative differences are below {tol:g} for a = {a:g}")


def _bn_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules()
            if getattr(m, "running_mean", None) is not None and hasattr(m, "reset_running_stats")]


def _recalibrated(model, x, batch_size, reset=True, momentum="cumulative", train=True, batched=True):
    """The reference recalibration, and its typical mistakes by switching one thing off."""
    m2 = copy.deepcopy(model)
    for bn in _bn_layers(m2):
        if reset:
            bn.reset_running_stats()
        if momentum == "cumulative":
            bn.momentum = None
    m2.train(train)
    with torch.no_grad():
        if batched:
            for i in range(0, len(x), batch_size):
                m2(x[i:i + batch_size])
        else:
            m2(x)
    return m2.eval()


def _stats(model) -> list[torch.Tensor]:
    return [t for bn in _bn_layers(model) for t in (bn.running_mean, bn.running_var)]


def check_recalibrate(fn: Callable, *, batch_size: int = 10) -> None:
    r"""Check ``fn(model, x, batch_size=250) -> model`` (the chapter *beyond*, exercise
    ``beyond-ex-adabn``): a copy of ``model`` whose BN layers' running statistics are reset and
    re-estimated on ``x`` as a cumulative average (``momentum=None``) over its batches, weights
    untouched, returned in evaluation mode; the model it was given is left as it was."""
    from ..models import mlp
    from ..state import fingerprint

    what = "your recalibrate"
    with torch.random.fork_rng():
        torch.manual_seed(5)
        model = mlp(6, [8, 8], 3, act="relu", norm="bn").double()
        model.train()
        with torch.no_grad():  # running statistics of other data, as after training
            for _ in range(3):
                model(torch.randn(16, 6, dtype=torch.float64))
        model.eval()
        x = 2.0 * torch.randn(40, 6, dtype=torch.float64) + 3.0  # shifted data
    before = fingerprint(model)
    takes = _accepts(fn, "batch_size", 2)
    if takes == "kw":
        out = _call(fn, what, model, x, batch_size=batch_size)
    elif takes == "pos":
        out = _call(fn, what, model, x, batch_size)
    else:
        out, batch_size = _call(fn, what, model, x), 250
    after = fingerprint(model)
    touched = any(not torch.equal(p, q) for p, q in zip(before["buffers"], after["buffers"]))
    if touched or any(not torch.equal(p, q) for p, q in zip(before["params"], after["params"])):
        raise CheckFailed(f"{what} changed the model it was given; recalibrate a copy "
                          "(copy.deepcopy(model)) and return it, so that both can be evaluated")
    if not isinstance(out, nn.Module):
        raise CheckFailed(f"{what} should return the recalibrated model, got {type(out).__name__}")
    for (name, p), q in zip(out.named_parameters(), model.parameters()):
        if not torch.equal(p.detach(), q.detach()):
            raise CheckFailed(f"{what} changed the weight {name}; only the running statistics may change: "
                              "run the batches under torch.no_grad() and take no optimiser step")
    if out.training:
        raise CheckFailed(f"{what} returned the model in training mode; return it in evaluation mode "
                          "(model.eval()), which uses the new running statistics")
    got = _stats(out)
    expected = _stats(_recalibrated(model, x, batch_size))
    if len(got) != len(expected):
        raise CheckFailed(f"{what} returned a model with {len(got) // 2} BN layers, expected {len(expected) // 2}")
    if all(_close(g, e, 1e-6, 1e-9) for g, e in zip(got, expected)):
        _passed(f"recalibrate is correct: the running statistics are the cumulative averages over the "
                f"{math.ceil(len(x) / batch_size)} batches of x, the weights and the model given are unchanged")
        return
    one_pass = _stats(_recalibrated(model, x, batch_size, batched=False))
    if all(_close(g, e, 1e-6, 1e-9) for g, e in zip(got, one_pass)) and batch_size < len(x):
        raise CheckFailed(f"{what} ran x as one batch; run it in batches of batch_size (x[i:i + batch_size]) "
                          "and let the cumulative average combine them")
    eval_mode = ("your passes over x did not update the running statistics: they are updated only in "
                 "training mode, so call model.train() before the passes over x (and model.eval() after)")
    variants = {
        eval_mode: _stats(model),
        eval_mode + " (yours are still the reset values, mean 0 and variance 1)":
            _stats(_recalibrated(model, x, batch_size, train=False)),
        "you kept the old running statistics and the default momentum: reset them "
        "(bn.reset_running_stats()) and set bn.momentum = None for a cumulative average":
            _stats(_recalibrated(model, x, batch_size, reset=False, momentum=0.1)),
        "you kept BN's default momentum (0.1), an exponential average that still remembers the reset "
        "values; set bn.momentum = None for a cumulative average":
            _stats(_recalibrated(model, x, batch_size, momentum=0.1)),
        "you did not reset the running statistics, so the cumulative average continues the old count "
        "(num_batches_tracked); call bn.reset_running_stats() first":
            _stats(_recalibrated(model, x, batch_size, reset=False)),
    }
    for message, stats in variants.items():
        if all(_close(g, e, 1e-6, 1e-9) for g, e in zip(got, stats)):
            raise CheckFailed(message)
    for i, (g, e) in enumerate(zip(got, expected)):
        layer, kind = divmod(i, 2)
        _compare(e, g, f"running_{'var' if kind else 'mean'} of BN layer {layer} wrong", 1e-6, 1e-9)


def _input_shift_ref(model, x, y, lr, index, loss_fn=F.cross_entropy, *, sign=1.0, absolute=True,
                     stat="std", train=True, measure_moved=True):
    from ..probes import activation_inputs

    before = activation_inputs(model, x, index)
    moved = copy.deepcopy(model)
    moved.train(train)
    grads = torch.autograd.grad(loss_fn(moved(x), y), list(moved.parameters()))
    with torch.no_grad():
        for p, g in zip(moved.parameters(), grads):
            p -= sign * lr * g
    after = activation_inputs(moved if measure_moved else model, x, index)
    spread = (lambda a: a.std(0)) if stat == "std" else (lambda a: a.var(0))
    f = torch.abs if absolute else (lambda t: t)
    return (float(f(after.mean(0) - before.mean(0)).mean()), float(f(spread(after) - spread(before)).mean()))


def check_input_shift(fn: Callable, *, lr: float = 0.5) -> None:
    r"""Check ``fn(model, x, y, lr, index) -> (mean_shift, std_shift)`` (the chapter *ics*, exercise
    ``ics-ex-input-shift``): after one SGD step of every parameter on ``(x, y)``, in a copy of the
    model, the mean over units of ``|change of the per-unit mean|`` and ``|change of the per-unit
    standard deviation|`` of the input to the ``index``-th nonlinearity, against
    :func:`bnutils.probes.activation_inputs` done by hand; ``model`` must be left as it was."""
    what = "your input_shift"
    for norm in (None, "bn"):
        model, x, y = _tiny_model(norm, seed=3)
        for index in (-1, 1):
            got = _undisturbed(model, lambda: _call(fn, what, model, x, y, lr, index), what)
            got = _fields(got, ("mean_shift", "std_shift"), what)
            if len(got) != 2:
                raise CheckFailed(f"{what} should return two numbers, (mean_shift, std_shift)")
            got_t = (got["mean_shift"], got["std_shift"])
            expected = _input_shift_ref(model, x, y, lr, index)
            try:
                close = all(math.isclose(float(g), e, rel_tol=1e-5, abs_tol=1e-10) for g, e in zip(got_t, expected))
            except (TypeError, ValueError):
                raise CheckFailed(f"{what} should return two numbers, got {got_t!r}") from None
            if close:
                continue
            variants = {
                "the input did not move: take the SGD step on the copy (p -= lr * g) and measure the copy":
                    (0.0, 0.0),
                "you averaged the signed changes; average their absolute values over units "
                "((after - before).abs().mean())": _input_shift_ref(model, x, y, lr, index, absolute=False),
                "you compared variances; compare the per-unit standard deviations (.std(0))":
                    _input_shift_ref(model, x, y, lr, index, stat="var"),
                "you stepped up the gradient; SGD steps p -= lr * g":
                    _input_shift_ref(model, x, y, lr, index, sign=-1.0),
                "your step ignores lr: p -= lr * g": _input_shift_ref(model, x, y, 1.0, index),
            }
            if norm == "bn":
                variants["you computed the step's gradient in evaluation mode; in training BN uses the "
                         "batch's statistics, so take the step in training mode (moved.train())"] = \
                    _input_shift_ref(model, x, y, lr, index, train=False)
            for message, values in variants.items():
                if all(math.isclose(float(g), e, rel_tol=1e-5, abs_tol=1e-10) for g, e in zip(got_t, values)):
                    raise CheckFailed(message)
            net = "the BN network" if norm else "the network without BN"
            _compare_numbers(expected, tuple(float(g) for g in got_t),
                             f"{what} for {net}, nonlinearity {index}")
    _passed("input_shift is correct: the mean and std shifts match a hand-made step for an MLP with and "
            "without BN, at two nonlinearities, and the model is left as it was")


def _fake_histories(seed: int = 0):
    """Two runs with a noisy decreasing loss and landscape probes every 10 steps."""
    from types import SimpleNamespace

    import numpy as np

    g = torch.Generator().manual_seed(seed)
    hists = []
    for run in range(2):
        steps = 60 + 20 * run
        loss = (2.0 * torch.exp(-torch.arange(steps, dtype=torch.float64) / 30)
                + 0.3 * torch.rand(steps, generator=g, dtype=torch.float64)).numpy()
        probe_steps = list(range(0, steps, 10))
        probes = [{"grad_predictiveness": float(torch.rand(1, generator=g)) + 0.1,
                   "loss_variation": float(torch.rand(1, generator=g)) + 0.1,
                   "beta_smoothness": float(torch.rand(1, generator=g)) + 0.1} for _ in probe_steps]
        hists.append(SimpleNamespace(loss=loss, probe_steps=np.asarray(probe_steps), probes={"landscape": probes}))
    return hists


def _against_loss_ref(hists, key="grad_predictiveness", window=20, shift=0, smooth=True):
    import numpy as np

    from ..plot import smooth as smooth_fn

    xs, ys = [], []
    for h in hists:
        s = smooth_fn(h.loss, window) if smooth else np.asarray(h.loss, dtype=float)
        for step, d in zip(h.probe_steps, h.probes["landscape"]):
            xs.append(s[min(max(int(step) + shift, 0), len(s) - 1)])
            ys.append(d[key])
    return np.array(xs), np.array(ys)


def check_against_loss(fn: Callable) -> None:
    r"""Check ``fn(hists, key="grad_predictiveness", window=20) -> (losses, values)`` (the chapter
    *landscape*, exercise ``landscape-ex-equal-loss``): for every run and every landscape probe of
    it, the training loss at the probe's step, smoothed with ``bnutils.plot.smooth(h.loss, window)``,
    and the probe's ``key``, as two arrays of the same length, runs one after the other."""
    import numpy as np

    what = "your against_loss"
    hists = _fake_histories()
    takes_key, takes_window = _accepts(fn, "key", 1), _accepts(fn, "window", 2)
    for key in ("grad_predictiveness", "loss_variation"):
        for window in (1, 5):
            kwargs = {}
            if takes_key:
                kwargs["key"] = key
            elif key != "grad_predictiveness":
                raise CheckFailed(f"{what} should take the probe's quantity as an argument, key")
            if takes_window:
                kwargs["window"] = window
            out = _call(fn, what, hists, **kwargs)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise CheckFailed(f"{what} should return two arrays (losses, values), got {type(out).__name__}")
            try:
                xs, ys = (np.asarray(v, dtype=float).ravel() for v in out)
            except (TypeError, ValueError):
                raise CheckFailed(f"{what} should return two arrays of numbers") from None
            ex, ey = _against_loss_ref(hists, key, window if takes_window else 20)
            if len(xs) != len(ex) or len(ys) != len(ey):
                n_last = len(hists[-1].probe_steps)
                hint = (" (only the last run's probes: collect the pairs of every run)"
                        if len(xs) == n_last else "")
                raise CheckFailed(f"{what} returned {len(xs)} losses and {len(ys)} values; expected one pair per "
                                  f"probe, {len(ex)} for {len(hists)} runs{hint}")
            if not np.allclose(ys, ey, rtol=1e-9):
                for other in ("grad_predictiveness", "loss_variation", "beta_smoothness"):
                    if other != key and np.allclose(ys, _against_loss_ref(hists, other)[1]):
                        raise CheckFailed(f"{what}: asked for key={key!r} it returned the probes' {other!r}; "
                                          "use d[key]")
                raise CheckFailed(f"{what}: the values are not the probes' {key!r} in the order of the runs and "
                                  "their probe steps")
            if np.allclose(xs, ex, rtol=1e-9):
                continue
            if window > 1 and np.allclose(xs, _against_loss_ref(hists, key, window, smooth=False)[0]):
                raise CheckFailed(f"{what} ignores window: pair each probe with the smoothed loss, "
                                  "plot.smooth(h.loss, window)[step]")
            for shift in (-1, 1):
                if np.allclose(xs, _against_loss_ref(hists, key, window, shift=shift)[0]):
                    raise CheckFailed(f"{what} reads the loss one step {'before' if shift < 0 else 'after'} the "
                                      "probe; use the loss at the probe's own step, loss[step]")
            i = int(np.nonzero(~np.isclose(xs, ex, rtol=1e-9))[0][0])
            raise CheckFailed(f"{what}: loss of pair {i} wrong (window={window}): expected {_fmt(ex[i])}, "
                              f"got {_fmt(xs[i])}")
    _passed("against_loss is correct: every probe of every run is paired with the (smoothed) training loss at "
            "its step")


# Every public check takes points= and raises= (see _graded) and returns a CheckResult.
for _name in [n for n in __all__ if n.startswith("check_")]:
    globals()[_name] = _graded(globals()[_name])
del _name

#: The checks by name, for the grader (``bnutils.teaching.grade``) and the exercises' metadata.
CHECKS: dict[str, Callable] = {n: globals()[n] for n in __all__ if n.startswith("check_")}
