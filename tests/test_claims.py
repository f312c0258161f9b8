"""The claims ledger: a claim is checked at the strength of its words, glued, and recorded, and a
claim that is not checked at this scale says so."""

import json
import math

import numpy as np
import pytest

from bnutils import claims as C
from bnutils import config


@pytest.fixture
def ledger_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BNBOOK_CLAIMS", str(tmp_path))
    monkeypatch.setenv("BNBOOK_SCALE", "smoke")
    monkeypatch.delenv("BNBOOK_SEED_OFFSET", raising=False)
    return tmp_path / "smoke"


def test_a_claim_that_holds_is_recorded_and_returned(ledger_dir):
    led = C.Ledger("ics")
    assert led.claim("ratio", "BN drifts at least twice less", 2.5, above=2) == 2.5
    (rec,) = json.loads((ledger_dir / "ics.json").read_text())
    assert rec["id"] == "ratio" and rec["status"] == "holds" and rec["low"] == 2 and rec["high"] is None
    assert C.load(["ics"])[0].bound == "> 2"


@pytest.mark.parametrize("kw, value, ok", [
    (dict(above=2), 2.0, False), (dict(at_least=2), 2.0, True),
    (dict(below=1), 1.0, False), (dict(at_most=1), 1.0, True),
    (dict(between=(1 / 1.5, 1.5)), 1.49, True), (dict(between=(1 / 1.5, 1.5)), 0.6, False),
    (dict(between=(1 / 1.5, 1.5)), 1.6, False), (dict(above=0), math.nan, False),
    (dict(below=10), math.inf, False), (dict(above=10), math.inf, True),
])
def test_bounds_at_their_strength(ledger_dir, kw, value, ok):
    led = C.Ledger("x")
    if ok:
        led.claim("c", "s", value, **kw)
    else:
        with pytest.raises(C.ClaimFailed, match=r"claim x\.c \('s'\): measured"):
            led.claim("c", "s", value, **kw)
    assert C.load(["x"])[0].status == ("holds" if ok else "fails")  # recorded before raising


def test_a_failed_claim_is_an_assertion_error_naming_scale_and_seed_offset(ledger_dir, monkeypatch):
    monkeypatch.setenv("BNBOOK_SEED_OFFSET", "1000")
    with pytest.raises(AssertionError, match=r"not in \(0\.667, 1\.5\) \(scale smoke, seed offset 1000\)"):
        C.Ledger("x").claim("c", "about as fast", 2.0, between=(1 / 1.5, 1.5))


def test_a_claim_that_waits_for_book_scale_says_so(ledger_dir):
    led = C.Ledger("x")
    led.claim("late", "separates after a few hundred steps", -1.0, above=0, scales=("book", "paper"))
    (c,) = C.load(["x"])
    assert c.status == "waits" and c.status_text == "not checked at smoke scale (checked at book, paper)"
    assert C.frame([c]).status[0].startswith("not checked")


def test_check_records_conditions_without_numbers(ledger_dir):
    led = C.Ledger("x")
    assert led.check("every_seed", "every seed", all([True, True]))
    with pytest.raises(C.ClaimFailed, match=r"claim x\.never \('no run diverges'\) is false here"):
        led.check("never", "no run diverges", False)
    table = C.frame(C.load(["x"]))
    assert list(table.value) == ["true", "false"] and set(table.bound) == {"true"}


def test_bad_claims_get_clear_errors(ledger_dir):
    led = C.Ledger("x")
    with pytest.raises(ValueError, match="give one bound"):
        led.claim("a", "s", 1.0)
    with pytest.raises(ValueError, match="do not mix"):
        led.claim("a", "s", 1.0, above=0, at_most=2)
    with pytest.raises(ValueError, match="glue key"):
        led.claim("a:b", "s", 1.0, above=0)
    with pytest.raises(ValueError, match="one number"):
        led.claim("a", "s", np.ones(3), above=0)
    with pytest.raises(ValueError, match="empty"):
        led.claim("a", "s", 1.0, between=(2, 1))
    with pytest.raises(ValueError, match="subset"):
        led.claim("a", "s", 1.0, above=0, scales=("huge",))
    led.claim("a", "s", np.float32(1.0), above=0)
    with pytest.raises(ValueError, match="stated twice"):
        led.claim("a", "s", 1.0, above=0)


def test_a_new_execution_starts_the_ledger_afresh_and_missing_chapters_are_named(ledger_dir):
    C.Ledger("x").claim("old", "s", 1.0, above=0)
    C.Ledger("x").claim("new", "s", 1.0, above=0)
    assert [c.id for c in C.load(["x"])] == ["new"]
    with pytest.raises(FileNotFoundError, match="'landscape'"):
        C.load(["x", "landscape"])


def test_off_writes_nothing_but_still_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("BNBOOK_CLAIMS", "off")
    led = C.Ledger("x")
    assert led.path is None
    with pytest.raises(C.ClaimFailed):
        led.claim("c", "s", 0.0, above=1)


def test_default_folder_sits_beside_the_experiment_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("BNBOOK_CLAIMS", raising=False)
    monkeypatch.setenv("BNBOOK_CACHE", str(tmp_path / "cache"))
    assert config.claims_dir("book") == tmp_path / "cache" / "book" / "claims"


def test_book_robust_reports_the_ledgers_failed_claims(ledger_dir):
    """bench/robust.py lists every claim that failed in a variant's build, with its number."""
    from bench import robust

    led = C.Ledger("ics")
    led.claim("fine", "holds", 3.0, above=2)
    led.claim("later", "waits", 0.0, above=2, scales=("book",))
    with pytest.raises(C.ClaimFailed):
        led.claim("ratio", "BN drifts at least twice less", 1.5, above=2)
    got = robust.ledger(ledger_dir)
    assert got["counts"] == {"holds": 1, "fails": 1, "waits": 1}
    assert got["failed"] == ["ics.ratio: 'BN drifts at least twice less' measured 1.5, bound low=2.0 high=None"]
    text = robust.report([{"variant": "avx2", "env": {"ATEN_CPU_CAPABILITY": "avx2", "BNBOOK_SEED_OFFSET": "2000"},
                           "chapters_executed": 7, "returncode": 1, "seconds": 60.0, "failures": [],
                           "claims": got}])
    assert "| 1 / 1 / 1 |" in text and "- **avx2**, claim ics.ratio" in text


def test_book_robust_executes_every_chapter_again_when_bnutils_changes(tmp_path, monkeypatch):
    """A variant's jupyter-cache, doctrees and executed chapters are dropped when bnutils' source
    differs from the one they were built with (as `make book` does), and kept otherwise: before,
    a second run after a change executed only the chapters whose notebooks had changed and reported
    the other chapters' old claims."""
    from bench import robust
    from bnutils import experiments

    built = tmp_path / "_build"
    for folder in (".jupyter_cache", ".doctrees", "jupyter_execute"):
        (built / folder).mkdir(parents=True)
    (tmp_path / "cache" / "book" / "claims").mkdir(parents=True)
    assert robust.fresh_cache(tmp_path)  # never stamped: dropped
    assert not any((built / f).exists() for f in (".jupyter_cache", ".doctrees", "jupyter_execute"))
    assert not (tmp_path / "cache" / "book" / "claims").exists() and (tmp_path / "cache").exists()
    (built / ".jupyter_cache").mkdir()
    assert not robust.fresh_cache(tmp_path) and (built / ".jupyter_cache").exists()  # same code: kept
    monkeypatch.setattr(experiments, "package_version", lambda: "another version")
    assert robust.fresh_cache(tmp_path) and not (built / ".jupyter_cache").exists()
    assert (built / ".bnutils-version").read_text() == "another version\n"
