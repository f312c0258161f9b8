# Two commands: `make book` builds the book, `make test` tests it. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JB_SMOKE := _build/smoke

.PHONY: setup book test unit notebooks book-smoke lab clean

# jupyter-cache re-executes a notebook only when its cells change, not when bnutils does: drop a
# build's execution cache (and Sphinx's doctrees, or unchanged pages are not even re-read) when
# the package's code version differs from the one it was built with.
define fresh-cache
v=$$($(BIN)/python -c "from bnutils.experiments import code_version; print(code_version())"); \
f=$(1)/_build/.bnutils-version; \
if [ "$$(cat $$f 2>/dev/null)" != "$$v" ]; then rm -rf $(1)/_build/.jupyter_cache $(1)/_build/.doctrees; fi; \
mkdir -p $(1)/_build && echo $$v > $$f
endef

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

## make book: the HTML book at the default `book` scale, in _build/html. Another scale
## (`BNBOOK_SCALE=smoke make book`) builds into _build/<scale>/_build/html, with its own execution
## cache, so that a book-scale build never shows another scale's outputs.
BNBOOK_SCALE ?= book
BOOK_OUT := $(if $(filter book,$(BNBOOK_SCALE)),.,_build/$(BNBOOK_SCALE))
book: setup
	@$(call fresh-cache,$(BOOK_OUT))
	BNBOOK_SCALE=$(BNBOOK_SCALE) $(BIN)/jupyter-book build . --path-output $(BOOK_OUT) --keep-going
	@echo "The book is at file://$(abspath $(BOOK_OUT))/_build/html/index.html"

## make test: unit tests, every notebook under nbval at smoke scale, a strict smoke-scale build
test: unit notebooks student-check book-smoke browser

unit: setup
	$(BIN)/python -m pytest tests -q --ignore=tests/browser -m "not chapters"

notebooks: setup
	BNBOOK_SCALE=smoke $(BIN)/python -m pytest --nbval-lax -q book

book-smoke: setup
	@$(call fresh-cache,$(JB_SMOKE))
	BNBOOK_SCALE=smoke $(BIN)/jupyter-book build . --path-output $(JB_SMOKE) -W -n --keep-going
	@echo "Smoke-scale book: file://$(CURDIR)/$(JB_SMOKE)/_build/html/index.html"

## make lab: JupyterLab on the book, with progress bars
lab: setup
	BNBOOK_PROGRESS=1 $(BIN)/jupyter lab book $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf _build

## make student: students' copies of the chapters (solutions removed, stubs in place) in _build/student
.PHONY: student
student: setup
	$(BIN)/python -m bnutils.student book/*.ipynb --out _build/student
	@echo "Student copies: $(CURDIR)/_build/student (hand out with the bnutils package: pip install -e .)"

## make student-check: each chapter's student copy runs up to its first exercise and, with the
## reference solutions put back, passes every self-check (executes every chapter at smoke scale)
.PHONY: student-check
student-check: setup
	BNBOOK_SCALE=smoke $(BIN)/python -m pytest -q -m chapters tests/test_student.py

## make browser-deps: Debian's Chromium for the browser tests, installed when missing (CI runs this)
## make browser: every page of the smoke-scale book in headless Chromium, one chapter run in JupyterLab
## make pdf: the book as one PDF, _build/latex/book.pdf (TeX Live from Debian installed when missing)
.PHONY: browser-deps browser pdf-deps pdf
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
TEX_PACKAGES := texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-xetex \
	texlive-plain-generic latexmk xindy fonts-freefont-otf tex-gyre lmodern
PDF_SCALE ?= book

browser-deps:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && $(APT_INSTALL) chromium; }

browser: setup book-smoke
	BNBOOK_HTML=$(CURDIR)/$(JB_SMOKE)/_build/html $(BIN)/python -m pytest -q tests/browser

pdf-deps:
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null && command -v xindy >/dev/null \
	  || { $(SUDO) apt-get update -q && $(APT_INSTALL) $(TEX_PACKAGES); }

pdf: setup pdf-deps
	BNBOOK_SCALE=$(PDF_SCALE) $(BIN)/jupyter-book build . --builder pdflatex --keep-going
	@echo "The PDF is at $(CURDIR)/_build/latex/book.pdf"

## make bench: the CPU benchmarks in bench/ (training loop, BN layer, probes, cache), one table,
## JSON in _build/bench/bench.json; make bench-book: cold `make book`, a rebuild and `make test`,
## timed in a temporary folder (run it on a quiet machine). bench/gpu.py is for a CUDA machine.
.PHONY: bench bench-book
bench: setup
	$(BIN)/python -m bench.run

bench-book: setup
	$(BIN)/python -m bench.book_timings
