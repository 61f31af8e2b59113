# The verbs a person uses. Everything runs from a project-local virtualenv that `make setup`
# creates, so nothing depends on what the machine happens to have installed.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help setup dev run test unit go-test e2e tools chart lint crds render image bench clean

help: ## list the verbs with what each does
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) ## create .venv and install kubeinfer with its test and lint tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

dev: setup ## build the control plane (cached), start it with GPU nodes, run the operator and the examples
	$(PY) -m e2e.dev

run: setup ## run the operator against the current KUBECONFIG
	$(VENV)/bin/kubeinfer run --all-namespaces

test: unit go-test e2e ## every test: unit, the collector components' Go tests, then end-to-end on the real control plane

unit: setup ## unit and planning tests: no cluster, no Go
	$(PY) -m pytest tests

go-test: ## go vet and go test of the collector components (needs Go)
	cd collector/components && go vet ./... && go test -p 2 ./...

e2e: tools ## end-to-end tests on a real control plane, Prometheus and the real tools
	$(PY) -m pytest e2e

tools: setup ## build (once, cached) or install everything e2e runs: control plane, adapter, collector, argocd, helm, Redis, Prometheus
	$(PY) -m e2e.harness.toolchain build
	$(PY) -m e2e.harness.prometheus_adapter build
	$(PY) -m e2e.harness.otelcol build
	$(PY) -m e2e.harness.argocd build
	$(PY) -m e2e.harness.helm build
	$(PY) -m e2e.harness.argocd_core
	$(PY) -m e2e.harness.prometheus

chart: setup ## helm lint --strict and helm template charts/kubeinfer with every ci/*-values.yaml; bad values refused
	$(PY) -m e2e.harness.chart_check

lint: setup ## ruff, mypy --strict and the import-linter layer contracts
	$(VENV)/bin/ruff check operator tests e2e images
	$(VENV)/bin/ruff format --check operator tests e2e images
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

crds: setup ## regenerate crds/ and the chart's CRD templates from the API models, and the Argo CD health scripts
	$(VENV)/bin/kubeinfer crds --output-dir crds --chart-dir charts/kubeinfer
	$(VENV)/bin/kubeinfer argocd-health write --dir manifests/argocd
	cp manifests/argocd/health/*.lua charts/kubeinfer/files/argocd/
	cp manifests/monitoring/adapter-rules.yaml charts/kubeinfer/files/monitoring/

render: setup ## print the children of every example manifest
	$(VENV)/bin/kubeinfer render manifests/examples/*.yaml

image: setup ## build both images as OCI layouts in build/images/ without a daemon (root), run each read-only, check the layouts
	$(PY) -m images.build
	$(PY) -m pytest -q images/tests

bench: setup ## benchmarks, reported as figures and ratios against peers measured in the same run
	$(PY) -m pytest tests --benchmark-enable --benchmark-only
	$(PY) e2e/bench_placement.py
	PYTHONPATH=operator:. $(PY) -m e2e.bench_oom
	$(PY) e2e/bench_log_agent.py
	$(PY) e2e/bench_scale.py --count 1000

clean: ## remove .venv and the lint and test caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
