# Two commands do everything on a fresh machine with Python 3.11, Node and npm:
#   make synth   set up, then synthesise every stack into cdk.out/ (no AWS account needed)
#   make test    set up, then run every test
# `make help` lists every target with what it needs. Each target does its own set-up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
ENV ?= dev

# Node 22 and the CDK CLI come from node_modules (package.json pins both); jsii and the CLI find
# them first on PATH. No AWS call is made while synthesising: disable the instance-metadata probe.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export AWS_EC2_METADATA_DISABLED := true

CDK := cdk --context env=$(ENV)

.PHONY: help setup layer synth test bench deploy diff destroy bootstrap preflight model samples clean review-preview drift-report review-local quality-report rehearse
.DEFAULT_GOAL := help

help: ## this list: each target, what it needs, about how long it takes (no account; instant)
	@echo "usage: make <target> [ENV=dev|prod|churn|income|jsonl]   (ENV defaults to dev; cdk.json has them)"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# What synthesis needs and nothing more: the SageMaker SDK's image tables come from sagemaker-core
# installed without its dependencies (pandas, scipy, paramiko...: hundreds of MB synthesis never
# imports; stacks/shared/images.py reads the JSON files). The whole SDK is a test dependency.
$(VENV)/.synth-deps: requirements.txt requirements-image-tables.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the Python packages synthesis needs into $(VENV) (first run: a few minutes)"
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -r requirements-image-tables.txt
	touch $@

$(VENV)/.tools-deps: $(VENV)/.synth-deps requirements-tools.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -r requirements-tools.txt  # numpy alone; --no-deps: pip would list sagemaker-core's uninstalled dependencies
	touch $@

$(VENV)/.test-deps: $(VENV)/.tools-deps requirements-dev.txt
	@echo "Installing the test dependencies into $(VENV)"
	$(VENV)/bin/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# The Lambda functions' dependencies, as wheels for the Lambda platform (see stacks/shared/functions.py).
LAYER := build/lambda-layer
build/.lambda-layer.built: lambdas/requirements.txt $(VENV)/.synth-deps
	rm -rf $(LAYER) && mkdir -p $(LAYER)/python
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-compile --only-binary=:all: \
		--platform manylinux2014_aarch64 --implementation cp --python-version 3.14 \
		--target $(LAYER)/python -r lambdas/requirements.txt
	find $(LAYER) -name '*.dist-info' -prune -exec sh -c 'rm -f "$$1/RECORD" "$$1/INSTALLER" "$$1/REQUESTED" "$$1/direct_url.json"' _ {} \;
	touch $@

# The human-loop starter's second layer: XGBoost for per-record SHAP values (issue 6). Same
# platform as above, but manylinux_2_28 (numpy, scipy and xgboost-cpu publish no manylinux2014
# aarch64 wheels for CPython 3.14), hash-checked. Test suites are not shipped.
EXPLAIN_LAYER := build/explain-layer
build/.explain-layer.built: lambdas/shared/explain/requirements.txt Makefile $(VENV)/.synth-deps
	rm -rf $(EXPLAIN_LAYER) && mkdir -p $(EXPLAIN_LAYER)/python
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-compile --only-binary=:all: --require-hashes \
		--platform manylinux_2_28_aarch64 --implementation cp --python-version 3.14 \
		--target $(EXPLAIN_LAYER)/python -r lambdas/shared/explain/requirements.txt
	find $(EXPLAIN_LAYER) -name '*.dist-info' -prune -exec sh -c 'rm -f "$$1/RECORD" "$$1/INSTALLER" "$$1/REQUESTED" "$$1/direct_url.json"' _ {} \;
	find $(EXPLAIN_LAYER)/python -type d -name tests -prune -exec rm -rf {} +
	rm -rf $(EXPLAIN_LAYER)/python/bin
	touch $@

# The reviewers' app API's layer: python-liquid renders tasks from a2i_templates/ (issue 16).
REVIEW_APP_LAYER := build/review-app-layer
build/.review-app-layer.built: lambdas/review/app/requirements.txt $(VENV)/.synth-deps
	rm -rf $(REVIEW_APP_LAYER) && mkdir -p $(REVIEW_APP_LAYER)/python
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-compile --only-binary=:all: \
		--platform manylinux2014_aarch64 --implementation cp --python-version 3.14 \
		--target $(REVIEW_APP_LAYER)/python -r lambdas/review/app/requirements.txt
	find $(REVIEW_APP_LAYER) -name '*.dist-info' -prune -exec sh -c 'rm -f "$$1/RECORD" "$$1/INSTALLER" "$$1/REQUESTED" "$$1/direct_url.json"' _ {} \;
	find $(REVIEW_APP_LAYER)/python -type d -name tests -prune -exec rm -rf {} +
	rm -rf $(REVIEW_APP_LAYER)/python/bin
	touch $@

layer: build/.lambda-layer.built build/.explain-layer.built build/.review-app-layer.built

# The worker-template test opens the rendered page in headless Chromium (Debian's package).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
build/.chromium:
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	mkdir -p build && touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.test-deps node_modules/.installed layer build/.chromium

# Templates of stacks the chosen environment does not deploy would otherwise stay in cdk.out/: they
# are removed after a successful synth (a failed one leaves the last good templates in place).
synth: $(VENV)/.synth-deps node_modules/.installed layer ## templates of every stack into cdk.out/ (no account; first run ~5 min)
	@# The CLI's closing hint ("Supply a stack id ... to display its template") asks nothing of make synth's user.
	set -o pipefail; $(CDK) synth --quiet 2>&1 | { grep -v '^Supply a stack id' || true; }
	@$(VENV)/bin/python -m stacks.shared.cloud_assembly prune cdk.out

test: setup ## every test (no account; installs Chromium with apt; ~15 min)
	$(VENV)/bin/python -m pytest

# Each against a floor measured in the same run: capture-filter throughput and memory (issue 4) with
# profiling (issue 15), evaluating 10,000 sketch files (issue 15),
# what per-record attributions add to review and XGBoost's cold start (issue 6), `cdk synth`
# against an empty app's (issue 14), a day of model-quality evaluation, 1,000,000 predictions and
# 10,000 labels (issue 21), a night of 1,000,000 batch rows from transform output to review groups
# (issue 22), and a default 24-hour rehearsal's time and memory (issue 23). Every one runs; make fails
# if any missed its target.
bench: $(VENV)/.test-deps node_modules/.installed layer ## speed and memory against floors measured in the same run (no account; ~20 min)
	status=0; \
	$(VENV)/bin/python -m tests.bench.capture_filter || status=1; \
	$(VENV)/bin/python -m tests.bench.drift_evaluation || status=1; \
	$(VENV)/bin/python -m tests.bench.model_quality || status=1; \
	$(VENV)/bin/python -m tests.bench.attributions || status=1; \
	$(VENV)/bin/python -m tests.bench.synth || status=1; \
	$(VENV)/bin/python -m tests.bench.batch || status=1; \
	$(VENV)/bin/python -m tests.bench.rehearsal || status=1; \
	exit $$status

# bootstrap, diff and deploy use the assembly `make synth` just wrote (--app cdk.out): one synthesis.
CDK_ASSEMBLY := cdk --app cdk.out

# Without credentials the CDK says only "Unable to resolve AWS account"; this says what to set first.
CREDENTIALS := $(VENV)/bin/python -m local.preflight --credentials-only

bootstrap: synth ## the CDK's bootstrap stack in your account and region (AWS credentials; ~3 min)
	@$(CREDENTIALS)
	$(CDK_ASSEMBLY) bootstrap

diff: synth ## what a deploy would change in your account (AWS credentials; ~1 min)
	@$(CREDENTIALS)
	$(CDK_ASSEMBLY) diff

# Read-only (Service Quotas): the SageMaker instance quotas the environment needs; names what to request.
preflight: $(VENV)/.synth-deps node_modules/.installed ## check the account's SageMaker instance quotas for ENV, read-only (AWS credentials)
	@$(VENV)/bin/python -m local.preflight --env "$(ENV)"

deploy: synth preflight ## preflight, then every stack of ENV (AWS credentials, bootstrapped account; ~30 min)
	$(CDK_ASSEMBLY) deploy --all --require-approval broadening

destroy: node_modules/.installed $(VENV)/.synth-deps layer ## delete every stack of ENV (AWS credentials; asks first; ~15 min)
	$(CDK) destroy --all

# Ops commands keep their names whatever the code's layout, and do their own set-up.
# The offline commands default to the sample capture files (make samples writes them).
SAMPLES := samples/captures
# Which rows of a capture file would go to human review under ENV's rule: one JSON object per
# selected row on stdout, the summary (records, rows, selected, rejected with reasons) on stderr.
CAPTURE_PREVIEW = $(if $(CAPTURE),$(CAPTURE),$(SAMPLES)/held-out.jsonl)
review-preview: $(VENV)/.synth-deps node_modules/.installed ## rows of a capture file ENV's review rule picks [CAPTURE=file, default the held-out sample; ARGS=flags] (no account; seconds)
	@$(VENV)/bin/python -m local.review_preview --env "$(ENV)" "$(CAPTURE_PREVIEW)" $(ARGS)

# The reviewers' app on this machine (issue 16): the page and the API's routes on one origin on
# 127.0.0.1, the real API handler over moto (DynamoDB, S3, EventBridge), the bundled test records as
# tasks, signed in as a local reviewer (a local stand-in for Cognito's managed login). Ctrl-C stops it.
REVIEW_PORT ?= 8765
review-local: $(VENV)/.test-deps node_modules/.installed ## the reviewers' app on 127.0.0.1:8765 over an in-memory AWS (no account; ~1 min first time)
	@$(VENV)/bin/python -m local.review_local --port $(REVIEW_PORT) --env "$(ENV)"

# Data-quality drift of local capture files against a baseline, with the open monitor's code:
# statistics.json, constraint_violations.json and report.html in OUT, one line per violation.
CAPTURE_DRIFT = $(if $(CAPTURE),$(CAPTURE),$(SAMPLES)/shifted.jsonl)
OUT ?= drift-report
drift-report: $(VENV)/.tools-deps node_modules/.installed ## drift report of capture files [CAPTURE="files", default the shifted sample; OUT=dir, default drift-report; BASELINE=csv] (no account; seconds)
	@$(VENV)/bin/python -m local.drift_report --env "$(ENV)" --out "$(OUT)" $(if $(BASELINE),--baseline "$(BASELINE)") $(CAPTURE_DRIFT)

# Model quality of local capture files and ground-truth files, with the open monitor's code: the
# realized figures (weighted by how each row came to be labelled, and unweighted) with 95 % intervals,
# the label-free estimate, statistics.json, constraint_violations.json and report.html in OUT.
CAPTURE_QUALITY = $(if $(CAPTURE),$(CAPTURE),$(SAMPLES)/held-out.jsonl)
QUALITY_OUT = $(if $(filter command line environment,$(origin OUT)),$(OUT),quality-report)
quality-report: $(VENV)/.tools-deps node_modules/.installed ## model quality of capture files [CAPTURE="files", default the held-out sample; LABELS="ground-truth files", none: estimate only; OUT=dir, default quality-report; SCORES=csv] (no account; seconds)
	@$(VENV)/bin/python -m local.quality_report --env "$(ENV)" --out "$(QUALITY_OUT)" $(if $(SCORES),--scores "$(SCORES)") $(CAPTURE_QUALITY) $(if $(LABELS),--labels $(LABELS))

# The whole loop on this machine (issue 23): the app synthesised for ENV, what its templates declare
# created in an in-memory AWS (moto) and its functions run with their template settings, SageMaker
# stand-ins, simulated reviewers and HOURS of traffic in simulated time. Writes OUT/index.html (the
# timeline), OUT/summary.json and every object the loop wrote under OUT/s3/.
REHEARSAL_OUT = $(if $(filter command line environment,$(origin OUT)),$(OUT),rehearsal)
HOURS ?= 24
REVIEWERS ?= simulated
rehearse: $(VENV)/.test-deps node_modules/.installed layer ## the whole loop offline in simulated time [HOURS=24; OUT=dir, default rehearsal; TRAFFIC=csv; REVIEWERS=simulated|browser] (no account; ~5 min)
	@$(VENV)/bin/python -m local.rehearse --env "$(ENV)" --out "$(REHEARSAL_OUT)" --hours "$(HOURS)" --reviewers "$(REVIEWERS)" $(if $(TRAFFIC),--traffic "$(TRAFFIC)")

# Retrain the bundled model; the committed artefacts must not change unless the script does.
model: $(VENV)/.test-deps ## retrain the bundled model; the committed artefacts must not change (no account; the first time ~1 min more for the test dependencies, ~1.2 GB; then seconds)
	$(VENV)/bin/python -m stacks.shared.default_model.train

# The sample capture files, from the bundled held-out rows and model; the committed files must not change.
samples: $(VENV)/.test-deps ## rewrite samples/captures/ from the bundled data (no account; the first time ~1 min more for the test dependencies, ~1.2 GB; then seconds)
	$(VENV)/bin/python -m stacks.shared.default_model.captures --out $(SAMPLES)

clean: ## remove cdk.out, build and caches; the venv and node_modules stay (no account; instant)
	rm -rf cdk.out .pytest_cache build
