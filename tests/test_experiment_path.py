"""One experiment path (issue: the book builds on any machine): caches keyed by everything that can
change a result, separate per scale; the seed offset; fixed-batch and final probes; kept weights;
and no chapter caching or training a network on its own."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bnutils import config
from bnutils import experiments as E
from bnutils.config import pick
from bnutils.data import load
from bnutils.models import ModelConfig, build_model
from bnutils.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = E.Experiment(data="digits", model=ModelConfig(hidden=(16,), norm="bn"),
                     train=TrainConfig(steps=12, eval_every=6, batch_size=32))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BNBOOK_CACHE", str(tmp_path))
    monkeypatch.delenv("BNBOOK_SEED_OFFSET", raising=False)
    E._memory.cache_clear()
    yield tmp_path
    E._memory.cache_clear()


def _sized():
    """A chapter's experiment whose size comes from the scale, as the notebooks build them."""
    return E.Experiment(data="digits", model=ModelConfig(hidden=(16,)),
                        train=TrainConfig(steps=pick(smoke=5, book=15), eval_every=5, batch_size=32))


def test_smoke_then_book_never_returns_the_smoke_result(cache, monkeypatch):
    monkeypatch.setenv("BNBOOK_SCALE", "smoke")
    small = E.run(_sized())
    monkeypatch.setenv("BNBOOK_SCALE", "book")
    big = E.run(_sized())
    assert len(small.loss) == 5 and len(big.loss) == 15
    # and each scale has its own cache folder
    assert sorted(p.name for p in cache.iterdir()) == ["book", "smoke"]


def test_the_same_config_at_two_scales_is_cached_twice(cache, monkeypatch):
    calls = []
    real = E.train
    monkeypatch.setattr(E, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    for scale in ("smoke", "book", "smoke", "book"):
        monkeypatch.setenv("BNBOOK_SCALE", scale)
        E.run(SMALL)
    assert len(calls) == 2


def test_cached_run_takes_no_global_it_does_not_receive():
    """By construction: the cached body receives everything as arguments (the experiment, the code
    version, device, dtype and platform) and reads no module-level size."""
    import inspect
    params = list(inspect.signature(E._run).parameters)
    assert params == ["exp", "version", "device", "dtype", "platform"]


def test_platform_names_kernels_threads_and_torch(monkeypatch):
    p = E.platform("cpu")
    assert torch.__version__ in p and torch.backends.cpu.get_cpu_capability() in p and "threads" in p
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    assert "MKL_ENABLE_INSTRUCTIONS=AVX2" in E.platform("cpu")


def test_seed_offset_shifts_every_run_and_is_in_the_key(cache, monkeypatch):
    base = E.run(SMALL)
    monkeypatch.setenv("BNBOOK_SEED_OFFSET", "1000")
    shifted_exp = E.Experiment(data=SMALL.data, model=SMALL.model, train=SMALL.train)
    assert shifted_exp.seed_offset == 1000 and shifted_exp != SMALL
    shifted = E.run(shifted_exp)
    assert not np.array_equal(base.loss, shifted.loss)
    assert shifted.config["seed_offset"] == 1000 and shifted.config["seed"] == 0
    # the same as seed 1000 without an offset
    monkeypatch.delenv("BNBOOK_SEED_OFFSET")
    direct = E.run(SMALL.with_seed(1000))
    np.testing.assert_array_equal(direct.loss, shifted.loss)
    assert E.table([shifted])["seed_offset"].tolist() == [1000]


def test_seed_offset_reaches_seed_everything(monkeypatch):
    monkeypatch.setenv("BNBOOK_SEED_OFFSET", "7")
    config.seed_everything(0)
    a = torch.rand(3)
    config.seed_exactly(7)
    np.testing.assert_array_equal(a, torch.rand(3))


@pytest.mark.parametrize("bad", ["-1", "x", "1.5"])
def test_seed_offset_rejects_bad_values(monkeypatch, bad):
    monkeypatch.setenv("BNBOOK_SEED_OFFSET", bad)
    with pytest.raises(ValueError, match="BNBOOK_SEED_OFFSET must be a non-negative int"):
        config.seed_offset()


def test_fixed_batch_probe_sees_the_same_examples(cache):
    probe = E.Probe("activations", (("index", 0), ("values", 2)), batch=("test", 50))
    exp = E.replace(SMALL, train=E.replace(SMALL.train, probe_every=4), probes=(probe,))
    h = E.run(exp, cache=False)
    vals = [p["values"] for p in h.probes["activations"]]
    assert all(v.shape == (50, 2) for v in vals)
    # by hand: the untrained network's first-layer pre-activations on the first 50 test digits
    data = load("digits")
    config.seed_exactly(0)
    model = build_model(exp.model, data.in_shape, data.out_features)
    from bnutils.probes import activation_inputs
    np.testing.assert_allclose(vals[0], activation_inputs(model, data.x_test[:50], 0)[:, :2].numpy(), rtol=1e-6)


@pytest.mark.parametrize("batch", [("val", 5), ("test", 0), ("test",), ["test", 5]])
def test_probe_batch_is_checked(batch):
    with pytest.raises(ValueError, match="Probe batch"):
        E.Probe("activations", batch=batch)


def test_final_probe_and_kept_weights(cache):
    slq = E.Probe("spectrum", (("m", 8), ("top_k", 3)), batch=("train", 64))
    exp = E.replace(SMALL, final_probes=(slq,))
    h, model = E.trained_model(exp)
    spec = h.final["spectrum"]
    assert len(spec["top"]) == 3 and 0.0 <= spec["share"] <= 1.0 + 1e-6
    # the rebuilt model is the trained one: same outputs as the state it was built from
    data = load("digits")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in h.state.items())
    # the final probe measured that network: recompute the top Ritz value from the rebuilt model
    from bnutils.curvature import spectrum_probe
    again = spectrum_probe(model, data.x_train[:64], data.y_train[:64], lr=0.1,
                           loss_fn=torch.nn.functional.cross_entropy, m=8, top_k=3, seed=0)
    np.testing.assert_allclose(again["top"], spec["top"], rtol=1e-4)
    with pytest.raises(ValueError, match="needs a fixed batch"):
        E.Experiment(final_probes=(E.Probe("spectrum"),))


def test_weight_norm_model_is_pytorchs_parametrization():
    config.seed_exactly(0)
    plain = build_model(ModelConfig(hidden=(8,)), (5,), 3)
    config.seed_exactly(0)
    wn = build_model(ModelConfig(hidden=(8,), weight_norm=True), (5,), 3)
    assert torch.nn.utils.parametrize.is_parametrized(wn[0], "weight")
    x = torch.randn(4, 5)
    torch.testing.assert_close(wn(x), plain(x))  # the same function at step 0


def test_lbfgs_runs_full_batch_and_records_times():
    exp = E.Experiment(data="digits", model=ModelConfig(hidden=(16,)),
                       train=TrainConfig(optimizer="lbfgs", lr=1.0, batch_size=None, steps=10, eval_every=5))
    h = E.run(exp, cache=False)
    assert len(h.loss) == 10 and h.loss[-1] < h.loss[0]
    assert h.eval_seconds.shape == h.eval_steps.shape and np.all(np.diff(h.eval_seconds) >= 0)
    with pytest.raises(ValueError, match="full-batch"):
        TrainConfig(optimizer="lbfgs", batch_size=32)


# ------------------------------------------------------------------ the chapters, by construction

def _code(nb: Path) -> str:
    cells = json.loads(nb.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_no_chapter_caches_or_trains_a_network_on_its_own(nb):
    code = _code(nb)
    assert "memory(" not in code and ".cache(" not in code, f"{nb.name} caches a function of its own"
    # bnutils.train.train is called only inside bnutils.experiments
    assert not re.search(r"(?<![\w.])train\(\s*\w+\s*,\s*\w+", code), f"{nb.name} calls train() directly"
    assert "import train\n" not in code and ", train\n" not in code


def test_the_publishing_cache_is_keyed_like_the_local_one():
    """The workflow restores _build/cache: safe, because every entry is filed under its scale and
    code version and keyed by experiment, device, dtype and platform (the tests above)."""
    wf = (ROOT / ".github/workflows/book.yml").read_text()
    assert "_build/cache" in wf
    assert "BNBOOK_SCALE" not in wf or "book" in wf



def test_code_version_hashes_only_what_can_change_a_result():
    """Editing a figure's style, a claim's sentence or a teaching check keeps every cached run:
    the hash covers the modules a run can execute, and a fresh interpreter that imports the
    experiment path and every probe loads no other module of the package."""
    import subprocess
    import sys

    mods = E.result_modules()
    assert {"experiments", "train", "models", "norms", "data", "config", "ics", "probes", "landscape",
            "curvature", "state"} <= set(mods)
    assert not {"plot", "claims", "checks", "student", "theory", "quadratics", "timing", "tables"} & set(mods)
    code = (
        "import sys, importlib, bnutils.experiments as E; "
        "print(sorted(m.split('.')[1] for m in sys.modules if m.startswith('bnutils.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(eval(out.stdout)) <= set(mods), (out.stdout, mods)


def test_code_version_ignores_prose_but_not_code():
    """Editing a docstring or a comment of a module a run executes keeps every cached run;
    editing its code does not."""
    src = '"""Module."""\nimport torch\n\n\ndef f(x):\n    """Doc."""\n    return x + 1  # one\n'
    prose = '"""Another text."""\nimport torch\n\n# a comment\ndef f(x):\n    """Other doc."""\n\n    return x + 1\n'
    code = src.replace("x + 1", "x + 2")
    assert E.code_of(src) == E.code_of(prose)
    assert E.code_of(src) != E.code_of(code)
    assert E.code_of('def g():\n    """Only a docstring."""\n') == E.code_of("def g():\n    pass\n")
