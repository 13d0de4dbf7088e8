# Two commands: `make run` (whole pipeline on the bundled sample) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: run test env data pipeline clean

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

test: data
	pytest

# Recompile the committed Kubeflow pipeline YAML after changing components or params.yaml.
pipeline: env
	$(BIN)/python -m pipelines.isoclr_pipeline

clean:
	rm -rf outputs registry local_outputs
