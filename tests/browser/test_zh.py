"""The Chinese edition (``make book-zh``; in ``make test`` the smoke-scale one of
``make book-zh-smoke-build``), every page in headless Chromium, served with the English book as
the site is published: the English book at the root, the Chinese edition under ``zh/``.

Each Chinese page: its Chinese drawn by a CJK font (Chromium's own account of the fonts that drew
the title and a paragraph: no box, no Latin font), its maths typeset by MathJax, no glue key or
MyST role left visible, no paragraph of the main text left in English (a paragraph with more than
``LATIN_MAX`` Latin letters outside code, maths, links and citations must contain Chinese), the
theme's header buttons and every table header of the article in Chinese, and a
link to the same page of the English book that links back (followed by clicks in the browser on
:data:`CLICKED`'s pages, read from the HTML on the others).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urljoin

import pytest

from readers_env import HTML, missing
from test_book_html import open_page, text_outside_code

ZH_HTML = Path(os.environ.get("BNBOOK_ZH_HTML", HTML / "zh"))
PAGES = sorted(
    p.relative_to(ZH_HTML).as_posix()
    for p in ZH_HTML.rglob("*.html")
    if not p.relative_to(ZH_HTML).parts[0].startswith(("_", "."))
) or ["index.html"]  # no build yet: one test, which skips (or fails under CI) with the reason
SEARCH_PAGES = {"search.html", "genindex.html"}  # Sphinx's own pages: no article body, no edition link
REDIRECTS = {"index.html"}  # Jupyter Book's redirect to the first page
HEADER_WORDS_KEPT = ["smoke", "book", "paper", "mnist5k"]  # scale and data names, kept in Chinese text
LATIN_MAX = 40  # a sentence of English; names (BN, LayerNorm, mnist5k) and units stay below it
# A MyST role or glue key as the reader would see it if it were not resolved
CLICKED = {"book/intro.html", "book/batchnorm.html"}  # the edition links followed in the browser
EDITION_LINK = re.compile(r'<a class="bnbook-edition-link" href="([^"]+)" hreflang="([^"]+)"')
RAW_ROLE = re.compile(r"\{(glue(:\w+)?|cite(:\w+)?|ref|doc|eq|numref|term|download|prf:\w+)\}`?")


@pytest.fixture(scope="session")
def zh_url(book_url):
    if not (ZH_HTML / "index.html").exists():
        missing(f"The Chinese edition ({ZH_HTML})", "run `make book-zh-smoke-build` (or `make book-zh`) first, or set BNBOOK_ZH_HTML")
    if ZH_HTML.resolve() != (HTML / "zh").resolve():
        missing(f"The Chinese edition under {HTML / 'zh'}", "`make book-zh` links it there; the edition links need it")
    return f"{book_url}/zh"


def cjk_fonts(page, selector: str) -> list[str]:
    """The fonts Chromium used to draw the first element matching ``selector``."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]  # querySelector finds the rest
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    if not node:
        return []
    return [f["familyName"] for f in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]]


ENGLISH_PARAGRAPHS = """(latinMax) => {
    const out = [];
    const article = document.querySelector('article.bd-article');
    if (!article) return out;
    for (const p of article.querySelectorAll('p, li > p, dd, td, figcaption, .admonition-title')) {
        if (p.closest('.cell_output, .output, pre, .highlight, .bibliography, .citation, .footnote, nav'))
            continue;
        const c = p.cloneNode(true);
        c.querySelectorAll('code, pre, mjx-container, .math, a.reference, .pasted-text, .pasted-inline, script')
            .forEach(e => e.remove());
        const text = c.textContent;
        const latin = (text.match(/[A-Za-z]/g) || []).length;
        if (latin > latinMax && !/[\\u3400-\\u9fff]/.test(text)) out.push(text.trim().slice(0, 120));
    }
    return out;
}"""


@pytest.mark.parametrize("path", PAGES)
def test_chinese_page_reads_in_chinese(browser, zh_url, book_url, path):
    page, problems = open_page(browser, book_url, f"zh/{path}")  # one site: both editions reachable
    try:
        assert page.evaluate("() => document.documentElement.lang").lower().startswith("zh")
        assert not problems["failed"], f"{path} has missing assets: {problems['failed']}"
        assert not problems["external"], f"{path} requests outside the book: {problems['external']}"

        # Chinese glyphs drawn by a CJK font, in the title and in the first paragraph with Chinese
        if path not in SEARCH_PAGES:
            title = page.locator("article h1").first.inner_text()
            assert re.search(r"[\u3400-\u9fff]", title), f"{path}: title not in Chinese: {title!r}"
            for selector in ("article h1 [lang='zh']", "article p [lang='zh']"):
                fonts = cjk_fonts(page, selector)
                if selector.startswith("article p") and not fonts:
                    continue  # a page without a paragraph of prose (the bibliography)
                assert fonts and all("CJK" in f or "Noto Sans SC" in f for f in fonts), (path, selector, fonts)

            # every heading of the article and every caption of the sidebar in Chinese (a heading
            # like "1. Higher learning rates" once stayed English: its translation parsed as a list)
            english_headings = page.evaluate(
                r"""() => [...document.querySelectorAll('article h1, article h2, article h3, article h4,'
                    + ' .bd-sidebar-primary p.caption')]
                    .map(h => h.textContent.replace('#', '').trim())
                    .filter(t => t && !/[\u3400-\u9fff]/.test(t))""")
            assert not english_headings, f"{path}: headings or captions in English: {english_headings}"

            # the theme's header buttons (Repository, Open issue, ...): their words in Chinese
            english_buttons = page.evaluate(
                r"""() => [...document.querySelectorAll('.bd-header-article .btn__text-container')]
                    .map(e => e.textContent.trim())
                    .filter(t => /^[A-Za-z][a-z]+( [a-z]+)*$/.test(t) && !['Binder', 'Colab'].includes(t))""")
            assert not english_buttons, f"{path}: header buttons in English: {english_buttons}"

        # every table header of the article (myst-nb's execution table on the running page, the
        # tables inside admonitions on the instructors page, ...) in Chinese where it has words
        # (an English word: four letters or more, not a scale's or a data set's name)
        english_headers = page.evaluate(
            r"""(kept) => [...document.querySelectorAll('article.bd-article th')]
                .filter(e => !e.closest('.cell_output, .output, pre, .highlight'))
                .map(e => e.textContent.trim())
                .filter(t => !/[\u3400-\u9fff]/.test(t)
                    && (t.match(/[A-Za-z]{4,}/g) || []).some(w => !kept.includes(w.toLowerCase())))""",
            HEADER_WORDS_KEPT)
        assert not english_headers, f"{path}: table headers in English: {english_headers}"

        # maths typeset, no raw TeX, no glue key or MyST role left
        untypeset = page.evaluate(
            "() => [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length")
        assert not untypeset, f"{path}: {untypeset} formulas not typeset"
        text = text_outside_code(page)
        raw = sorted({m.group(0) for m in RAW_ROLE.finditer(text)})
        assert not raw, f"{path}: MyST roles or glue keys visible: {raw}"

        # no paragraph of the main text left in English
        english = page.evaluate(ENGLISH_PARAGRAPHS, LATIN_MAX)
        assert not english, f"{path}: {len(english)} paragraphs in English:\n  " + "\n  ".join(english[:8])

        assert not problems["console"], f"{path}: console errors: {problems['console']}"

        # the link to the same page in the English book, which links back: followed by a click on
        # CLICKED's pages; on the others (the same template wrote it) the link's target and the
        # target's link back are read from the HTML (two page loads less each)
        if path in SEARCH_PAGES | REDIRECTS:
            return
        link = page.locator("a.bnbook-edition-link")
        assert link.count() == 1, f"{path}: {link.count()} links to the other edition"
        assert link.get_attribute("hreflang") == "en"
        if path not in CLICKED:
            target = urljoin(page.url, link.get_attribute("href"))
            assert target == f"{book_url}/{path}", (path, target)
            back = EDITION_LINK.findall((HTML / path).read_text())
            assert [(urljoin(target, href), lang) for href, lang in back] == [(f"{zh_url}/{path}", "zh-CN")], (path, back)
            return
        link.click()  # the other page's DOM is enough: its figures and maths are another test's
        page.wait_for_url(f"{book_url}/{path}", wait_until="domcontentloaded")
        assert page.evaluate("() => document.documentElement.lang").lower().startswith("en")
        back = page.locator("a.bnbook-edition-link")
        assert back.get_attribute("hreflang") == "zh-CN"
        back.click()
        page.wait_for_url(f"{zh_url}/{path}", wait_until="domcontentloaded")
    finally:
        page.context.close()
