"""The Chinese edition's figures (``BNBOOK_LANG=zh``): every label drawn through ``bnutils.plot``
comes out in Chinese, in a font that has every glyph (matplotlib's "Glyph ... missing from
font(s)" warning is an error here), and the English edition is left as it was."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bnutils import language, plot, plot_zh  # noqa: E402

CJK = "\u4e00-\u9fff"


def has_cjk(text: str) -> bool:
    return re.search(f"[{CJK}]", text) is not None


@pytest.fixture
def zh(monkeypatch):
    if not plot.has_cjk_font():
        message = f"{plot.CJK_FONT} is missing: `make browser-deps` installs Debian's fonts-noto-cjk"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    monkeypatch.setenv("BNBOOK_LANG", "zh")
    with plt.rc_context():
        plot.set_style()
        yield
    monkeypatch.setenv("BNBOOK_LANG", "en")
    plot.set_edition("en")
    plt.close("all")


def draw_strict(fig) -> None:
    """Draw ``fig`` with a missing glyph as an error: matplotlib's warning for plain text, and the
    message mathtext logs (not warns) for the words around a label's maths ("批大小 $m$")."""
    logged = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: logged.append(record.getMessage())
    logger = logging.getLogger("matplotlib")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*missing from font")
            warnings.filterwarnings("error", message="findfont: Font family")
            fig.canvas.draw()
    finally:
        logger.removeHandler(handler)
    missing = [m for m in logged if "does not have a glyph" in m or "missing from font" in m]
    assert not missing, missing[:5]


def test_figure_has_chinese_labels_and_every_glyph(zh):
    fig, ax = plt.subplots()
    x = np.arange(10)
    plot.band(ax, x, np.random.default_rng(0).random((3, 10)), label=plot.label("bn"), color=plot.color("bn"))
    plot.band(ax, x, np.random.default_rng(1).random((3, 10)), label=plot.label("l1"), color=plot.color("l1"))
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.set_title("learning rate 0.1")
    ax.text(0.5, 0.5, "batch size $m$")  # Chinese words around maths: mathtext's own font choice
    ax.legend()
    draw_strict(fig)
    assert ax.get_xlabel() == "步数" and ax.get_ylabel() == "测试准确率"
    assert ax.get_title() == "学习率 0.1" and ax.texts[0].get_text() == "批大小 $m$"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["BN", "$\\ell_1$ 范数"], legend
    drawn = {t.get_text() for t in fig.findobj(matplotlib.text.Text)}
    assert not [t for t in drawn if language.english_words(t)], drawn  # no English word left in the figure


def test_every_chinese_label_renders(zh):
    """Each label of plot_zh, in the figure font with the CJK fallback, without a missing glyph."""
    labels = list(plot_zh.LABELS.values()) + [t for _, t in plot_zh.PATTERNS]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(labels)))
    for i, text in enumerate(labels):
        ax.text(0, i, re.sub(r"\{\d\}", "1", text))
    ax.set_ylim(-1, len(labels))
    draw_strict(fig)
    assert all(has_cjk(t.get_text()) or not language.english_words(t.get_text()) for t in ax.texts)


def test_labels_and_patterns_are_chinese():
    for en, zh_ in plot_zh.LABELS.items():
        assert has_cjk(zh_) or not language.english_words(zh_), (en, zh_)
    assert language.translate("BN layer 3", "zh") == "BN 第 3 层"
    assert language.translate("noisy BN, layer 2", "zh") == "带噪声的 BN，第 2 层"
    assert language.translate("$u$", "zh") == "$u$"  # maths only: nothing to translate


def test_english_edition_unchanged(monkeypatch):
    monkeypatch.setenv("BNBOOK_LANG", "en")
    with plt.rc_context():
        plot.set_style()
        fig, ax = plt.subplots()
        ax.set_xlabel("step")
        assert ax.get_xlabel() == "step"
        assert plot.CJK_FONT not in plt.rcParams["font.family"]
    plt.close("all")


def test_zh_in_a_fresh_process():
    """As a chapter runs it (``make book-zh``): BNBOOK_LANG=zh, ``plot.set_style()`` first."""
    code = ("import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
            "from bnutils import plot; plot.set_style(); fig, ax = plt.subplots(); "
            "ax.plot([0, 1], label=plot.label(None)); ax.legend(); ax.set_xlabel('learning rate'); "
            "print(ax.get_xlabel(), ax.get_legend().get_texts()[0].get_text())")
    out = subprocess.run([os.sys.executable, "-c", code], env={**os.environ, "BNBOOK_LANG": "zh"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["学习率", "标准网络"], out


def test_labels_use_the_terms():
    """plot_zh's labels say what the catalogues say (locales/zh_CN/TERMS.md): no variant a note of
    the term list rules out ("not 平台期", "not 种子 alone", "the usual 归一化 is not used")."""
    from bnutils import translations as tr

    rules = tr.ruled_out()
    assert {"种子", "平台期", "归一化", "范围带"} <= set(rules), sorted(rules)
    labels = {**plot_zh.LABELS, **{rx.pattern: template for rx, template in plot_zh.PATTERNS}}
    bad = {en: (zh_, found) for en, zh_ in labels.items() if (found := tr.ruled_out_in(zh_, rules))}
    assert not bad, f"labels with a variant TERMS.md rules out: {bad}"
    assert tr.ruled_out_in("各随机种子的均值", rules) == []  # 种子 inside the term itself
    assert tr.ruled_out_in("各种子的均值；平台期", rules) == ["平台期", "种子"]
    assert language.translate("seed", "zh") == "随机种子" and language.translate("weight norm", "zh") == "权重标准化"
