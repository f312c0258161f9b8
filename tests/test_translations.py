"""The Chinese edition's catalogues (locales/zh_CN/LC_MESSAGES/<page>.po, issue 23): every message
translated and none fuzzy, and, message by message, every role, glue key, citation key, ``$...$``
span, code span, link target and HTML tag of the English kept unchanged in the Chinese
(``bnutils.translations.tokens``). ``make update-translations`` lists what needs doing per page."""

from __future__ import annotations

import re

import pytest

from bnutils import translations as tr

CATALOGUES = tr.catalogues()
PAGES = {p.relative_to(tr.LOCALES / tr.LANGUAGE / "LC_MESSAGES").with_suffix("").as_posix(): p for p in CATALOGUES}


def test_a_catalogue_per_page():
    import yaml

    toc = yaml.safe_load((tr.ROOT / "_toc.yml").read_text())

    def files(node):
        if isinstance(node, dict):
            if "file" in node or "root" in node:
                yield node.get("file") or node.get("root")
            for v in node.values():
                yield from files(v)
        elif isinstance(node, list):
            for v in node:
                yield from files(v)

    pages = set(files(toc))
    assert pages <= set(PAGES), f"pages without a catalogue: {sorted(pages - set(PAGES))}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_catalogue_complete_and_faithful(page):
    p = tr.problems(PAGES[page])
    shown = lambda xs: "\n  ".join(repr(x)[:160] for x in xs[:10])  # noqa: E731
    assert not p["untranslated"], f"{page}: {len(p['untranslated'])} messages untranslated:\n  {shown(p['untranslated'])}"
    assert not p["fuzzy"], f"{page}: {len(p['fuzzy'])} fuzzy messages (English changed; review):\n  {shown(p['fuzzy'])}"
    assert not p["tokens"], f"{page}: {len(p['tokens'])} translations lost a kept token:\n  {shown(p['tokens'])}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_catalogue_uses_the_terms(page):
    """No translation uses a variant locales/zh_CN/TERMS.md rules out (种子 for 随机种子, 平台期, ...)."""
    rules = tr.ruled_out()
    bad = [(m.id[:60], found) for m in tr.messages(PAGES[page]) if m.string and (found := tr.ruled_out_in(m.string, rules))]
    assert not bad, f"{page}: {len(bad)} translations with a variant TERMS.md rules out:\n  " + "\n  ".join(map(repr, bad[:10]))


def test_tokens_rules():
    en = ("BN {cite}`ioffe2015` gives {glue:text}`ics_ratio:.2f` times $\\mu_B$, see {ref}`the text <bn-sec>`, "
          "`torch.nn.BatchNorm1d` and [PyTorch](https://pytorch.org) <b>x</b>")
    zh = ("BN {cite}`ioffe2015` 给出 {glue:text}`ics_ratio:.2f` 倍的 $\\mu_B$，见 {ref}`正文 <bn-sec>`，"
          "`torch.nn.BatchNorm1d` 与 [PyTorch](https://pytorch.org) <b>x</b>")
    assert tr.missing(en, zh) == []
    assert tr.missing(en, zh.replace(":.2f", ":.3f")) == ["{glue:text}`ics_ratio:.2f`"]
    assert tr.missing(en, zh.replace("$\\mu_B$", "μ")) == ["$\\mu_B$"]
    assert tr.missing(en, zh.replace("<bn-sec>", "<other>")) == ["{ref}`...<bn-sec>`"]
    assert tr.missing(en, zh.replace("(https://pytorch.org)", "(x)")) == ["](https://pytorch.org)"]


def test_markdown_blocks_are_replaced():
    table = {"A paragraph over two lines.": "一段文字。", "Title": "标题", "an item": "一项",
             "Question": "问题"}
    md = "# Title\n\nA paragraph\nover two lines.\n\n- an item\n\n```{exercise} Question\n:label: x\n```\n\n```python\nTitle\n```"
    out, done, left = tr.translate_markdown(md, table)
    assert out == "# 标题\n\n一段文字。\n\n- 一项\n\n```{exercise} 问题\n:label: x\n```\n\n```python\nTitle\n```"
    assert (done, left) == (4, 0)


def test_chinese_notebooks(tmp_path):
    """``make notebooks-zh``: every markdown block with English words finds its message, and every
    figure's caption and alt text is translated."""
    import json
    import re

    stats = tr.zh_notebooks(tmp_path)
    assert set(stats) == {p.stem for p in (tr.ROOT / "book").glob("*.ipynb")}
    left = {name: n for name, (done, n) in stats.items() if n}
    assert not left, f"markdown blocks with no message: {left}"
    for path in tmp_path.glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            md = cell["metadata"].get("mystnb", {})
            for text in (md.get("figure", {}).get("caption"), md.get("image", {}).get("alt")):
                assert text is None or re.search(r"[\u4e00-\u9fff]", text), (path.name, text[:80])


def test_zh_toc_translates_every_caption_and_keeps_the_chapters(tmp_path):
    import yaml

    from bnutils.translations import zh_toc

    en = yaml.safe_load((tr.ROOT / "_toc.yml").read_text())
    zh = yaml.safe_load(zh_toc(tmp_path / "_toc.yml").read_text())
    assert [p["chapters"] for p in zh["parts"]] == [p["chapters"] for p in en["parts"]]
    assert zh["root"] == en["root"]
    for part in zh["parts"]:
        assert re.search(r"[\u3400-\u9fff]", part["caption"]), part["caption"]
