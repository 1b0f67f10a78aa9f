# MedAI Flow: one entry point for humans and CI.
#   make serve        run the service locally on the bundled model (http://127.0.0.1:7071/api/v1/docs)
#   make test         install everything the tests need, then lint, scan and run the whole test suite
#   make install      install the project, the test tools and Azurite without running anything
#   make infra        regenerate the Bicep (infra/bicep) and the Kubernetes manifests (infra/k8s)
#   make infra-check  drift check of both, checkov (Bicep, manifests, Dockerfile), kubernetes-validate
#   make sbom         CycloneDX SBOM of the runtime dependencies (reports/sbom.cdx.json)
#   make batch-demo   a local batch run against Azurite: upload, process, show what landed where
#   make compliance   the compliance gate on reports/junit.xml (run by make test after pytest)
#   make compliance-docs  regenerate compliance/generated/*.md (requirements, risks, traceability, SOUP, plan)
#   make bench        the performance suite of issue 8 (needs wrk); BENCH_ARGS=--quick for a smoke run
#   make bench-publish  make the last full run (reports/bench.json) the README's performance figures
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP_RUNTIME := $(VENV)/.runtime-installed
STAMP_DEV := $(VENV)/.dev-installed
STAMP_SERVE := $(VENV)/.serve-installed
STAMP_NODE := node_modules/.installed
# checkov pins its own dependency versions (pycep-parser 0.5.1, boto3, ...), so it gets its own venv.
CHECKOV_VENV := .venv-checkov
STAMP_CHECKOV := $(CHECKOV_VENV)/.installed
# Offline flags: no Bridgecrew platform mapping download, no update check, no policy download.
CHECKOV_ENV := BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true
CHECKOV := $(CHECKOV_ENV) $(CHECKOV_VENV)/bin/checkov --skip-download --compact --quiet
REPORTS := reports
COMPLIANCE_REPORTS := $(REPORTS)/compliance
WORKFLOWS := $(wildcard .github/workflows/*.yml)
# Directories detect-secrets must not read: installed tools, caches and generated reports.
SECRETS_EXCLUDE := ^\.secrets\.baseline$$|^(\.git|\.venv|\.venv-checkov|node_modules|reports|build|dist|\.pytest_cache|__azurite_db.*|__blobstorage__|__queuestorage__|\.azurite|\.bench)/|(^|/)__pycache__/
# Lines that hold a content hash (a manifest's or a response's "sha256"), the commit a published benchmark
# ran on, or the AKS add-on's enableSecretRotation flag are not secrets; they change with every model and
# would need re-auditing.
SECRETS_EXCLUDE_LINES := "sha256": "[0-9a-f]{64}"|"git_commit": "[0-9a-f]{40}"|enableSecretRotation
HOST ?= 127.0.0.1
PORT ?= 7071

.PHONY: help serve install install-python test lint workflow-lint scan secrets-scan workflow-scan pytest \
	sbom functions-package lock model clean infra infra-check checkov batch-demo compliance compliance-docs bench bench-models bench-publish

help:
	@sed -n 's/^#   //p' Makefile

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (the Azure Functions runtime version)"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP_RUNTIME): requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	touch $@

# The local server (uvicorn): never part of the Function App or the image, where the Functions host serves.
$(STAMP_SERVE): $(STAMP_RUNTIME) requirements-serve.txt
	$(PIP) install --quiet -r requirements.txt -r requirements-serve.txt
	touch $@

# azure-functions-runtime (the Python worker's indexing code) declares Python >= 3.13 but runs on 3.11;
# the tests use it offline to index function_app.py exactly as the worker does.
FUNCTIONS_RUNTIME := azure-functions-runtime==1.3.0

$(STAMP_DEV): $(STAMP_SERVE) requirements-dev.txt
	$(PIP) install --quiet -r requirements.txt -r requirements-serve.txt -r requirements-dev.txt
	$(PIP) install --quiet --no-deps --ignore-requires-python $(FUNCTIONS_RUNTIME)
	touch $@

$(STAMP_CHECKOV): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP_DEV) $(STAMP_NODE) $(STAMP_CHECKOV)

install-python: $(STAMP_DEV)

serve: $(STAMP_SERVE)  ## local development: authentication explicitly off, loudly
	MEDAI_ENVIRONMENT=local MEDAI_AUTH_MODE=none $(PY) -m service --host $(HOST) --port $(PORT)

lint: $(STAMP_DEV) workflow-lint
	$(PY) -m flake8 .

# The GitHub workflows: actionlint (with shellcheck on every `run:` script) and yamllint.
workflow-lint: $(STAMP_DEV)
	$(VENV)/bin/actionlint -shellcheck=$(VENV)/bin/shellcheck -pyflakes= $(WORKFLOWS)
	$(VENV)/bin/yamllint --strict -c .yamllint.yaml .github .yamllint.yaml

scan: $(STAMP_DEV) secrets-scan workflow-scan
	$(PY) -m bandit -q -c bandit.yaml -r function_app.py inference security service infra compliance tools pipeline bench

# Every finding must already be in .secrets.baseline and audited as a false positive; the committed
# baseline is only read (the scan result goes to reports/).
secrets-scan: $(STAMP_DEV)
	mkdir -p $(REPORTS)
	cp .secrets.baseline $(REPORTS)/secrets.baseline
	$(VENV)/bin/detect-secrets scan --all-files --exclude-files '$(SECRETS_EXCLUDE)' \
		--exclude-lines '$(SECRETS_EXCLUDE_LINES)' --baseline $(REPORTS)/secrets.baseline
	$(PY) -m pipeline.secrets_gate $(REPORTS)/secrets.baseline

# checkov's GitHub Actions checks on the workflows. checkov silently drops a workflow its bundled schema
# rejects (it predates the `attestations` and `artifact-metadata` permissions): pipeline/checkov_workflows.py
# hides only those permission lines from it, and fails unless every workflow was scanned with no failed check.
CHECKOV_WORKFLOWS := $(REPORTS)/checkov-workflows
workflow-scan: $(STAMP_CHECKOV)
	rm -rf $(CHECKOV_WORKFLOWS) $(CHECKOV_WORKFLOWS)-report
	$(PYTHON) -m pipeline.checkov_workflows prepare .github/workflows $(CHECKOV_WORKFLOWS)/.github/workflows
	$(CHECKOV_ENV) $(CHECKOV_VENV)/bin/checkov -d $(CHECKOV_WORKFLOWS) --framework github_actions --skip-download \
		--compact -o json --output-file-path $(CHECKOV_WORKFLOWS)-report > /dev/null || true
	$(PYTHON) -m pipeline.checkov_workflows verify $(CHECKOV_WORKFLOWS)-report/results_json.json .github/workflows

pytest: $(STAMP_DEV) $(STAMP_NODE) $(STAMP_CHECKOV)
	mkdir -p $(REPORTS)
	$(PY) -m pytest --junitxml=$(REPORTS)/junit.xml $(PYTEST_ARGS)

# The compliance gate (compliance/README.md) judges the JUnit results of the pytest run just before it:
# every requirement has a verifying test, every risk control's tests passed, residual risks are acceptable,
# every SOUP package has its overlay, the committed documents equal a fresh generation. It writes the
# traceability matrix with this run's results and the release record to reports/compliance.
compliance: $(STAMP_DEV)
	$(PY) -m compliance check --junit $(REPORTS)/junit.xml --out $(COMPLIANCE_REPORTS)

compliance-docs: $(STAMP_DEV)  ## regenerate compliance/generated/*.md from the repository
	$(PY) -m compliance generate

test: lint scan pytest compliance

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

batch-demo: $(STAMP_RUNTIME) $(STAMP_NODE)
	$(PY) tools/batch_demo.py

# The benchmark suite (bench/): not part of `make test`. Models are generated into .bench/models (git-ignored,
# cached by a hash of bench/models.py); the JSON report goes to reports/bench.json. wrk comes from the
# system packages: `apt-get update && apt-get install -y wrk`.
BENCH_ARGS ?=
bench: $(STAMP_DEV) $(STAMP_NODE)
	@command -v wrk > /dev/null || { echo "wrk is missing: apt-get update && apt-get install -y wrk" >&2; exit 1; }
	$(PY) -m bench run $(BENCH_ARGS)

# Publish the last full run: it becomes bench/results/latest.json and the README's performance section.
bench-publish: $(STAMP_DEV)
	$(PY) -m bench publish reports/bench.json
	$(PY) tools/make_docs.py

bench-models: $(STAMP_DEV)
	$(PY) -m bench models

# CycloneDX SBOM of the runtime dependencies (what the Function App and the image install).
sbom: $(STAMP_DEV)
	mkdir -p $(REPORTS)
	$(VENV)/bin/cyclonedx-py requirements requirements.txt --output-reproducible --of JSON -o $(REPORTS)/sbom.cdx.json

# The code package published to the Function App (see pipeline/function_package.py).
functions-package:
	$(PYTHON) -m pipeline.function_package --out build/functionapp.zip

lock: $(PY)  ## recompile the pinned requirements from requirements*.in
	$(PIP) install --quiet pip-tools
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-serve.txt requirements-serve.in
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-checkov.txt requirements-checkov.in

model: $(STAMP_DEV)  ## regenerate the bundled default model
	$(PY) tools/make_default_model.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules $(REPORTS) build .pytest_cache
