# benchlab developer targets. Each creates or reuses .venv and installs what it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PKGS := prometheus nginx-light chromium docker-compose shellcheck
PGVER = $(shell ls /etc/postgresql 2>/dev/null | head -n1)

.PHONY: demo test selfbench lint venv apt services clean typecheck-tree lint-imports mutate test-loaded

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

apt:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  (apt-get install -y --no-install-recommends $$missing || (apt-get update && apt-get install -y --no-install-recommends $$missing)) >/dev/null; \
	fi

services:
	@pg_isready -h 127.0.0.1 -p 5432 -q || pg_ctlcluster --skip-systemctl-redirect $(PGVER) main start
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
	@timeout 2 bash -c '</dev/tcp/127.0.0.1/5672' 2>/dev/null || { rabbitmq-server -detached; \
	  for i in $$(seq 1 60); do timeout 2 bash -c '</dev/tcp/127.0.0.1/5672' 2>/dev/null && break; sleep 1; done; }

demo: venv
	$(VENV)/bin/benchlab demo

TYPECHECK := build/typecheck/benchlab

# mypy reads the installed layout (benchlab.runners, benchlab.metrics) from a tree of links to the folders.
typecheck-tree:
	@mkdir -p $(TYPECHECK)
	@ln -sfn ../../../runners $(TYPECHECK)/runners
	@ln -sfn ../../../metrics $(TYPECHECK)/metrics
	@for f in benchlab/*.py; do ln -sfn ../../../$$f $(TYPECHECK)/$$(basename $$f); done

test: venv apt services typecheck-tree lint-imports
	$(VENV)/bin/ruff check benchlab runners metrics load_tests tests
	$(VENV)/bin/mypy
	$(PY) tests/parallel.py

# The layering contracts of pyproject.toml. import-linter walks the package on disk, so it reads the installed
# layout (benchlab/runners, benchlab/metrics) from the typecheck tree, not the editable install's import hook.
lint-imports: venv typecheck-tree
	cd $(TYPECHECK)/.. && ../../$(VENV)/bin/lint-imports --config ../../pyproject.toml

# The timing-sensitive tests, 3 times in a row beside two CPU busy loops (a loaded CI runner).
LOADED_TESTS ?= tests/integration/test_run.py tests/integration/test_replay.py tests/integration/test_demo.py tests/integration/test_crash.py
test-loaded: venv apt services typecheck-tree
	@pids=""; for i in 1 2; do (while :; do :; done) & pids="$$pids $$!"; done; \
	trap 'kill $$pids' EXIT; \
	for n in 1 2 3; do echo "loaded pass $$n"; $(PY) -m pytest -q -p no:cacheprovider $(LOADED_TESTS) || exit 1; done

# Mutation testing ([tool.mutmut]); not part of `make test`. mutmut names mutants after file paths and the tests
# import benchlab.runners.*, so it runs in build/mutate, a copy laid out as installed. MUTANT_SET is what corrupts
# results when wrong: the analysis package, the spool and its replay, the store's write path, input validation.
# `make mutate MUTANTS="'benchlab.runners.analysis.slo.*'"` narrows it; `mutmut show NAME` in build/mutate
# prints a survivor's diff. 3355 mutants, about 50 CPU-minutes (35 min at nice 19 on a busy 2-core machine).
MUTATE := build/mutate
MUTANT_SET := 'benchlab.runners.analysis.*' 'benchlab.metrics.store.spool.*' 'benchlab.metrics.store.bulk.*' \
  'benchlab.metrics.store.writer.x_replay_spool*' 'benchlab.metrics.store.writer.x*BatchWriter*' \
  'benchlab.metrics.store.database.x*Store*write_samples*' \
  'benchlab.runners.cli.x__positive*' 'benchlab.runners.cli.x__host*' 'benchlab.runners.cli.x__tag*' \
  'benchlab.runners.cli.x_build_run_spec*' 'benchlab.runners.cli.x__run_time*' 'benchlab.runners.cli.x__shape_settings*' \
  'benchlab.runners.verdicts.x_judge_settings*' \
  'benchlab.runners.verdicts.x__read*' 'benchlab.runners.verdicts.x__flag_env*'
MUTANTS ?= $(MUTANT_SET)
mutate: venv services
	rm -rf $(MUTATE) && mkdir -p $(MUTATE)/benchlab
	cp benchlab/*.py $(MUTATE)/benchlab/ && cp -r runners $(MUTATE)/benchlab/runners && cp -r metrics $(MUTATE)/benchlab/metrics
	cp -r tests load_tests pyproject.toml $(MUTATE)/
	cd $(MUTATE) && ../../$(VENV)/bin/mutmut run --max-children 2 $(MUTANTS) >mutmut.log 2>&1; \
	  tr '\r' '\n' <mutmut.log | grep -a -e 'done in' -e 'mutations/second' -e 'Failed' | tail -n 4; \
	  ../../$(PY) tests/mutation_score.py

selfbench: venv apt services
	$(PY) -m benchlab.runners.selfbench

lint: venv typecheck-tree
	$(VENV)/bin/ruff check benchlab runners metrics load_tests tests
	$(VENV)/bin/ruff format --check benchlab runners metrics load_tests tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) results build
