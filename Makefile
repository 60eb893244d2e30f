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
# EVALUATE=1: evaluate every run here instead of reusing the evaluations shipped beside the weights
EVALUATE ?= 0
EVALUATE_FLAG := $(if $(filter 1 yes true,$(EVALUATE)),-p reevaluate True,)
# --log-output: each cell's printed output on the console as it runs, so a long notebook shows where it is
PAPERMILL := $(PY) -m papermill --cwd notebooks --kernel python3 --no-progress-bar --log-output

.PHONY: reproduce test venv data clean

# uv installs what pip would (the best version over the same indexes: pip's own configuration, UV_INSTALL) in a
# fraction of the time: a fresh venv on a busy 2-core machine took 90 s with pip, 37 s with uv and 4.5 s with uv's
# cache warm (results/timings.md). Where uv cannot be had or fails, pip. Neither byte-compiles every file of every
# package (torch, jupyterlab, ...): Python compiles each module when first imported (pip: 215 s against 117 s).
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	($(PY) -m pip install -q uv 2>/dev/null && $(PY) -c "$$UV_INSTALL" -e '.[dev]') || \
	  $(PY) -m pip install -q --no-compile -e '.[dev]'
	touch $@

# `uv pip install ARGS` into this Python's venv, with pip's configuration as uv's options: for each setting the
# place pip itself would take it from (PIP_* variables, then pip.conf's [install], then [global])
define UV_INSTALL
import ast, os, subprocess, sys
flags = {"index-url": "--default-index", "extra-index-url": "--index", "find-links": "--find-links",
         "constraint": "--constraint", "trusted-host": "--allow-insecure-host"}
rank, best = {":env:": 0, "install": 1, "global": 2}, {}
for line in subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout.splitlines():
    key, _, value = line.partition("=")
    section, _, name = key.rpartition(".")
    if section in rank and (name not in best or rank[section] < best[name][0]):
        best[name] = rank[section], ast.literal_eval(value)
args, env = [], dict(os.environ)
for name, (_, value) in best.items():
    if name in flags:
        args += [a for v in value.split() for a in (flags[name], v)]
    elif name == "no-index" and value.lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    elif name == "cert":  # uv trusts its own root certificates unless told
        env.setdefault("SSL_CERT_FILE", value)
uv = os.path.join(os.path.dirname(sys.executable), "uv")
sys.exit(subprocess.run([uv, "pip", "install", "-q", "--python", sys.executable, "--index-strategy", "unsafe-best-match",
                         *args, *sys.argv[1:]], env=env).returncode)
endef
export UV_INSTALL

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
	  $(PAPERMILL) build/$$nb.src.ipynb build/$$nb.ipynb $$(case $$nb in 00_*|01_*) ;; *) echo -p profile $(PROFILE);; esac) $$(case $$nb in 02_models|04_cub) echo "$(TRAIN_FLAG)";; esac) $$(case $$nb in 02_models) echo "$(EVALUATE_FLAG)";; esac) || exit 1; \
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
