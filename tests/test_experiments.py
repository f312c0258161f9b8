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
