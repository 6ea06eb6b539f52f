# The two commands: `make run` (main job on the default data set) and `make test` (the suite).
# Both set up everything on a fresh machine and are no-ops for set-up on a second call.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The stamp names a hash of the dependency files, so editing them reinstalls and nothing else does.
DEPS_HASH := $(shell cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
ARGS ?=

.PHONY: help run test test-full smoke data clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

data: $(STAMP)  ## make sure the default data set (fashion_mnist) is present
	bash scripts/ensure_data.sh
	$(PY) -m tracer.data fashion_mnist

run: data  ## the main job: separate -> attack -> trace -> report on fashion_mnist
	$(PY) -m tracer.pipeline $(ARGS)

test: data  ## the test suite, without the slow reproduction runs
	$(PY) -m pytest -m "not slow" $(ARGS)

test-full: data  ## every test, the slow reproduction runs included
	$(PY) -m pytest $(ARGS)

smoke: $(STAMP)  ## the tiny configuration end to end (digits, 3 copies)
	$(PY) -m tracer.pipeline debug=tiny $(ARGS)

clean:  ## remove the virtual environment and run outputs
	rm -rf $(VENV) outputs multirun
