"""benchmarks.photo_budget: its stage timing leaves the preprocessing as it was, and its tables' order."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import photo_budget as B
from serving import ink
from serving import preprocess as P
from testkit.digits import digit_pngs


def test_stages_are_timed_inside_the_block_and_put_back_after_it():
    originals = {(m, n): getattr(m, n) for n, (m, _) in B.STAGES.items()}
    png = digit_pngs()[7]
    spent: dict[str, list[float]] = {}
    with B.timed_stages(spent):
        inside = P.from_bytes(png, max_pixels=1 << 20)
    assert {"_open", "to_frame", "_digit_ink", "ink_map"} <= spent.keys()
    assert all(t >= 0 for values in spent.values() for t in values)
    assert all(getattr(m, n) is f for (m, n), f in originals.items())
    assert np.array_equal(inside, P.from_bytes(png, max_pixels=1 << 20))  # timing changes no frame


def test_stage_split_gives_the_whole_call_and_each_stage_at_most_its_length():
    split = B.stage_split(lambda png: P.from_bytes(png, max_pixels=1 << 20), digit_pngs()[:3], 6)
    assert split["whole"] > 0
    assert 0 < split["to_frame"] <= split["whole"] and split["ink_map"] <= split["_digit_ink"] <= split["to_frame"]


def test_sides_are_set_inside_and_restored_after_an_error():
    work, analysis = P.WORK_SIDE, ink.ANALYSIS_SIDE
    with pytest.raises(RuntimeError), B.sides(256, 128):
        assert (P.WORK_SIDE, ink.ANALYSIS_SIDE) == (256, 128)
        raise RuntimeError
    assert (P.WORK_SIDE, ink.ANALYSIS_SIDE) == (work, analysis)


def test_the_stage_table_lists_every_stage_once_after_the_one_it_runs_in():
    order = list(B._tree())
    names = [name for name, _ in order]
    assert sorted(names) == sorted(B.STAGES)
    for name, depth in order:
        parent = B.STAGES[name][1]
        assert (parent is None) == (depth == 0)
        if parent is not None:
            assert names.index(parent) < names.index(name) and dict(order)[parent] == depth - 1
