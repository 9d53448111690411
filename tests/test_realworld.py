"""The real-world evaluation set: deterministic, balanced, every condition looks like its name says."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from serving.regions import components
from training.realworld import CONDITIONS, Sample, describe, generate, save_gallery

N = 20  # per condition: each digit twice
LIGHT_ON_DARK = {"inverted"}


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return list(generate(N, seed=0))


def luminance(sample: Sample) -> np.ndarray:
    """(H, W) float luminance; a transparent canvas counts as black (its strokes are light)."""
    rgba = np.asarray(sample.image.convert("RGBA"), np.float32)
    return (rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)) * rgba[..., 3] / 255


def pixels(sample: Sample) -> bytes:
    return sample.image.mode.encode() + np.asarray(sample.image).tobytes()


def test_same_seed_same_images_other_seed_different():
    some = ["photo", "inverted", "outline", "small_offcentre"]  # JPEG, RGBA, TrueType, specks
    a, b = list(generate(2, seed=11, conditions=some)), list(generate(2, seed=11, conditions=some))
    assert [pixels(s) for s in a] == [pixels(s) for s in b]
    assert [(s.label, s.condition, s.source) for s in a] == [(s.label, s.condition, s.source) for s in b]
    c = list(generate(2, seed=12, conditions=some))
    assert all(pixels(x) != pixels(y) for x, y in zip(a, c, strict=True))


def test_a_subset_of_conditions_yields_the_same_samples(samples):
    alone = list(generate(N, seed=0, conditions=["inverted", "styles"]))
    full = [s for s in samples if s.condition in ("inverted", "styles")]
    assert [pixels(s) for s in alone] == [pixels(s) for s in full]


def test_every_condition_balanced_over_digits(samples):
    assert {s.condition for s in samples} == set(CONDITIONS)
    for name in CONDITIONS:
        counts = Counter(s.label for s in samples if s.condition == name)
        assert counts == {d: N // 10 for d in range(10)}, name


def test_no_two_samples_identical(samples):
    digests = [hashlib.sha256(pixels(s)).hexdigest() for s in samples]
    assert len(set(digests)) == len(digests)


def test_all_three_glyph_sources_are_used(samples):
    kinds = Counter(s.source.split(":")[0] for s in samples)
    assert set(kinds) == {"hershey", "skeleton", "ttf"}
    assert all(s.source.split(":")[1] for s in samples)
    assert {s.source.split(":")[0] for s in samples if s.condition == "styles"} >= {"skeleton"}


@pytest.mark.parametrize("name", CONDITIONS)
def test_ink_has_the_polarity_of_its_condition(samples, name):
    for s in (s for s in samples if s.condition == name):
        lum = luminance(s)
        border = np.concatenate([lum[0], lum[-1], lum[:, 0], lum[:, -1]])
        # The background at its brightest (dark ink) or darkest (light ink): uneven light stays in between.
        paper = float(np.percentile(border, 1 if name in LIGHT_ON_DARK else 99))
        darker, lighter = paper - lum.min(), lum.max() - paper
        ink, other = (lighter, darker) if name in LIGHT_ON_DARK else (darker, lighter)
        assert ink > 255 / 4, (name, s.label, s.source)  # clearly visible ink...
        assert ink > 2 * other, (name, s.label, s.source)  # ...on the expected side of the background


def test_inverted_includes_transparent_canvases(samples):
    modes = {s.image.mode for s in samples if s.condition == "inverted"}
    assert "RGBA" in modes and modes - {"RGBA"}


def test_photo_is_large_and_unevenly_lit(samples):
    for s in (s for s in samples if s.condition == "photo"):
        assert min(s.image.size) >= 600 and s.image.format == "JPEG"
        lum = luminance(s)
        k = max(lum.shape) // 20
        corners = [lum[:k, :k].mean(), lum[:k, -k:].mean(), lum[-k:, :k].mean(), lum[-k:, -k:].mean()]
        assert max(corners) - min(corners) > 0.1 * max(corners), s.label


def test_small_offcentre_digit_is_small_and_away_from_centre(samples):
    for s in (s for s in samples if s.condition == "small_offcentre"):
        lum = luminance(s)
        ink = lum < np.median(lum) - 255 / 4
        run_rows, starts, ends, label = components(ink)  # the service's own labelling, as runs
        n = int(label.max()) + 1
        biggest = label == np.argmax(np.bincount(label, weights=ends - starts))  # the digit, not the specks
        rows = run_rows[biggest]
        cols = np.concatenate([starts[biggest], ends[biggest] - 1])
        h, w = lum.shape
        assert rows.max() - rows.min() < 0.2 * h, s.label
        centre = ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)
        assert np.hypot(centre[0] - h / 2, centre[1] - w / 2) > 0.15 * min(h, w), s.label
        assert n > 1  # specks elsewhere


def test_unknown_condition_raises_naming_the_known_ones():
    with pytest.raises(ValueError, match="fine_pen") as info:
        generate(1, conditions=["marker", "crayon"])
    assert "crayon" in str(info.value)


def test_describe_has_one_line_per_condition():
    text = describe()
    assert tuple(text) == CONDITIONS
    assert all(line and "\n" not in line for line in text.values())


def test_gallery_is_a_png(tmp_path, samples):
    path = save_gallery(samples[::N], tmp_path / "gallery.png", per_row=3, thumb=32)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_module_does_not_import_torch():
    code = "import sys, training.realworld as r; list(r.generate(1)); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
