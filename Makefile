# mnistserve: `make train` sets up and trains/exports; `make test` sets up and runs the test suite.
export BENTOML_DO_NOT_TRACK := true
export PYTHONUNBUFFERED := 1

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup train serve test test-all bench build clean browser

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

bench: setup
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bench]'
	benchmarks/bench.sh

build: setup
	$(BIN)/bentoml build

# Headless Chromium for tests/test_ui.py, from Debian. Locally a failed install only warns (the test skips);
# with BROWSER_REQUIRED=1 (CI) it fails, and the test itself refuses to skip.
BROWSER_REQUIRED ?= 0
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "browser: /usr/bin/chromium and /usr/bin/chromedriver are installed"; \
	else \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
		{ $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			chromium chromium-driver; } \
		|| { echo "browser: could not install chromium and chromium-driver"; [ "$(BROWSER_REQUIRED)" != 1 ]; }; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache
