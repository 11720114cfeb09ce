# make demo   — the whole pipeline once, on embedded defaults (S3 on 127.0.0.1, SQLite Airflow, CPU);
#               DATA=movielens-100k runs it on ../shared/data/ml-100k/u.data instead of synthetic logs
# make test   — the whole test suite
# make lint   — ruff (lint, format check) and the import contracts of pyproject.toml
# All create .venv from requirements-dev.txt (production's requirements.txt plus test tools) on first use
# and install this project into it (pip install -e .): nothing needs PYTHONPATH.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: demo test test-fast lint venv up down stack stack-down bench peers clean s3-reset

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

# two workers, one per core: the stack and browser tests (collected first) start at once, one on each, and the
# other files follow on whichever worker is free (a file stays on one worker, so module fixtures are built once);
# a third worker measured slower (14.9 min): the Airflow servers of both server tests need the cores too
TEST_WORKERS ?= 2
test: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: venv  ## the inner loop: unit and integration tests not marked slow (no Airflow servers, no browser)
	$(BIN)/python -m pytest -n 2 tests/unit tests/integration -m "not slow and not servers" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

demo: venv
	bash include/demo.sh

up: venv
	bash include/up.sh start

down:
	bash include/up.sh stop

stack: venv  ## docker-compose's production topology natively: Postgres, Redis, Celery workers default + gpu
	PYTHON=$(BIN)/python bash include/stack.sh start

stack-down:
	PYTHON=$(BIN)/python bash include/stack.sh stop

bench: venv
	$(BIN)/python benchmarks/ingest.py

peers: venv  ## our trainer against cornac's and RecBole's NeuMF (each in its own venv), same split and batch size
	test -x .peers/bin/python || ($(PYTHON) -m venv .peers && .peers/bin/pip install -q torch==2.13.0 cornac==3.0.1)
	test -x .peers-recbole/bin/python || ($(PYTHON) -m venv .peers-recbole && \
	  .peers-recbole/bin/pip install -q recbole==1.2.1 "numpy<2" torch==2.5.1)
	$(BIN)/python benchmarks/peers.py --peers cornac recbole

s3-reset:  ## empty the embedded S3 endpoint's persisted buckets (.data/s3/); stop it first (make down)
	bash include/up.sh stop >/dev/null
	$(PYTHON) -m ncf_tasks.dev.local_s3 reset --data-dir .data/s3

clean:
	rm -rf .demo .airflow .pytest_cache test-artifacts
