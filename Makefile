# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
MOTO_PORT ?= 4566
export PORT MOTO_PORT

.PHONY: run test venv reset-local bench clean

# Reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

## make run: local AWS stack (moto) + tables + signing key + `chalice local` on 127.0.0.1:$(PORT)
run: venv
	$(BIN)/python -m tools.devstack

## make test: the whole suite (unit, routes, moto-server integration, browser)
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: the benchmark scripts under bench/
bench: venv
	$(BIN)/python bench/import_time.py

## make reset-local: forget everything `make run` stored (clients, users, keys)
reset-local:
	rm -rf .local

clean: reset-local
	rm -rf $(VENV) .pytest_cache
