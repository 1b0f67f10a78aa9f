# MedAI Flow: one entry point for humans and CI.
#   make serve   run the service locally on the bundled model (http://127.0.0.1:7071/api/v1/docs)
#   make test    install everything the tests need, then lint, scan and run the whole test suite
#   make infra   regenerate the Bicep (infra/bicep) and the Kubernetes manifests (infra/k8s)
#   make infra-check  drift check of both, checkov (Bicep, manifests, Dockerfile), kubernetes-validate
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP_RUNTIME := $(VENV)/.runtime-installed
STAMP_DEV := $(VENV)/.dev-installed
STAMP_NODE := node_modules/.installed
CHECKOV_VENV := .venv-checkov
STAMP_CHECKOV := $(CHECKOV_VENV)/.installed
# Offline flags (no Bridgecrew platform, no update check, no policy download).
CHECKOV := BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov --skip-download --compact --quiet
REPORTS := reports
HOST ?= 127.0.0.1
PORT ?= 7071

.PHONY: help serve test lint scan pytest lock model clean infra infra-check checkov

help:
	@sed -n 's/^#   //p' Makefile

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (the Azure Functions runtime version)"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP_RUNTIME): requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	touch $@

# azure-functions-runtime (the Python worker's indexing code) declares Python >= 3.13 but runs on 3.11;
# the tests use it offline to index function_app.py exactly as the worker does.
FUNCTIONS_RUNTIME := azure-functions-runtime==1.3.0

$(STAMP_DEV): $(STAMP_RUNTIME) requirements-dev.txt
	$(PIP) install --quiet -r requirements.txt -r requirements-dev.txt
	$(PIP) install --quiet --no-deps --ignore-requires-python $(FUNCTIONS_RUNTIME)
	touch $@

# checkov pins its own dependency versions (e.g. pycep-parser 0.5.1), so it gets its own venv.
$(STAMP_CHECKOV): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

serve: $(STAMP_RUNTIME)  ## local development: authentication explicitly off, loudly
	MEDAI_ENVIRONMENT=local MEDAI_AUTH_MODE=none $(PY) -m service --host $(HOST) --port $(PORT)

lint: $(STAMP_DEV)
	$(PY) -m flake8 .

scan: $(STAMP_DEV)
	$(PY) -m bandit -q -c bandit.yaml -r function_app.py inference security service infra compliance tools

pytest: $(STAMP_DEV) $(STAMP_NODE) $(STAMP_CHECKOV)
	mkdir -p $(REPORTS)
	$(PY) -m pytest --junitxml=$(REPORTS)/junit.xml $(PYTEST_ARGS)

test: lint scan pytest

infra: $(STAMP_DEV)  ## regenerate infra/bicep and infra/k8s (placeholder values) from the infra package
	$(PY) -m infra build
	$(PY) -m infra k8s

checkov: $(STAMP_CHECKOV)  ## every skip is a `checkov:skip` written by the generator, with its reason
	$(CHECKOV) -d infra/bicep
	$(CHECKOV) -d infra/k8s
	$(CHECKOV) -f Dockerfile

infra-check: $(STAMP_DEV) checkov
	$(PY) -m infra build --check
	$(PY) -m infra k8s --check
	$(VENV)/bin/kubernetes-validate --strict infra/k8s/*.yaml

lock: $(PY)  ## recompile the pinned requirements from requirements*.in
	$(PIP) install --quiet pip-tools
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-checkov.txt requirements-checkov.in

model: $(STAMP_DEV)  ## regenerate the bundled default model
	$(PY) tools/make_default_model.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules $(REPORTS) .pytest_cache
