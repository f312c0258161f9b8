# Two commands: `make book` builds the book, `make test` tests it. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JB_SMOKE := _build/smoke

.PHONY: setup book test unit notebooks book-smoke lab clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

## make book: the HTML book at the default `book` scale, in _build/html
book: setup
	BNBOOK_SCALE=book $(BIN)/jupyter-book build . --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

## make test: unit tests, every notebook under nbval at smoke scale, a strict smoke-scale build
test: unit notebooks book-smoke

unit: setup
	$(BIN)/python -m pytest tests -q

notebooks: setup
	BNBOOK_SCALE=smoke $(BIN)/python -m pytest --nbval-lax -q book

book-smoke: setup
	BNBOOK_SCALE=smoke $(BIN)/jupyter-book build . --path-output $(JB_SMOKE) -W -n --keep-going
	@echo "Smoke-scale book: file://$(CURDIR)/$(JB_SMOKE)/_build/html/index.html"

## make lab: JupyterLab on the book, with progress bars
lab: setup
	BNBOOK_PROGRESS=1 $(BIN)/jupyter lab book

clean:
	rm -rf _build
