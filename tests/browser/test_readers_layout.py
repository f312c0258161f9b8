"""The book on a phone, a tablet and a desktop, and its Chinese text, in headless Chromium (issue 18).

At 390, 800 and 1280 px wide, the button a reader sees for the table of contents (the primary
sidebar) and the one for the page's contents (the secondary sidebar) must open them and let them
close again: a dialog on narrow screens, a sidebar that collapses on wide ones (see
``_ext/static/sidebar-toggles.js``). The Chinese of the glossary is marked ``lang="zh"`` and drawn
with a CJK font, not boxes. Screenshots go to ``_build/screenshots/readers-*.png``.
"""

from __future__ import annotations

import subprocess

import pytest

from readers_env import HTML, missing

WIDTHS = {"phone": 390, "tablet": 800, "desktop": 1280}
CHAPTER = "book/batchnorm.html"  # a chapter with sections, so the page has contents to show
GLOSSARY = "book/summary.html"


def open_at(browser, book_url: str, path: str, width: int):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{book_url}/{path}", wait_until="load")
    page.evaluate("() => document.fonts.ready.then(() => true)")  # not "networkidle": see test_book_html.open_page
    return page, errors


def visible_button(page, selector: str):
    buttons = [b for b in page.locator(selector).all() if b.is_visible()]
    assert buttons, f"no visible {selector} button"
    return buttons[0]


def dialog_open(page, dialog_id: str) -> bool:
    return page.evaluate(f"() => document.getElementById('{dialog_id}').open")


def click_outside(page, width: int, side: str) -> None:
    """A click on the dialog's backdrop, on the side away from the dialog."""
    x = width - 5 if side == "left" else 5
    page.mouse.click(x, 400)


def sidebar_shown(page, sidebar_id: str) -> bool:
    return page.evaluate(
        f"""() => {{
        const e = document.getElementById('{sidebar_id}');
        if (!e) return false;
        const s = getComputedStyle(e), r = e.getBoundingClientRect();
        return s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.right > 0
            && r.left < window.innerWidth;
    }}"""
    )


def check_toggle(page, width, toggle, sidebar_id, dialog_id, link_selector, side):
    """``toggle``'s visible button opens and closes its sidebar, twice (each click does something)."""
    button = visible_button(page, toggle)
    if page.evaluate("() => window.matchMedia('(min-width: 992px)').matches") and side == "left":
        # wide screens: the sidebar is on the page; the button collapses it and brings it back
        assert sidebar_shown(page, sidebar_id), f"{sidebar_id} not shown at {width}px"
        for _ in range(2):
            button.click()
            page.wait_for_timeout(400)  # the theme's CSS transition
            assert not sidebar_shown(page, sidebar_id), f"{toggle} did not hide {sidebar_id} at {width}px"
            button.click()
            page.wait_for_timeout(400)
            assert sidebar_shown(page, sidebar_id), f"{toggle} did not bring {sidebar_id} back at {width}px"
        return
    for close in ("backdrop", "Escape"):
        assert not dialog_open(page, dialog_id)
        button.click()
        page.wait_for_function(f"() => document.getElementById('{dialog_id}').open")
        links = page.locator(f"#{dialog_id} {link_selector}")
        assert links.count() > 0 and links.first.is_visible(), f"{dialog_id} opened empty at {width}px"
        if close == "backdrop":
            click_outside(page, width, side)
        else:
            page.keyboard.press("Escape")
        page.wait_for_function(f"() => !document.getElementById('{dialog_id}').open")


@pytest.mark.parametrize("device", list(WIDTHS))
def test_table_of_contents_opens_and_closes(browser, book_url, screenshots, device):
    width = WIDTHS[device]
    page, errors = open_at(browser, book_url, CHAPTER, width)
    check_toggle(page, width, ".primary-toggle", "pst-primary-sidebar", "pst-primary-sidebar-modal",
                 "a.reference.internal", side="left")
    visible_button(page, ".primary-toggle").click()
    page.wait_for_timeout(400)
    page.screenshot(path=str(screenshots / f"readers-{device}-toc.png"))
    assert errors == []
    page.context.close()


@pytest.mark.parametrize("device", list(WIDTHS))
def test_page_contents_open_and_close(browser, book_url, device):
    width = WIDTHS[device]
    page, errors = open_at(browser, book_url, CHAPTER, width)
    if sidebar_shown(page, "pst-secondary-sidebar"):
        # wide enough for the page's contents beside the text: nothing to open
        assert page.locator("#pst-secondary-sidebar a.nav-link").first.is_visible()
    else:
        check_toggle(page, width, ".secondary-toggle", "pst-secondary-sidebar",
                     "pst-secondary-sidebar-modal", "a.nav-link", side="right")
    assert errors == []
    page.context.close()


def _cjk_font_installed() -> bool:
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return False
    return bool(out.strip())


def test_chinese_is_marked_and_drawn_with_a_cjk_font(browser, book_url, screenshots):
    if not _cjk_font_installed():
        missing("A CJK font (fc-list :lang=zh)", "apt-get install fonts-noto-cjk (Debian's Noto CJK)")
    page, _ = open_at(browser, book_url, GLOSSARY, 800)
    zh = page.locator("article [lang='zh']")
    texts = zh.all_inner_texts()
    assert "批标准化" in texts and "内部协变量偏移" in texts, texts[:10]
    # every Chinese character on the page is inside a lang="zh" element
    unmarked = page.evaluate(
        r"""() => {
        const walk = document.createTreeWalker(document.querySelector('article'), NodeFilter.SHOW_TEXT);
        const out = [];
        while (walk.nextNode()) {
            const t = walk.currentNode;
            if (/[\u4e00-\u9fff]/.test(t.textContent) && !t.parentElement.closest('[lang="zh"], pre, code'))
                out.push(t.textContent.trim());
        }
        return out;
    }"""
    )
    assert unmarked == []
    # Chromium's own account of the fonts that drew the first term: all of its glyphs from a CJK
    # font, none left to the Latin font (which would draw boxes)
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "article [lang='zh']"})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    assert fonts and all("CJK" in f["familyName"] or "Noto Sans SC" in f["familyName"] for f in fonts), fonts
    zh.first.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "readers-glossary.png"))
    page.context.close()
