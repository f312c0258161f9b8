"""Each self-check against a correct implementation and several typical wrong ones: the correct one
passes with a ✓ line, each wrong one fails with the message that names its mistake."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnutils import checks, ics, landscape, models, probes
from bnutils.checks import CheckFailed
from bnutils.norms import BatchNorm, batch_norm


def fails(check, fn, *match, **kwargs):
    with pytest.raises(CheckFailed) as info:
        check(fn, **kwargs)
    message = str(info.value)
    for m in match:
        assert m in message, f"{m!r} not in {message!r}"
    return message


def passes(check, fn, capsys, **kwargs):
    check(fn, **kwargs)
    out = capsys.readouterr().out
    assert out.startswith("✓"), out


# ----------------------------------------------------------------------- forward (training mode)

def _dims(x):
    return [0] + list(range(2, x.dim()))


def _v(t, x):
    return t.view(1, -1, *([1] * (x.dim() - 2)))


def bn_ok(x, gamma, beta, eps=1e-5):
    d = _dims(x)
    mu, var = x.mean(d, keepdim=True), x.var(d, unbiased=False, keepdim=True)
    return _v(gamma, x) * (x - mu) / torch.sqrt(var + eps) + _v(beta, x)


def bn_unbiased(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(0)) / torch.sqrt(x.var(0) + eps) + beta


def bn_eps_outside(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(0)) / (x.std(0, unbiased=False) + eps) + beta


def bn_wrong_dim(x, gamma, beta, eps=1e-5):
    mu, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta


def bn_no_affine(x, gamma, beta, eps=1e-5):
    return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps)


def bn_swapped(x, gamma, beta, eps=1e-5):
    return bn_ok(x, beta, gamma, eps)


def bn_off(x, gamma, beta, eps=1e-5):
    y = bn_ok(x, gamma, beta, eps).clone()
    y[2, 3] += 0.1
    return y


def bn_inplace(x, gamma, beta, eps=1e-5):
    x -= x.mean(0)
    return gamma * x / torch.sqrt((x * x).mean(0) + eps) + beta


def bn_conv_batch_only(x, gamma, beta, eps=1e-5):
    mu, var = x.mean(0, keepdim=True), x.var(0, unbiased=False, keepdim=True)
    return _v(gamma, x) * (x - mu) / torch.sqrt(var + eps) + _v(beta, x)


def test_forward_correct(capsys):
    passes(checks.check_batchnorm_forward, bn_ok, capsys)
    passes(checks.check_batchnorm_forward, bn_ok, capsys, spatial=True)
    passes(checks.check_batchnorm_forward, lambda x, g, b: (bn_ok(x, g, b), "cache"), capsys)  # (y, cache), no eps


@pytest.mark.parametrize("fn, match", [
    (bn_unbiased, "unbiased variance"),
    (bn_eps_outside, "eps outside the square root"),
    (bn_wrong_dim, "dim=1"),
    (bn_no_affine, "scale it by gamma"),
    (bn_swapped, "swapped gamma and beta"),
    (bn_off, "output of your batch-norm forward wrong at index (2, 3): expected"),
    (bn_inplace, "changed its input x in place"),
    (lambda x, g, b: (_ for _ in ()).throw(NotImplementedError("write it")), "not written yet"),
    (lambda x: x, "raised TypeError"),
])
def test_forward_wrong(fn, match):
    fails(checks.check_batchnorm_forward, fn, match)


def test_forward_conv_wrong():
    fails(checks.check_batchnorm_forward, bn_conv_batch_only, "spatial positions", spatial=True)


# ------------------------------------------------------------------------------------- eval mode

def eval_ok(x, gamma, beta, rm, rv, eps=1e-5):
    return gamma * (x - rm) / torch.sqrt(rv + eps) + beta


def test_eval(capsys):
    passes(checks.check_batchnorm_eval, eval_ok, capsys)
    fails(checks.check_batchnorm_eval, lambda x, g, b, rm, rv, eps=1e-5: bn_ok(x, g, b, eps), "batch's statistics")
    fails(checks.check_batchnorm_eval, lambda x, g, b, rm, rv, eps=1e-5: g * (x - rm) / (rv + eps) + b,
          "square root")
    fails(checks.check_batchnorm_eval, lambda x, g, b, rm, rv, eps=1e-5: g * (x - rm) / rv.sqrt() + b, "left eps out")

    def updates(x, g, b, rm, rv, eps=1e-5):
        rm.mul_(0.9)
        return eval_ok(x, g, b, rm, rv, eps)
    fails(checks.check_batchnorm_eval, updates, "only read")


# -------------------------------------------------------------------------------------- backward

def bwd_ok(x, gamma, beta, g, eps=1e-5):
    m = x.shape[0]
    mu, var = x.mean(0), x.var(0, unbiased=False)
    std = torch.sqrt(var + eps)
    xhat = (x - mu) / std
    dgamma, dbeta = (g * xhat).sum(0), g.sum(0)
    dx = gamma / (m * std) * (m * g - g.sum(0) - xhat * (g * xhat).sum(0))
    return dx, dgamma, dbeta


def test_backward_correct(capsys):
    passes(checks.check_batchnorm_backward, bwd_ok, capsys)
    passes(checks.check_batchnorm_backward,
           lambda *a, **k: dict(zip(("dx", "dgamma", "dbeta"), bwd_ok(*a, **k))), capsys)


def _bwd(change):
    def fn(x, gamma, beta, g, eps=1e-5):
        dx, dgamma, dbeta = bwd_ok(x, gamma, beta, g, eps)
        std = torch.sqrt(x.var(0, unbiased=False) + eps)
        return change(dx, dgamma, dbeta, x, gamma, g, std)
    return fn


def _bump(t, i):
    t = t.clone()
    t[i] += 0.5
    return t


@pytest.mark.parametrize("fn, match", [
    (_bwd(lambda dx, dg, db, x, gm, g, s: (dx, _bump(dg, 3), db)), "gradient wrong for gamma at index 3: expected"),
    (_bwd(lambda dx, dg, db, x, gm, g, s: (dx, g.sum(0), db)), "sum_i grad_out_i * x_hat_i"),
    (_bwd(lambda dx, dg, db, x, gm, g, s: (dx, dg, g.mean(0))), "gradient wrong for beta: you averaged"),
    (_bwd(lambda dx, dg, db, x, gm, g, s: (dx, dg, _bump(db, 1))), "gradient wrong for beta at index 1"),
    (_bwd(lambda dx, dg, db, x, gm, g, s: (gm * g / s, dg, db)), "as constants"),
    (_bwd(lambda dx, dg, db, x, gm, g, s: (dx / gm, dg, db)), "factor gamma"),
    (_bwd(lambda dx, dg, db, x, gm, g, s: (_bump(dx, (0, 2)), dg, db)), "gradient wrong for x at index (0, 2)"),
    (_bwd(lambda dx, dg, db, x, gm, g, s: (dx, dg)), "three gradients"),
])
def test_backward_wrong(fn, match):
    fails(checks.check_batchnorm_backward, fn, match)


# ---------------------------------------------------------------------------- running statistics

def running_ok(rm, rv, x, momentum):
    return ((1 - momentum) * rm + momentum * x.mean(0),
            (1 - momentum) * rv + momentum * x.var(0, unbiased=True))


def running_inplace(rm, rv, x, momentum):
    rm.mul_(1 - momentum).add_(momentum * x.mean(0))
    rv.mul_(1 - momentum).add_(momentum * x.var(0))


def test_running_correct(capsys):
    passes(checks.check_running_stats, running_ok, capsys)
    passes(checks.check_running_stats, running_inplace, capsys)


@pytest.mark.parametrize("fn, match", [
    (lambda rm, rv, x, m: ((1 - m) * rm + m * x.mean(0), (1 - m) * rv + m * x.var(0, unbiased=False)),
     "your running_var uses the biased estimator: expected"),
    (lambda rm, rv, x, m: (m * rm + (1 - m) * x.mean(0), m * rv + (1 - m) * x.var(0)), "weighted the old running_mean"),
    (lambda rm, rv, x, m: (x.mean(0), x.var(0)), "replaced by the batch mean"),
    (lambda rm, rv, x, m: (rm, rv), "running_mean was not updated"),
    (lambda rm, rv, x, m: ((1 - m) * rm + m * x.mean(0), (1 - m) * rv + m * x.std(0)), "standard deviations"),
])
def test_running_wrong(fn, match):
    fails(checks.check_running_stats, fn, match)


# ----------------------------------------------------------------- F.batch_norm-style function

def test_batch_norm_function(capsys):
    passes(checks.check_batch_norm, batch_norm, capsys)
    passes(checks.check_batch_norm, F.batch_norm, capsys, spatial=True)

    def always_batch(x, rm, rv, w, b, training, momentum, eps):
        return F.batch_norm(x, rm, rv, w, b, True, momentum, eps)
    fails(checks.check_batch_norm, always_batch, "training=False", "running")

    def biased(x, rm, rv, w, b, training, momentum, eps):
        if training:
            y = F.batch_norm(x, None, None, w, b, True, momentum, eps)
            with torch.no_grad():
                rm.mul_(1 - momentum).add_(momentum * x.mean(0))
                rv.mul_(1 - momentum).add_(momentum * x.var(0, unbiased=False))
            return y
        return F.batch_norm(x, rm, rv, w, b, False, momentum, eps)
    fails(checks.check_batch_norm, biased, "biased estimator")


# ---------------------------------------------------------------------------------------- module

class GradModeBN(BatchNorm):
    """The d2l pitfall: statistics chosen by torch.is_grad_enabled()."""

    def forward(self, x):
        was = self.training
        self.training = torch.is_grad_enabled()
        try:
            return super().forward(x)
        finally:
            self.training = was


class NoBufferBN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))
        self.running_mean, self.running_var = torch.zeros(c), torch.ones(c)

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training)


class EvalBatchStatsBN(nn.BatchNorm1d):
    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True,
                            self.momentum if self.training else 0.0, self.eps)


class BiasedRunningBN(BatchNorm):
    def forward(self, x):
        y = super().forward(x)
        if self.training:
            m = x.shape[0]
            with torch.no_grad():  # undo the unbiasing of the latest update
                var_u = x.var(0)
                self.running_var.sub_(self.momentum * var_u).add_(self.momentum * var_u * (m - 1) / m)
        return y


class DetachedBN(BatchNorm):
    def forward(self, x):
        return super().forward(x).detach()


def test_module_correct(capsys):
    passes(checks.check_batchnorm_module, BatchNorm, capsys)
    passes(checks.check_batchnorm_module, nn.BatchNorm2d, capsys, spatial=True)


@pytest.mark.parametrize("cls, match", [
    (GradModeBN, "torch.is_grad_enabled()"),
    (NoBufferBN, "register_buffer"),
    (EvalBatchStatsBN, "in eval mode your module normalises with the batch's statistics"),
    (BiasedRunningBN, "your running_var uses the biased estimator"),
    (DetachedBN, "does not require grad"),
    (lambda c: nn.Linear(c, c), "register_buffer"),
])
def test_module_wrong(cls, match):
    fails(checks.check_batchnorm_module, cls, match)


# -------------------------------------------------------------------------------------- optimisers

class SGD(torch.optim.Optimizer):
    """A from-scratch heavy-ball SGD, optionally with a typical mistake."""

    def __init__(self, params, lr=0.1, momentum=0.0, mistake=None):
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.mistake = mistake

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                v = self.state[p].setdefault("v", torch.zeros_like(p))
                if self.mistake == "dampen":
                    v.mul_(mu).add_(p.grad, alpha=1 - mu)
                elif self.mistake == "no_momentum":
                    v.copy_(p.grad)
                else:
                    v.mul_(mu).add_(p.grad)
                if self.mistake == "not_in_place":
                    p = p - lr * v  # noqa: PLW2901 -- the mistake: rebinds a name, p is unchanged
                elif self.mistake == "uphill":
                    p.add_(v, alpha=lr)
                elif self.mistake == "typo" and p.dim() == 1:
                    p.sub_(v, alpha=lr * 1.01)
                else:
                    p.sub_(v, alpha=lr)


class Adaptive(torch.optim.Optimizer):
    """AdaGrad or RMSProp from scratch, optionally with a typical mistake."""

    def __init__(self, params, kind, lr=0.01, alpha=0.99, eps=1e-8, mistake=None):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps))
        self.kind, self.mistake = kind, mistake

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, a, eps = group["lr"], group["alpha"], group["eps"]
            for p in group["params"]:
                s = self.state[p].setdefault("s", torch.zeros_like(p))
                g = p.grad
                if self.kind == "adagrad":
                    s.copy_(g * g) if self.mistake == "no_accum" else s.add_(g * g)
                elif self.mistake == "swapped":
                    s.mul_(1 - a).add_(a * g * g)
                elif self.mistake == "summed":
                    s.add_(g * g)
                else:
                    s.mul_(a).add_((1 - a) * g * g)
                denom = s + eps if self.mistake == "no_sqrt" else s.sqrt() + eps
                p.sub_(lr * g / denom)


def test_optimizer_correct(capsys):
    passes(checks.check_optimizer, SGD, capsys, kind="sgd", lr=0.1, momentum=0.9)
    passes(checks.check_optimizer, lambda p: SGD(p, lr=0.1, momentum=0.9), capsys, kind="sgd", lr=0.1, momentum=0.9)
    passes(checks.check_optimizer, lambda p, lr: Adaptive(p, "adagrad", lr=lr, eps=1e-10), capsys, kind="adagrad")
    passes(checks.check_optimizer, lambda p, lr, alpha: Adaptive(p, "rmsprop", lr, alpha), capsys,
           kind="rmsprop", alpha=0.9)


@pytest.mark.parametrize("mistake, match", [
    ("dampen", "after step 1: your momentum dampens the gradient"),
    ("no_momentum", "ignores momentum"),
    ("not_in_place", "step 1 did not change the parameters"),
    ("uphill", "goes uphill"),
    ("typo", "after step 1, parameter 1 wrong at index 0: expected"),
])
def test_sgd_wrong(mistake, match):
    fails(checks.check_optimizer, lambda p, lr, momentum: SGD(p, lr, momentum, mistake), match,
          kind="sgd", lr=0.1, momentum=0.9)


@pytest.mark.parametrize("kind, mistake, match", [
    ("adagrad", "no_accum", "does not accumulate"),
    ("adagrad", "no_sqrt", "square root"),
    ("rmsprop", "swapped", "swapped alpha"),
    ("rmsprop", "summed", "like AdaGrad"),
    ("rmsprop", "no_sqrt", "square root"),
])
def test_adaptive_wrong(kind, mistake, match):
    eps = 1e-10 if kind == "adagrad" else 1e-8
    fails(checks.check_optimizer, lambda p, lr: Adaptive(p, kind, lr, eps=eps, mistake=mistake), match, kind=kind)


# ------------------------------------------------------------------------------------------- ICS

def ics_ok(model, x, y, lr, layer):
    (r,) = ics.ics(model, x, y, lr, layers=[layer])
    return r.l2, r.cosine


def ics_no_restore(model, x, y, lr, layer):
    out = ics_ok(model, x, y, lr, layer)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    return out


def ics_written(model, x, y, lr, layer, which="before", restore=True):
    """ICS written out, updating the parameters that ``which`` names."""
    params = list(model.parameters())
    k = next(i for i, p in enumerate(params) if p is models.weighted_layers(model)[layer].weight)
    saved = [p.detach().clone() for p in params]
    bufs = [b.detach().clone() for b in model.buffers()]
    g = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    with torch.no_grad():
        for i, (p, gi) in enumerate(zip(params, g)):
            if (which == "before" and i < k) or which == "all":
                p.sub_(lr * gi)
    (g2,) = torch.autograd.grad(F.cross_entropy(model(x), y), [params[k]])
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)
        if restore:
            for b, s in zip(model.buffers(), bufs):
                b.copy_(s)
    a, b = g[k].flatten(), g2.flatten()
    return {"l2": float((a - b).norm()), "cosine": float(a @ b / (a.norm() * b.norm()))}


def test_ics(capsys):
    passes(checks.check_ics, ics_ok, capsys)
    passes(checks.check_ics, ics_written, capsys)
    passes(checks.check_ics, lambda *a: ics.ics(*a[:4], layers=[a[4]]), capsys)  # [LayerICS]
    fails(checks.check_ics, lambda *a: ics_written(*a, which="all"), "including layer i itself")
    fails(checks.check_ics, lambda *a: ics_written(*a, which="none"), "your G' equals G")
    fails(checks.check_ics, ics_no_restore, "changed the model's parameters")
    fails(checks.check_ics, lambda *a: ics_written(*a, restore=False), "buffers")
    fails(checks.check_ics, lambda *a: {**ics_written(*a), "cosine": 0.5}, "cosine wrong: expected")


# ------------------------------------------------------------------------------------- landscape

def walk(model, x, y, etas, sign=-1.0, cumulative=False, beta_by_eta=False):
    from bnutils.state import preserved

    params = list(model.parameters())
    with preserved(model):
        g = torch.autograd.grad(F.cross_entropy(model(x), y), params)
        w0 = [p.detach().clone() for p in params]
        gnorm = torch.sqrt(sum((t * t).sum() for t in g))
        losses, diffs, total = [], [], 0.0
        for eta in etas:
            total = total + eta if cumulative else eta
            with torch.no_grad():
                for p, p0, gi in zip(params, w0, g):
                    p.copy_(p0 + sign * total * gi)
            loss = F.cross_entropy(model(x), y)
            ge = torch.autograd.grad(loss, params)
            losses.append(float(loss.detach()))
            diffs.append(float(torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(g, ge)))))
    beta = max(d / (e if beta_by_eta else e * float(gnorm)) for d, e in zip(diffs, etas))
    return {"losses": losses, "grad_diffs": diffs, "loss_range": max(losses) - min(losses),
            "grad_predictiveness": max(diffs), "beta_smoothness": beta}


def test_landscape(capsys):
    passes(checks.check_landscape, walk, capsys)
    passes(checks.check_landscape, lambda m, x, y, etas: landscape.landscape(m, x, y, etas), capsys)
    passes(checks.check_landscape, lambda *a: (walk(*a)["losses"], walk(*a)["grad_diffs"]), capsys)
    fails(checks.check_landscape, lambda *a: walk(*a, sign=1.0), "uphill")
    fails(checks.check_landscape, lambda *a: walk(*a, cumulative=True), "accumulate")
    fails(checks.check_landscape, lambda *a: walk(*a, beta_by_eta=True), "divides by eta")


def test_checks_leave_global_rng_alone():
    state = torch.get_rng_state()
    checks.check_batchnorm_forward(bn_ok)
    checks.check_optimizer(torch.optim.SGD, "sgd", momentum=0.9)
    assert torch.equal(state, torch.get_rng_state())


# ------------------------------------------------------- results with points (what the grader uses)

def test_result_has_points(capsys):
    res = checks.check_batchnorm_forward(bn_ok, points=3)
    assert res.passed and res.points == 3 and res.max_points == 3 and res.message.startswith("batch-norm forward")
    bad = checks.check_batchnorm_forward(bn_unbiased, points=3, raises=False)
    assert not bad.passed and bad.points == 0 and bad.max_points == 3 and "unbiased" in bad.message
    with pytest.raises(CheckFailed):
        checks.check_batchnorm_forward(bn_unbiased, points=3)
    assert set(checks.CHECKS) == {n for n in checks.__all__ if n.startswith("check_")}


# ----------------------------------------------------------------- Nesterov (optimization chapter)

class Nesterov:
    def __init__(self, params, lr, momentum, heavy_ball=False):
        self.params, self.lr, self.momentum, self.heavy = list(params), lr, momentum, heavy_ball
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self):
        for p, v in zip(self.params, self.v):
            v.mul_(self.momentum).add_(p.grad)
            p.sub_(self.lr * (v if self.heavy else p.grad + self.momentum * v))


def test_nesterov(capsys):
    passes(checks.check_optimizer, Nesterov, capsys, kind="sgd", lr=0.1, momentum=0.9, nesterov=True)
    fails(checks.check_optimizer, lambda p, lr, momentum: Nesterov(p, lr, momentum, heavy_ball=True),
          "heavy-ball momentum", kind="sgd", lr=0.1, momentum=0.9, nesterov=True)


# ------------------------------------------------------- conv scale invariance (benefits chapter)

def conv_result(output=1e-16, g1=1e-15, g2=1e-15):
    return lambda a: {"output": output, "grad of conv 1": g1, "a * grad of scaled conv 2": g2}


def test_conv_scale_values(capsys):
    passes(checks.check_conv_scale_invariance, conv_result(), capsys)
    fails(checks.check_conv_scale_invariance, conv_result(g2=0.9), "without the factor a")
    fails(checks.check_conv_scale_invariance, conv_result(g1=0.9, g2=9.0), "you scaled the first")
    fails(checks.check_conv_scale_invariance, conv_result(g2=9.0), "multiply the scaled run's gradient by a")
    fails(checks.check_conv_scale_invariance, conv_result(0.0, 0.0, 0.0), "exactly 0")
    fails(checks.check_conv_scale_invariance, conv_result(output=3e-5), "float64", "eps")
    fails(checks.check_conv_scale_invariance, lambda a: (0.0, 0.0, 0.0), "should return a dict")
    fails(checks.check_conv_scale_invariance, lambda a: {"output": 0.0}, "without 'grad of conv 1'")


def _conv_scale_check(a, eps=1e-12, dtype=torch.float64, which=1, times_a=True):
    """The chapter's reference solution on a small BN CNN of random data (no download)."""
    from bnutils.models import ModelConfig, build_model

    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 28, 28, dtype=dtype), torch.randint(0, 10, (32,))
    grads = {}
    for name, factor in (("W", 1.0), ("aW", a)):
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch="cnn", norm="bn"), (1, 28, 28), 10).to(dtype)
        for m in model.modules():
            if hasattr(m, "eps"):
                m.eps = eps
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        with torch.no_grad():
            convs[which].weight.mul_(factor)
        out = model(x)
        F.cross_entropy(out, y).backward()
        grads[name] = (out.detach(), convs[0].weight.grad.clone(), convs[1].weight.grad.clone())
    rel = lambda p, q: float((p - q).norm() / q.norm())  # noqa: E731
    (o1, g1, h1), (o2, g2, h2) = grads["W"], grads["aW"]
    return {"output": rel(o2, o1), "grad of conv 1": rel(g2, g1),
            "a * grad of scaled conv 2": rel((a if times_a else 1) * h2, h1)}


def test_conv_scale_reference(capsys):
    passes(checks.check_conv_scale_invariance, _conv_scale_check, capsys)
    fails(checks.check_conv_scale_invariance, lambda a: _conv_scale_check(a, times_a=False), "without the factor a")
    fails(checks.check_conv_scale_invariance, lambda a: _conv_scale_check(a, eps=1e-5), "eps")
    fails(checks.check_conv_scale_invariance, lambda a: _conv_scale_check(a, dtype=torch.float32), "float64")


# ------------------------------------------------------------- recalibration (beyond chapter)

def recal(model, x, batch_size=250, reset=True, cumulative=True, train=True, copy_it=True, batched=True,
          eval_after=True):
    import copy

    model = copy.deepcopy(model) if copy_it else model
    for m in model.modules():
        if getattr(m, "running_mean", None) is not None:
            if reset:
                m.reset_running_stats()
            if cumulative:
                m.momentum = None
    model.train(train)
    with torch.no_grad():
        for i in range(0, len(x), batch_size if batched else len(x)):
            model(x[i:i + (batch_size if batched else len(x))])
    return model.eval() if eval_after else model


@pytest.mark.parametrize("kwargs, match", [
    (dict(copy_it=False), "changed the model it was given"),
    (dict(train=False), "updated only in training mode"),
    (dict(cumulative=False), "default momentum (0.1)"),
    (dict(reset=False, cumulative=False), "kept the old running statistics"),
    (dict(reset=False), "did not reset"),
    (dict(batched=False), "as one batch"),
    (dict(eval_after=False), "training mode"),
])
def test_recalibrate(kwargs, match, capsys):
    passes(checks.check_recalibrate, recal, capsys)
    fails(checks.check_recalibrate, lambda m, x, batch_size=250: recal(m, x, batch_size, **kwargs), match)


def test_recalibrate_weights_and_return():
    def trains(model, x, batch_size=250):
        m = recal(model, x, batch_size)
        with torch.no_grad():
            next(m.parameters()).add_(1.0)
        return m

    fails(checks.check_recalibrate, trains, "changed the weight")
    fails(checks.check_recalibrate, lambda m, x, batch_size=250: None, "should return the recalibrated model")


# ----------------------------------------------------------------- input shift (ics chapter)

def shift(model, x, y, lr, index, copy_it=True, absolute=True, sign=1.0, var=False, use_lr=True, train=True):
    import copy

    before = probes.activation_inputs(model, x, index)
    moved = copy.deepcopy(model) if copy_it else model
    moved.train(train)
    grads = torch.autograd.grad(F.cross_entropy(moved(x), y), list(moved.parameters()))
    with torch.no_grad():
        for p, g in zip(moved.parameters(), grads):
            p -= sign * (lr if use_lr else 1.0) * g
    after = probes.activation_inputs(moved, x, index)
    f = torch.abs if absolute else (lambda t: t)
    spread = (lambda a: a.var(0)) if var else (lambda a: a.std(0))
    return float(f(after.mean(0) - before.mean(0)).mean()), float(f(spread(after) - spread(before)).mean())


@pytest.mark.parametrize("kwargs, match", [
    (dict(copy_it=False), "changed the model's parameters"),
    (dict(absolute=False), "signed changes"),
    (dict(sign=-1.0), "stepped up the gradient"),
    (dict(var=True), "compared variances"),
    (dict(use_lr=False), "ignores lr"),
    (dict(train=False), "evaluation mode"),
])
def test_input_shift(kwargs, match, capsys):
    passes(checks.check_input_shift, shift, capsys)
    fails(checks.check_input_shift, lambda *a: shift(*a, **kwargs), match)


def test_input_shift_no_step():
    fails(checks.check_input_shift, lambda model, x, y, lr, index: (0.0, 0.0), "did not move")


# ------------------------------------------------------- probes against the loss (landscape chapter)

def against(hists, key="grad_predictiveness", window=20, smooth=True, last_only=False, shift_by=0, fixed_key=None):
    import numpy as np

    from bnutils import plot

    xs, ys = [], []
    for h in (hists[-1:] if last_only else hists):
        s = plot.smooth(h.loss, window) if smooth else np.asarray(h.loss)
        for step, d in zip(h.probe_steps, h.probes["landscape"]):
            xs.append(s[min(step + shift_by, len(s) - 1)])
            ys.append(d[fixed_key or key])
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize("kwargs, match", [
    (dict(smooth=False), "ignores window"),
    (dict(last_only=True), "only the last run"),
    (dict(shift_by=1), "one step after"),
    (dict(fixed_key="grad_predictiveness"), "use d[key]"),
])
def test_against_loss(kwargs, match, capsys):
    passes(checks.check_against_loss, against, capsys)
    fails(checks.check_against_loss, lambda h, key="grad_predictiveness", window=20: against(h, key, window, **kwargs),
          match)
