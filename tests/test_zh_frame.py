"""The Chinese edition's frame and generated text (issue 23), built by Sphinx on a small book with
the project's extension (_ext/book_html.py), theme and catalogues:

* the header's buttons ("Repository", "Open issue": sphinx-book-theme's messages its zh_CN
  catalogue lacks) come from ``locales/zh_CN/LC_MESSAGES/booktheme.po``, and every message the
  installed theme uses is translated by its catalogue or ours;
* a table inside a directive (book/instructors.md's per-step costs in an admonition) is extracted
  by the gettext builder and translated (myst-parser leaves its cells without a source);
* myst-nb's execution table (``{nb-exec-table}``, book/running.md) has Chinese headers and
  execution modes, and names each chapter by its translated title;
* the titles of sphinx-exercise's exercises (the directive's argument) are extracted by the gettext
  builder and translated, in the exercise's box, its solution's title and references to it, with
  TERMS.md's 习题 (not sphinx-exercise's 练习) and full-width brackets;
* the English edition of the same book is unchanged.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import sphinx_build

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
FRAME_CATALOGUES = ("booktheme.po", "book_html.po", "sphinx.po")

INDEX = """\
# Front page

```{admonition} Costs
:class: note

| network (batch 128) | standard |
| --- | --- |
| MLP, 3 × 100 units | about 1 ms |
```

```{nb-exec-table}
```

```{toctree}
chapter
```
"""

PAGE_PO = """\
msgid ""
msgstr ""
"Content-Type: text/plain; charset=utf-8\\n"

msgid "Front page"
msgstr "首页"

msgid "Costs"
msgstr "开销"

msgid "network (batch 128)"
msgstr "网络（批大小 128）"

msgid "standard"
msgstr "标准网络"

msgid "MLP, 3 × 100 units"
msgstr "MLP，3 × 100 个神经元"

msgid "about 1 ms"
msgstr "约 1 ms"
"""

CHAPTER_PO = """\
msgid ""
msgstr ""
"Content-Type: text/plain; charset=utf-8\\n"

msgid "A chapter"
msgstr "一章"
"""


def write_conf(src: Path, language: str | None, extensions: list[str], settings: str) -> Path:
    """``src/conf.py`` of a small book with the project's ``_ext`` and the catalogues of
    ``src/locales/zh_CN/LC_MESSAGES`` (made empty; returned) in ``language``, plus ``settings``."""
    (src / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / '_ext')!r})\n"
        f"extensions = {extensions!r}\n"
        + settings +
        "mathjax_path = 'mathjax/tex-mml-chtml.js'\n"
        f"language = {language!r}\n"
        "locale_dirs = ['locales/']\n"
        "gettext_compact = False\n"
    )
    messages = src / "locales" / "zh_CN" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    return messages


def make_book(src: Path, language: str | None) -> None:
    import nbformat

    src.mkdir(parents=True)
    (src / "index.md").write_text(INDEX)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"), nbformat.v4.new_code_cell("1 + 1")]
    nbformat.write(nb, src / "chapter.ipynb")
    messages = write_conf(src, language, ["myst_nb", "book_html"],
                          "html_theme = 'sphinx_book_theme'\n"
                          "html_theme_options = {'repository_url': 'https://github.com/bnbook/how-batch-normalization-helps',\n"
                          "                      'use_repository_button': True, 'use_issues_button': True}\n"
                          "nb_execution_mode = 'cache'\n")
    for name in FRAME_CATALOGUES:  # copies: the build writes the .mo files next to them
        shutil.copy(LOCALES / name, messages / name)
    (messages / "index.po").write_text(PAGE_PO)
    (messages / "chapter.po").write_text(CHAPTER_PO)


def build(src: Path, out: Path, builder: str = "html", *options: str) -> None:
    assert sphinx_build("-q", "-b", builder, "-W", *options, "-d", str(out / ".doctrees"), str(src), str(out)) == 0


@pytest.fixture(scope="module")
def zh_book(tmp_path_factory):
    src = tmp_path_factory.mktemp("zh") / "src"
    make_book(src, "zh_CN")
    build(src, src.parent / "html")
    return src.parent / "html"


def soup(path: Path):
    from bs4 import BeautifulSoup

    return BeautifulSoup(path.read_text(), "html.parser")


def text(element) -> str:
    return " ".join(element.get_text().split())


def test_header_buttons_in_chinese(zh_book):
    page = soup(zh_book / "index.html")
    buttons = {a["class"][2]: a for a in page.select("a.btn") if len(a.get("class", [])) > 2}
    assert text(buttons["btn-source-repository-button"]) == "仓库"
    assert text(buttons["btn-source-issues-button"]) == "创建议题"
    assert page.select_one(".dropdown-source-buttons button")["aria-label"] == "源码库"
    heading_link = page.select_one("h1 a.headerlink")
    assert heading_link["title"] == "链接到此标题"


def test_table_in_a_directive_is_translated(zh_book):
    cells = [text(c) for c in soup(zh_book / "index.html").select(".admonition table td, .admonition table th")]
    assert cells == ["网络（批大小 128）", "标准网络", "MLP，3 × 100 个神经元", "约 1 ms"], cells


def test_execution_table_in_chinese(zh_book):
    table = next(t for t in soup(zh_book / "index.html").select("table") if not t.find_parent(class_="admonition"))
    assert [text(th) for th in table.select("th")] == ["章节", "修改时间", "执行方式", "运行时间（秒）", "状态"]
    row = [text(td) for td in table.select("tbody td")]
    assert row[0] == "一章" and row[2] == "缓存" and row[4] == "✅", row
    assert table.select_one("tbody a")["href"] == "chapter.html"


def test_english_edition_unchanged(tmp_path):
    src = tmp_path / "src"
    make_book(src, "en")
    build(src, tmp_path / "html")
    page = soup(tmp_path / "html" / "index.html")
    page.select_one(".bnbook-edition").decompose()  # the link to the other edition, 中文版
    assert not re.search(r"[\u4e00-\u9fff]", page.get_text()), "Chinese in the English edition"
    assert "Repository" in page.select_one(".btn-source-repository-button").get_text()
    table = next(t for t in page.select("table") if not t.find_parent(class_="admonition"))
    assert [text(th) for th in table.select("th")][:3] == ["Document", "Modified", "Method"]
    assert text(table.select_one("tbody td")) == "chapter"


def test_gettext_extracts_tables_in_directives(tmp_path):
    """What ``make update-translations`` extracts: the admonition's table cells are messages."""
    src = tmp_path / "src"
    make_book(src, "en")
    build(src, tmp_path / "pot", "gettext", "-D", "nb_execution_mode=off")
    pot = (tmp_path / "pot" / "index.pot").read_text()
    for cell in ("network (batch 128)", "standard", "MLP, 3 × 100 units", "about 1 ms"):
        assert f'msgid "{cell}"' in pot, cell


def theme_messages() -> set[str]:
    """Every message sphinx-book-theme translates (``translation("...")`` in its Python,
    ``translate('...')`` in its templates)."""
    import sphinx_book_theme

    base = Path(sphinx_book_theme.__file__).parent
    found = set()
    for path in [*base.rglob("*.py"), *base.rglob("*.html")]:
        found |= {m.group(2) for m in re.finditer(r"""translat(?:ion|e)\((["'])([^"']+)\1\)""", path.read_text())}
    return found


def test_every_theme_message_translated():
    from babel.messages.pofile import read_po
    import sphinx_book_theme

    theme_po = Path(sphinx_book_theme.__file__).parent / "theme/sphinx_book_theme/static/locales/zh_CN/LC_MESSAGES/booktheme.po"
    translated = set()
    for path in (theme_po, LOCALES / "booktheme.po"):
        with open(path, "rb") as f:
            translated |= {m.id for m in read_po(f) if m.id and m.string and not m.fuzzy}
    used = theme_messages()
    assert {"Repository", "Open issue"} <= used
    assert not used - translated, f"sphinx-book-theme's messages without a zh_CN translation: {sorted(used - translated)}"


def test_instructors_tables_translated(tmp_path):
    """book/instructors.md in Chinese with its catalogue: every table cell with English words outside
    code is translated, the per-step costs inside the admonition too."""
    import yaml

    src = tmp_path / "src"
    (src / "book").mkdir(parents=True)
    shutil.copy(ROOT / "book" / "instructors.md", src / "book" / "instructors.md")
    messages = src / "locales" / "zh_CN" / "LC_MESSAGES" / "book"
    messages.mkdir(parents=True)
    shutil.copy(LOCALES / "book" / "instructors.po", messages / "instructors.po")
    myst = yaml.safe_load((ROOT / "_config.yml").read_text())["parse"]["myst_enable_extensions"]
    (src / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / '_ext')!r})\n"
        "extensions = ['myst_nb', 'sphinx_exercise', 'book_html']\n"
        f"myst_enable_extensions = {myst!r}\n"
        "root_doc = 'book/instructors'\n"
        "nb_execution_mode = 'off'\n"
        "mathjax_path = 'mathjax/tex-mml-chtml.js'\n"
        "language = 'zh_CN'\nlocale_dirs = ['locales/']\ngettext_compact = False\n"
        "suppress_warnings = ['ref.doc', 'myst.xref_missing']\n"
    )
    build(src, tmp_path / "html")
    page = soup(tmp_path / "html" / "book" / "instructors.html")
    tables = page.select("table")
    assert len(tables) >= 8 and page.select(".admonition table")
    english = []
    for cell in page.select("table td, table th"):
        for code in cell.select("code"):
            code.decompose()
        if re.search(r"[A-Za-z]{3,}", text(cell)) and not re.search(r"[\u3000-\u9fff\uff00-\uffef]", text(cell)):
            english.append(text(cell))
    assert not english, f"table cells in English: {english}"
    costs = [text(c) for c in page.select(".admonition table th")]
    assert costs == ["网络（除注明外，批大小为 128）", "标准网络", "有 BN", "带噪声的 BN"], costs


# A page with exercises as the chapters write them: a numbered one and its solution, a gated pair
# (exercise-start, solution-start), and one without a number whose title has maths and code.
EXERCISES = """\
# Exercises

```{exercise} Why the plateau reverses the ordering
:label: ex-plateau

Explain it.
```

```{solution} ex-plateau
Because.
```

```{exercise-start} Equal loss instead of equal steps
:label: ex-equal-loss
```

Compare them.

```{exercise-end}
```

```{solution-start} ex-equal-loss
:class: dropdown
```

Compared.

```{solution-end}
```

:::{exercise} Where $\\gamma$ and `BatchNorm1d` stop
:label: ex-maths
:nonumber:

Find it.
:::

```{solution} ex-maths
Found.
```

See {ref}`ex-equal-loss` and {numref}`ex-plateau`.
"""

EXERCISES_PO = r"""msgid ""
msgstr ""
"Content-Type: text/plain; charset=utf-8\n"

msgid "Exercises"
msgstr "习题"

msgid "Why the plateau reverses the ordering"
msgstr "为什么平台区会颠倒排序"

msgid "Equal loss instead of equal steps"
msgstr "等损失而非等步数"

msgid "Where $\\gamma$ and `BatchNorm1d` stop"
msgstr "$\\gamma$ 与 `BatchNorm1d` 在何处失效"

msgid "See {ref}`ex-equal-loss` and {numref}`ex-plateau`."
msgstr "见 {ref}`ex-equal-loss` 与 {numref}`ex-plateau`。"
"""

TITLES = {
    "Why the plateau reverses the ordering": "为什么平台区会颠倒排序",
    "Equal loss instead of equal steps": "等损失而非等步数",
    "Where $\\gamma$ and `BatchNorm1d` stop": "$\\gamma$ 与 `BatchNorm1d` 在何处失效",
}


def make_exercise_book(src: Path, language: str) -> None:
    src.mkdir(parents=True)
    (src / "index.md").write_text(EXERCISES)
    messages = write_conf(src, language, ["myst_nb", "sphinx_exercise", "book_html"],
                          "myst_enable_extensions = ['dollarmath', 'colon_fence']\n"
                          "nb_execution_mode = 'off'\n")
    shutil.copy(LOCALES / "exercise.po", messages / "exercise.po")
    (messages / "index.po").write_text(EXERCISES_PO)


def admonition_titles(page) -> list[str]:
    out = []
    for title in page.select(".admonition-title"):
        for math in title.select(".math"):
            math.replace_with(math.get_text())
        out.append(text(title))
    return out


def test_gettext_extracts_exercise_titles(tmp_path):
    """What ``make update-translations`` extracts: each exercise's title, as the directive's
    argument is written (maths and code included), once (not again in its solution's title)."""
    from babel.messages.pofile import read_po

    src = tmp_path / "src"
    make_exercise_book(src, "en")
    build(src, tmp_path / "pot", "gettext")
    with open(tmp_path / "pot" / "index.pot", "rb") as f:
        pot = {m.id: m for m in read_po(f) if m.id}
    for title in TITLES:
        assert title in pot, f"exercise title not extracted: {title!r}; messages: {sorted(pot)}"
        assert len(pot[title].locations) == 1, pot[title].locations


def test_exercise_titles_in_chinese(tmp_path):
    """The zh edition: the boxes' and solutions' titles and the references in Chinese, 习题 N with
    full-width brackets, maths and code kept."""
    src = tmp_path / "src"
    make_exercise_book(src, "zh_CN")
    build(src, tmp_path / "html")
    page = soup(tmp_path / "html" / "index.html")
    titles = admonition_titles(page)
    assert titles[:4] == [
        "习题 1 （为什么平台区会颠倒排序）",
        "解答 习题 1（为什么平台区会颠倒排序）",
        "习题 2 （等损失而非等步数）",
        "解答 习题 2（等损失而非等步数）",
    ], titles
    assert re.fullmatch(r"习题（\\\(\\gamma\\\) 与 BatchNorm1d 在何处失效）", titles[4]), titles[4]
    assert titles[5] == "解答 " + titles[4], titles
    assert not any("练习" in t or re.search(r"[A-Za-z]{4,}", re.sub(r"BatchNorm1d|gamma", "", t))
                   for t in titles), titles
    refs = [text(a) for a in page.select("p:not(.admonition-title) a.reference.internal") if a["href"].startswith("#ex-")]
    assert refs == ["习题 2", "习题 1"], refs


def test_exercise_titles_in_english(tmp_path):
    """The English edition keeps sphinx-exercise's titles (and no placeholder of the translation)."""
    src = tmp_path / "src"
    make_exercise_book(src, "en")
    build(src, tmp_path / "html")
    page = soup(tmp_path / "html" / "index.html")
    titles = admonition_titles(page)
    assert titles[:2] == ["Exercise 1 (Why the plateau reverses the ordering)",
                          "Solution to Exercise 1 (Why the plateau reverses the ordering)"], titles
    assert titles[4].startswith("Exercise (") and "BatchNorm1d" in titles[4], titles
    assert not page.select(".admonition-title span[translatable]")


def test_exercise_titles_in_the_chinese_pdf(tmp_path):
    """``make pdf-zh``'s route (Sphinx's LaTeX builder): the boxes' titles in Chinese too."""
    src = tmp_path / "src"
    make_exercise_book(src, "zh_CN")
    build(src, tmp_path / "latex", "latex")
    tex = next((tmp_path / "latex").glob("*.tex")).read_text()
    boxes = re.findall(r"\\begin\{sphinxadmonition\}\{note\}\{(.*)\}$", tex, re.M)
    assert boxes[:4] == ["习题 1（为什么平台区会颠倒排序）", "解答 习题 1（为什么平台区会颠倒排序）",
                         "习题 2（等损失而非等步数）", "解答 习题 2（等损失而非等步数）"], boxes
    assert not any(title in tex for title in ("Why the plateau", "Equal loss", "练习"))
