"""The Chinese edition as a PDF, `make pdf-zh` (issue 23).

`make pdf-zh` builds with the configuration of `make book-zh` (``python -m bnutils.translations
config``: _config.yml with _config.zh.yml merged in) and Jupyter Book's LaTeX builder. With Sphinx's
``language = "zh_CN"`` and ``latex_engine = "xelatex"``, Sphinx itself loads xeCJK (and sets its
Verbatim add-on, so code blocks get no spaces between CJK characters); _config.yml's preamble names
the Noto CJK fonts. These tests read the LaTeX Sphinx writes for that configuration (no TeX needed),
check the fonts are installed, and, where XeLaTeX is, typeset a small Chinese page with it and read
back the PDF; the book's own PDF is read too when a `make pdf-zh` left one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bnutils.translations import zh_config
from tests.helpers import sphinx_build

ROOT = Path(__file__).resolve().parents[1]
TEXT = "批标准化如何帮助神经网络"
PAGE = f"""标准化
======

《{TEXT}》：批标准化（batch normalization）让训练\\ *更快*\\ 。

.. code-block:: python

   bn = BatchNorm1d(8)  # 批标准化层
"""


def zh_sphinx_config(tmp_path: Path) -> dict:
    """The Sphinx configuration `make pdf-zh` builds with, as Jupyter Book derives it."""
    from jupyter_book.config import get_final_config

    config, _ = get_final_config(user_yaml=zh_config(tmp_path / "zh" / "_config.yml"), sourcedir=ROOT,
                                 cli_config={"latex_individualpages": False})
    return config


def write_project(tmp_path: Path, config: dict) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.rst").write_text("书\n==\n\n.. toctree::\n\n   chapter\n")
    (src / "chapter.rst").write_text(PAGE)  # a chapter: 第 1 章
    keys = ("language", "latex_engine", "latex_elements")
    (src / "conf.py").write_text(
        "project = 'zh'\n"
        + "".join(f"{k} = {config[k]!r}\n" for k in keys)
        + f"latex_documents = [('index', 'book.tex', {TEXT!r}, 'a', 'manual')]\n"
    )
    return src


def latex(tmp_path: Path) -> Path:
    """The .tex Sphinx writes for a small Chinese page with the zh configuration."""
    out = tmp_path / "latex"
    assert sphinx_build("-q", "-b", "latex", str(write_project(tmp_path, zh_sphinx_config(tmp_path))), str(out)) == 0
    return out


def cjk_fonts(tex: str) -> dict[str, str]:
    """The CJK font families the preamble sets: main, sans, mono, and the main one's italic."""
    fonts = {}
    for kind, options, name in re.findall(r"\\setCJK(main|sans|mono)font(?:\[([^\]]*)\])?\{([^}]+)\}", tex):
        fonts[kind] = name
        italic = re.search(r"(?:^|,)\s*ItalicFont=\{?([^},]+)", options)
        if italic:
            fonts[kind + "-italic"] = italic.group(1).strip()
    return fonts


def test_make_pdf_zh_builds_the_zh_configuration_with_xelatex():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    r = subprocess.run(["make", "-n", "pdf-zh", "PDF_SCALE=smoke"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = "_build/zh-pdf/smoke"
    assert f"python -m bnutils.translations config {out}/_config.yml" in r.stdout
    lines = re.sub(r"\\\n\s*", " ", r.stdout).splitlines()  # continued lines joined
    build = [l for l in lines if l.startswith("BNBOOK_LANG=zh BNBOOK_SCALE=smoke ") and "jupyter-book build . " in l]
    assert len(build) == 1, r.stdout
    for option in (f"--config {out}/_config.yml", f"--toc {out}/_toc.yml", f"--path-output {out}", "--builder pdflatex"):
        assert option in build[0], (option, build[0])


def test_zh_latex_uses_sphinx_zh_setup_and_noto_cjk(tmp_path):
    config = zh_sphinx_config(tmp_path)
    assert config["language"] == "zh_CN" and config["latex_engine"] == "xelatex"
    # Sphinx's own zh setup (xeCJK as 'fontenc', babel instead of polyglossia) is not overridden
    assert not {"fontenc", "babel", "polyglossia", "fvset"} & set(config["latex_elements"])
    tex = (latex(tmp_path) / "book.tex").read_text()
    assert "\\usepackage{xeCJK}" in tex and "formatcom=\\xeCJKVerbAddon" in tex
    assert "\\usepackage{polyglossia}" not in tex
    fonts = cjk_fonts(tex)
    # Debian's Noto CJK has no italic: emphasis in the sans face, not silently upright
    assert set(fonts) == {"main", "sans", "mono", "main-italic"}, fonts
    assert all(name.startswith("Noto") and name.endswith("CJK SC") for name in fonts.values()), fonts
    assert tex.count("\\usepackage{xeCJK}") == 1  # Sphinx's, the English preamble's not repeated
    assert "\\def\\@chappos{章}" in tex and "\\renewcommand{\\chaptername}{第}" in tex  # 第 N 章
    assert TEXT in tex  # the title


def installed_zh_families() -> set[str] | None:
    if shutil.which("fc-list") is None:
        return None
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    return {name.strip() for line in out.splitlines() for name in line.split(",")}


def test_zh_pdf_fonts_are_installed(tmp_path):
    families = installed_zh_families()
    if not families:
        pytest.skip("no Chinese font installed (fontconfig's fc-list :lang=zh; Debian's fonts-noto-cjk, `make pdf-deps`)")
    fonts = cjk_fonts((latex(tmp_path) / "book.tex").read_text())
    missing = {k: v for k, v in fonts.items() if v not in families}
    assert not missing, f"fonts named in the preamble that fc-list :lang=zh lacks: {missing}"


def tex_missing() -> str | None:
    if not (shutil.which("xelatex") and shutil.which("latexmk") and shutil.which("kpsewhich")):
        return "XeLaTeX and latexmk are not installed (`make pdf-deps`)"
    if subprocess.run(["kpsewhich", "xeCJK.sty", "ctexhook.sty"], capture_output=True).returncode != 0:
        return "xeCJK is not installed (Debian's texlive-lang-cjk and -chinese, `make pdf-deps`)"
    if not any("CJK SC" in f for f in installed_zh_families() or ()):
        return "Noto CJK is not installed (Debian's fonts-noto-cjk, `make pdf-deps`)"
    return None


def check_pdf(pdf: Path, log: Path, text: str) -> None:
    """Every Chinese character set (no "Missing character" in XeLaTeX's log), in Noto CJK (embedded),
    and readable back as text."""
    missing = [l for l in log.read_text(errors="replace").splitlines() if "Missing character" in l]
    assert not missing, missing[:5]
    if shutil.which("pdffonts") and shutil.which("pdftotext"):
        fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"\+NotoSerifCJK", fonts), fonts
        assert text in subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    else:  # poppler-utils missing: the embedded fonts' names from the PDF's (compressed) streams
        import zlib

        data = pdf.read_bytes()
        streams = [data]
        for m in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
            try:
                streams.append(zlib.decompressobj().decompress(m.group(1)))
            except zlib.error:
                pass
        assert re.search(rb"/BaseFont\s*/[A-Z]{6}\+NotoSerifCJK", b"".join(streams))


@pytest.mark.e2e  # latexmk/XeLaTeX end to end (several xelatex passes): make test-e2e
@pytest.mark.skipif(tex_missing() is not None, reason=str(tex_missing()))
def test_zh_pdf_typesets_chinese(tmp_path):
    out = latex(tmp_path)
    r = subprocess.run(["latexmk", "-xelatex", "-interaction=nonstopmode", "-halt-on-error", "book.tex"],
                       cwd=out, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    check_pdf(out / "book.pdf", out / "book.log", "批标准化层")  # in the code block too
    log = (out / "book.log").read_text(errors="replace")
    assert "Some font shapes were not available" not in log  # the emphasis has its font
    assert "headheight is too small" not in log
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(out / "book.pdf"), "-"], capture_output=True, text=True).stdout
        assert re.search(r"第\s*1\s*章", text), text[:500]


BUILT = sorted(ROOT.glob("_build/zh-pdf/*/_build/latex/book.pdf"))


@pytest.mark.skipif(not BUILT, reason="no PDF from `make pdf-zh` in _build/zh-pdf")
@pytest.mark.parametrize("pdf", BUILT, ids=lambda p: p.parents[2].name)
def test_built_zh_pdf(pdf):
    check_pdf(pdf, pdf.with_suffix(".log"), "批标准化如何帮助神经网络训练")  # the title of _config.zh.yml
