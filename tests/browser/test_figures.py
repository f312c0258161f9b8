"""The book's figures as readers meet them, in headless Chromium (issue 18).

Every image has a real alt text (never empty, never the file path myst-nb writes when a cell has
none) and every figure a notebook draws sits in a <figure> with its caption. On a 390 px phone
every figure keeps at least ``plot.PHONE_PANEL_PX`` (150) CSS px per panel: the measure is the
image's rendered width divided by the panels it has side by side, which each figure output records
(``panels_per_row`` in its ``image/png`` metadata, see ``bnutils.plot``) and the test reads from
the build's executed notebooks (``_build/jupyter_execute``), matched by the image's file name
(myst-nb names it by the SHA-256 of its bytes). Its tick labels must keep at least
``plot.PHONE_FONT_PX`` (7) CSS px there: their size in points (``font_pt``, recorded next to
``panels_per_row``) times the figure's scale on the page (rendered width over the width the retina
PNG records, at ``figure.dpi`` 100, 100/72 CSS px a point); a ``plt.subplots(1, 2, figsize=(10,
...))`` figure has about 5 px. Screenshots: ``_build/screenshots/figures-*.png``.

The checks are functions, which ``test_book_html.test_page_reads_well`` runs on each chapter in the
same visit as its other checks (a page's load, MathJax and images are most of a browser test's
time): the alt texts and captions first, the phone last, after the window narrows to 390 px.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from pathlib import Path

from readers_env import HTML, missing

from bnutils import plot

PATH_LIKE = re.compile(r"(^|[\s/\\])[\w.-]+\.(png|svg|jpe?g|gif|pdf)\b|^[./\\]|_images/|^data:", re.I)
PHONE = 390
PX_PER_PT = 100 / 72  # plot.set_style: figure.dpi 100, so a PNG's recorded width is in CSS px at 100 an inch


def _images(page) -> list[dict]:
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('article img')).map(img => {
        const fig = img.closest('figure');
        const r = img.getBoundingClientRect();
        return {src: img.getAttribute('src') || '', alt: img.getAttribute('alt'),
                output: img.closest('.cell_output') !== null,
                caption: fig && fig.querySelector('figcaption') ? fig.querySelector('figcaption').textContent.trim() : null,
                width: r.width, natural: img.naturalWidth, shown: r.width > 0 && r.height > 0};
    })"""
    )


def _layouts() -> dict[str, dict]:
    """``{sha256 of a figure's PNG: its image/png metadata}`` (``panels_per_row``, ``font_pt``,
    ``width``) from the build's executed notebooks."""
    out = {}
    notebooks = [json.loads(nb.read_text()) for nb in (HTML.parent / "jupyter_execute").rglob("*.ipynb")]
    # myst-nb writes jupyter_execute/*.ipynb without outputs when jupyter-cache supplied them (it
    # writes the notebook it read, not the merged one), so the executed notebooks of the build's
    # jupyter-cache are read as well
    if (HTML.parent / ".jupyter_cache").is_dir():
        import nbformat
        from jupyter_cache import get_cache

        cache = get_cache(HTML.parent / ".jupyter_cache")
        notebooks += [nbformat.writes(cache.get_cache_bundle(r.pk).nb) for r in cache.list_cache_records()]
        notebooks = [json.loads(n) if isinstance(n, str) else n for n in notebooks]
    for nb in notebooks:
        for cell in nb.get("cells", []):
            for o in cell.get("outputs", []):
                png = o.get("data", {}).get("image/png")
                if png:
                    digest = hashlib.sha256(base64.b64decode(png)).hexdigest()
                    out[digest] = o.get("metadata", {}).get("image/png", {})
    return out


def check_captions_and_alt_text(page, path: str) -> None:
    """Every image of ``page`` has a real alt text; every figure a notebook drew has its caption."""
    for img in _images(page):
        where = f"{path}: <img src={img['src']!r}>"
        assert img["alt"] and img["alt"].strip(), f"{where} has no alt text"
        assert not PATH_LIKE.search(img["alt"]), f"{where} has a file path for alt text: {img['alt']!r}"
        assert len(img["alt"].split()) >= 5, f"{where}: alt text too short to say anything: {img['alt']!r}"
        if img["output"]:  # drawn by the notebook: a figure with its caption
            assert img["caption"], f"{where} is not in a <figure> with a caption"


@functools.cache
def _layouts_once() -> dict[str, dict]:
    return _layouts()


def check_legible_on_a_phone(page, path: str, screenshots) -> None:
    """``page``'s window narrowed to a phone's :data:`PHONE` px (the layout reflows as on a phone):
    every figure keeps ``plot.PHONE_PANEL_PX`` px a panel and tick labels of ``plot.PHONE_FONT_PX``."""
    layouts = _layouts_once()
    if not layouts:
        missing(f"The executed notebooks next to {HTML} (jupyter_execute)", "build the book with jupyter-book")
    page.set_viewport_size({"width": PHONE, "height": 800})
    page.wait_for_function(f"() => window.innerWidth === {PHONE}")
    narrow = []
    for img in _images(page):
        if not img["output"] or not img["shown"]:
            continue
        digest = Path(img["src"]).stem
        assert digest in layouts, f"{path}: {img['src']} is not an output of the executed notebooks"
        meta = layouts[digest]
        per_row = meta.get("panels_per_row")
        assert per_row, f"{path}: {img['src']} records no panels_per_row (plot.set_style not called?)"
        if img["width"] / per_row < plot.PHONE_PANEL_PX:
            narrow.append(f"{img['src']}: {per_row} panels in {img['width']:.0f} px")
        if meta.get("font_pt"):  # None: a figure without tick labels (a drawing)
            assert meta.get("width"), f"{path}: {img['src']} records no width (not a retina PNG?)"
            font_px = meta["font_pt"] * PX_PER_PT * img["width"] / meta["width"]
            if font_px < plot.PHONE_FONT_PX:
                narrow.append(f"{img['src']}: tick labels {font_px:.1f} px high ({meta['width']:.0f} px wide, "
                              f"shown at {img['width']:.0f} px)")
        else:
            assert "font_pt" in meta, f"{path}: {img['src']} records no font_pt (plot.set_style not called?)"
    if narrow:
        page.locator("article").screenshot(path=str(screenshots / f"figures-phone-{Path(path).stem}.png"))
    assert narrow == [], (f"{path} at {PHONE} px: fewer than {plot.PHONE_PANEL_PX} px a panel or tick "
                          f"labels under {plot.PHONE_FONT_PX} px: {narrow}")
