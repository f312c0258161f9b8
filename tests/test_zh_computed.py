"""The Chinese edition's computed text (issue 23): what a chapter *computes* as text comes out in
Chinese when the edition is Chinese and exactly as before in English.

* the summary's table of every claim: the claims' catalogue (``locales/zh_CN/LC_MESSAGES/claims.po``)
  is complete and faithful (tokens and numbers kept), the command that refreshes it merges like
  ``sphinx-intl update``, and ``claims.frame(..., lang="zh")`` is Chinese;
* tables (``plot.table`` -> ``tables.readable``): every header and cell of the chapters' tables;
* glued phrases: a glue whose value is English text goes through ``language.translate``.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnutils import claims as C
from bnutils import language, plot, tables
from bnutils import translations as tr

ROOT = Path(__file__).resolve().parents[1]
CJK = re.compile(r"[\u4e00-\u9fff]")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


# ----- the claims' catalogue ---------------------------------------------------------------------

def claim_messages():
    return [m for m in tr.messages(tr.CLAIMS_CATALOGUE) if m.context]


def test_claims_catalogue_complete_and_faithful():
    msgs = claim_messages()
    assert len(msgs) > 200, f"{tr.CLAIMS_CATALOGUE}: {len(msgs)} claims; run `{tr.CLAIMS_REFRESH}`"
    assert len({m.context for m in msgs}) == len(msgs)
    chapters = set(tr.book_chapters()) - {"summary"}
    assert {m.context.split(":")[0] for m in msgs} == chapters, "a chapter's claims are missing or stale"
    bad = []
    for m in msgs:
        if not m.string or m.fuzzy:
            bad.append((m.context, "untranslated" if not m.string else "fuzzy"))
            continue
        if lost := tr.missing(m.id, m.string):
            bad.append((m.context, f"lost {lost}"))
        need, have = Counter(NUMBER.findall(m.id)), Counter(NUMBER.findall(m.string))
        if lost := [n for n, k in need.items() if have[n] < k]:
            bad.append((m.context, f"lost the numbers {lost}"))
        if not CJK.search(m.string):
            bad.append((m.context, "no Chinese"))
    assert not bad, f"{tr.CLAIMS_CATALOGUE}: {bad[:10]}"


def test_claims_catalogue_matches_the_chapters_claims():
    """Every literal claim id of every chapter has a message, and the literal sentence is its msgid
    (the f-string claims are checked by the summary notebook, which sees them expanded)."""
    msgs = {m.context: m.id for m in claim_messages()}
    missing = []
    for chapter in tr.book_chapters():
        nb = json.loads((ROOT / "book" / f"{chapter}.ipynb").read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("claim", "check") and getattr(node.func.value, "id", "") == "ledger"
                        and all(isinstance(a, ast.Constant) for a in node.args[:2])):
                    ctx = tr.claim_context(chapter, node.args[0].value)
                    if msgs.get(ctx) != node.args[1].value:
                        missing.append(ctx)
    assert not missing, f"claims without their sentence in claims.po (run `{tr.CLAIMS_REFRESH}`): {missing}"


def write_ledger(folder: Path, chapter: str, claims: dict[str, str]):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{chapter}.json").write_text(json.dumps([{"chapter": chapter, "id": i, "sentence": s}
                                                        for i, s in claims.items()]))


def test_refresh_merges_like_sphinx_intl(tmp_path):
    po, ledgers = tmp_path / "claims.po", tmp_path / "ledgers"
    write_ledger(ledgers, "ics", {"a": "BN drifts less", "b": "No run diverges"})
    write_ledger(ledgers, "beyond", {"c": "At batch 2 BN is worse"})
    assert tr.update_claims([ledgers], po) == dict(new=3, changed=0, removed=0, kept=0, total=3)
    table = tr.claim_translations(po)
    assert table == {"ics:a": ("BN drifts less", ""), "ics:b": ("No run diverges", ""),
                     "beyond:c": ("At batch 2 BN is worse", "")}
    assert list(table) == ["ics:a", "ics:b", "beyond:c"]  # the book's order (ics before beyond)

    # translate, then a chapter rewords one claim, drops one, adds one; another chapter is not run
    from babel.messages.pofile import write_po

    cat = tr.read(po)
    for m in cat:
        if m.context:
            m.string = {"ics:a": "BN 漂移更少", "ics:b": "没有一次运行发散", "beyond:c": "批大小为 2 时 BN 更差"}[m.context]
    with open(po, "wb") as f:
        write_po(f, cat)
    (ledgers / "beyond.json").unlink()
    write_ledger(ledgers, "ics", {"a": "BN drifts far less", "d": "New claim"})
    before = po.read_bytes()
    assert tr.update_claims([ledgers], po) == dict(new=1, changed=1, removed=1, kept=1, total=3)
    msgs = {m.context: m for m in tr.messages(po)}
    assert msgs["ics:a"].fuzzy and msgs["ics:a"].string == "BN 漂移更少"
    assert '#| msgid "BN drifts less"' in po.read_text()  # the old sentence, for the review
    assert msgs["ics:d"].string == "" and "ics:b" not in msgs
    assert msgs["beyond:c"].string == "批大小为 2 时 BN 更差" and not msgs["beyond:c"].fuzzy
    # a fuzzy or changed sentence is not a translation
    claim = lambda ch, i, s: C.Claim(ch, i, s, 1.0, 0.0, None, False, C.SCALES, "smoke", 0, C.HOLDS)  # noqa: E731
    got = tr.untranslated_claims([claim("ics", "a", "BN drifts far less"), claim("beyond", "c", "At batch 2 BN is worse"),
                                  claim("beyond", "c2", "x")], po)
    assert [c.id for c in got] == ["a", "c2"]
    # nothing changed: the file is not rewritten (no date churn), the old sentence is kept
    after = po.read_bytes()
    assert before != after
    tr.update_claims([ledgers], po)
    assert po.read_bytes() == after


def test_refresh_without_ledgers_says_what_to_run(tmp_path, capsys):
    assert tr.main(["claims", "--ledgers", str(tmp_path), "--catalogue", str(tmp_path / "c.po")]) == 2
    assert "execute the chapters first" in capsys.readouterr().err


def test_refresh_refuses_a_sentence_that_depends_on_the_scale(tmp_path):
    write_ledger(tmp_path / "smoke", "ics", {"a": "at 150 steps"})
    write_ledger(tmp_path / "book", "ics", {"a": "at 500 steps"})
    with pytest.raises(ValueError, match="must not depend on the scale"):
        tr.read_ledgers([tmp_path / "smoke", tmp_path / "book"])


def catalogue_claims():
    """One claim per message of the catalogue, with every kind of bound and status."""
    out = []
    for k, m in enumerate(claim_messages()):
        chapter, id = m.context.split(":")
        kind = k % 5
        low, high, inclusive, condition = [(2.0, None, False, False), (None, 0.5, True, False),
                                           (0.5, 2.0, False, False), (1.0, None, True, True),
                                           (-0.02, 0.02, False, False)][kind]
        status = C.WAITS if k % 7 == 0 else C.HOLDS
        out.append(C.Claim(chapter, id, m.id, float(k % 2) if condition else 1.234, low, high, inclusive,
                           ("book", "paper") if status == C.WAITS else C.SCALES, "smoke", 0, status, condition))
    return out


def test_the_summary_table_in_chinese():
    claims = catalogue_claims()
    assert C.untranslated(claims) == []
    zh = C.frame(claims, lang="zh")
    assert list(zh.columns) == ["章", "id", "论断", "测得值", "界限", "状态"]
    # the sentences are checked message by message above; the other columns have no English word
    # but the scales' names, which the text writes as they are (`smoke`, `book`)
    words = {w for col in ("章", "测得值", "界限", "状态") for v in zh[col] for w in language.english_words(v)}
    assert words <= {"smoke", "book", "paper"}, words
    assert list(zh["论断"]) == [tr.claim_translations()[tr.claim_context(c.chapter, c.id)][1] for c in claims]
    assert set(zh["章"]) == {"神经网络中的优化", "批标准化", "批标准化带来了什么", "内部协变量偏移的实测",
                            "更平滑的优化空间", "综述之外"}
    assert {"为真", "> 2", "<= 0.5", "在 (0.5, 2) 内", "在 (-0.02, 0.02) 内"} == set(zh["界限"])
    assert set(zh["测得值"]) == {"真", "假", "1.23"}
    assert set(zh["状态"]) == {"成立", "smoke 规模下未检验（在 book、paper 规模下检验）"}


def test_the_english_table_is_unchanged():
    claims = catalogue_claims()[:5]
    en = C.frame(claims)
    assert list(en.columns) == ["chapter", "id", "claim", "value", "bound", "status"]
    assert list(en.bound) == ["> 2", "<= 0.5", "in (0.5, 2)", "true", "in (-0.02, 0.02)"]
    assert list(en.claim) == [c.sentence for c in claims] and list(en.chapter) == [c.chapter for c in claims]
    assert en.status[0] == "not checked at smoke scale (checked at book, paper)" and en.status[1] == "holds"
    assert en.equals(C.frame(claims, lang="en"))


def test_a_claim_without_translation_is_an_error_naming_the_command():
    c = C.Claim("ics", "not_in_the_catalogue", "A new sentence", 1.0, 0.0, None, False, C.SCALES, "smoke", 0, C.HOLDS)
    assert C.untranslated([c]) == [c]
    with pytest.raises(KeyError, match="python -m bnutils.translations claims"):
        C.frame([c], lang="zh")


# ----- tables ------------------------------------------------------------------------------------

def cells(t: pd.DataFrame) -> list[str]:
    """Every header, index label, level name and cell of a readable table, as text."""
    out = [str(v) for v in t.to_numpy().ravel()]
    for index in (t.index, t.columns):
        out += [str(n) for n in index.names if n is not None]
        for v in index:
            out += [str(x) for x in (v if isinstance(v, tuple) else (v,))]
    return out


def runs(norms, lrs=(0.1, 1.0)):
    idx = pd.MultiIndex.from_product([norms, lrs], names=["model.norm", "train.lr"])
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"final_loss": rng.random(len(idx)), "final_test_acc": rng.random(len(idx)),
                       "diverged": rng.random(len(idx)) > 0.5}, index=idx)
    df.iloc[0, 0] = np.inf
    return df


def representative_frames():
    """One frame shaped like each plot.table(...) of book/*.ipynb (names, index levels, words)."""
    rng = np.random.default_rng(1)
    seeds = pd.Index([0, 1], name="seed")
    norm = pd.Index(["standard", "bn"], name="norm")
    agg = pd.MultiIndex.from_product([["final_loss", "final_test_acc"], ["mean", "std"]])
    mean_std = pd.DataFrame(rng.random((2, 4)), index=norm, columns=agg)
    yield "batchnorm: summary", mean_std, None, "diverged"
    yield "batchnorm: alg2", pd.DataFrame(rng.random((2, 6)), index=seeds, columns=[
        "mean_rms", "mean_max", "var_rms", "var_max", "acc_running", "acc_alg2"]), NAMES["alg2"], "diverged"
    yield "batchnorm: fold", pd.DataFrame(rng.random((2, 4)), index=seeds, columns=[
        "max_abs_logit", "max_abs_diff", "bn_layers_left", "relative"]), NAMES["fold"], "diverged"
    checks = pd.DataFrame(rng.random((4, 2)), index=["output", "grad wrt u", "a * grad wrt aW vs grad wrt W",
                                                     "grads of all other parameters"],
                          columns=[f"eps = {e:g}" for e in (1e-5, 1e-12)])
    checks.index.name = "relative difference, a = 10"
    yield "benefits: scale checks", checks, None, "diverged"
    mlp = runs(["standard", "BN"]).groupby(["model.norm", "train.lr"]).mean()
    mlp.index = mlp.index.set_names(["norm", "train.lr"])
    yield "benefits: mlp sweep", mlp.unstack(0), None, "diverged"
    best = pd.DataFrame(rng.random((4, 4)), index=pd.MultiIndex.from_product([["MLP", "CNN"], ["standard", "BN"]]),
                        columns=["best final loss", "rate (loss)", "best test accuracy", "rate (accuracy)"])
    yield "benefits: best", best, None, "diverged"
    variant = pd.Index(["neither", "dropout", "BN", "both"], name="variant")
    gen = pd.DataFrame(rng.random((4, 6)), index=variant, columns=pd.MultiIndex.from_product(
        [["final_train_acc", "final_test_acc", "gap"], ["mean", "std"]]))
    yield "benefits: generalisation", gen, None, "diverged"
    yield "benefits: generalisation means", gen.xs("mean", axis=1, level=1), None, "diverged"
    bs = pd.DataFrame(rng.random((4, 2)), columns=["final_test_acc", "gap"], index=pd.MultiIndex.from_product(
        [["standard", "BN"], [16, 128]], names=["norm", "train.batch_size"]))
    yield "benefits: batch size", bs.unstack(0), None, "diverged"
    yield "benefits: init", pd.Series({("standard", 0.1): 1e-4, ("BN", 0.1): 0.3, ("standard", 10.0): 2.0,
                                       ("BN", 10.0): 1.0}).unstack(0), None, "diverged"
    lr = runs([None, "bn"]).reset_index()
    yield "beyond: lr", lr.groupby(["model.norm", "train.lr"], dropna=False)[
        ["final_loss", "final_test_acc", "diverged"]].mean(), None, "diverged"
    yield "ics: toy", pd.DataFrame(rng.random((2, 4)), index=pd.Index([1, 2], name="layer"), columns=[
        "by hand: l2", "ics.ics: l2", "by hand: cosine", "ics.ics: cosine"]), None, "diverged"
    ics = pd.DataFrame({"setting": ["MLP, rate 0.1", "DLN, rate 2e-8"] * 6, "layer": [2, 17] * 6,
                        "quantity": ["l2", "relative", "cosine"] * 4,
                        "network": [plot.label(None)] * 6 + [plot.label("bn")] * 6, "mean": rng.random(12)})
    yield "ics: summary", ics.pivot_table(index=["setting", "layer"], columns=["quantity", "network"],
                                          values="mean"), None, "diverged"
    yield "optimization: lr", runs([None]).droplevel(0)[["final_loss", "final_test_acc"]], None, "diverged"
    its = pd.DataFrame({"gradient descent": [10.0, np.inf], "heavy ball": [5.0, 50.0], "AdaGrad": [3.0, np.nan]},
                       index=pd.Index([10.0, 100.0], name="condition number"))
    yield "optimization: iterations", its, None, "not reached"
    yield "optimization: lecun", pd.DataFrame({"condition number of C": [1e4, 3.0], "iterations to 1e-6": [9e4, 20]},
                                              index=["raw inputs", "standardised inputs"]), None, "diverged"
    yield "optimization: hessian", pd.DataFrame({
        "parameters": ["1,000", "89,610", "1,000,000", "25,600,000", "138,000,000", "175,000,000,000"],
        "gradient (float32)": ["4 kB", "358.4 kB", "4 MB", "102.4 MB", "552 MB", "700 GB"],
        "dense Hessian (float32)": ["4 MB", "32.12 GB", "4 TB", "2.621 PB", "76.18 PB", "122.5 ZB"]},
        index=["a tiny model", "this chapter's MLP", "a 1M-parameter network", "ResNet-50", "VGG-16", "GPT-3"]), None, "diverged"
    yield "every name and normalisation", pd.DataFrame(
        {k: [1.0, True] for k in tables.NAMES}, index=pd.Index(list(tables.NORMS)[:2], name="normalization")), None, "diverged"
    yield "every normalisation", pd.Series(range(len(tables.NORMS) + 1), name="seed", index=pd.Index(
        [*tables.NORMS, None], name="model.norm")), None, "diverged"


def plot_table_names():
    """The ``names={...}`` of every ``plot.table(...)`` call in the chapters, by the frame's name."""
    out = {}
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code" or "plot.table(" not in "".join(cell["source"]):
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "plot.table":
                    for kw in node.keywords:
                        if kw.arg == "names":
                            out[ast.unparse(node.args[0])] = ast.literal_eval(kw.value)
    return out


NAMES = plot_table_names()


def test_every_plot_table_names_are_known():
    assert set(NAMES) == {"alg2", "fold"}, "a chapter's table renames columns: add a representative frame here"


@pytest.mark.parametrize("what, df, names, missing", list(representative_frames()),
                         ids=[w for w, *_ in representative_frames()])
def test_tables_in_chinese(what, df, names, missing):
    t = tables.readable(df, names=names, missing=missing, lang="zh")
    english = [c for c in cells(t) if language.english_words(c)]
    assert not english, f"{what}: English left in the Chinese table: {english}"
    en = tables.readable(df, names=names, missing=missing, lang="en")
    assert t.shape == en.shape
    numbers = lambda x: [v for v in cells(x) if re.fullmatch(r"[-+0-9.,e]+", v)]  # noqa: E731
    assert numbers(t) == numbers(en)  # numbers are written the same in both editions


def test_table_words_in_chinese():
    df = pd.DataFrame({"final_loss": [0.26634, np.inf], "diverged": [False, True]},
                      index=pd.Index([None, "bn"], name="model.norm"))
    t = tables.readable(df, lang="zh")
    assert list(t.columns) == ["最终训练损失", "发散比例"] and t.index.name == "标准化"
    assert list(t.index) == ["标准网络", "BN"]
    assert t.to_numpy().tolist() == [["0.266", "否"], ["发散", "是"]]
    assert tables.readable(df[["final_loss"]], missing="not reached", lang="zh").iloc[1, 0] == "未达到"
    assert tables.readable(df[["final_loss"]].iloc[:1].agg(["mean", "std"]), lang="zh").index.tolist() == ["均值", "标准差"]


def test_table_follows_the_edition(monkeypatch):
    df = pd.DataFrame({"final_loss": [np.inf]}, index=pd.Index(["bn"], name="model.norm"))
    monkeypatch.setenv("BNBOOK_LANG", "zh")
    assert plot.table(df).iloc[0, 0] == "发散"
    monkeypatch.setenv("BNBOOK_LANG", "en")
    t = plot.table(df)
    assert t.iloc[0, 0] == "diverged" and list(t.columns) == ["final training loss"] and t.index.name == "normalization"


# ----- glued phrases -----------------------------------------------------------------------------

def writes_english(node, assigned: dict) -> bool:
    """Whether an expression's value is text with English words of its own: a string literal, an
    f-string's text, either branch of ``a if c else b`` / ``a or b``, a name assigned one of those."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and bool(language.english_words(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(writes_english(v, assigned) for v in node.values)
    if isinstance(node, ast.IfExp):
        return writes_english(node.body, assigned) or writes_english(node.orelse, assigned)
    if isinstance(node, ast.BoolOp):
        return any(writes_english(v, assigned) for v in node.values)
    if isinstance(node, ast.BinOp):
        return writes_english(node.left, assigned) or writes_english(node.right, assigned)
    if isinstance(node, ast.Name) and node.id in assigned:
        return writes_english(assigned[node.id], {})
    return False


def test_glued_english_text_goes_through_translate():
    """A glue() whose value writes English words glues ``language.translate(...)`` of it, so that the
    Chinese edition pastes Chinese into its Chinese sentence."""
    raw = []
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for k, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] != "code":
                continue
            tree = ast.parse("".join(cell["source"]))
            assigned = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                        for t in n.targets if isinstance(t, ast.Name)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "glue" and len(node.args) > 1:
                    value = node.args[1]
                    if isinstance(value, ast.Call) and ast.unparse(value.func) == "language.translate":
                        continue
                    if writes_english(value, assigned):
                        raw.append(f"{path.name} cell {k}: {ast.unparse(node)[:100]}")
    assert not raw, "glue English text through language.translate (and its Chinese into plot_zh):\n" + "\n".join(raw)


@pytest.mark.parametrize("en, zh", [
    ("from 0.01 to 1 (2.0 decades)", "0.01 到 1（2.0 个数量级）"),
    ("from 0.001 to 3 (3.5 decades)", "0.001 到 3（3.5 个数量级）"),
    ("at none of the rates", "无"),
    ("none", "无"),
    ("0.01, 0.1", "0.01, 0.1"),
])
def test_glued_phrases_in_chinese(en, zh):
    assert language.translate(en, "zh") == zh
    assert language.translate(en, "en") == en
