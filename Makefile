# Two commands: `make run` (whole pipeline on the bundled sample) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: run test test-fast lint env data services pipeline scale clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The sample data comes from the DVC remote shipped in dvc-store/ (no network).
data: env
	dvc pull --quiet data.dvc

run: data
	dvc repro
	@echo; isoclr summary

# Debian packages the tests start themselves: the Prometheus Pushgateway, and
# promtool (from prometheus) to check the documented alert rule. Installed when
# missing and apt-get can run as root; elsewhere those tests skip and say why.
SERVICES := prometheus-pushgateway:prometheus-pushgateway promtool:prometheus
services:
	@for pair in $(SERVICES); do \
	  bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  if ! command -v $$bin >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      [ -n "$$updated" ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq; updated=1; }; \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkg >/dev/null; \
	    else echo "warning: $$bin missing (apt-get install $$pkg): its tests will skip"; fi; \
	  fi; \
	done

LINTED := src components pipelines benchmarks tests

lint: env
	ruff check $(LINTED)
	ruff format --check $(LINTED)

test: lint data services
	pytest

# The quick tests only (no end-to-end runs, no external tools): seconds to a minute.
test-fast: lint data
	pytest -m "not slow and not integration"

# Recompile the committed Kubeflow pipeline YAML after changing components or params.yaml.
pipeline: env
	$(BIN)/python -m pipelines.isoclr_pipeline

# Scale rehearsal: every stage on generated annotations of ~10k, 50k and 250k transcripts (planted function
# labels, 300 training steps): wall time, peak RSS and CPU per stage, growth exponents, whether the planted labels
# are recovered. About an hour on the 2-core machine; worlds and results under $(SCALE_WORK). See docs/benchmarks.md.
SCALE_WORK ?= /tmp/isoclr-bench-scale
scale: env
	$(BIN)/python benchmarks/scale.py --work $(SCALE_WORK)

clean:
	rm -rf outputs registry local_outputs
