# Two commands do all set-up: `make reproduce` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The raw data: $MMEBM_DATA, else the shared folder beside the repository, else data/raw.
MMEBM_DATA ?= $(firstword $(wildcard $(abspath ../shared/data)) $(CURDIR)/data/raw)
export MMEBM_DATA
# `gpu` with CUDA (its shipped weights, evaluated in minutes), `cpu` otherwise; `make reproduce PROFILE=...`
# overrides (`paper` ships no weights: `make reproduce PROFILE=paper TRAIN=1` trains it, after printing the
# measured step time and the expected total).
PROFILE ?= $(shell [ -x $(PY) ] && $(PY) -m mmebm.runs default-profile 2>/dev/null || echo cpu)
NOTEBOOKS := 00_polymnist 01_objectives 02_models 03_results 04_cub
# TRAIN=1: train every PolyMNIST run and both CUB models from scratch instead of evaluating the weights shipped in
# weights/ (without it, a run that is neither shipped nor in runs/ stops with a message that says how to train it)
TRAIN ?= 0
TRAIN_FLAG := $(if $(filter 1 yes true,$(TRAIN)),-p train_models True,)
# --log-output: each cell's printed output on the console as it runs, so a long notebook shows where it is
PAPERMILL := $(PY) -m papermill --cwd notebooks --kernel python3 --no-progress-bar --log-output

.PHONY: reproduce test venv data clean

# --no-compile: Python compiles each module when first imported; pip would compile every file of every package
# (torch, jupyterlab, ...): half the set-up time (215 s against 117 s on a busy 2-core machine, results/timings.md)
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-compile -e '.[dev]'
	touch $@

data: venv
	$(PY) -m mmebm.data polymnist --out data/polymnist --quiet

# Each notebook: jupytext turns the paired .py into a notebook, papermill runs it headless into build/;
# then mmebm.html exports them as HTML pages with an index (build/html/index.html).
reproduce: venv
	@start=$$(date +%s); mkdir -p build; \
	$(PY) -m mmebm.data polymnist --out data/polymnist --quiet || exit 1; \
	for nb in $(NOTEBOOKS); do \
	  echo "== $$nb (profile $(PROFILE))"; t=$$(date +%s); \
	  $(PY) -m jupytext --quiet --to ipynb --output build/$$nb.src.ipynb notebooks/$$nb.py && \
	  $(PAPERMILL) build/$$nb.src.ipynb build/$$nb.ipynb $$(case $$nb in 00_*|01_*) ;; *) echo -p profile $(PROFILE);; esac) $$(case $$nb in 02_models|04_cub) echo "$(TRAIN_FLAG)";; esac) || exit 1; \
	  echo "== $$nb done in $$(( $$(date +%s) - t )) s"; \
	done; \
	$(PY) -m mmebm.html $(patsubst %,build/%.ipynb,$(NOTEBOOKS)) --out build/html || exit 1; \
	echo "make reproduce (profile $(PROFILE)) took $$(( $$(date +%s) - start )) s; executed notebooks in build/ (HTML: build/html/index.html), figures in figures/"

# the suite in TEST_WORKERS processes (pytest-xdist), each with its share of the CPU threads; loadgroup keeps
# the notebook tests that share one set of tiny runs on one worker (tests/test_notebooks.py)
TEST_WORKERS ?= 2
test: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=12

clean:
	rm -rf build
