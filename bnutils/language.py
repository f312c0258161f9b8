"""Which edition is being built, and its words: :func:`edition` ("en" or "zh", from
``$BNBOOK_LANG``, which ``make book-zh`` sets) and :func:`translate` (a label, a table's word or a
glued phrase in the edition's language, through the Chinese labels of :mod:`bnutils.plot_zh`).

Figures (``bnutils.plot.set_edition`` wraps matplotlib's ``Text.set_text``), tables
(:func:`bnutils.tables.readable`) and glued phrases (``glue(key, language.translate(text))``) all
go through :func:`translate`, so the chapters' code is the same in both editions. A label with
English words that ``plot_zh`` does not know stays in English and is recorded in
:data:`UNTRANSLATED` (``make book-zh`` lists them).
"""

from __future__ import annotations

import json
import os
import re

UNTRANSLATED: set[str] = set()  # labels with English words that plot_zh does not know (this process;
# also appended, one JSON string a line, to the file $BNBOOK_LABELS_MISSING names, if any)
# Words that stay as they are in Chinese text: names, abbreviations, units.
KEEP = {"BN", "MLP", "SGD", "CNN", "VGG", "ReLU", "LayerNorm", "GroupNorm", "PyTorch", "Glorot", "He",
        "ICS", "SLQ", "CG", "Hessian", "mnist5k", "mnist", "MNIST", "CIFAR", "ms", "sigmoid", "Sigmoid",
        "dropout", "epoch", "momentum", "ln", "BatchNorm", "InstanceNorm", "DLN", "VGG-style",
        "AdaGrad", "RMSProp", "L-BFGS", "BFGS", "Ioffe", "Szegedy", "Santurkar", "Adam", "std", "sd",
        "ResNet", "GPT", "eps", "logit", "logits", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"}
_MATH = re.compile(r"\$[^$]*\$")
_CODE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")  # dotted names: ics.ics, torch.nn
# a word: two letters or more, not part of a name with digits (float32, mnist5k, l2)
_WORD = re.compile(r"(?<![0-9A-Za-z])[A-Za-z][A-Za-z'-]*[A-Za-z](?![0-9A-Za-z])")


def edition() -> str:
    """The edition being built: ``"zh"`` when ``$BNBOOK_LANG`` starts with zh, else ``"en"``."""
    return "zh" if os.environ.get("BNBOOK_LANG", "en").lower().startswith("zh") else "en"


def english_words(text: str) -> list[str]:
    """The English words of a label outside maths, code names (``ics.ics``, ``float32``) and
    the names kept in Chinese text."""
    return [w for w in _WORD.findall(_CODE.sub(" ", _MATH.sub(" ", text))) if w not in KEEP]


def translate(text, lang: str | None = None):
    """``text`` in the edition's language: the Chinese label of ``bnutils.plot_zh`` in the Chinese
    edition (exact labels first, then the formatted ones), ``text`` itself otherwise."""
    if (lang or edition()) != "zh" or not isinstance(text, str):
        return text
    from . import plot_zh

    key = " ".join(text.split())  # a label broken over lines is looked up as one line
    if key in plot_zh.LABELS:  # first: a label of kept words can have a translation ("sd")
        return plot_zh.LABELS[key]
    if not english_words(text):
        return text
    for rx, template in plot_zh.PATTERNS:
        m = rx.fullmatch(key)
        if m:
            return template.format(None, *(translate(g, "zh") for g in m.groups()))
    if text not in UNTRANSLATED:
        UNTRANSLATED.add(text)
        if os.environ.get("BNBOOK_LABELS_MISSING"):  # a file collecting them across chapters
            with open(os.environ["BNBOOK_LABELS_MISSING"], "a", encoding="utf-8") as f:
                f.write(json.dumps(text, ensure_ascii=False) + "\n")
    return text
