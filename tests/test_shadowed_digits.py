"""benchmarks.shadowed_digits: the photos it draws, their lights, and a report over a served export."""

from __future__ import annotations

import io
import json
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks import shadowed_digits as SD
from serving import preprocess as P


def _digit() -> np.ndarray:
    """A 28x28 MNIST-like 7: a bar and a diagonal, white on black."""
    d = np.zeros((28, 28), np.uint8)
    d[5:8, 6:22] = 255
    for i in range(16):
        d[7 + i, 20 - i // 2 : 23 - i // 2] = 255
    return d


def test_the_light_is_a_gradient_with_a_darker_side_for_a_shadow_and_a_brighter_spot_for_a_lamp():
    gradient, shadow, lamp = (SD._light(np.random.default_rng(1), k, 300, 400) for k in ("gradient", "shadow", "lamp"))
    assert gradient.min() >= 0.3 and gradient.max() <= 1.1  # the docstring's "about 0.3-1.1"
    # The same seed draws the same gradient first: the shadow darkens part of it by a quarter or more, and the
    # lamp's spot (its centre on the page) brightens some of it and darkens the rest by at most 40%.
    assert np.all(shadow <= gradient + 1e-6) and (shadow / gradient).min() <= 0.76
    assert (lamp / gradient).max() > 1.0 and (lamp / gradient).min() >= 0.6 - 1e-6


@pytest.mark.parametrize("seed", range(6))
def test_a_photo_is_a_jpeg_page_whose_ink_is_faint(seed, monkeypatch):
    """A solid block of the pen's ink under flat light: at most half-way from the paper to the ink's colour (full
    ink would be 15-50% of the paper's level), so its darkest pixels stay above half the paper's."""
    monkeypatch.setattr(SD, "_light", lambda rng, kind, h, w: np.ones((h, w), np.float32))
    monkeypatch.setattr(SD, "_thin_digit", lambda digit, tall, pen: np.ones((tall, tall), np.float32))
    blob = SD.photo(np.random.default_rng(seed), _digit(), "gradient")
    image = Image.open(io.BytesIO(blob))
    assert image.format == "JPEG" and image.mode == "RGB"
    assert 600 <= image.width < 1000 and 600 <= image.height < 1000
    grey = np.asarray(image.convert("L"), np.float32)
    darkest, paper = np.percentile(grey, [1, 99])
    assert 0.55 * paper <= darkest <= 0.95 * paper  # the block is there, and faint


def test_the_pen_draws_the_digits_skeleton_thin():
    cover = SD._thin_digit(_digit(), 280, 4.0)
    assert cover.shape == (280, 280) and cover.max() > 0.9
    # A thin pen: far less ink than the digit enlarged, whose strokes are ~30 px wide at this size.
    assert (cover > 0.5).mean() < 0.5 * (np.asarray(Image.fromarray(_digit()).resize((280, 280))) > 100).mean()


def test_the_report_scores_every_served_model_per_light(exported_dir, tmp_path, monkeypatch):
    argv = ["shadowed_digits", "--exported", str(exported_dir), "--out", str(tmp_path), "--count", "12"]
    blank = ["--blank", "3", "--blank-seed", "5", "--blank-seed", "8"]
    monkeypatch.setattr(sys, "argv", [*argv, "--seed", "5", "--seed", "6", *blank])
    SD.main()
    results = json.loads((tmp_path / "shadowed.json").read_text())["results"]
    assert results["dataset"]["photos"] == 24 and results["dataset"]["seeds"] == [5, 6]
    assert sum(results["dataset"]["per_light"].values()) == 24
    assert results["dataset"]["blank_pages"] == 6 and results["dataset"]["blank_seeds"] == [5, 8]
    assert 0 <= results["versions"]["this tree"]["blank_refused"] <= 6
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    models = results["versions"]["this tree"]["models"]
    assert models and set(models) <= set(manifest["models"])
    per_light = results["dataset"]["per_light"]
    for name, m in models.items():
        assert m["sha256"] == manifest["models"][name]["sha256"]
        # The overall figure is the lights' figures weighed by their photos.
        weighed = sum(m["lights"][k] * n for k, n in per_light.items() if n) / 24
        assert all((m["lights"][k] is None) == (n == 0) for k, n in per_light.items())
        assert m["accuracy"] == pytest.approx(weighed)
    assert all(f"| {name} |" in (tmp_path / "shadowed.md").read_text() for name in models)


def test_blank_pages_under_each_light_are_refused_as_blank():
    """The pages the photos are on, with nothing written: the preprocessing answers NoInk (the first six, two of
    each light; of the report's 150, a few dim ones give a frame: reports/shadowed/shadowed.md)."""
    pages = SD.blank_pages(6, SD.BLANK_SEED)
    assert len(pages) == 6 and len(set(pages)) == 6
    assert SD.frames(pages, P.from_bytes)[1].all()


def test_a_hollow_photo_draws_the_bold_digits_rim_round_paper(monkeypatch):
    monkeypatch.setattr(SD, "_light", lambda rng, kind, h, w: np.ones((h, w), np.float32))
    grey = np.asarray(
        Image.open(io.BytesIO(SD.hollow_photo(np.random.default_rng(3), _digit(), "gradient"))).convert("L")
    )
    ink = (grey < 0.75 * np.percentile(grey, 99)).astype(np.uint8)
    ink = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))  # the JPEG's speckle along the rim
    # The paper inside the rim (the bubble's band) is apart from the paper outside it: three or more labels with ink.
    assert cv2.connectedComponents(1 - ink, connectivity=4)[0] >= 3
    # A rim, not a solid digit: the bold 7's own area holds more paper than ink.
    x, y, w, h = cv2.boundingRect(ink)
    assert ink[y : y + h, x : x + w].mean() < 0.35


def test_the_hollow_report_names_its_style_and_its_own_digits(exported_dir, tmp_path, monkeypatch):
    argv = ["shadowed_digits", "--exported", str(exported_dir), "--out", str(tmp_path), "--count", "12"]
    monkeypatch.setattr(sys, "argv", [*argv, "--style", "hollow", "--seed", "7", "--blank", "0"])
    SD.main()
    results = json.loads((tmp_path / "shadowed.json").read_text())["results"]
    assert results["dataset"]["style"] == "hollow" and results["dataset"]["blank_pages"] == 0
    assert results["dataset"]["digits"].startswith(f"MNIST validation digits {SD.HOLLOW_FIRST}-")
    assert (tmp_path / "shadowed.md").read_text().startswith("# Bubble-outline digits")


def test_a_solid_photo_draws_the_digit_with_its_own_strokes(monkeypatch):
    """The solid style keeps MNIST's stroke: over twice as wide as the thin pen's, each photo's ink taken midway
    between its paper and its darkest ink (the thin pen is also fainter)."""
    from serving.paper import stroke_width

    monkeypatch.setattr(SD, "_light", lambda rng, kind, h, w: np.ones((h, w), np.float32))
    widths = []
    for draw in (SD.solid_photo, SD.photo):
        grey = np.asarray(Image.open(io.BytesIO(draw(np.random.default_rng(3), _digit(), "gradient"))).convert("L"))
        paper, darkest = np.percentile(grey, 50), np.percentile(grey, 0.05)
        widths.append(stroke_width((grey < (paper + darkest) / 2).astype(np.uint8)))
    assert widths[0] > 2 * widths[1], widths  # 2.5x here; a thin pen at full ink would measure alike


def test_a_variant_is_this_tree_with_its_constants_set_then_restored(exported_dir, tmp_path, monkeypatch):
    """--variant runs this tree with constants changed: one that sets a constant to its own value reads every photo
    as this tree does; one that calls every contrast blank refuses every photo, losing each one this tree read right;
    the constants are as they were afterwards."""
    from serving import paper, regions

    rim, contrast = regions.HOLLOW_RIM, paper.MIN_CONTRAST
    argv = ["shadowed_digits", "--exported", str(exported_dir), "--out", str(tmp_path), "--count", "12", "--seed", "7"]
    same, blind = f"same: regions.HOLLOW_RIM={rim}", "blind: paper.MIN_CONTRAST=1000 paper.LIT_CONTRAST=1000"
    monkeypatch.setattr(sys, "argv", [*argv, "--style", "solid", "--blank", "0", "--variant", same, "--variant", blind])
    SD.main()
    results = json.loads((tmp_path / "shadowed.json").read_text())["results"]
    assert results["dataset"]["digits"].startswith(f"MNIST validation digits {SD.SOLID_FIRST}-")
    versions = results["versions"]
    assert versions["same"]["settings"] == [f"regions.HOLLOW_RIM={rim}"]
    assert versions["this tree"]["refused"] == 0 and versions["blind"]["refused"] == 12
    for name, m in versions["same"]["models"].items():
        tree = versions["this tree"]["models"][name]
        assert (m["gained"], m["lost"]) == (0, 0) and m["accuracy"] == tree["accuracy"]
        blind_model = versions["blind"]["models"][name]
        assert (blind_model["gained"], blind_model["lost"]) == (0, round(12 * tree["accuracy"]))
    assert (regions.HOLLOW_RIM, paper.MIN_CONTRAST) == (rim, contrast)
    text = (tmp_path / "shadowed.md").read_text()
    assert text.startswith("# Digits in MNIST's own strokes") and "- variant `blind`" in text


@pytest.mark.parametrize(
    "variant,named",
    [
        ("no colon", "'no colon'"),
        ("bad: regions.NO_SUCH=1", "regions.NO_SUCH=1"),
        ("bad: torch.X=1", "torch.X=1"),
        ("bad: regions.HOLLOW_RIM", "regions.HOLLOW_RIM"),
        ("bad: regions.cv2=1", "regions.cv2=1"),  # a module, not a constant
        ("bad: ink.DESKEW=maybe", "0/1/true/false"),  # a switch
        ("bad: ink.NATIVE_MIN=4.5", "takes int"),  # a whole number
        ("this tree: regions.HOLLOW_RIM=3", "'this tree' is taken"),  # the baseline's own label
    ],
)
def test_a_malformed_variant_is_refused_before_anything_runs(variant, named, monkeypatch, capsys):
    """A variant that could not run (or would replace the baseline) is a usage error naming the fault, before any
    photo is drawn."""
    monkeypatch.setattr(sys, "argv", ["shadowed_digits", "--variant", variant])
    with pytest.raises(SystemExit) as exit_info:
        SD.main()
    assert exit_info.value.code == 2 and named in capsys.readouterr().err


def test_patched_constants_take_their_own_types_and_are_restored_when_the_block_fails():
    """A variant's values are set as the constants' types (a float, a switch, an int), and put back on an error."""
    from benchmarks import variants
    from serving import ink, regions

    rim, deskew, native = regions.HOLLOW_RIM, ink.DESKEW, ink.NATIVE_MIN
    settings = ["regions.HOLLOW_RIM=7", "ink.DESKEW=false", "ink.NATIVE_MIN=6"]
    with pytest.raises(RuntimeError), variants.patched(settings):
        assert isinstance(regions.HOLLOW_RIM, float) and regions.HOLLOW_RIM == 7.0
        assert ink.DESKEW is False and isinstance(ink.NATIVE_MIN, int) and ink.NATIVE_MIN == 6
        raise RuntimeError
    assert (regions.HOLLOW_RIM, ink.DESKEW, ink.NATIVE_MIN) == (rim, deskew, native)


def test_a_light_no_photo_drew_has_no_figure_rather_than_nan(exported_dir, tmp_path, monkeypatch):
    """Two photos cannot cover three lights: the missing one's figure is null in the JSON and '-' in the table."""
    argv = ["shadowed_digits", "--exported", str(exported_dir), "--out", str(tmp_path), "--count", "2", "--seed", "7"]
    monkeypatch.setattr(sys, "argv", [*argv, "--blank", "0"])
    SD.main()
    text = (tmp_path / "shadowed.json").read_text()
    assert "NaN" not in text
    results = json.loads(text)["results"]
    missing = [k for k, n in results["dataset"]["per_light"].items() if n == 0]
    assert missing and all(
        m["lights"][k] is None for m in results["versions"]["this tree"]["models"].values() for k in missing
    )
    table = [line.split("|")[1:-1] for line in (tmp_path / "shadowed.md").read_text().splitlines() if line[:2] == "| "]
    header, rows = [c.strip() for c in table[0]], [[c.strip() for c in r] for r in table[1:] if "this tree" in r[2]]
    assert rows and all(row[header.index(k)] == "-" for row in rows for k in missing)


def test_a_font_photo_draws_a_typeset_digits_outline(monkeypatch, tmp_path):
    """--style font: a typeset 0 drawn as its outline keeps paper inside both rims (the band and the counter apart
    from the outside) and holds far more paper than ink; faces come from FONT_DIRS without monospace ones, and with
    none installed the error names the packages."""
    import matplotlib

    monkeypatch.setattr(SD, "FONT_DIRS", (f"{matplotlib.get_data_path()}/fonts/ttf",))
    faces = SD.font_faces()
    assert faces and not any("Mono" in f.name for f in faces)
    monkeypatch.setattr(SD, "_light", lambda rng, kind, h, w: np.ones((h, w), np.float32))
    photo = SD.font_photo(np.random.default_rng(3), 0, "gradient", faces)
    grey = np.asarray(Image.open(io.BytesIO(photo)).convert("L"))
    ink = (grey < (np.percentile(grey, 50) + np.percentile(grey, 0.05)) / 2).astype(np.uint8)
    assert cv2.connectedComponents(1 - ink, connectivity=4)[0] >= 4  # ink, outside, the band, the counter
    x, y, w, h = cv2.boundingRect(ink)
    assert ink[y : y + h, x : x + w].mean() < 0.3
    monkeypatch.setattr(SD, "FONT_DIRS", (str(tmp_path),))
    with pytest.raises(SystemExit, match=SD.FONT_PACKAGES):
        SD.font_faces()


def test_the_gallery_shows_each_mistake_of_the_default_model(exported_dir, tmp_path, monkeypatch):
    """--gallery: one tile (photo and frame) per photo the default model read wrongly through this tree, six a row."""
    from benchmarks import harness as H

    argv = ["shadowed_digits", "--exported", str(exported_dir), "--out", str(tmp_path), "--count", "12", "--seed", "7"]
    monkeypatch.setattr(sys, "argv", [*argv, "--style", "hollow", "--blank", "0", "--gallery"])
    SD.main()
    results = json.loads((tmp_path / "shadowed.json").read_text())["results"]
    default = results["versions"]["this tree"]["models"][H.default_model(exported_dir)]
    wrong = round((1 - default["accuracy"]) * results["dataset"]["photos"])
    sheet = Image.open(tmp_path / "mistakes.png")
    assert wrong and sheet.size == (96 * 12, 110 * -(-min(wrong, 60) // 6))
