# Two commands do everything on a fresh machine with Python 3.11, Node and npm:
#   make synth   set up, then synthesise every stack into cdk.out/ (no AWS account needed)
#   make test    set up, then run every test
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
ENV ?= dev

# Node 22 and the CDK CLI come from node_modules (package.json pins both); jsii and the CLI find
# them first on PATH. No AWS call is made while synthesising: disable the instance-metadata probe.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export AWS_EC2_METADATA_DISABLED := true

CDK := cdk --context env=$(ENV)

.PHONY: setup synth test deploy diff destroy bootstrap model clean

$(VENV)/.synth-deps: requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.test-deps: $(VENV)/.synth-deps requirements-dev.txt
	$(VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.test-deps node_modules/.installed

synth: $(VENV)/.synth-deps node_modules/.installed
	$(CDK) synth --quiet
	@echo "Templates written to cdk.out/"

test: setup
	$(VENV)/bin/python -m pytest

bootstrap: synth
	$(CDK) bootstrap

diff: synth
	$(CDK) diff --all

deploy: synth
	$(CDK) deploy --all --require-approval broadening

destroy: node_modules/.installed $(VENV)/.synth-deps
	$(CDK) destroy --all

# Retrain the bundled model; the committed artefacts must not change unless the script does.
model: setup
	$(VENV)/bin/python -m stacks.default_model.train

clean:
	rm -rf cdk.out .pytest_cache
