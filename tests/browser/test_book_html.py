"""Every page of the built book, opened in headless Chromium over http://127.0.0.1.

Each page must load with no console error and no failed or external request (the book reads
offline: MathJax is served from ``_static``); its maths must be typeset by MathJax with no raw TeX
left; every image must load; every dropdown (exercise solutions, hidden code) must open; every
glued number must be there. A chapter, in the same visit (a page's load, MathJax and images are most
of a browser test's time): its figures' alt texts and captions and their legibility on a phone
(test_figures.py), and the dark theme. The first screen of each chapter, in the light and the dark
theme, is saved to ``_build/screenshots/`` for a person to look at. Generic over the pages that exist.
"""

from __future__ import annotations

import json
import re

import pytest

from readers_env import HTML, ROOT
from test_figures import check_captions_and_alt_text, check_legible_on_a_phone

# Pages a reader can open: every HTML file except Sphinx's asset folders and the Chinese edition
# under zh/ (test_zh.py reads it; `make book-zh` copies it into the published book's folder)
PAGES = sorted(
    p.relative_to(HTML).as_posix()
    for p in HTML.rglob("*.html")
    if not p.relative_to(HTML).parts[0].startswith(("_", ".")) and p.relative_to(HTML).parts[0] != "zh"
) or ["index.html"]  # no build yet: one test, which skips (or fails under CI) with the reason
CHAPTERS = [p for p in PAGES if p.startswith("book/") and p not in ("book/genindex.html",)]

# Raw TeX that MathJax should have replaced; looked for outside code.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{")
# A glue role or directive that was not pasted.
RAW_GLUE = re.compile(r"\{glue(:\w+)?\}")


def open_page(browser, book_url: str, path: str, color_scheme: str = "light"):
    """Open ``path``; returns (page, problems) where problems collects errors as they happen."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=color_scheme)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = {"console": [], "failed": [], "external": []}

    def route(r):
        url = r.request.url
        if url.startswith(book_url) or url.startswith(("data:", "blob:", "about:")):
            r.continue_()
        else:
            problems["external"].append(url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and problems["console"].append(m.text))
    page.on("pageerror", lambda e: problems["console"].append(f"uncaught: {e}"))
    page.on(
        "requestfailed",
        lambda r: r.url.startswith(book_url) and problems["failed"].append(f"{r.url}: {r.failure}"),
    )
    page.on(
        "response",
        lambda r: r.status >= 400 and problems["failed"].append(f"{r.url}: HTTP {r.status}"),
    )
    page.goto(f"{book_url}/{path}", wait_until="load")
    if 'http-equiv="refresh"' in (HTML / path).read_text().lower():  # Jupyter Book's index.html redirects
        page.wait_for_url(lambda url: url != f"{book_url}/{path}", wait_until="load")
    # then what the checks read: the web fonts and MathJax (images are awaited by the checks that
    # read them). Not Playwright's "networkidle" (no request for 0.5 s), which its authors
    # discourage: here it once never came, on a page whose every request had finished, and a CI
    # run waited a minute for it
    page.evaluate("() => document.fonts.ready.then(() => true)")
    wait_for_mathjax(page)
    return page, problems


def wait_for_mathjax(page) -> None:
    if page.evaluate("() => document.querySelector('.math') !== null"):
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("async () => { await MathJax.startup.promise; }")


def text_outside_code(page) -> str:
    return page.evaluate(
        """() => {
        const root = (document.querySelector('article.bd-article') || document.body).cloneNode(true);
        root.querySelectorAll('pre, code, .highlight, mjx-container, script, style')
            .forEach(e => e.remove());
        return root.innerText;
    }"""
    )


def count_glue_roles(markdown: str) -> int:
    """Glue roles in a piece of MyST markdown that will be pasted: a ``{glue...}`` followed by its
    `argument`, in prose or inside a directive's body; not those shown as code (```` ``{glue:text}`` ````
    in a sentence, or a fenced example)."""
    from markdown_it import MarkdownIt

    n = 0
    for tok in MarkdownIt("commonmark").parse(markdown):
        if tok.type == "fence" and tok.info.startswith("{"):
            n += count_glue_roles(tok.content)  # a directive: its body is markdown again
        elif tok.type == "inline":
            kids = tok.children or []
            n += sum(1 for a, b in zip(kids, kids[1:])
                     if a.type == "text" and b.type == "code_inline" and re.search(r"\{glue(:\w+)?\}$", a.content))
    return n


def glue_roles(path: str) -> int:
    """How many glue roles the source of a page has in its markdown cells."""
    source = ROOT / path.replace(".html", ".ipynb")
    if not source.exists():
        source = source.with_suffix(".md")
        return count_glue_roles(source.read_text()) if source.exists() else 0
    cells = json.loads(source.read_text())["cells"]
    return sum(
        count_glue_roles("".join(c["source"]))
        for c in cells
        if c["cell_type"] == "markdown" and "remove-cell" not in c.get("metadata", {}).get("tags", [])
    )


@pytest.mark.parametrize("path", PAGES)
def test_page_reads_well(browser, book_url, screenshots, path):
    page, problems = open_page(browser, book_url, path)
    try:
        if path in CHAPTERS:
            page.screenshot(path=str(screenshots / path.replace("/", "-").replace(".html", ".png")))
            check_captions_and_alt_text(page, path)

        assert not problems["external"], f"{path} requests outside the book: {problems['external']}"
        assert not problems["failed"], f"{path} has missing assets: {problems['failed']}"

        # Maths: every .math element typeset by MathJax, no raw TeX left in the prose.
        untypeset = page.evaluate(
            """() => [...document.querySelectorAll('.math')]
                .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80))"""
        )
        assert not untypeset, f"{path}: maths not typeset: {untypeset}"
        text = text_outside_code(page)
        raw = sorted({m.group(0) for m in RAW_TEX.finditer(text)})
        assert not raw, f"{path}: raw TeX left in the text: {raw}"

        # Figures: every image loaded and has a size.
        broken = page.evaluate(
            """async () => {
            const imgs = [...document.images];
            imgs.forEach(i => { i.loading = 'eager'; });
            await Promise.all(imgs.map(i => i.complete ? null
                : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
            return imgs.filter(i => i.naturalWidth === 0).map(i => i.src.slice(0, 120));
        }"""
        )
        assert not broken, f"{path}: images that did not load: {broken}"

        # Glue: nothing left unpasted, every pasted value non-empty, one per role in the source.
        glue_left = sorted({m.group(0) for m in RAW_GLUE.finditer(text)})
        assert not glue_left, f"{path}: unresolved glue: {glue_left}"
        pasted = page.evaluate(
            """() => [...document.querySelectorAll('.pasted-text, .pasted-inline, .pasted-math')]
                .map(e => e.textContent.trim() !== '' || e.querySelector('img, mjx-container') !== null)"""
        )
        assert all(pasted), f"{path}: empty glued values: {pasted.count(False)} of {len(pasted)}"
        assert len(pasted) >= glue_roles(path), f"{path}: {glue_roles(path)} glue roles, {len(pasted)} pasted"

        # Dropdowns: every solution is one, hidden at first; each opens on a click.
        not_dropdown = page.evaluate(
            "() => [...document.querySelectorAll('.solution')].filter(e => !e.matches('.dropdown')).map(e => e.id)"
        )
        assert not not_dropdown, f"{path}: solutions not in a dropdown: {not_dropdown}"
        shown_at_first = page.evaluate(
            "() => [...document.querySelectorAll('.solution.dropdown:not(.toggle-hidden)')].map(e => e.id)"
        )
        assert not shown_at_first, f"{path}: solutions open before a click: {shown_at_first}"
        n_hidden = page.locator(".toggle-hidden").count()
        for _ in range(n_hidden):
            page.locator(".toggle-hidden button.toggle-button").first.click()
        page.wait_for_function("() => document.querySelector('.toggle-hidden') === null")
        hidden_bodies = page.evaluate(
            """() => [...document.querySelectorAll('.solution.dropdown > :not(.admonition-title)')]
                .filter(e => e.offsetParent === null).length"""
        )
        assert not hidden_bodies, f"{path}: {hidden_bodies} solution parts still hidden after a click"
        for i in range(page.locator("details").count()):
            details = page.locator("details").nth(i)
            if details.is_visible() and not details.evaluate("d => d.open"):
                details.locator("summary").first.click()
                assert details.evaluate("d => d.open"), f"{path}: details #{i} did not open"

        if path in CHAPTERS:
            check_dark_theme(page, path, screenshots)
            check_legible_on_a_phone(page, path, screenshots)
        assert not problems["console"], f"{path}: console errors: {problems['console']}"
    finally:
        page.context.close()


def check_dark_theme(page, path: str, screenshots) -> None:
    """The reader's system switches to dark (the theme follows it, "auto"): the page turns dark, and
    every figure has an opaque background, so its black text stays legible."""
    page.emulate_media(color_scheme="dark")
    page.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    page.evaluate("() => window.scrollTo(0, 0)")  # the first screen, as in the light screenshot
    page.screenshot(path=str(screenshots / path.replace("/", "-").replace(".html", "-dark.png")))
    see_through = page.evaluate(
        """async () => {
        const out = [];
        for (const img of document.querySelectorAll('article.bd-article img')) {
            if (!img.complete) await new Promise(r => { img.onload = img.onerror = r; });
            if (img.naturalWidth === 0) continue;
            const bg = getComputedStyle(img).backgroundColor;
            if (bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') continue;
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            const a = g.getImageData(0, 0, 1, 1).data[3];
            if (a < 255) out.push(img.src.slice(0, 120));
        }
        return out;
    }"""
    )
    assert not see_through, f"{path}: transparent figures on the dark theme: {see_through}"


NOTEBOOK_CHAPTERS = [p for p in CHAPTERS if (ROOT / p).with_suffix(".ipynb").exists()]


@pytest.mark.parametrize("path", NOTEBOOK_CHAPTERS or ["book/intro.html"])
def test_notebook_buttons(book_url, path):
    """A notebook's page has a working .ipynb download and Colab and Binder launch buttons, all
    made from the one repository URL in _config.yml."""
    import urllib.request

    import yaml

    if path not in NOTEBOOK_CHAPTERS:
        pytest.skip("no chapter is a notebook yet")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/").rstrip("/")
    branch = config["repository"].get("branch", "main")
    nb = path.replace(".html", ".ipynb")
    html = (HTML / path).read_text()
    colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/{nb}"
    binder = f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=lab/tree/{nb}"
    assert f'href="{colab}"' in html, f"{path}: no Colab button for {colab}"
    assert f'href="{binder}"' in html, f"{path}: no Binder button for {binder}"
    download = f"{book_url}/_sources/{nb}"
    assert f'href="../_sources/{nb}"' in html, f"{path}: no .ipynb download button"
    with urllib.request.urlopen(download) as r:
        assert json.loads(r.read())["cells"], f"{download} is not a notebook"
