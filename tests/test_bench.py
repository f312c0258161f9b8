"""The benchmarks in bench/ run at a tiny size and write the JSON fields the tables need.
No timing is asserted (timings belong to `make bench`, on a quiet machine)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"section", "name", "value", "unit", "goal", "met", "note", "extra"}


@pytest.fixture(scope="module")
def cpu_bench(tmp_path_factory):
    sys.path.insert(0, str(ROOT))
    try:
        from bench import run as bench_run
    finally:
        sys.path.remove(str(ROOT))
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = bench_run.main(["--tiny", "--out", str(out)])
    return result, json.loads(out.read_text())


def test_cpu_bench_writes_every_section(cpu_bench):
    result, saved = cpu_bench
    assert saved["tiny"] is True and "cpu" in saved["machine"]
    assert {r["section"] for r in saved["rows"]} == {"loop", "bn", "probes", "cache"}
    for r in saved["rows"]:
        assert FIELDS <= set(r), r["name"]
        assert r["met"] in (True, False, None)
    assert saved["table"] and len(saved["rows"]) == len(result["rows"])


def test_minimal_loop_does_the_same_work_as_train(cpu_bench):
    _, saved = cpu_bench
    loops = [r for r in saved["rows"] if r["name"].endswith("bnutils.train / minimal loop")]
    assert len(loops) == 3
    assert all(r["extra"]["same_weights_as_minimal"] for r in loops)


def test_cache_rerun_is_identical_and_retrains_only_the_change(cpu_bench):
    _, saved = cpu_bench
    rerun, changed = [r for r in saved["rows"] if r["section"] == "cache"][:2]
    assert rerun["extra"]["identical"]
    assert changed["value"] == 1.0


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
    sys.path.insert(0, str(ROOT))
    try:
        from bench.suite import suite
    finally:
        sys.path.remove(str(ROOT))
    exps = suite()
    assert [(e.model.norm, e.train.lr) for e in exps] == [
        (n, lr) for lr in (0.1, 0.5) for n in (None, "bn", "noisy_bn")]
    for e in exps:
        assert e.data == "synthetic_cifar10" and e.model.channels == "vgg11"
        assert (e.train.batch_size, e.train.steps, e.train.probe_every, e.train.optimizer) == (128, 15_000, 100, "sgd")
        assert e.train.momentum == 0 and e.train.weight_decay == 0
