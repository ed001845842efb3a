# Developing the template. `make test` is the command CI runs (through .ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements-dev.txt | cut -c1-16)
DEMO_DIR ?= build/demo
DEMO_VENV ?= $(CURDIR)/.cache/demo-venv
ANSWERS ?=
REPOS ?=
REPOS_FILE ?=
TO ?=
TEST_CMD ?=

.PHONY: help setup test test-quick lint generate copier-yml golden fleet-update clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: $(STAMP) ## create the template's development environment (no-op when up to date)

$(STAMP): requirements-dev.txt
	[ -x "$(BIN)/python" ] || $(PYTHON) -m venv "$(VENV)"
	"$(BIN)/python" -m pip install --disable-pip-version-check -r requirements-dev.txt
	rm -f "$(VENV)"/.installed-* && touch "$(STAMP)"

test: setup ## run every test: bake matrix, parity, bad answers, updates, generated projects' suites
	"$(BIN)/python" -m pytest

test-quick: setup ## the inner loop (about a minute): questions, bad answers, every variant baked by both tools, updates
	"$(BIN)/python" -m pytest tests/test_questions.py tests/test_bad_answers.py tests/test_bake_matrix.py tests/test_update.py

lint: setup ## ruff on the template's own code (hooks, scripts, tests, fleet, catalog, benchmarks); copier.yml must match cookiecutter.json
	"$(BIN)/ruff" check hooks scripts tests fleet catalog benchmarks
	"$(BIN)/ruff" format --check hooks scripts tests fleet catalog benchmarks
	"$(BIN)/python" scripts/generate_copier_yml.py --check

generate: setup ## bake a demo repository into build/demo and run its main job; ANSWERS="problem_type=regression ..."
	rm -rf "$(DEMO_DIR)"
	"$(BIN)/cookiecutter" --no-input --output-dir "$(DEMO_DIR)" . $(ANSWERS)
	$(MAKE) -C "$$(find "$(DEMO_DIR)" -mindepth 1 -maxdepth 1 -type d)" setup pipeline VENV="$(DEMO_VENV)"

copier-yml: setup ## regenerate copier.yml from cookiecutter.json (REFRESH=1 also refreshes regions and keywords)
	"$(BIN)/python" scripts/generate_copier_yml.py $(if $(REFRESH),--refresh-data)

golden: setup ## regenerate tests/golden/ file listings after adding or removing template files
	"$(BIN)/python" -m tests.golden --update

fleet-update: setup ## take a template release to generated repositories: REPOS="path-or-git-url ..." [TO=v1.2.0] [TEST_CMD="make test"] [REPOS_FILE=file]
	"$(BIN)/python" -m fleet update $(if $(TO),--to "$(TO)") $(if $(TEST_CMD),--test-cmd "$(TEST_CMD)") $(if $(REPOS_FILE),--repos-file "$(REPOS_FILE)") $(REPOS)

clean: ## remove build outputs and caches (keeps .venv)
	rm -rf build .pytest_cache .ruff_cache
