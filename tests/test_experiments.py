import logging

import numpy as np
import pytest

from bnutils import experiments as E
from bnutils.models import ModelConfig
from bnutils.train import TrainConfig

EXP = E.Experiment(data="digits", model=ModelConfig(hidden=(16,), norm="bn"), train=TrainConfig(steps=20, eval_every=10))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BNBOOK_CACHE", str(tmp_path))
    E._memory.cache_clear()
    yield tmp_path
    E._memory.cache_clear()


def test_cache_hits_and_keys_on_config(cache, monkeypatch):
    calls = []
    real = E.train

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(E, "train", counting)
    a = E.run(EXP)
    b = E.run(EXP)
    assert a == b and len(calls) == 1  # second call loaded from the cache
    E.run(E.replace(EXP, train=E.replace(EXP.train, lr=0.2)))
    assert len(calls) == 2  # a changed config re-runs
    E.run(EXP.with_seed(1))
    assert len(calls) == 3


@pytest.mark.e2e
def test_sweep_trains_uncached_runs_in_worker_processes_with_the_same_numbers(cache, monkeypatch):
    """jobs=2: the runs not cached yet train in two processes, into the same cache entries, and
    give bitwise the numbers of a run in this process; cached ones are not trained again."""
    exps = E.seeds(EXP, 3)
    E.run(exps[0])  # one cached already
    calls = []
    real = E.train
    monkeypatch.setattr(E, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    par = E.sweep(exps, jobs=2)
    assert calls == []  # exps[1:] trained in the workers (this process's train() was not called)
    for h, e in zip(par, exps):
        here = E.run(e, cache=False)
        assert np.array_equal(h.loss, here.loss) and np.array_equal(h.test_acc, here.test_acc)
    assert len(calls) == 3  # the cache=False runs above
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        E.sweep(exps, jobs=0)


def test_default_jobs_reads_bnbook_jobs(monkeypatch):
    monkeypatch.setenv("BNBOOK_JOBS", "3")
    assert E.default_jobs() == 3
    monkeypatch.setenv("BNBOOK_JOBS", "two")
    with pytest.raises(ValueError, match="BNBOOK_JOBS must be a positive int, got 'two'"):
        E.default_jobs()
    monkeypatch.delenv("BNBOOK_JOBS")
    monkeypatch.setenv("BNBOOK_DEVICE", "cpu")
    assert E.default_jobs() >= 1


def test_code_version_is_part_of_the_key(cache, monkeypatch):
    E.run(EXP)
    monkeypatch.setattr(E, "code_version", lambda: "something-else")
    calls = []
    real = E.train
    monkeypatch.setattr(E, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    E.run(EXP)
    assert len(calls) == 1


def test_corrupted_entry_is_recomputed_with_a_warning(cache, caplog):
    first = E.run(EXP)
    outputs = [p for p in cache.rglob("output.pkl")]
    assert outputs, "nothing was cached"
    for p in outputs:
        p.write_bytes(p.read_bytes()[:40])  # a truncated entry
    with caplog.at_level(logging.WARNING):
        again = E.run(EXP)
    assert again == first
    assert "Exception while loading results" in caplog.text  # joblib's warning, then a recompute
    assert E.run(EXP) == first  # and the rewritten entry loads again


def test_sweep_and_table():
    hists = E.sweep(E.seeds(EXP, 2), cache=False)
    df = E.table(hists)
    assert list(df["seed"]) == [0, 1] and set(df["model.norm"]) == {"bn"}
    assert np.all(np.isfinite(df["final_loss"]))
    with pytest.raises(ValueError, match="sweep needs at least one experiment"):
        E.sweep([])
    with pytest.raises(ValueError, match="unknown probe 'nope'"):
        E.Probe("nope")
    with pytest.raises(TypeError, match="expected an Experiment"):
        E.run("mnist")


def test_variant_names_each_field_by_itself():
    e = E.variant(EXP, norm=None, lr=0.5, data="mnist5k")
    assert (e.model.norm, e.train.lr, e.data) == (None, 0.5, "mnist5k")
    assert e.model.hidden == EXP.model.hidden and e.train.steps == EXP.train.steps
    assert E.variant(EXP) == EXP
    with pytest.raises(TypeError, match="unexpected keyword argument 'nrom'"):
        E.variant(EXP, nrom="bn")


def test_grid_is_the_product_with_seeds_innermost():
    exps = E.grid(EXP, n_seeds=2, norm=[None, "bn"], lr=[0.1, 1.0])
    got = [(e.model.norm, e.train.lr, e.seed) for e in exps]
    assert got == [(n, lr, s) for n in (None, "bn") for lr in (0.1, 1.0) for s in (0, 1)]
    assert E.grid(EXP, lr=[0.2]) == [E.variant(EXP, lr=0.2)]
    with pytest.raises(TypeError, match="grid axis 'norm' must be a list"):
        E.grid(EXP, norm="bn")


def test_frame_is_long_form_and_wide_pads_diverged_runs_with_nan():
    hists = E.sweep(E.grid(EXP, lr=[0.1, 1e6]), cache=False)  # the second diverges
    assert not hists[0].diverged and hists[1].diverged
    df = E.frame(hists, "loss")
    assert {"run", "step", "loss", "model.norm", "train.lr", "seed", "diverged"} <= set(df.columns)
    assert len(df) == len(hists[0].loss) + len(hists[1].loss)
    steps, values = E.wide(df, "loss")
    np.testing.assert_array_equal(steps, np.arange(EXP.train.steps))
    np.testing.assert_array_equal(values[0], hists[0].loss)
    assert np.isnan(values[1, len(hists[1].loss):]).all()
    acc = E.frame(hists, "test_acc")
    assert set(acc["step"]) <= set(hists[0].eval_steps)
    with pytest.raises(ValueError, match="key must be 'loss'"):
        E.frame(hists, "nope")
