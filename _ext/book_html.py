"""Fixes to the HTML book, checked by tests/browser/test_book_html.py and test_readers_layout.py.

1. MathJax is served from the built book itself, so that the maths renders offline. Sphinx loads MathJax from a CDN by default. ``_config.yml`` sets ``mathjax_path`` to
``mathjax/tex-mml-chtml.js``, a path inside the book's ``_static`` folder, and this extension
copies the files that path needs there after an HTML build. They come from the PyPI package
``django-static-mathjax`` (MathJax 3.2.2's prebuilt components, no dependencies; pinned in
``requirements.txt``), so no npm or network step is needed. The import name is ``mathjax``.

2. Each script is included once per page. Sphinx 7.4 adds an inline script registered after the
builder starts (sphinx-thebe's ``const THEBE_JS_URL = ...``) twice, once with filename None and once
with filename '', and the second ``const`` is a console error ("Identifier 'THEBE_JS_URL' has
already been declared") on every page.

3. The sidebars' buttons work on phones, tablets and desktops (``static/sidebar-toggles.js``, a
local patch for pydata/pydata-sphinx-theme#2451, explained in the file).

4. Chinese text is marked ``lang="zh"`` (a post-transform wraps each run of CJK characters in an
inline node with the class ``language-zh``, which docutils' HTML writer turns into the ``lang``
attribute) and set in a CJK font where one is installed (``static/readers.css``, which also keeps figures in
proportion on narrow screens).

5. Figure captions from the cells' ``mystnb.figure`` metadata (issue 18) wrap only figures. myst-nb
1.4 wraps *every* display output of a captioned cell in its own figure with the same caption, so a
cell that also shows a value (a dict, a DataFrame) gets a captioned "figure" of text, and a cell
that draws two figures gets the caption twice. ``caption_figures_only`` unwraps the outputs without
an image and merges a cell's images into one figure with one caption. Checked by
tests/test_readers.py::test_captions_wrap_figures_only and
tests/browser/test_figures.py.

6. A link to the same page in the other edition on every page (``edition_link``): the English book
is published at the site's root and the Chinese edition (``make book-zh``, Sphinx ``language``
zh_CN) under ``zh/``, so the link is relative and works on the published site and in a local
build, where ``make book-zh`` links ``_build/html/zh`` to the Chinese build. A ``<link
rel="alternate" hreflang>`` in the head says the same to search engines. Checked by
tests/browser/test_zh.py.

7. Glued numbers in translated text (the Chinese edition). Sphinx's i18n parses each translated
message as a small document of its own, which lacks the notebook's glue data (myst-nb keeps it on
the page's document, ``document["nb_renderer"]``), so every ``{glue:text}`` of a translation would
warn "No key ... found in glue data for this document" and show nothing. ``glue_in_translations``
lets myst-nb's glue roles and directives find the key in the page's notebook instead.

8. Table cells inside a directive are translated (``TableCellSources``). myst-parser gives a
table's cell paragraphs no ``source`` and line; at the top of a page they inherit the document's,
but inside a directive's body (an admonition) they stay without, and Sphinx's i18n takes a node
without a source for a built-in message: the gettext builder skipped those cells and the zh build
left them in English (book/instructors.md's per-step costs; the same bug as
executablebooks/sphinx-design#234). The transform gives them their table's source and line before
Sphinx's ``Locale`` transform reads them. Checked by tests/test_zh_frame.py.

9. The page's frame in the edition's language (issue 23). The themes' catalogues lack some of the
messages they draw (sphinx-book-theme's zh_CN has "repository", not "Repository", so the header's
"Repository" and "Open issue" buttons stayed English). ``add_catalogues`` compiles the catalogues
of ``locales/<language>/LC_MESSAGES`` named in ``FRAME_CATALOGUES`` and registers them with
``app.add_message_catalog`` next to the theme's own: ``booktheme.po`` (what the theme's zh_CN
catalogue lacks) and ``book_html.po`` (this extension's messages). A ``sphinx.po`` there (Sphinx's
and pydata-sphinx-theme's tooltips) is compiled and loaded by Sphinx itself. myst-nb's execution
table (``{nb-exec-table}``, book/running.md) is drawn in English; ``TranslateExecTable`` translates
its headers and execution modes with the ``book_html`` catalogue and names each chapter by its
(translated) title instead of its path, in an edition whose language has that catalogue (not the
English one). Checked by tests/test_zh_frame.py.

10. Exercise titles are translated (issue 23). sphinx-exercise parses the argument of
```{exercise} Why the plateau ...``` into a subtitle node without a source or a raw source, so
Sphinx's i18n neither extracted nor translated it ("练习 24 (Why the plateau ...)" in the zh
edition), and its post-transforms dissolve that node into the box's title before the gettext builder
reads the page. ``translatable_exercise`` (the ``exercise`` and ``exercise-start`` directives, as
sphinx-exercise's, registered over them) wraps the title's nodes in an inline node marked
``translatable`` with the argument as its raw source and the directive's source and line, the
placeholder Sphinx itself uses for the text of ``versionadded``: the gettext builder extracts the
argument as it is written (msgid = the directive's argument), Sphinx's ``Locale`` transform
replaces its nodes by the parsed translation, and its ``RemoveTranslatableInline`` unwraps it
(except for the gettext builder). sphinx-exercise copies the exercise into its registry while
parsing, before any translation, and makes a solution's title ("Solution to Exercise 24 (...)")
and the text of references from that copy: ``ExerciseTitlesInRegistry`` copies the translated
exercise into the registry again. The edition's word for "Exercise" is TERMS.md's (习题, not
sphinx-exercise's 练习): ``exercise.po`` in ``locales/<language>/LC_MESSAGES`` is registered ahead of
sphinx-exercise's own catalogue (``OVERRIDE_CATALOGUES``) before sphinx-exercise makes its numbering
format "Exercise %s" from it, and in a Chinese edition the brackets sphinx-exercise puts around a
title are full-width (``FullWidthTitleBrackets``). Checked by tests/test_zh_frame.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from docutils import nodes
from sphinx.locale import get_translation
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform

# What tex-mml-chtml.js loads: the component itself, the TeX/MathML input extensions loaded on
# demand (\boldsymbol, \cancel, ...), the CommonHTML output and its fonts, the right-click menu
# with its accessibility parts and the speech-rule engine they load.
PARTS = ["tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y", "sre", "adaptors"]
TARGET = "mathjax"  # under _static


def es5_dir() -> Path:
    import mathjax  # from django-static-mathjax

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src, dest = es5_dir(), Path(app.outdir) / "_static" / TARGET
    for part in PARTS:
        if (src / part).is_dir():
            shutil.copytree(src / part, dest / part, dirs_exist_ok=True)
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / part, dest / part)


def check_path(app, config) -> None:
    expected = f"{TARGET}/{PARTS[0]}"
    if config.mathjax_path != expected:
        from sphinx.util import logging

        logging.getLogger(__name__).warning(
            "mathjax_path is %r, not the offline copy %r", config.mathjax_path, expected
        )


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (getattr(js, "filename", js) or "", tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


STATIC = Path(__file__).parent / "static"

# CJK ideographs, their punctuation (《》，。) and full-width forms
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]+")
NOT_PROSE = (nodes.literal_block, nodes.literal, nodes.math, nodes.math_block, nodes.raw)


def zh_runs(text: str) -> list[nodes.Node]:
    """``text`` as Text nodes, with each run of CJK characters in an inline ``lang="zh"`` node."""
    out, end = [], 0
    for m in CJK.finditer(text):
        if m.start() > end:
            out.append(nodes.Text(text[end : m.start()]))
        out.append(nodes.inline(m.group(), m.group(), classes=["language-zh"]))
        end = m.end()
    if end < len(text):
        out.append(nodes.Text(text[end:]))
    return out


class MarkChinese(SphinxPostTransform):
    """Mark runs of Chinese text ``lang="zh"`` in the HTML (after glue and bibliography)."""

    default_priority = 900
    formats = ("html",)

    def run(self, **kwargs) -> None:
        for text in list(self.document.findall(nodes.Text)):
            parent = text.parent
            if parent is None or not CJK.search(text):
                continue
            if isinstance(parent, NOT_PROSE) or "language-zh" in parent.get("classes", []):
                continue
            parent.replace(text, zh_runs(str(text)))


def _mime_types(figure: nodes.figure) -> list[str]:
    return [c.get("mime_type", "") for c in figure.findall(nodes.container) if c.get("mime_type")]


def _is_output_figure(node) -> bool:
    """A figure node myst-nb made around one display output of a code cell."""
    return isinstance(node, nodes.figure) and any(
        c.get("nb_element") == "mime_bundle" for c in node.children if isinstance(c, nodes.container))


def _unwrap(figure: nodes.figure) -> None:
    keep = [c for c in figure.children if not isinstance(c, (nodes.caption, nodes.legend))]
    figure.replace_self(keep)


def caption_figures_only(app, doctree) -> None:
    """At doctree-read, before myst-nb picks each output's mime type (so every type is still there)."""
    for figure in list(doctree.findall(_is_output_figure)):
        if not any(m.startswith("image/") for m in _mime_types(figure)):
            _unwrap(figure)  # a value the cell shows, not a figure: no caption
    for parent in {f.parent for f in doctree.findall(_is_output_figure)}:
        siblings = [c for c in parent.children if _is_output_figure(c)]
        for earlier, later in zip(siblings, siblings[1:]):
            cap = lambda f: "".join(c.astext() for c in f.children if isinstance(c, nodes.caption))
            if cap(earlier) != cap(later) or earlier.parent is not later.parent:
                continue
            # one cell, several images, one caption: all images in the last figure, caption once
            moved = [c for c in earlier.children if not isinstance(c, (nodes.caption, nodes.legend))]
            for i, c in enumerate(moved):
                earlier.remove(c)
                later.insert(i, c)
            later["ids"] = earlier["ids"] + later["ids"]
            later["names"] = earlier["names"] + [n for n in later["names"] if n not in earlier["names"]]
            earlier.parent.remove(earlier)


# edition -> (folder under the English site's root, name of the edition in its own language, lang)
# (lang="zh" as on every other Chinese span of the book, which the CJK font rules select; hreflang
# names the region's variant for search engines)
EDITIONS = {"en": ("", "English edition", "en", "en"), "zh": ("zh/", "中文版", "zh-CN", "zh")}


def edition(config) -> str:
    return "zh" if (config.language or "en").lower().startswith("zh") else "en"


def edition_link(app, pagename, templatename, context, doctree) -> None:
    """Put a link to ``pagename`` in the other edition at the top of the page's body."""
    if app.builder.format != "html":
        return
    this = edition(app.config)
    other = "zh" if this == "en" else "en"
    up = "../" * pagename.count("/") + ("../" if EDITIONS[this][0] else "")
    href = f"{up}{EDITIONS[other][0]}{pagename}.html"
    _, name, hreflang, lang = EDITIONS[other]
    context["body"] = (
        f'<div class="bnbook-edition"><a class="bnbook-edition-link" href="{href}" hreflang="{hreflang}" '
        f'lang="{lang}">{name}</a></div>\n' + context.get("body", ""))
    context["metatags"] = context.get("metatags", "") + f'\n<link rel="alternate" hreflang="{hreflang}" href="{href}" />'


def glue_in_translations() -> None:
    """myst-nb's glue lookups: a translated message's document (source ``...:<translated>``, parsed
    with a renderer of its own and no glue data) looks the key up in its page's notebook, which the
    page's own lookups (its English parse, before Sphinx's ``Locale`` transform) recorded in
    ``env.temp_data`` (cleared by Sphinx after each page)."""
    from myst_nb.ext.glue import directives, roles, utils

    original = utils.retrieve_glue_data
    if getattr(original, "bnbook", False):
        return

    def retrieve_glue_data(document, key):
        env = getattr(document.settings, "env", None)
        translated = str(document.get("source", "")).endswith(":<translated>")
        if env is not None and not translated and "nb_renderer" in document:
            env.temp_data["bnbook_nb_renderer"] = document["nb_renderer"]
        try:
            return original(document, key)
        except utils.RetrievalError:
            page = env.temp_data.get("bnbook_nb_renderer") if env is not None and translated else None
            if page is None:
                raise
            own = document.attributes.get("nb_renderer")
            document.attributes["nb_renderer"] = page
            try:
                return original(document, key)
            finally:
                if own is None:
                    document.attributes.pop("nb_renderer", None)
                else:
                    document.attributes["nb_renderer"] = own

    retrieve_glue_data.bnbook = True
    for module in (utils, roles, directives):
        module.retrieve_glue_data = retrieve_glue_data


class TableCellSources(SphinxTransform):
    """Give a table's cell paragraphs without a source (myst-parser's, in a directive) the table's
    source and line, so that Sphinx's i18n extracts and translates them."""

    default_priority = 15  # before Sphinx's Locale transform (20)

    def apply(self, **kwargs) -> None:
        for table in self.document.findall(nodes.table):
            if table.source is None:
                continue
            for node in table.findall(nodes.TextElement):
                if node.source is None:
                    node.source, node.line = table.source, table.line


# gettext domains of the page's frame that Sphinx does not load from locale_dirs by itself
FRAME_CATALOGUES = ("booktheme", "book_html", "exercise")
# of those, the domains whose messages ours replace (registered ahead of the extension's own
# catalogue, not behind it): sphinx-exercise's zh_CN says 练习 for "Exercise", TERMS.md 习题
OVERRIDE_CATALOGUES = ("exercise",)
message = get_translation("book_html")  # this extension's own messages (the execution table's)


def add_catalogues(app, config) -> None:
    """Compile and register ``locales/<language>/LC_MESSAGES/<domain>.po`` of each domain in
    ``FRAME_CATALOGUES`` (fuzzy messages left out, as in the pages' catalogues); one of
    ``OVERRIDE_CATALOGUES`` goes ahead of the catalogue its extension registered, which stays as
    the fallback."""
    from sphinx import locale
    from sphinx.util.i18n import CatalogInfo, CatalogRepository

    app.bnbook_catalogues = set()
    repo = CatalogRepository(app.srcdir, config.locale_dirs, config.language, config.source_encoding)
    for locale_dir in repo.locale_dirs:
        base = Path(locale_dir) / config.language / "LC_MESSAGES"
        for domain in FRAME_CATALOGUES:
            if (base / f"{domain}.po").exists():
                catalog = CatalogInfo(str(base), domain, config.source_encoding)
                if catalog.is_outdated():
                    catalog.write_mo(config.language, config.gettext_allow_fuzzy_translations)
                previous = locale.translators.pop(("general", domain), None) if domain in OVERRIDE_CATALOGUES else None
                app.add_message_catalog(domain, locale_dir)
                if previous is not None:
                    locale.translators[("general", domain)].add_fallback(previous)
                app.bnbook_catalogues.add(domain)


def translatable_exercise(directive: type) -> type:
    """sphinx-exercise's ``directive`` (``exercise``, ``exercise-start``) with its title (the
    argument) a message of the page: the title's nodes in an inline node marked ``translatable``
    with the argument as raw source, and the directive's source and line."""
    from sphinx_exercise.nodes import exercise_subtitle

    class TranslatableTitle(directive):
        def run(self):
            result = super().run()
            if not self.arguments:
                return result
            source, line = self.get_source_info()
            for node in result:
                for subtitle in node.findall(exercise_subtitle):
                    placeholder = nodes.inline(self.arguments[0], "", *subtitle.children, translatable=True)
                    placeholder.source, placeholder.line = source, line
                    subtitle[:] = [placeholder]
            return result

    TranslatableTitle.__name__ = TranslatableTitle.__qualname__ = f"Translatable{directive.__name__}"
    return TranslatableTitle


def exercise_directives(app, config) -> None:
    """Register ``translatable_exercise`` over sphinx-exercise's directives, where it is loaded."""
    if "sphinx_exercise" not in app.extensions:
        return
    from sphinx_exercise.directive import ExerciseDirective, ExerciseStartDirective

    for directive in (ExerciseDirective, ExerciseStartDirective):
        app.add_directive(directive.name, translatable_exercise(directive), override=True)


class ExerciseTitlesInRegistry(SphinxTransform):
    """Copy each exercise of the page, its title translated, into sphinx-exercise's registry, from
    which solutions' titles and references are made (its own copy is made before translation)."""

    default_priority = 21  # after Sphinx's Locale transform (20)

    def apply(self, **kwargs) -> None:
        registry = getattr(self.env, "sphinx_exercise_registry", None)
        if not registry:
            return
        from sphinx_exercise.nodes import exercise_subtitle, is_exercise_node

        for node in self.document.findall(is_exercise_node):
            entry = registry.get(node.get("label"))
            if entry is None or entry["docname"] != self.env.docname:
                continue
            copy = node.deepcopy()
            for subtitle in copy.findall(exercise_subtitle):
                for placeholder in list(subtitle.findall(nodes.inline)):
                    if "translatable" in placeholder and placeholder.parent is subtitle:
                        placeholder.replace_self(placeholder.children)  # one message, in the page only
            entry["node"] = copy


class FullWidthTitleBrackets(SphinxPostTransform):
    """In a Chinese edition, the brackets sphinx-exercise puts around an exercise's title, in its
    box and in its solution's, are full-width: 习题 24（……）, as TERMS.md asks of Chinese text."""

    default_priority = 23  # after sphinx-exercise makes the titles (20, 21, 22)

    def run(self, **kwargs) -> None:
        if not (self.config.language or "").startswith("zh") or "sphinx_exercise" not in self.app.extensions:
            return
        from sphinx_exercise.nodes import is_extension_node

        for node in self.document.findall(is_extension_node):
            title = node.children[0] if node.children and isinstance(node.children[0], nodes.title) else None
            if title is None:
                continue
            for parent in [title, *title.findall(nodes.reference)]:  # the solution's: a link
                texts = [c for c in parent.children if isinstance(c, nodes.Text)]
                opening = next((t for t in texts if str(t) == " ("), None)
                if opening is not None and parent.children[-1] is texts[-1] and str(texts[-1]) == ")":
                    parent.replace(opening, nodes.Text("（"))
                    parent.replace(texts[-1], nodes.Text("）"))


# myst-nb's execution table (myst_nb.ext.execution_tables.make_stat_table): its header row, and
# the column of execution modes (nb_execution_mode: cache, force, auto, inline)
EXEC_TABLE_HEADERS = ("Document", "Modified", "Method", "Run Time (s)", "Status")


class TranslateExecTable(SphinxPostTransform):
    """The execution table in the edition's language: headers and execution modes through the
    ``book_html`` catalogue, each document by its title (the translated one in a translated
    edition) instead of its path."""

    default_priority = 800  # after myst-nb makes the table (8) and its links are resolved (10)

    def run(self, **kwargs) -> None:
        if "book_html" not in getattr(self.app, "bnbook_catalogues", ()):
            return  # no catalogue for this edition's language (the English edition)
        for table in list(self.document.findall(nodes.table)):
            rows = list(table.findall(nodes.row))
            if not rows or tuple(e.astext() for e in rows[0].children) != EXEC_TABLE_HEADERS:
                continue
            method = EXEC_TABLE_HEADERS.index("Method")
            for i, row in enumerate(rows):
                for j, entry in enumerate(row.children):
                    if i == 0 or j == method:
                        for para in entry.findall(nodes.paragraph):
                            para[:] = [nodes.Text(message(para.astext()))]
                    elif j == 0:
                        for inline in entry.findall(nodes.inline):
                            title = self.env.titles.get(inline.astext())
                            if "doc" in inline["classes"] and title is not None:
                                inline[:] = [nodes.Text(title.astext())]


def add_static(app, config) -> None:
    config.html_static_path.append(str(STATIC))


def setup(app):
    es5_dir()  # fail at start-up, not after the build, when the package is missing
    app.connect("config-inited", check_path)
    app.connect("config-inited", add_static)
    # before sphinx-exercise's own handler (500) makes its numbering format from its catalogue
    app.connect("config-inited", add_catalogues, priority=400)
    app.connect("config-inited", exercise_directives)
    app.add_transform(TableCellSources)
    app.add_transform(ExerciseTitlesInRegistry)
    app.add_post_transform(FullWidthTitleBrackets)
    app.add_post_transform(TranslateExecTable)
    app.add_js_file("sidebar-toggles.js")
    app.add_css_file("readers.css")
    app.add_post_transform(MarkChinese)
    glue_in_translations()
    app.connect("doctree-read", caption_figures_only)
    app.connect("build-finished", copy_mathjax)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    app.connect("html-page-context", edition_link)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
