"""The benchmarks in bench/ run at a tiny size and write the JSON fields the tables need.
No timing is asserted (timings belong to `make bench`, on a quiet machine)."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"section", "name", "value", "unit", "goal", "met", "note", "extra"}


def bench_module(name: str):
    """``bench.<name>``, imported with the repository root on ``sys.path`` for the import only."""
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module(f"bench.{name}")
    finally:
        sys.path.remove(str(ROOT))


@pytest.fixture(scope="module")
def cpu_bench(tmp_path_factory):
    bench_run = bench_module("run")
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = bench_run.main(["--tiny", "--out", str(out)])
    return result, json.loads(out.read_text())


@pytest.mark.e2e
def test_cpu_bench_writes_every_section(cpu_bench):
    result, saved = cpu_bench
    assert saved["tiny"] is True and "cpu" in saved["machine"]
    assert {r["section"] for r in saved["rows"]} == {"loop", "bn", "probes", "cache"}
    for r in saved["rows"]:
        assert FIELDS <= set(r), r["name"]
        assert r["met"] in (True, False, None)
    assert saved["table"] and len(saved["rows"]) == len(result["rows"])


@pytest.mark.e2e
def test_minimal_loop_does_the_same_work_as_train(cpu_bench):
    _, saved = cpu_bench
    loops = [r for r in saved["rows"] if r["name"].endswith("bnutils.train / minimal loop")]
    assert len(loops) == 3
    assert all(r["extra"]["same_weights_as_minimal"] for r in loops)


@pytest.mark.e2e
def test_cache_rerun_is_identical_and_retrains_only_the_change(cpu_bench):
    _, saved = cpu_bench
    rerun, changed = [r for r in saved["rows"] if r["section"] == "cache"][:2]
    assert rerun["extra"]["identical"]
    assert changed["value"] == 1.0


@pytest.mark.e2e
def test_gpu_script_runs_tiny_on_the_cpu(tmp_path):
    env = {"OUT": str(tmp_path), "PATH": "/usr/bin:/bin", "BNBOOK_DEVICE": "cpu", "BNBOOK_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--tiny"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((tmp_path / "gpu.json").read_text())
    names = [r["name"] for r in saved["rows"]]
    assert any("bnutils.train / plain" in n for n in names)
    assert any(n.startswith("vgg11: landscape") for n in names)
    assert any("Santurkar suite" in n for n in names)
    for r in saved["rows"]:
        assert FIELDS <= set(r)


@pytest.mark.e2e
@pytest.mark.parametrize("options", [[], ["--jobs", "2", "--autocast", "bfloat16", "--channels-last", "--compile", "aot_eager"]],
                         ids=["serial", "parallel-bf16-cl-compiled"])
def test_santurkar_suite_runs_end_to_end_tiny(tmp_path, options):
    env = {"OUT": str(tmp_path), "PATH": "/usr/bin:/bin", "BNBOOK_DEVICE": "cpu", "BNBOOK_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "bench.suite", "--tiny", *options], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((tmp_path / "suite.json").read_text())
    assert len(saved["runs"]) == 6
    assert {(r["label"], r["lr"]) for r in saved["runs"]} == {
        (n, lr) for n in ("standard", "bn", "noisy_bn") for lr in (0.1, 0.5)}
    assert all(r["steps_run"] == 6 and r["probe_steps"] == 2 for r in saved["runs"])
    exp = saved["experiments"][0]
    assert exp["train"]["batch_size"] == 8 and {p["kind"] for p in exp["probes"]} == {"ics", "landscape"}
    if options:
        assert exp["train"]["autocast"] == "bfloat16" and exp["train"]["compile"] == "aot_eager"
    total = saved["rows"][-1]
    assert total["name"].startswith("Santurkar suite, end to end") and total["value"] > 0


def test_santurkar_suite_is_the_papers_setting():
    suite = bench_module("suite").suite
    exps = suite()
    assert [(e.model.norm, e.train.lr) for e in exps] == [
        (n, lr) for lr in (0.1, 0.5) for n in (None, "bn", "noisy_bn")]
    for e in exps:
        assert e.data == "synthetic_cifar10" and e.model.channels == "vgg11"
        assert (e.train.batch_size, e.train.steps, e.train.probe_every, e.train.optimizer) == (128, 15_000, 100, "sgd")
        assert e.train.momentum == 0 and e.train.weight_decay == 0


# --------------------------------------------------------------------------- bench/gpu_book.py and gpu_session.sh


def _notebook(path, *cells):
    """A notebook of code cells; a cell is its source, or (source, tags)."""
    code = [c if isinstance(c, tuple) else (c, []) for c in cells]
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# A chapter"]}]
          + [{"cell_type": "code", "metadata": {"tags": tags}, "execution_count": None, "outputs": [],
              "source": src.splitlines(keepends=True)} for src, tags in code]}
    path.write_text(json.dumps(nb))


@pytest.fixture(scope="module")
def toy_book(tmp_path_factory):
    """Four chapters: one that passes, one whose hidden assertion fails, one with an IPython magic,
    one that outlives the time limit; run all at once under a 15 s limit."""
    root = tmp_path_factory.mktemp("toybook")
    book = root / "book"
    book.mkdir()
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: Toy\n    chapters:\n"
                                   + "".join(f"      - file: book/{n}\n" for n in ("good", "bad", "magic", "slow")))
    (book / "intro.md").write_text("# Intro\n")
    (book / "data.txt").write_text("ok")
    _notebook(book / "good.ipynb",
              "import inspect\nfrom pathlib import Path\n\nimport matplotlib.pyplot as plt\nimport numpy as np\n"
              "from myst_nb import glue\n",
              'glue("n", 3, display=False)\nglue("x", np.float64(0.5), display=False)\nglue("arr", np.zeros(3))\n',
              "fig, ax = plt.subplots()\nax.plot([1, 2])\ndisplay(1)\n",
              ("assert Path('data.txt').read_text() == 'ok'  # the notebook's folder is the working directory\n"
               "def f():\n    return 1\nassert 'return 1' in inspect.getsource(f)\n", ["remove-cell"]),
              ("raise SystemExit('skipped')", ["skip-execution"]),
              ("raise ValueError('allowed')", ["raises-exception"]),
              "assert plt.get_fignums() == []  # closed after each cell, as the inline backend does\n")
    _notebook(book / "bad.ipynb", "x = 1\ndef half(v):\n    return v / 2\n",
              ("y = half(x)\nassert y == 1, (\n    f'y is {y}')\nprint('never')\n", ["remove-cell"]),
              "print('never either')\n")
    _notebook(book / "magic.ipynb", "x = 1\n", "%matplotlib inline\nx = 2\n")
    _notebook(book / "slow.ipynb", "import time\ntime.sleep(600)\n")
    out = root / "out"
    env = {"PATH": "/usr/bin:/bin", "BNBOOK_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_book.py"), "--root", str(root), "--scale", "smoke",
                           "--device", "cpu", "--time-limit", "15", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    saved = json.loads((out / "book-smoke.json").read_text())
    return proc, saved, {c["chapter"]: c for c in saved["chapters"]}, out


@pytest.mark.e2e
def test_gpu_book_reads_the_toc_and_runs_every_chapter(toy_book):
    proc, saved, by_name, out = toy_book
    assert proc.returncode == 1, proc.stderr[-2000:]  # not every chapter passed
    assert [c["chapter"] for c in saved["chapters"]] == ["good", "bad", "magic", "slow"]  # intro.md is no notebook
    assert saved["jobs"] == 4 and saved["settings"]["BNBOOK_SCALE"] == "smoke"
    assert saved["settings"]["BNBOOK_DEVICE"] == "cpu" and saved["settings"]["BNBOOK_CACHE"]
    assert (out / "book-smoke.txt").read_text().startswith("The book at scale 'smoke'")
    assert "===== bad (failed) =====" in (out / "book-smoke-logs.txt").read_text()


@pytest.mark.e2e
def test_gpu_book_passing_chapter_records_glue(toy_book):
    _, _, by_name, _ = toy_book
    good = by_name["good"]
    assert good["status"] == "ok", good["failure"]
    assert good["cells_done"] == good["cells"] == 7 and len(good["cell_seconds"]) == 7
    assert good["glue"]["n"] == 3 and good["glue"]["x"] == 0.5
    assert good["glue"]["arr"]["type"] == "ndarray" and "array" in good["glue"]["arr"]["repr"]
    assert good["skipped_cells"] == [4] and good["allowed_errors"][0]["type"] == "ValueError"


@pytest.mark.e2e
def test_gpu_book_reports_the_failing_assertion(toy_book):
    _, saved, by_name, _ = toy_book
    f = by_name["bad"]["failure"]
    assert by_name["bad"]["status"] == "failed" and by_name["bad"]["cells_done"] == 1
    assert (f["cell"], f["line_cell"], f["lineno"], f["type"], f["message"]) == (1, 1, 2, "AssertionError", "y is 0.5")
    assert f["statement"] == "assert y == 1, (\n    f'y is {y}')" and f["tags"] == ["remove-cell"]
    assert "assert y == 1" in saved["table"] and "y is 0.5" in saved["table"]
    magic = by_name["magic"]["failure"]
    assert by_name["magic"]["status"] == "failed" and magic["cell"] == 1 and "%matplotlib inline" in magic["message"]


@pytest.mark.e2e
def test_gpu_book_stops_a_chapter_at_the_time_limit(toy_book):
    _, saved, by_name, _ = toy_book
    slow = by_name["slow"]
    assert slow["status"] == "timeout" and slow["cells_done"] == 0
    assert 15 <= saved["wall_s"] < 60


def _seed_ledgers(folder):
    """One claim for every chapter the summary reads, as if each had been executed at smoke scale
    (the summary alone is the cheap real chapter these tests run): the chapter's first claim of the
    claims' catalogue, since the summary checks that every claim it lists has its translation."""
    from dataclasses import asdict

    from bnutils.claims import Claim
    from bnutils.translations import CLAIMS_CATALOGUE, book_chapters, messages

    catalogue = [m for m in messages(CLAIMS_CATALOGUE) if m.id and m.context]
    stems = [stem for stem in book_chapters() if stem != "summary"]
    (folder / "smoke").mkdir(parents=True)
    for stem in stems:
        m = next(m for m in catalogue if m.context.startswith(f"{stem}:"))
        c = Claim(stem, m.context.split(":", 1)[1], m.id, 1.0, 0.0, None, False, ("smoke",), "smoke", 0, "holds")
        (folder / "smoke" / f"{stem}.json").write_text(json.dumps([asdict(c)]))
    return str(folder)


@pytest.mark.e2e
def test_gpu_book_runs_a_real_chapter(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "BNBOOK_PROGRESS": "0", "BNBOOK_CLAIMS": _seed_ledgers(tmp_path / "claims")}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_book.py"), "summary", "--scale", "smoke",
                           "--device", "cpu", "--out", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (chapter,) = json.loads((tmp_path / "book-smoke.json").read_text())["chapters"]
    assert chapter["status"] == "ok" and "summary_n_claims" in chapter["glue"]


@pytest.mark.e2e
def test_gpu_session_script_runs_tiny_on_the_cpu(tmp_path):
    """bench/gpu_session.sh end to end on the CPU: one chapter, both suites at --tiny, the summary."""
    env = {"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "PY": sys.executable, "DEVICE": "cpu", "SCALE": "smoke",
           "TINY": "1", "BOOK_CHAPTERS": "summary", "PHASES": "book fast fp32",
           "SUITE_FAST_ARGS": "--jobs 2",  # joblib workers; the compiled, bf16 suite has its own test above
           "BNBOOK_CLAIMS": _seed_ledgers(tmp_path / "claims")}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh"), "400"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    log = (tmp_path / "session.log").read_text()
    (chapter,) = json.loads((tmp_path / "book-smoke.json").read_text())["chapters"]
    assert chapter["chapter"] == "summary" and chapter["status"] == "ok", log[-3000:]
    for name, jobs in (("suite-fast", 2), ("suite-fp32", 1)):
        saved = json.loads((tmp_path / name / "suite.json").read_text())
        assert saved["jobs"] == jobs and len(saved["runs"]) == 6
        for r in saved["runs"]:
            assert len(r["eval_seconds"]) == len(r["eval_steps"]) == 7  # 6 steps, evaluated every step and at 0
            assert r["eval_seconds"] == sorted(r["eval_seconds"]) and r["eval_seconds"][-1] <= r["loop_s"]
    assert saved["experiments"][0]["train"]["compile"] is None
    assert log.count("extrapolated to 15000 steps") == 2 and "gpu: not asked for" in log


def test_speed_reference_times_each_kind_of_run(monkeypatch):
    """bench.speed: one short uncached run of each kind the book trains, timed (no time asserted).
    Timed here on the MLP alone: a CNN run's two evaluations (2,000 images each) cost the same
    whatever the fraction, and `make bench-book` runs all three."""
    speed = bench_module("speed")
    assert {e.model.arch for e in speed.REFERENCE.values()} == {"mlp", "cnn", "deep_linear"}
    assert all(e.model.norm == "bn" for e in speed.REFERENCE.values())
    monkeypatch.setattr(speed, "REFERENCE", {"mlp_bn": speed.REFERENCE["mlp_bn"]})
    got = speed.measure(fraction=0.1)
    assert set(got) == {"mlp_bn"} and got["mlp_bn"] > 0
    with pytest.raises(ValueError, match="fraction"):
        speed.measure(0)


def test_book_timings_reports_the_reference_before_and_after():
    book_timings = bench_module("book_timings")
    before, after = {"mlp_bn": 1.0, "dln_bn": 2.0}, {"mlp_bn": 1.5, "dln_bn": 2.0}
    rows = book_timings.speed_rows(before, after)
    assert [r.section for r in rows] == ["speed", "speed"] and [r.value for r in rows] == [1.0, 2.0]
    assert "1.50 s (1.50x)" in rows[0].note and rows[0].met is None
    assert book_timings.speed_rows({"error": "boom"}, after) == []  # context, never a failure
