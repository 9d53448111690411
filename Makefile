# mnistserve: `make train` sets up and trains/exports; `make test` sets up and runs the test suite.
export BENTOML_DO_NOT_TRACK := true
export PYTHONUNBUFFERED := 1

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup train serve test lint test-all test-slow serving-reports versus bench build clean browser container test-container container-report deploy-bench

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

test: setup lint
	$(BIN)/python -m pytest -q

# ruff (configured in pyproject.toml): the lint rules and the formatting, checked, never rewritten here;
# lint-imports: the layers of ARCHITECTURE.md ([tool.importlinter] in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Everything but the Docker tests (those need an engine: make test-container).
test-all: setup
	$(BIN)/python -m pytest -q -m 'not container'

# Only the tests marked slow (every architecture trained and exported end to end, ...): CI runs them after make test.
test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# Every serving report (throughput, floor, soaks, fuzzing of both modes) again, against the committed exported/.
serving-reports: setup
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bench]'
	benchmarks/serving_reports.sh

# This service vs TorchServe vs the reference server, each uvicorn server also without httptools/uvloop, three rounds
# of every server (~5 min on 2 cores): reports/serving/versus.*. TorchServe needs a Java runtime
# (apt-get install -y default-jre-headless).
versus: setup
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bench]'
	$(BIN)/python -m benchmarks.versus --http-variants --rounds 3

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

# The Bento in a Docker image, mnistserve:latest (deploy/docker/container.sh): starts dockerd when none answers and,
# where no image registry is reachable, builds a local Debian base image once (MNISTSERVE_BASE_IMAGE=auto|local|IMAGE).
MNISTSERVE_BASE_IMAGE ?= auto
MNISTSERVE_IMAGE ?= mnistserve:latest
MNISTSERVE_LB_IMAGE ?= mnistserve-lb:latest
container: setup
	@[ "$$(id -u)" = 0 ] || /usr/bin/docker info >/dev/null 2>&1 || docker info >/dev/null 2>&1 \
		|| { echo "make container: needs root (to install Docker and start dockerd) or a running Docker engine you can use" >&2; exit 1; }
	MNISTSERVE_BASE_IMAGE=$(MNISTSERVE_BASE_IMAGE) MNISTSERVE_IMAGE=$(MNISTSERVE_IMAGE) deploy/docker/container.sh

# Builds the image, then runs it and asks it over HTTP on 127.0.0.1 (tests/test_container.py, marker `container`).
test-container: container
	MNISTSERVE_IMAGE=$(MNISTSERVE_IMAGE) MNISTSERVE_REQUIRE_CONTAINER=1 $(BIN)/python -m pytest -q -m container tests/test_container.py

# Builds the image (timed), then its size, contents and time to /readyz -> reports/container/ (benchmarks/container.py).
container-report: setup
	MNISTSERVE_BASE_IMAGE=$(MNISTSERVE_BASE_IMAGE) MNISTSERVE_IMAGE=$(MNISTSERVE_IMAGE) $(BIN)/python -m benchmarks.container --build --runs 7

# The swarm stack (deploy/swarm/): HAProxy's image built on the local base where there is one, then 1 vs 2 replicas,
# a rolling update and a SIGKILLed replica under load -> reports/deploy/ (benchmarks/deploy.py).
deploy-bench: container
	base=$$(/usr/bin/docker image inspect mnistserve-base:bookworm >/dev/null 2>&1 && echo mnistserve-base:bookworm || echo debian:bookworm-slim); \
	/usr/bin/docker build -q --build-arg BASE_IMAGE=$$base -t $(MNISTSERVE_LB_IMAGE) -f deploy/swarm/Dockerfile.lb deploy/swarm
	MNISTSERVE_IMAGE=$(MNISTSERVE_IMAGE) MNISTSERVE_LB_IMAGE=$(MNISTSERVE_LB_IMAGE) $(BIN)/python -m benchmarks.deploy
