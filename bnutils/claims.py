"""The claims ledger: every sentence of the book about an experiment, the number behind it, the
bound it is checked against and the scales it is checked at, in one object.

A chapter opens its ledger once and states each claim where it computes the number::

    ledger = Ledger("ics")
    ledger.claim("noisy_vs_bn", "Noisy BN ends within 50% of BN's loss, either way",
                 noisy_loss / bn_loss, between=(1 / 1.5, 1.5))

One call

* **checks** the value against its bound at the strength of the sentence (``above``/``below``
  for strict bounds, ``at_least``/``at_most`` for inclusive ones, ``between`` for a tolerance
  checked both ways), and raises :class:`ClaimFailed` (an ``AssertionError``) when it fails, so a
  build in which a claim failed does not produce its page;
* **glues** the value for the prose (``{glue:text}`noisy_vs_bn:.2f```) and its bounds
  (``noisy_vs_bn_low``, ``noisy_vs_bn_high``), so the number in the sentence is the number checked;
* **records** it in the chapter's ledger file, ``<cache>/<scale>/claims/<chapter>.json``, from
  which the summary chapter draws its table of every claim of the book.

A claim that needs more steps than a scale allows names the scales it is checked at
(``scales=("book", "paper")``); at the others it is recorded with the status "waits for book
scale" instead of silently passing. ``$BNBOOK_CLAIMS`` moves the ledger files elsewhere, and
``BNBOOK_CLAIMS=off`` keeps checking and glueing but writes nothing (students' copies and graded
submissions run with it, so a partial run never replaces a chapter's ledger).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass

from . import config as _config

SCALES = ("smoke", "book", "paper")
HOLDS, FAILS, WAITS = "holds", "fails", "waits"
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ClaimFailed(AssertionError):
    """A sentence of the book that this build's measurement does not support."""


@dataclass(frozen=True)
class Claim:
    chapter: str
    id: str
    sentence: str
    value: float
    low: float | None  # the value must be above (or at least, if inclusive) low...
    high: float | None  # ...and below (or at most) high
    inclusive: bool
    scales: tuple[str, ...]  # the scales at which the bound is checked
    scale: str  # the scale of this build
    seed_offset: int
    status: str  # HOLDS, FAILS or WAITS
    condition: bool = False  # a claim without a number (Ledger.check): value 1 = true, 0 = false

    @property
    def bound(self) -> str:
        """The bound in words a table can show: ``> 2``, ``<= 0``, ``in (0.67, 1.5)``."""
        if self.condition:
            return "true"
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            l, r = ("[", "]") if self.inclusive else ("(", ")")
            return f"in {l}{_fmt(lo)}, {_fmt(hi)}{r}"
        if lo is not None:
            return f"{'>=' if self.inclusive else '>'} {_fmt(lo)}"
        return f"{'<=' if self.inclusive else '<'} {_fmt(hi)}"

    @property
    def status_text(self) -> str:
        if self.status == WAITS:
            return f"not checked at {self.scale} scale (checked at {', '.join(self.scales)})"
        return self.status

    def message(self) -> str:
        if self.condition:
            return (f"claim {self.chapter}.{self.id} ({self.sentence!r}) is false here "
                    f"(scale {self.scale}, seed offset {self.seed_offset})")
        return (f"claim {self.chapter}.{self.id} ({self.sentence!r}): measured {_fmt(self.value)}, "
                f"which is not {self.bound} (scale {self.scale}, seed offset {self.seed_offset})")


def _fmt(x: float) -> str:
    if x is None:
        return ""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"


def _glue(name: str, value) -> None:
    try:
        from myst_nb import glue
    except ImportError:  # the package without the book's tools: checking still works
        return
    glue(name, value, display=False)


class Ledger:
    """The claims of one chapter, in the order the chapter states them. Opening a ledger starts
    the chapter's file afresh: one execution of a chapter, one ledger."""

    def __init__(self, chapter: str):
        if not _ID.match(chapter):
            raise ValueError(f"Ledger: the chapter name must be a plain identifier, got {chapter!r}")
        self.chapter = chapter
        self.claims: dict[str, Claim] = {}
        folder = _config.claims_dir()
        self.path = None if folder is None else folder / f"{chapter}.json"
        self._write()

    def claim(self, id: str, sentence: str, value, *, above=None, below=None, at_least=None,
              at_most=None, between=None, scales=SCALES, glue: bool = True, _condition: bool = False) -> float:
        """Check ``value`` against one bound, glue it as ``id`` and record it; returns the value.

        ``above``/``below`` are strict, ``at_least``/``at_most`` inclusive, ``between=(lo, hi)``
        strict on both sides (a tolerance stated both ways). A NaN never satisfies a bound.
        """
        if not _ID.match(id):
            raise ValueError(f"claim: id must be letters, digits and underscores (a glue key), got {id!r}")
        if id in self.claims:
            raise ValueError(f"claim: {self.chapter}.{id} is stated twice")
        if isinstance(scales, str):
            scales = (scales,)
        if not scales or not set(scales) <= set(SCALES):
            raise ValueError(f"claim: scales must be a non-empty subset of {SCALES}, got {scales!r}")
        given = {k: v for k, v in dict(above=above, below=below, at_least=at_least, at_most=at_most,
                                       between=between).items() if v is not None}
        strict = {"above", "below", "between"} >= given.keys()
        inclusive = {"at_least", "at_most"} >= given.keys()
        if not given or not (strict or inclusive):
            raise ValueError("claim: give one bound (above, below, at_least, at_most, or between=(lo, hi)); "
                             f"strict and inclusive bounds do not mix, got {sorted(given)}")
        low = above if above is not None else at_least
        high = below if below is not None else at_most
        if between is not None:
            if low is not None or high is not None:
                raise ValueError("claim: between=(lo, hi) replaces above/below")
            low, high = between
        value = _scalar(value, f"{self.chapter}.{id}")
        low = None if low is None else float(low)
        high = None if high is None else float(high)
        if low is not None and high is not None and not low < high:
            raise ValueError(f"claim: the interval ({low}, {high}) is empty")
        ok = not math.isnan(value)
        if low is not None:
            ok = ok and (value >= low if inclusive else value > low)
        if high is not None:
            ok = ok and (value <= high if inclusive else value < high)
        scale = _config.get_scale()
        checked = scale in scales
        status = (HOLDS if ok else FAILS) if checked else WAITS
        c = Claim(self.chapter, id, sentence, value, low, high, not strict, tuple(scales), scale,
                  _config.seed_offset(), status, _condition)
        self.claims[id] = c
        self._write()
        if glue:
            _glue(id, value)
            if low is not None:
                _glue(f"{id}_low", low)
            if high is not None:
                _glue(f"{id}_high", high)
        if status == FAILS:
            raise ClaimFailed(c.message())
        return value

    def check(self, id: str, sentence: str, condition: bool, *, scales=SCALES) -> bool:
        """A claim with no number (``every seed``, ``no run diverges``): recorded as 1 (holds) or
        0 (fails) against ``>= 1``, not glued."""
        self.claim(id, sentence, 1.0 if bool(condition) else 0.0, at_least=1, scales=scales, glue=False,
                   _condition=True)
        return True

    def frame(self):
        return frame(self.claims.values())

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps([asdict(c) for c in self.claims.values()], indent=1))
        tmp.replace(self.path)  # atomic: a reader never sees half a ledger


def _scalar(value, where: str) -> float:
    try:
        import numpy as np

        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(f"claim {where}: the value must be a real number, got {type(value).__name__}") from e
    if arr.ndim != 0:
        raise ValueError(f"claim {where}: the value must be one number, got shape {tuple(arr.shape)}; "
                         "state the claim about its min, max or mean")
    return float(arr)


def load(chapters, scale: str | None = None) -> list[Claim]:
    """Every claim of the given chapters' ledgers at this scale, in chapter order. A chapter
    without a ledger file raises ``FileNotFoundError`` naming it: the summary is built after the
    chapters it summarises."""
    folder = _config.claims_dir(scale)
    if folder is None:
        raise FileNotFoundError("BNBOOK_CLAIMS=off: no ledger files were written to load")
    out = []
    for chapter in chapters:
        path = folder / f"{chapter}.json"
        if not path.exists():
            raise FileNotFoundError(
                f"no claims ledger for chapter {chapter!r} at {path}: execute the chapter at this scale "
                "first (jupyter-book builds the chapters before the summary)")
        out += [Claim(**{**d, "scales": tuple(d["scales"])}) for d in json.loads(path.read_text())]
    return out


def frame(claims, lang: str = "en"):
    """The claims as a table: chapter, id, sentence, value, bound, status. ``lang="zh"`` (the
    summary passes ``language.edition()``): the same table in Chinese, each sentence from the claims'
    catalogue (``locales/zh_CN/LC_MESSAGES/claims.po``, :mod:`bnutils.translations`), each chapter
    by its Chinese title; a claim without a translation raises, naming the command that refreshes
    the catalogue."""
    import pandas as pd

    claims = list(claims)
    if lang == "zh":
        return _frame_zh(claims)
    rows = [dict(chapter=c.chapter, id=c.id, claim=c.sentence,
                 value=("true" if c.value else "false") if c.condition else _fmt(c.value), bound=c.bound,
                 status=c.status_text) for c in claims]
    return pd.DataFrame(rows, columns=["chapter", "id", "claim", "value", "bound", "status"])


# The Chinese edition's words of the table (terms of locales/zh_CN/TERMS.md: claim = 论断).
ZH_COLUMNS = {"chapter": "章", "id": "id", "claim": "论断", "value": "测得值", "bound": "界限", "status": "状态"}
ZH_STATUS = {HOLDS: "成立", FAILS: "不成立"}


def bound_zh(c: Claim) -> str:
    """:attr:`Claim.bound` in Chinese: ``> 2`` as it is, ``在 (0.5, 2) 内``, ``为真``."""
    if c.condition:
        return "为真"
    if c.low is not None and c.high is not None:
        return "在 " + c.bound[len("in "):] + " 内"
    return c.bound


def status_zh(c: Claim) -> str:
    """:attr:`Claim.status_text` in Chinese (the scales' names, as in the text, stay as they are)."""
    if c.status == WAITS:
        return f"{c.scale} 规模下未检验（在 {'、'.join(c.scales)} 规模下检验）"
    return ZH_STATUS[c.status]


def untranslated(claims) -> list[Claim]:
    """The claims whose sentence has no (reviewed) translation in the claims' catalogue."""
    from .translations import untranslated_claims

    return untranslated_claims(claims)


def _frame_zh(claims):
    import pandas as pd

    from .translations import CLAIMS_CATALOGUE, CLAIMS_REFRESH, chapter_title, claim_translation, claim_translations

    table = claim_translations()
    titles = {ch: chapter_title(ch) for ch in dict.fromkeys(c.chapter for c in claims)}
    rows = []
    for c in claims:
        sentence = claim_translation(c, table)
        if sentence is None:
            raise KeyError(f"claim {c.chapter}.{c.id} ({c.sentence!r}) has no translation in {CLAIMS_CATALOGUE}: "
                           f"run `{CLAIMS_REFRESH}` and translate it")
        rows.append({"chapter": titles[c.chapter], "id": c.id, "claim": sentence,
                     "value": ("真" if c.value else "假") if c.condition else _fmt(c.value),
                     "bound": bound_zh(c), "status": status_zh(c)})
    out = pd.DataFrame(rows, columns=list(ZH_COLUMNS))
    return out.rename(columns=ZH_COLUMNS)
