# mnistserve: `make train` sets up and trains/exports; `make test` sets up and runs the test suite.
export BENTOML_DO_NOT_TRACK := true
export PYTHONUNBUFFERED := 1

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup train serve test test-all bench build clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes; otherwise `make setup` returns at once.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

train: setup
	$(BIN)/mnistserve train --all
	$(BIN)/mnistserve export

serve: setup
	$(BIN)/bentoml serve serving.service:MNISTService --host 127.0.0.1 --port 3000

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ''

build: setup
	$(BIN)/bentoml build

clean:
	rm -rf $(VENV) .pytest_cache
