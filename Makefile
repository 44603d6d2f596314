# One command per check. Each target creates (or reuses) the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# pytest-xdist workers; CI machines have 2 cores
WORKERS ?= 2
STAMP := $(VENV)/.installed

.PHONY: install demo notebook test test-slow bench bench-all lint docs docs-serve clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, from the local CPU wheel where there is one (never the multi-GB CUDA build)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet "torch==2.13.0" || \
		$(PIP) install --quiet "torch>=2.1" --index-url https://download.pytorch.org/whl/cpu
	$(PIP) install --quiet -e ".[test,gym,ray,tune,tensorboard,app,docs]"
	# headless Chromium for the browser tests (tests/app, tests/docs; they skip without it)
	if [ "$$(id -u)" = 0 ]; then command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium chromium-driver) || true; fi
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cai demo --out cai-demo

# open the tutorials in JupyterLab, in the project's environment (installs the `notebook` extra)
notebook: $(STAMP)
	$(PIP) install --quiet -e ".[notebook]"
	$(VENV)/bin/jupyter lab tutorials/

test: $(STAMP)
	$(PY) -m pytest -q -n $(WORKERS) --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow --durations=15

bench: $(STAMP)
	$(PY) benchmarks/bench_backup.py --threads 1
	$(PY) benchmarks/bench_batch.py --threads 1

bench-all: bench
	$(PY) benchmarks/bench_svi.py --threads 1 --with-sample
	$(PY) benchmarks/bench_algorithms.py

lint: $(STAMP)
	$(PIP) install --quiet "ruff==0.8.6"
	$(VENV)/bin/ruff check cai tests benchmarks examples

# the documentation site (mkdocs.yml): tutorials executed in smoke mode, warnings are errors
docs: $(STAMP)
	CI=1 NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# serve it at http://127.0.0.1:8000, rebuilding on change (notebook outputs cached between rebuilds)
docs-serve: $(STAMP)
	CI=1 NO_MKDOCS_2_WARNING=1 CAI_DOCS_NOTEBOOK_CACHE=true $(PY) -m mkdocs serve

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis cai-demo site .cache/mkdocs-jupyter
