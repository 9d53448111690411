"""The service's garbage-collector setting (`serving.collector`, MNISTSERVE_GC_YOUNG): what it changes, and that
the service applies it when it starts. Each test gives the test process its collector back as it found it."""

from __future__ import annotations

import gc

import pytest

from serving import collector
from testkit.servers import in_process


@pytest.fixture
def restore_gc():
    """The collector's threshold and frozen objects as they were before the test."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()  # the test process freezes nothing of its own (every other in-process app passes 0)
    gc.set_threshold(*threshold)


def test_tune_freezes_what_lives_now_and_collects_the_youngest_generation_less_often(restore_gc):
    _, middle, old = gc.get_threshold()
    kept = [[] for _ in range(100)]  # containers alive at the call: frozen with the rest
    collector.tune(12345)
    assert gc.get_threshold() == (12345, middle, old)
    assert gc.get_freeze_count() >= len(kept)


def test_zero_leaves_pythons_collector_as_it_is(restore_gc):
    before = gc.get_threshold(), gc.get_freeze_count()
    collector.tune(0)
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_the_service_applies_the_setting_when_it_starts(exported_dir, restore_gc):
    assert gc.get_threshold()[0] != 4321
    with in_process(exported_dir, {"MNISTSERVE_GC_YOUNG": "4321"}) as client:
        assert client.get("/readyz").status_code == 200
        assert gc.get_threshold()[0] == 4321
        assert gc.get_freeze_count() > 0
