# copier-deep-learning: the template's own commands. `make help` lists them.
# `make demo` and `make test` set up everything they need on a machine with Python 3.11+ and pip.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= build/demo
# Parallel test workers; each one renders the answer combinations it is given.
WORKERS ?= 2
# A stamp file: the environment is rebuilt when its requirements change.
STAMP := $(VENV)/.installed
# The benchmarks' own environment: the generated project's dependencies plus Lightning, which the
# trainer benchmark compares against and which the test environment must not hold.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: help venv demo test test-fast lint format bench docs docs-serve clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --group test
	touch $@

venv: $(STAMP) ## Create the development environment in .venv

# The demo reuses this environment (it holds every generated dependency): `init` instead of
# `setup`, which would install the project into it. A machine without a git identity gets one
# for the demo's first commit.
DEMO_GIT := GIT_AUTHOR_NAME="$${GIT_AUTHOR_NAME:-demo}" GIT_AUTHOR_EMAIL="$${GIT_AUTHOR_EMAIL:-demo@example.com}" \
	GIT_COMMITTER_NAME="$${GIT_COMMITTER_NAME:-demo}" GIT_COMMITTER_EMAIL="$${GIT_COMMITTER_EMAIL:-demo@example.com}"

demo: $(STAMP) ## Render the default answers into build/demo and run its whole pipeline
	rm -rf $(DEMO_DIR)
	$(BIN)/copier copy --defaults --vcs-ref HEAD "$(CURDIR)" "$(DEMO_DIR)"
	cd $(DEMO_DIR) && $(DEMO_GIT) PYTHONPATH=src $(MAKE) --no-print-directory \
		init lint repro VENV="$(abspath $(VENV))"
	@echo "The demo project is in $(DEMO_DIR): reports/evaluation.md, outputs/pipeline/, mlflow.db."
	@echo "cd $(DEMO_DIR) && make help"

test: $(STAMP) ## Run every test, the slow ones included
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup --durations=15

test-fast: $(STAMP) ## Run the tests without the slow ones
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup -m "not slow"

lint: $(STAMP) ## Lint the template's code and the generated package's plain modules
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Format the template's code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

$(BENCH_STAMP): pyproject.toml constraints.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BENCH_VENV)/bin/python -m pip install --quiet --constraint constraints.txt --group bench
	touch $@

bench: $(BENCH_STAMP) ## Run the benchmarks in .venv-bench (with Lightning; measurements, not tests)
	$(BENCH_VENV)/bin/python benchmarks/render.py
	$(BENCH_VENV)/bin/python benchmarks/validation.py
	$(BENCH_VENV)/bin/python benchmarks/trainer.py
	$(BENCH_VENV)/bin/python benchmarks/data_loading.py

docs: $(STAMP) ## Build the documentation site into build/site (mkdocs, --strict)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP) ## Serve the documentation at http://127.0.0.1:8000, rebuilt on save
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

clean: ## Remove build outputs and caches (keeps .venv)
	rm -rf build .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -not -path "./$(BENCH_VENV)/*" -exec rm -rf {} +
