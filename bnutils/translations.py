"""The Chinese edition's machinery: catalogues, the zh build's configuration, Chinese notebooks.

The English text is the source. Sphinx's gettext builder extracts it into one ``.pot`` template
per page (``make update-translations``), ``sphinx-intl update`` merges the templates into the
catalogues ``locales/zh_CN/LC_MESSAGES/<page>.po``, translators fill in each ``msgstr``, and
``make book-zh`` builds the book with Sphinx's ``language = "zh_CN"``, which replaces every
translated message (paragraphs, headings, list items, table cells, figure captions and alt texts)
as it reads the page.

    python -m bnutils.translations report     # per page: messages untranslated, fuzzy, with a token lost
    python -m bnutils.translations config OUT # the zh build's _config.yml (this one + _config.zh.yml)
    python -m bnutils.translations notebooks OUT  # Chinese notebooks (catalogues applied to markdown)
    python -m bnutils.translations claims     # refresh claims.po from the chapters' claims ledgers

The claims of the chapters' ledgers (``bnutils.claims``: the sentences the summary's table lists)
are code, not markdown, so Sphinx does not extract them: ``python -m bnutils.translations claims``
(run by ``make update-translations``) reads the ledger files a run of the chapters wrote (by
default the smoke scale's, ``_build/cache/smoke/claims/``, which ``make notebooks`` writes) and
merges their sentences into ``locales/zh_CN/LC_MESSAGES/claims.po``, one message per claim with
``msgctxt "<chapter>:<id>"``, by the same rules as ``sphinx-intl update`` (new: empty ``msgstr``;
sentence changed: the old translation kept and marked fuzzy; claim gone: removed).

A translation keeps verbatim (:func:`tokens`): every MyST role whose argument is a key
(``{glue:text}`...```, ``{cite}`...```, ``{eq}`...```, ``{numref}`...``` without a title, ...),
the *target* of a titled ``{ref}``/``{doc}``/``{numref}``/``{term}``/``{download}`` role (its
title is translated), inline code, maths ``$...$`` and ``$$...$$``, link targets ``](...)`` and
HTML tags. tests/test_translations.py checks every catalogue by these rules.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "locales"
LANGUAGE = "zh_CN"
OVERLAY = ROOT / "_config.zh.yml"

ROLE = re.compile(r"(?<!`)\{([\w:.-]+)\}`([^`]*)`")  # not `{name}` shown as code
TITLED = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.S)
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)
CODE = re.compile(r"``.+?``|`[^`]+`", re.S)
LINK = re.compile(r"\]\(([^)]+)\)")
HTML = re.compile(r"</?[a-zA-Z][^>]*>")


def tokens(text: str) -> Counter:
    """What a translation of ``text`` must keep verbatim, with how often it occurs."""
    out = Counter()

    def role(m):
        name, arg = m.group(1), m.group(2)
        t = TITLED.match(arg)
        if name in ("ref", "doc", "numref", "term", "download") and t:
            out[f"{{{name}}}`...<{t.group(2)}>`"] += 1
        else:
            out[m.group(0)] += 1
        return " "

    rest = ROLE.sub(role, text)

    def math(m):
        out[m.group(0)] += 1
        return " "

    rest = MATH.sub(math, rest)
    for rx in (CODE, LINK, HTML):
        for m in rx.finditer(rest):
            out[m.group(0) if rx is not LINK else "](" + m.group(1) + ")"] += 1
        rest = rx.sub(" ", rest)
    return out


def missing(msgid: str, msgstr: str) -> list[str]:
    """The tokens of ``msgid`` that ``msgstr`` lacks (or has fewer times)."""
    need, have = tokens(msgid), tokens(msgstr)
    return [t for t, n in need.items() if have[t] < n]


def catalogues(locales: Path = LOCALES, language: str = LANGUAGE) -> list[Path]:
    return sorted((Path(locales) / language / "LC_MESSAGES").rglob("*.po"))


def read(path: Path):
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        return read_po(f)


def messages(path: Path):
    """The messages of a catalogue (not its header), obsolete ones left out."""
    return [m for m in read(path) if m.id]


def problems(path: Path) -> dict[str, list]:
    """``{"untranslated": [msgid], "fuzzy": [msgid], "tokens": [(msgid, [missing])]}``."""
    out = {"untranslated": [], "fuzzy": [], "tokens": []}
    for m in messages(path):
        if not m.string:
            out["untranslated"].append(m.id)
        elif m.fuzzy:
            out["fuzzy"].append(m.id)
        elif lost := missing(m.id, m.string):
            out["tokens"].append((m.id, lost))
    return out


def report(locales: Path = LOCALES, language: str = LANGUAGE) -> int:
    """Print, per page, how many messages need work; returns how many do in all."""
    total = 0
    base = Path(locales) / language / "LC_MESSAGES"
    print(f"{'page':28} {'messages':>8} {'untranslated':>12} {'fuzzy':>6} {'tokens lost':>11}")
    for path in catalogues(locales, language):
        p = problems(path)
        n = sum(len(v) for v in p.values())
        total += n
        print(f"{path.relative_to(base).with_suffix('').as_posix():28} {len(messages(path)):8d} "
              f"{len(p['untranslated']):12d} {len(p['fuzzy']):6d} {len(p['tokens']):11d}")
    print(f"{total} messages to translate or review (msgstr empty, '#, fuzzy', or a kept token lost);"
          " see CONTRIBUTING.md, 'The Chinese edition'")
    return total


# ---------------------------------------------------------------------- the term list

TERMS = LOCALES / LANGUAGE / "TERMS.md"
_CJK = re.compile(r"[\u3400-\u9fff]")


def ruled_out(path: Path = TERMS) -> dict[str, tuple[str, ...]]:
    """The variants the term list rules out, ``{variant: the row's own terms}``, read from the notes
    of its table: "not 平台期", "not 批量大小 or 小批量大小", "not 种子 alone", "the usual 归一化 is not
    used". An occurrence of a variant inside one of its row's own terms (种子 in 随机种子) is no
    use of the variant."""
    out: dict[str, tuple[str, ...]] = {}
    for line in Path(path).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= set("-: "):
            continue
        own = tuple(t.strip() for t in re.split(r"[,/;]", cells[1]) if _CJK.search(t))
        variants = []
        for m in re.finditer(r"\bnot (.+?)(?:;|$)", cells[2]):
            variants += re.split(r",\s*|\s+or\s+", m.group(1))
        variants += re.findall(r"the usual (\S+) is not used", cells[2])
        for v in variants:
            v = re.sub(r"\s+alone$", "", v.strip())
            if _CJK.search(v):
                out[v] = own
    return out


def ruled_out_in(text: str, rules: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """The variants of ``rules`` (default: :func:`ruled_out` of TERMS.md) that ``text`` uses."""
    rules = ruled_out() if rules is None else rules
    found = []
    for variant, own in rules.items():
        masked = text
        for term in own:
            if variant in term:
                masked = masked.replace(term, "\0")
        if variant in masked:
            found.append(variant)
    return found


# ---------------------------------------------------------------------- the zh build's configuration

def zh_config(out: Path, edition: str = "zh") -> Path:
    """Write the Chinese edition's ``_config.yml`` to ``out``: this repository's ``_config.yml``
    with ``_config.zh.yml`` merged in (dictionaries key by key, anything else replaced), and the
    paths Jupyter Book reads relative to the config file made absolute, so that ``jupyter-book
    build . --config out`` builds the same book in Chinese. ``edition="en"``: the English
    configuration, with the same absolute paths (for the gettext extraction, whose ``conf.py``
    ``jupyter-book config sphinx`` writes next to the configuration)."""
    import yaml

    def merge(a: dict, b: dict) -> dict:
        a = copy.deepcopy(a)
        for k, v in b.items():
            a[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    base = yaml.safe_load((ROOT / "_config.yml").read_text())
    config = merge(base, yaml.safe_load(OVERLAY.read_text())) if edition == "zh" else base
    sphinx = config.setdefault("sphinx", {})
    sphinx["local_extensions"] = {k: str((ROOT / v).resolve()) for k, v in sphinx.get("local_extensions", {}).items()}
    conf = sphinx.setdefault("config", {})
    conf["locale_dirs"] = [str((ROOT / d).resolve()) for d in conf.get("locale_dirs", ["locales/"])]
    conf.setdefault("gettext_compact", False)  # one catalogue per page
    if edition == "en":
        # the gettext builder keeps a figure's PNG (and so its alt text, a message) over its text/plain
        conf["nb_mime_priority_overrides"] = [["gettext", "image/png", 0]]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if edition == "zh":
        zh_toc(out.parent / "_toc.yml")
    out.write_text("# Generated by `python -m bnutils.translations config` from _config.yml and _config.zh.yml:"
                   " edit those, not this file.\n" + yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return out


def zh_toc(out: Path, locales: Path = LOCALES, language: str = LANGUAGE) -> Path:
    """Write ``_toc.yml`` with its part captions translated (from the root page's catalogue, where
    the gettext builder extracts them) to ``out``, for ``jupyter-book build --toc``: the sidebar's
    captions come from the table of contents, which Sphinx's i18n does not translate. A caption
    without a translation raises, naming it."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    table = translations(locales, language, page=toc["root"])
    for part in toc.get("parts", []):
        caption = part.get("caption")
        if caption is not None:
            if normalise(caption) not in table:
                raise KeyError(f"_toc.yml caption {caption!r} has no translation in {toc['root']}.po: "
                               "run `make update-translations` and translate it")
            part["caption"] = table[normalise(caption)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Generated by `python -m bnutils.translations config` from _toc.yml (captions"
                   " translated): edit _toc.yml, not this file.\n" + yaml.safe_dump(toc, allow_unicode=True, sort_keys=False))
    return out


# ---------------------------------------------------------------------- the claims' catalogue

CLAIMS_CATALOGUE = LOCALES / LANGUAGE / "LC_MESSAGES" / "claims.po"
CLAIMS_REFRESH = "python -m bnutils.translations claims"


def claim_context(chapter: str, id: str) -> str:
    """The ``msgctxt`` of a claim in the claims' catalogue: the sentence is found by its claim."""
    return f"{chapter}:{id}"


def book_chapters() -> list[str]:
    """The chapters (notebooks) of ``_toc.yml`` in book order, by file stem."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [Path(c["file"]).name for part in toc.get("parts", []) for c in part.get("chapters", [])
            if (ROOT / f'{c["file"]}.ipynb').exists()]


def claim_translations(path: Path = CLAIMS_CATALOGUE) -> dict[str, tuple[str, str]]:
    """``{"<chapter>:<id>": (sentence, translation)}`` of the claims' catalogue, translation ``""``
    where the message is untranslated or fuzzy."""
    path = Path(path)
    if not path.exists():
        return {}
    return {m.context: (m.id, "" if m.fuzzy else m.string) for m in messages(path) if m.context}


def claim_translation(claim, table: dict[str, tuple[str, str]]) -> str | None:
    """The Chinese of ``claim.sentence`` (a :class:`bnutils.claims.Claim`), or ``None`` when the
    catalogue has no translation of *this* sentence for this claim (none yet, fuzzy, or the
    sentence changed since the catalogue was refreshed)."""
    sentence, string = table.get(claim_context(claim.chapter, claim.id), (None, ""))
    return string if string and sentence == claim.sentence else None


def untranslated_claims(claims, path: Path = CLAIMS_CATALOGUE) -> list:
    """The claims of ``claims`` whose sentence has no translation in the claims' catalogue."""
    table = claim_translations(path)
    return [c for c in claims if claim_translation(c, table) is None]


def chapter_title(chapter: str, locales: Path = LOCALES, language: str = LANGUAGE) -> str:
    """A chapter's title in Chinese: its notebook's ``# heading``, translated by its catalogue."""
    import nbformat

    nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
    title = next(h.group(2) for c in nb.cells if c.cell_type == "markdown"
                 for line in c.source.split("\n") if (h := HEADING.match(line.strip())) and h.group(1) == "#")
    table = translations(locales, language, page=f"book/{chapter}")
    if normalise(title) not in table:
        raise KeyError(f"chapter {chapter!r}: its title {title!r} has no translation in book/{chapter}.po")
    return table[normalise(title)]


def read_ledgers(folders) -> dict[str, list[tuple[str, str]]]:
    """``{chapter: [(id, sentence), ...]}`` from the ledger files (``<chapter>.json``) in
    ``folders``, in each ledger's order. A claim whose sentence differs between two folders (a
    sentence that depends on the scale) raises: one claim, one message."""
    out: dict[str, dict[str, str]] = {}
    for folder in folders:
        for f in sorted(Path(folder).glob("*.json")):
            for d in json.loads(f.read_text()):
                seen = out.setdefault(d["chapter"], {})
                if seen.get(d["id"], d["sentence"]) != d["sentence"]:
                    raise ValueError(f"claim {d['chapter']}.{d['id']} has two sentences, {seen[d['id']]!r} and "
                                     f"{d['sentence']!r} ({f}): a claim's sentence must not depend on the scale")
                seen[d["id"]] = d["sentence"]
    return {chapter: list(ids.items()) for chapter, ids in out.items()}


def _previous_id(message) -> str | tuple:
    """The ``#| msgid`` of a fuzzy message (babel reads it back as a user comment)."""
    from babel.messages.pofile import denormalize

    if message.previous_id:
        return message.previous_id[0]
    lines = [c[1:].strip() for c in message.user_comments if c.startswith("|")]
    if not lines or not lines[0].startswith("msgid "):
        return ()
    return denormalize("\n".join([lines[0][len("msgid "):], *lines[1:]]))


def untranslated_claims_count(path: Path = CLAIMS_CATALOGUE) -> int:
    return sum(not string for _, string in claim_translations(path).values())


def update_claims(folders, path: Path = CLAIMS_CATALOGUE) -> dict[str, int]:
    """Merge the claims of the ledgers in ``folders`` into the claims' catalogue ``path``: a new
    claim comes in with an empty ``msgstr``, a claim whose sentence changed keeps its translation
    marked fuzzy (its old sentence as ``#| msgid``), a claim no longer in its chapter's ledger is
    removed; the claims of a chapter without a ledger file in ``folders`` are kept as they are.
    Returns counts: ``new``, ``changed``, ``removed``, ``kept`` (chapters without a ledger), ``total``."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    path = Path(path)
    ledgers = read_ledgers(folders)
    if not ledgers:
        raise FileNotFoundError(
            f"no claims ledger (<chapter>.json) in {', '.join(map(str, folders))}: execute the chapters first, "
            "e.g. `make notebooks` (smoke scale) or `BNBOOK_SCALE=smoke make book-zh`")
    old = {m.context: m for m in messages(path) if m.context} if path.exists() else {}
    order = book_chapters()
    chapters = sorted(set(ledgers) | {ctx.split(":")[0] for ctx in old},
                      key=lambda c: (order.index(c) if c in order else len(order), c))
    catalog = Catalog(locale=LANGUAGE, project="How batch normalization helps: the claims ledger",
                      charset="utf-8", fuzzy=False)
    catalog.header_comment = (
        "# The claims of the chapters' ledgers (bnutils.claims), for the summary's table in the\n"
        "# Chinese edition; msgctxt is <chapter>:<id>. Refreshed from the ledger files a run of the\n"
        f"# chapters wrote by `{CLAIMS_REFRESH}` (make update-translations).\n"
        "# Translate each msgstr with the terms of locales/zh_CN/TERMS.md, keeping numbers, code,\n"
        "# maths and names verbatim, and remove '#, fuzzy'.")
    counts = dict(new=0, changed=0, removed=0, kept=0)
    for chapter in chapters:
        if chapter not in ledgers:  # not executed this time: its claims stay as they are
            for ctx, m in old.items():
                if ctx.split(":")[0] == chapter:
                    catalog.add(m.id, m.string, locations=m.locations, flags=m.flags, context=ctx,
                                previous_id=_previous_id(m) if m.fuzzy else ())
                    counts["kept"] += 1
            continue
        ids = {claim_context(chapter, id) for id, _ in ledgers[chapter]}
        counts["removed"] += sum(ctx.split(":")[0] == chapter and ctx not in ids for ctx in old)
        for id, sentence in ledgers[chapter]:
            ctx = claim_context(chapter, id)
            m = old.get(ctx)
            string, flags, previous = "", set(), ()
            if m is not None and m.string:
                string, flags = m.string, set(m.flags) & {"fuzzy"}
                previous = _previous_id(m) if "fuzzy" in flags else ()
                if m.id != sentence:
                    flags.add("fuzzy")
                    previous = m.id
                    counts["changed"] += 1
            elif m is None:
                counts["new"] += 1
            catalog.add(sentence, string, locations=[(f"book/{chapter}.ipynb", None)], flags=flags, context=ctx,
                        previous_id=previous)
    for m in catalog:  # babel guesses python-format from "90% of"; these sentences are not formats
        m.flags.discard("python-format")
    out = io.BytesIO()
    write_po(out, catalog, width=100, omit_header=False, include_previous=True, sort_output=False)
    dated = re.compile(rb'^"POT-Creation-Date: .*$', re.M)
    if not path.exists() or dated.sub(b"", path.read_bytes()) != dated.sub(b"", out.getvalue()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(out.getvalue())  # rewritten only when a message changed, not for the date
    counts["total"] = len(catalog)
    return counts


# ---------------------------------------------------------------------- Chinese notebooks

def normalise(text: str) -> str:
    return " ".join(text.split())


def translations(locales: Path = LOCALES, language: str = LANGUAGE, page: str | None = None) -> dict[str, str]:
    """msgid (whitespace normalised) -> msgstr, translated and not fuzzy, of one page's
    catalogue (``page`` = "book/ics") or of all."""
    base = Path(locales) / language / "LC_MESSAGES"
    paths = [base / f"{page}.po"] if page else catalogues(locales, language)
    out = {}
    for path in paths:
        if path.exists():
            out.update({normalise(m.id): m.string for m in messages(path) if m.string and not m.fuzzy})
    return out


# A block of a markdown cell: a fenced directive (kept whole when its body is not prose), a
# heading, a list item, a table row, or a paragraph (lines up to a blank line).
FENCE = re.compile(r"^(```+|~~~+|:::+)")
ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
OPTION = re.compile(r"^:[\w-]+:")


def translate_markdown(source: str, table: dict[str, str]) -> tuple[str, int, int]:
    """``source`` (a markdown cell) with each block whose text is a msgid replaced by its msgstr.
    Headings, list items, table cells, paragraphs and the paragraphs inside directives (an
    exercise's, a solution's, an admonition's body) are blocks; code fences and options are kept.
    Returns (text, blocks translated, blocks with English words and no message)."""
    lines = source.split("\n")
    out: list[str] = []
    done = left = 0
    para: list[str] = []
    para_prefix = ""

    def lookup(text: str):
        return table.get(normalise(text))

    def flush():
        nonlocal para, done, left, para_prefix
        if not para:
            return
        text = "\n".join(para)
        t = lookup(text)
        if t is not None:
            out.append(para_prefix + t)
            done += 1
        else:
            out.append(para_prefix + text)
            left += bool(re.search(r"[A-Za-z]{3,}", MATH.sub("", ROLE.sub("", text))))
        para, para_prefix = [], ""

    fence = None
    for line in lines:
        stripped = line.strip()
        if fence == "$$":  # inside display maths: kept as it is
            out.append(line)
            if stripped.endswith("$$"):
                fence = None
            continue
        if stripped.startswith("$$") and not para:
            flush()
            out.append(line)
            if not (len(stripped) > 2 and stripped.endswith("$$")):
                fence = "$$"
            continue
        if re.fullmatch(r"\([\w:.-]+\)=", stripped):  # a label target
            flush()
            out.append(line)
            continue
        if fence is not None:  # inside a code fence: kept as it is
            out.append(line)
            if stripped.startswith(fence) and stripped.strip(fence[0]) == "":
                fence = None
            continue
        m = FENCE.match(stripped)
        if m:
            flush()
            rest = stripped[len(m.group(1)):]
            if rest.startswith("{") or m.group(1).startswith(":"):
                # a directive: its title is a message, its body is markdown again (closing fence kept)
                name = re.match(r"\{([^}]*)\}\s*(.*)", rest)
                if name and name.group(2) and lookup(name.group(2)) is not None:
                    line = line[: line.index(name.group(2))] + lookup(name.group(2))
                    done += 1
                out.append(line)
                continue
            if rest == "" and out and any(FENCE.match(o.strip()) for o in out[-1:]):
                out.append(line)
                continue
            if rest == "":  # closing fence of a directive
                out.append(line)
                continue
            fence = m.group(1)  # a code block
            out.append(line)
            continue
        if not stripped:
            flush()
            out.append(line)
            continue
        if OPTION.match(stripped):
            flush()
            out.append(line)
            continue
        h = HEADING.match(stripped)
        if h:
            flush()
            t = lookup(h.group(2))
            out.append(f"{h.group(1)} {t}" if t is not None else line)
            done += t is not None
            left += t is None
            continue
        if stripped.startswith("|"):
            flush()
            cells = stripped.strip("|").split("|")
            if all(set(c.strip()) <= set("-: ") for c in cells):
                out.append(line)
                continue
            new = []
            for c in cells:
                t = lookup(c) if c.strip() else None
                new.append(f" {t} " if t is not None else c)
                done += t is not None
            out.append(line[: len(line) - len(line.lstrip())] + "|" + "|".join(new) + "|")
            continue
        i = ITEM.match(line)
        if i:
            flush()
            para_prefix = line[: i.end()]
            para = [line[i.end():]]
            continue
        if para and para_prefix and line.startswith(" " * len(para_prefix)):
            para.append(line.strip())
            continue
        para.append(line)
    flush()
    return "\n".join(out), done, left


def zh_notebooks(out: Path, locales: Path = LOCALES, language: str = LANGUAGE) -> dict[str, tuple[int, int]]:
    """Write each chapter with its markdown cells in Chinese to ``out``; code cells are kept, with
    one cell before the first that sets ``BNBOOK_LANG=zh`` (so that ``plot.set_style()`` draws the
    figures in Chinese), and the figures' captions and alt texts (cell metadata) are translated.
    Returns {chapter: (blocks translated, blocks with English words and no message)}."""
    import nbformat

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stats = {}
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        table = translations(locales, language, page=f"book/{path.stem}")
        nb = nbformat.read(path, as_version=4)
        done = left = 0
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            cell.source, d, lft = translate_markdown(cell.source, table)
            done, left = done + d, left + lft
        for cell in nb.cells:  # figure captions and alt texts live in code cells' metadata
            md = cell.metadata.get("mystnb", {}) if cell.cell_type == "code" else {}
            for key, sub in (("figure", "caption"), ("image", "alt")):
                text = md.get(key, {}).get(sub)
                if text and normalise(text) in table:
                    md[key][sub] = table[normalise(text)]
        # figures with Chinese labels: bnutils.plot.set_style() reads BNBOOK_LANG (first code cell)
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        lang_cell = nbformat.v4.new_code_cell('import os\n\nos.environ.setdefault("BNBOOK_LANG", "zh")  # 中文版：图中的标签为中文')
        lang_cell.metadata["tags"] = ["remove-cell"]
        nb.cells.insert(first_code, lang_cell)
        nb.metadata["bnbook"] = {"edition": "zh"}
        nbformat.write(nb, out / path.name)
        stats[path.stem] = (done, left)
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bnutils.translations", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report", help="per page: messages untranslated, fuzzy, or with a kept token lost")
    r.add_argument("--locales", default=str(LOCALES))
    c = sub.add_parser("config", help="write the zh build's _config.yml")
    c.add_argument("out")
    c.add_argument("--edition", choices=("zh", "en"), default="zh")
    n = sub.add_parser("notebooks", help="write the chapters with Chinese markdown cells")
    n.add_argument("out")
    n.add_argument("--locales", default=str(LOCALES))
    k = sub.add_parser("claims", help="refresh claims.po from the chapters' claims ledgers")
    k.add_argument("--scale", action="append", choices=("smoke", "book", "paper"),
                   help="read the ledgers of this scale (repeatable; default: smoke)")
    k.add_argument("--ledgers", action="append", help="a folder of ledger files (<chapter>.json) to read instead")
    k.add_argument("--catalogue", default=str(CLAIMS_CATALOGUE))
    args = ap.parse_args(argv)
    if args.cmd == "report":
        report(Path(args.locales))
    elif args.cmd == "claims":
        from .config import claims_dir

        scales = args.scale or ([] if args.ledgers else ["smoke"])
        folders = [Path(f) for f in args.ledgers or []] + [claims_dir(s) for s in scales]
        if None in folders:
            print("BNBOOK_CLAIMS=off: no ledger files to read", file=sys.stderr)
            return 2
        try:
            counts = update_claims(folders, Path(args.catalogue))
        except FileNotFoundError as e:
            print(e, file=sys.stderr)
            return 2
        todo = untranslated_claims_count(Path(args.catalogue))
        print(f"{args.catalogue}: {counts['total']} claims ({counts['new']} new, {counts['changed']} changed, "
              f"{counts['removed']} removed, {counts['kept']} kept of chapters without a ledger in "
              f"{', '.join(map(str, folders))}); {todo} to translate or review")
    elif args.cmd == "config":
        print(f"{args.edition} configuration: {zh_config(Path(args.out), args.edition)}")
    else:
        stats = zh_notebooks(Path(args.out), Path(args.locales))
        for name, (done, left) in stats.items():
            print(f"{name:14} {done:4d} blocks translated, {left:3d} blocks with English and no message")
        print(f"Chinese notebooks in {args.out}: {sum(d for d, _ in stats.values())} blocks translated, "
              f"{sum(l for _, l in stats.values())} found no message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
