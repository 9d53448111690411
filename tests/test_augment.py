"""Batched augmentation: each part keeps the model contract, changes what it claims to, and is reproducible."""

from __future__ import annotations

import pytest
import torch

from training.augment import PARTS, augment, blur, fade, fill, parse, stroke, warp


def _bars(n: int = 16) -> torch.Tensor:
    """A batch of the same 'digit': a vertical bar 2 px wide, like a thin MNIST 1."""
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 6:22, 13:15] = 1.0
    return x


def _nines(n: int = 16) -> torch.Tensor:
    """A batch of the same small '9': a loop 2 px thick around a 2x2 hole, on a stem 2 px wide."""
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 6:12, 11:17] = 1.0
    x[:, :, 8:10, 13:15] = 0.0
    x[:, :, 6:22, 15:17] = 1.0
    return x


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_geometry_keeps_shape_range_and_ink():
    x = _bars(8)
    y = warp(x, _gen())
    assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.35)  # moved and scaled, not lost
    assert not torch.equal(y, x)


@pytest.mark.parametrize("name", list(PARTS))
def test_every_part_keeps_the_contract_and_changes_some_images(name):
    x = _nines(64)
    y = augment(x, (name,), _gen(), torch.tensor([1, 7] * 32))  # labels: `styles` draws on 1s and 7s
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0 + 1e-6
    changed = (y - x).abs().amax((1, 2, 3)) > 1e-3
    assert 0 < int(changed.sum()) <= 64
    assert torch.isfinite(y).all()


def test_stroke_both_thickens_and_thins():
    x = _bars(256)
    ink = (stroke(x, _gen()) > 0.5).sum((1, 2, 3)).float()
    base = float((x > 0.5).sum((1, 2, 3))[0])
    assert float(ink.max()) >= 2 * base  # a marker: at least twice the ink
    assert float(ink.min()) < base  # a fine pen: less ink than the original


def test_blur_spreads_ink_and_keeps_the_peak_at_one():
    x = _bars(64)
    y = blur(x, _gen())
    blurred = (y - x).abs().amax((1, 2, 3)) > 1e-3
    assert bool(blurred.any())
    assert torch.allclose(y[blurred].amax((1, 2, 3)), torch.ones(int(blurred.sum())), atol=1e-5)
    assert bool(((y[blurred] > 1e-4).sum((1, 2, 3)) > (x[blurred] > 1e-4).sum((1, 2, 3))).all())


def test_augment_is_reproducible_for_a_seed_and_differs_across_seeds():
    x = _bars(16)
    parts = parse("all")
    assert torch.equal(augment(x, parts, _gen(1)), augment(x, parts, _gen(1)))
    assert not torch.equal(augment(x, parts, _gen(1)), augment(x, parts, _gen(2)))


def test_parse_names_unknown_parts_and_accepts_the_old_booleans():
    assert parse(True) == parse("all") and "stroke" in parse("all")
    assert parse(False) == parse("none") == ()
    assert parse("noise, stroke") == ("stroke", "noise")  # canonical order
    with pytest.raises(ValueError, match="unknown augmentation sparkle; choose from styles, stroke"):
        parse("stroke,sparkle")


def test_styles_adds_a_flag_to_ones_and_a_bar_to_sevens_and_nothing_to_other_digits():
    from training.augment import styles

    x = _bars(300)
    y = torch.tensor([1, 7, 3] * 100)
    out = styles(x, _gen(), y)
    added = (out - x).clamp_min(0).sum((1, 2, 3))
    assert float(added[y == 3].abs().max()) == 0.0  # other labels untouched
    for digit in (1, 7):
        share = float((added[y == digit] > 3).float().mean())
        assert 0.15 < share < 0.45  # about 30 % of them get the style
    assert torch.equal(styles(x, _gen(), None), x)  # without labels it cannot know which style fits


def test_fill_closes_small_loops_and_leaves_strokes_alone(monkeypatch):
    monkeypatch.setattr("training.augment._chosen", lambda p, x, g: torch.ones(x.shape[0], 1, 1, 1, dtype=torch.bool))
    nine, bar = fill(_nines(4), _gen()), fill(_bars(4), _gen())
    assert torch.all(nine[:, :, 8:10, 13:15] == 1.0)  # the loop's hole is ink now
    assert torch.equal(nine[:, :, 14:22], _nines(4)[:, :, 14:22])  # the stem below it is as it was
    assert torch.equal(bar, _bars(4))  # nothing to fill in a straight stroke


def test_fade_dims_parts_of_the_stroke_adds_no_ink_and_keeps_the_peak_at_one(monkeypatch):
    monkeypatch.setattr("training.augment._chosen", lambda p, x, g: torch.ones(x.shape[0], 1, 1, 1, dtype=torch.bool))
    x = _bars(32)
    y = fade(x, _gen())
    assert torch.all(y[x == 0] == 0)  # paper stays paper
    assert torch.allclose(y.amax((1, 2, 3)), torch.ones(32), atol=1e-5)  # the strongest ink is 1 again
    core = y[:, 0, 6:22, 13:15].reshape(32, -1)  # the bar's own pixels
    assert bool((core.amin(1) < 0.9).all()) and bool((core.amin(1) < 0.4).any())  # fainter along every bar ...
    assert bool((y.sum((1, 2, 3)) < x.sum((1, 2, 3))).all())  # ... and each bar holds less ink than it did
    assert not torch.equal(fade(x, _gen(1)), y)
