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
# the package's source (bnutils.experiments.package_version: every file, plotting and checks
# included) differs from the one it was built with.
define fresh-cache
v=$$($(BIN)/python -c "from bnutils.experiments import package_version; print(package_version())"); \
f=$(1)/_build/.bnutils-version; \
if [ "$$(cat $$f 2>/dev/null)" != "$$v" ]; then rm -rf $(1)/_build/.jupyter_cache $(1)/_build/.doctrees; fi; \
mkdir -p $(1)/_build && echo $$v > $$f
endef

# Python 3.11 or later: numpy 2.4, pandas 3.1, scipy 1.17, matplotlib 3.11 and scikit-learn 1.9 need
# it, and pip's own error on 3.10 ("No matching distribution") does not say so. Checked before
# .venv is made, and again on .venv's Python (a .venv left by an older Python).
define need-python
$(1) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else "make setup: this book needs Python 3.11 or later (numpy 2.4, pandas 3.1 and scipy 1.17 require it), but %s is Python %d.%d. Run: rm -rf $(VENV) && make setup PYTHON=python3.11 (or any newer python3.x)" % (sys.executable, v[0], v[1]))'
endef
# PyTorch: on Linux, PyPI's torch is the CUDA build (well over 1.5 GB with its nvidia-* packages).
# TORCH=cpu, the default on Linux without nvidia-smi, installs PyTorch's CPU build first, by the
# route of PyTorch's "Get started" page (pip install torch --index-url .../whl/cpu), pinned to the
# version of requirements.txt; a wheel pip already finds without an index (its --find-links) is
# used without going online, so offline machines that hold the wheel install as before.
# TORCH=cuda (the default where nvidia-smi exists) installs PyPI's build, for `paper` scale on a GPU.
TORCH_VERSION := $(shell sed -n 's/^torch==//p' requirements.txt)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH ?= $(if $(filter Linux,$(shell uname -s)),$(if $(shell command -v nvidia-smi),cuda,cpu),pypi)
PIP_INSTALL = $(BIN)/python -m pip install --disable-pip-version-check -q

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(call need-python,$(PYTHON))
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(call need-python,$(BIN)/python)
	@if [ "$(TORCH)" = cpu ]; then \
	  echo "PyTorch's CPU build: torch==$(TORCH_VERSION)+cpu (index $(TORCH_CPU_INDEX); TORCH=cuda for PyPI's CUDA build)"; \
	  $(PIP_INSTALL) --no-deps --no-index "torch==$(TORCH_VERSION)+cpu" 2>/dev/null \
	  || $(PIP_INSTALL) --no-deps --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)+cpu"; fi
	$(PIP_INSTALL) -r requirements.txt
	$(PIP_INSTALL) --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

## make book: the HTML book at the default `book` scale, in _build/html. Another scale
## (`BNBOOK_SCALE=smoke make book`) builds into _build/<scale>/_build/html, with its own execution
## cache (jupyter-cache) and its own experiment cache (bnutils: _build/cache/<scale>/<code version>),
## so that a book-scale build never shows another scale's outputs.
## Two chapters at a time (BOOK_JOBS=2): jupyter-book executes a book's notebooks one after the other,
## so the chapters its jupyter-cache lacks are executed first, BOOK_JOBS at once, each as its checked
## copy under nbval in a pytest-xdist worker (what `make notebooks` does at smoke scale: the chapter's
## code in its order, its assertions and claims, the student-copy checks at this scale too), and
## their executions are added to the build's jupyter-cache (bnutils.teaching.checked cache), where
## myst-nb finds them ("Using cached notebook"). A chapter that fails there is executed again by the
## build, which reports the error as before. The summary (it reads every chapter's claims ledger) is
## executed by the build. BOOK_JOBS=1: the build executes every chapter itself, one by one.
BNBOOK_SCALE ?= book
BOOK_OUT ?= $(if $(filter book,$(BNBOOK_SCALE)),.,_build/$(BNBOOK_SCALE))
BOOK_JOBS ?= 2
# the chapters' order when executed ahead, so that the two at a time end together (cold, `book`
# scale, one sweep worker each, 2-core machine of 2026-12-01: ics 312 s, landscape 263, benefits 251,
# beyond 162, optimization 103, batchnorm 26; this order ends about 5 s after half of their sum,
# longest first about 19 s); a chapter missing here comes last
BOOK_ORDER := benefits,landscape,ics,beyond,optimization,batchnorm
BOOK_CHECK ?= _build/ahead/$(BNBOOK_SCALE)
# $(1): the build's --path-output; the chapters run at this scale. The CPUs are shared out: a
# chapter's sweeps train in nproc / BOOK_JOBS worker processes (at least 1; $BNBOOK_JOBS overrides),
# so that about one busy process runs per CPU. With one per CPU in each of the two chapters (four
# busy processes on two cores) the same work took 38 % longer on the 2-core machine: two sweeps of
# 24 MLP runs side by side took 47 s with two workers each and 34 s with none (bench/RESULTS.md,
# seventh session); runs that take turns on a core run slower than one after the other.
AHEAD_JOBS = $(shell n=$$(( $$(nproc) / $(BOOK_JOBS) )); echo $$(( n > 0 ? n : 1 )))
define execute-ahead
todo=$$($(BIN)/python -m bnutils.teaching.checked pending $(CHAPTER_NBS) --build $(1) --first $(BOOK_ORDER)); \
if [ "$(BOOK_JOBS)" -gt 1 ] && [ -n "$$todo" ]; then \
  $(BIN)/python -m bnutils.teaching.checked copies $$todo --out $(BOOK_CHECK) && \
  { BNBOOK_SCALE=$(BNBOOK_SCALE) BNBOOK_JOBS=$${BNBOOK_JOBS:-$(AHEAD_JOBS)} BNBOOK_KEEP_ORDER=1 $(BIN)/python -m pytest --nbval-lax -q \
      -p no:cacheprovider -p bnutils.teaching.checked_plugin -n $(BOOK_JOBS) --dist loadgroup --no-loadscope-reorder --nbval-cell-timeout=1200 --durations=20 \
      $$(for f in $$todo; do echo $(BOOK_CHECK)/$${f##*/}; done) \
    || echo "make book: a chapter failed when executed ahead (above); the build executes it again and reports the error"; }; \
  BNBOOK_SCALE=$(BNBOOK_SCALE) $(BIN)/python -m bnutils.teaching.checked cache $(BOOK_CHECK)/executed --build $(1); \
fi
endef
book: setup
	@$(call fresh-cache,$(BOOK_OUT))
	@$(call execute-ahead,$(BOOK_OUT))
	BNBOOK_SCALE=$(BNBOOK_SCALE) $(BIN)/jupyter-book build . --path-output $(BOOK_OUT) --keep-going
	@echo "The book is at file://$(abspath $(BOOK_OUT))/_build/html/index.html"

## make book-zh: the Chinese edition (issue 23) at the same scale, into $(BOOK_OUT)/_build/zh/_build/html,
## copied to _build/html/zh/ of the English book (one site, as published). Its configuration is
## _config.yml with _config.zh.yml merged in (Sphinx language zh_CN, the catalogues of locales/), and
## _toc.yml with its part captions translated (bnutils.translations.zh_toc).
## The chapters run again with BNBOOK_LANG=zh only to draw the figures in Chinese (bnutils.plot):
## every training run comes from the experiment cache the English build filled (same scale, same key).
## make book-zh-smoke-build: the smoke-scale Chinese edition for `make test`, from the executions
## `make notebooks` left in $(CHECK)/executed (nothing runs again; its figures keep English labels,
## tests/test_plot_zh.py checks the Chinese ones), linked as $(JB_SMOKE)/_build/html/zh for the browser tests.
## make update-translations: re-extract the English messages (Sphinx's gettext builder, with the
## chapters' outputs from the smoke executions so that figure captions and alt texts are extracted),
## merge them into locales/zh_CN (sphinx-intl update), refresh the claims' catalogue claims.po from the
## smoke ledgers the chapters' executions wrote (python -m bnutils.translations claims; the summary's
## table in Chinese), and print per page what needs translating.
## make notebooks-zh: the chapters with Chinese markdown, for readers, in _build/zh/notebooks.
.PHONY: book-zh book-zh-smoke book-zh-smoke-build update-translations notebooks-zh
ZH_OUT := $(BOOK_OUT)/_build/zh
ZH_SMOKE := $(JB_SMOKE)/_build/zh
GETTEXT := _build/gettext
book-zh: setup
	@$(call fresh-cache,$(ZH_OUT))
	$(BIN)/python -m bnutils.translations config $(ZH_OUT)/_config.yml
	BNBOOK_LANG=zh BNBOOK_SCALE=$(BNBOOK_SCALE) $(BIN)/jupyter-book build . --config $(ZH_OUT)/_config.yml \
	  --toc $(ZH_OUT)/_toc.yml --path-output $(ZH_OUT) --keep-going
	@mkdir -p $(BOOK_OUT)/_build/html && rm -rf $(BOOK_OUT)/_build/html/zh \
	  && cp -r $(ZH_OUT)/_build/html $(BOOK_OUT)/_build/html/zh  # a copy: a Pages artifact holds no links
	@echo "The Chinese edition is at file://$(abspath $(BOOK_OUT))/_build/html/zh/index.html"

book-zh-smoke: setup notebooks
	@$(MAKE) --no-print-directory book-zh-smoke-build

book-zh-smoke-build: setup
	@$(call fresh-cache,$(ZH_SMOKE))
	$(BIN)/python -m bnutils.translations config $(ZH_SMOKE)/_config.yml
	BNBOOK_SCALE=smoke $(BIN)/python -m bnutils.teaching.checked cache $(CHECK)/executed --build $(ZH_SMOKE)
	BNBOOK_LANG=zh BNBOOK_SCALE=smoke $(BIN)/jupyter-book build . --config $(ZH_SMOKE)/_config.yml \
	  --toc $(ZH_SMOKE)/_toc.yml --path-output $(ZH_SMOKE) -W -n --keep-going --all
	@mkdir -p $(JB_SMOKE)/_build/html && ln -sfn ../zh/_build/html $(JB_SMOKE)/_build/html/zh

update-translations: setup
	@$(call fresh-cache,$(GETTEXT))
	$(BIN)/python -m bnutils.translations config $(GETTEXT)/_config.yml --edition en
	$(BIN)/jupyter-book config sphinx . --config $(GETTEXT)/_config.yml >/dev/null
	-BNBOOK_SCALE=smoke $(BIN)/python -m bnutils.teaching.checked cache $(CHECK)/executed --build $(GETTEXT)
	rm -rf $(GETTEXT)/pot
	BNBOOK_SCALE=smoke PYTHONPATH=_ext $(BIN)/sphinx-build -q -b gettext -c $(GETTEXT) -D nb_execution_mode=cache \
	  -D nb_execution_cache_path=$(abspath $(GETTEXT))/_build/.jupyter_cache . $(GETTEXT)/pot
	$(BIN)/sphinx-intl update -p $(GETTEXT)/pot -l zh_CN -d locales
	-BNBOOK_SCALE=smoke $(BIN)/python -m bnutils.translations claims
	$(BIN)/python -m bnutils.translations report

notebooks-zh: setup
	$(BIN)/python -m bnutils.translations notebooks _build/zh/notebooks

## make test: unit tests, every chapter under nbval at smoke scale (one execution per chapter, which
## is also the student-copy check and feeds the strict build), a strict smoke-scale build, browser tests.
## Two pytest-xdist workers (TEST_JOBS=2; TEST_JOBS=0 runs in one process): a notebook stays in one
## worker (--dist loadfile) and the chapters in AFTER (the summary reads every chapter's claims
## ledger) run when the others are done; the English and the Chinese smoke builds run side by side
## (smoke-builds: one Sphinx process each). `make bench-book` times each part (unit, notebooks,
## smoke-builds: the two builds alone, browser-run: the browser tests alone).
## make test-e2e: the unit tests marked e2e (pyproject.toml: end to end through subprocesses or a
## compiler, 10 s or more each), which `make test` leaves out to stay a fast loop; CI runs both.
TEST_JOBS ?= 2
XDIST = $(if $(filter-out 0 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile)
# unit tests: balanced test by test (a few end-to-end tests in one file take minutes each)
XDIST_UNIT = $(if $(filter-out 0 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist worksteal)
XDIST_GROUP = $(if $(filter-out 0 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadgroup)
CHECK ?= _build/check/smoke
NBVAL = BNBOOK_SCALE=smoke BNBOOK_JOBS=1 $(BIN)/python -m pytest --nbval-lax -q -p no:cacheprovider -p bnutils.teaching.checked_plugin
AFTER := summary
CHAPTER_NBS := $(filter-out $(AFTER:%=book/%.ipynb),$(sort $(wildcard book/*.ipynb)))

test: checks smoke-builds
	@$(MAKE) --no-print-directory browser-run

## make checks: `make unit` and `make notebooks` in one pytest-xdist run (TEST_JOBS workers,
## --dist loadgroup with bnutils.teaching.checked_plugin's scheduler): a chapter's cells are one unit
## of work, so the chapter stays in one worker and one kernel, and each unit test is a unit of its
## own, so the unit tests fill one worker while the other runs a chapter (the units with the most
## items are handed out first). Then the summary, which reads every chapter's claims ledger.
checks: setup FORCE
	@rm -f $(CHECK)/.done
	$(BIN)/python -m bnutils.teaching.checked copies book/*.ipynb --out $(CHECK)
	$(NBVAL) $(XDIST_GROUP) --durations=15 --ignore=tests/browser -m "not chapters and not e2e" \
	  $(patsubst book/%,$(CHECK)/%,$(CHAPTER_NBS)) tests
	$(NBVAL) $(AFTER:%=$(CHECK)/%.ipynb)
	@touch $(CHECK)/.done

unit: setup
	$(BIN)/python -m pytest tests -q --ignore=tests/browser -m "not chapters and not e2e" $(XDIST_UNIT) --durations=15

test-e2e: setup
	$(BIN)/python -m pytest tests -q --ignore=tests/browser -m "e2e and not chapters" $(XDIST_UNIT) --durations=15

# both builds from the executions `make notebooks` left in $(CHECK)/executed (make test runs it first)
smoke-builds: setup
	@$(MAKE) --no-print-directory -j2 --output-sync=target book-smoke-build book-zh-smoke-build

## make notebooks (= make student-check): each chapter's checked copy (bnutils.teaching.checked: its
## student copy with the reference solutions put back after the stubs, i.e. the chapter's code in its
## order with the stubs between) under nbval (--nbval-lax: every cell runs, the chapter's own
## assertions hold); the same run checks that the copy runs up to its first exercise, that stubs raise
## only NotImplementedError and that every self-check passes, and writes the executed chapters to
## $(CHECK)/executed for the strict build.
notebooks student-check: $(CHECK)/.done

$(CHECK)/.done: setup FORCE
	@rm -f $@
	$(BIN)/python -m bnutils.teaching.checked copies book/*.ipynb --out $(CHECK)
	$(NBVAL) $(XDIST) $(patsubst book/%,$(CHECK)/%,$(CHAPTER_NBS))
	$(NBVAL) $(AFTER:%=$(CHECK)/%.ipynb)
	@touch $@

## make book-smoke: the strict build (-W -n) at smoke scale; the chapters the tests just executed
## (same code, same package version) come from $(CHECK)/executed through the build's jupyter-cache.
## --all: every page is re-read, so no page keeps an earlier execution's outputs (a figure of
## training *time* differs from one execution to the next)
book-smoke: setup notebooks
	@$(MAKE) --no-print-directory book-smoke-build

book-smoke-build: setup
	@$(call fresh-cache,$(JB_SMOKE))
	BNBOOK_SCALE=smoke $(BIN)/python -m bnutils.teaching.checked cache $(CHECK)/executed --build $(JB_SMOKE)
	BNBOOK_SCALE=smoke $(BIN)/jupyter-book build . --path-output $(JB_SMOKE) -W -n --keep-going --all
	@echo "Smoke-scale book: file://$(abspath $(JB_SMOKE))/_build/html/index.html"

.PHONY: FORCE student-check book-smoke-build browser-run smoke-builds test-e2e checks
FORCE:

## make book-robust: the book at `book` scale under each CPU kernel variant this CPU can be forced to
## (ATEN_CPU_CAPABILITY default / avx2 / avx512, with MKL's and oneDNN's instruction sets), each with
## its own seed offset and caches, into _build/robust/<variant>; prints which claims fail where
## (bench/robust.py). Not part of `make test` or CI (one book build per variant). ROBUST_JOBS=2 builds two at once.
.PHONY: book-robust
ROBUST_JOBS ?= 1
book-robust: setup
	$(BIN)/python -m bench.robust --jobs $(ROBUST_JOBS)

## make lab: JupyterLab in the project's environment, with progress bars, rooted at the repository
## (book/ and the students' copies in _build/student both reachable), opened on book/
lab: setup
	BNBOOK_PROGRESS=1 $(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/book \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf _build

## make student [CHAPTER=batchnorm]: students' copies of the chapters (solutions removed, stubs, self-checks
## and answer cells in place) in _build/student
.PHONY: student
student: setup
	$(BIN)/python -m bnutils.teaching.student $(if $(CHAPTER),book/$(CHAPTER).ipynb,book/*.ipynb) --out _build/student
	@echo "Student copies: $(CURDIR)/_build/student (hand out with the bnutils package: pip install -e .)"

## make grade SUBMISSIONS=dir [CHAPTER=batchnorm] [TIMEOUT=60] [JOBS=2]: grade a folder of submitted
## notebooks (<student>.ipynb or <student>/.../<chapter>.ipynb) at smoke scale, each in its own process,
## against the reference checks: _build/grades/grades.csv, feedback/<student>.html, summary.md
.PHONY: grade
TIMEOUT ?= 60
grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=dir [CHAPTER=batchnorm] [TIMEOUT=60] [JOBS=2]"; exit 2; }
	BNBOOK_SCALE=smoke MPLBACKEND=Agg $(BIN)/python -m bnutils.teaching.grade "$(SUBMISSIONS)" --out _build/grades \
	  --timeout $(TIMEOUT) $(if $(CHAPTER),--chapter $(CHAPTER)) $(if $(JOBS),--jobs $(JOBS))

## make browser-deps: Debian's Chromium and Noto CJK font for the browser tests, installed when missing (CI runs this)
## make browser: every page of the smoke-scale book in headless Chromium, one chapter run in JupyterLab
## make pdf: the book as one PDF, _build/latex/book.pdf (TeX Live from Debian installed when missing)
## make pdf-zh: the Chinese edition as one PDF, _build/zh-pdf/$(PDF_SCALE)/_build/latex/book.pdf, by the same route:
## `make book-zh`'s configuration and table of contents (python -m bnutils.translations config), Sphinx's
## LaTeX builder with language zh_CN (for xelatex Sphinx itself loads xeCJK, and its Verbatim add-on)
## and _config.yml's preamble (Noto CJK). Its own folder per scale, execution cache included: the chapters
## run once with BNBOOK_LANG=zh (figures in Chinese; every training run from the experiment cache when
## `make book` at that scale filled it), then come from that cache. `make book-zh`'s smoke folder is not
## used: `make test` fills it with the English-labelled executions of `make notebooks`.
.PHONY: browser-deps browser pdf-deps pdf pdf-zh
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
TEX_PACKAGES := texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-xetex \
	texlive-plain-generic latexmk xindy fonts-freefont-otf tex-gyre lmodern texlive-lang-cjk texlive-lang-chinese fonts-noto-cjk
PDF_SCALE ?= book

browser-deps:
	@test -x $(CHROMIUM) && fc-list :lang=zh | grep -q . || { $(SUDO) apt-get update -q && $(APT_INSTALL) chromium fonts-noto-cjk; }

browser: setup book-smoke
	@$(MAKE) --no-print-directory browser-run

browser-run: setup
	BNBOOK_HTML=$(abspath $(JB_SMOKE))/_build/html $(BIN)/python -m pytest -q tests/browser $(XDIST_UNIT) --durations=10

pdf-deps:
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null && command -v xindy >/dev/null \
	  && kpsewhich xeCJK.sty ctexhook.sty >/dev/null && fc-list :lang=zh | grep -q "CJK SC" \
	  || { $(SUDO) apt-get update -q && $(APT_INSTALL) $(TEX_PACKAGES); }

pdf: setup pdf-deps
	BNBOOK_SCALE=$(PDF_SCALE) $(BIN)/jupyter-book build . --builder pdflatex --keep-going
	@echo "The PDF is at $(CURDIR)/_build/latex/book.pdf"

PDF_ZH := _build/zh-pdf/$(PDF_SCALE)
pdf-zh: setup pdf-deps
	@$(call fresh-cache,$(PDF_ZH))
	$(BIN)/python -m bnutils.translations config $(PDF_ZH)/_config.yml
	BNBOOK_LANG=zh BNBOOK_SCALE=$(PDF_SCALE) $(BIN)/jupyter-book build . --config $(PDF_ZH)/_config.yml \
	  --toc $(PDF_ZH)/_toc.yml --path-output $(PDF_ZH) --builder pdflatex --keep-going
	@echo "The Chinese PDF is at $(CURDIR)/$(PDF_ZH)/_build/latex/book.pdf"

## make bench: the CPU benchmarks in bench/ (training loop, BN layer, probes, cache), one table,
## JSON in _build/bench/bench.json; make bench-book: cold `make book`, a rebuild and `make test`,
## timed in a temporary folder (run it on a quiet machine). bench/gpu.py is for a CUDA machine.
.PHONY: bench bench-book
bench: setup
	$(BIN)/python -m bench.run

bench-book: setup
	$(BIN)/python -m bench.book_timings
