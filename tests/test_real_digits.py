"""benchmarks.real_digits: UCI's reduction, the renderings, the scoring, and a report over a served export."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from benchmarks import real_digits as RD


def test_to_grid_counts_the_on_pixels_of_4x4_blocks_of_the_fitted_32px_bitmap():
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255  # a bar 20 tall and 4 wide: fitted to 32 x 6 (x 1.6), columns 13-18 of the bitmap
    grid = RD.to_grid(digit)
    expected = np.zeros((8, 8))
    expected[:, 3:5] = 12  # blocks 3 and 4 hold three of its columns each: 3 x 4 on-pixels
    assert np.array_equal(grid, expected)
    full = RD.to_grid(np.full((28, 28), 255, np.uint8))
    assert (full == 16).all()  # a block of ink counts all 16 of its pixels


def test_renderings_are_blocky_or_smooth_and_printed_is_the_negative():
    counts = np.zeros((8, 8))
    counts[2:6, 3] = 16
    counts[2, 4] = 8
    blocky = np.asarray(RD.render(counts, 32, *RD.RENDERINGS["blocky 32 px"][1:]))
    assert blocky.shape == (32, 32)
    assert (blocky[8:12, 16:20] == 128).all() and (blocky[8:24, 12:16] == 255).all()  # 4x4 blocks of each count
    printed = np.asarray(RD.render(counts, 32, *RD.RENDERINGS["blocky 32 px, printed"][1:]))
    assert np.array_equal(printed, 255 - blocky)
    smooth = np.asarray(RD.render(counts, 64, *RD.RENDERINGS["smooth 64 px"][1:]))
    assert len(np.unique(smooth)) > len(np.unique(blocky))  # bicubic: levels between the counts


def test_score_counts_right_answers_flags_and_confusions():
    labels = np.array([3, 3, 9, 9])
    probabilities = np.full((4, 10), 0.01)
    probabilities[0, 3] = probabilities[2, 9] = 0.95  # right and sure
    probabilities[1, 5] = 0.95  # a 3 read as 5, sure of it
    probabilities[3, 3] = 0.5  # a 9 read as 3, unsure
    r = RD.score(probabilities, labels, uncertain_below=0.9)
    assert r["accuracy"] == 0.5
    assert r["confusions"] == {"3 -> 5": 1, "9 -> 3": 1}
    assert r["flag"]["caught"] == 0.5 and r["flag"]["confident_wrong"] == 0.25 and r["flag"]["flagged_right"] == 0


@pytest.mark.parametrize("source", ["uci", "mnist-val"])
def test_the_report_scores_every_served_model_on_every_rendering(source, exported_dir, tmp_path, monkeypatch):
    argv = ["real_digits", "--exported", str(exported_dir), "--out", str(tmp_path), "--digits", source]
    monkeypatch.setattr(sys, "argv", [*argv, "--limit", "20"])
    RD.main()
    report = json.loads((tmp_path / f"{source}.json").read_text())
    results = report["results"]
    assert results["dataset"]["digits"] == 20 and results["dataset"]["name"] == source
    models = results["versions"]["this tree"]["models"]
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    assert models and set(models) <= set(manifest["models"])
    for name, m in models.items():
        assert m["sha256"] == manifest["models"][name]["sha256"]
        assert set(m["renderings"]) == set(RD.RENDERINGS)
        # Every rendering sends the same 20 digits: the overall figure is their mean.
        assert m["accuracy"] == pytest.approx(np.mean(list(m["renderings"].values())))
    markdown = (tmp_path / f"{source}.md").read_text()
    assert all(f"| {name} |" in markdown for name in models)


def test_to_grid_names_a_digit_with_no_ink_rather_than_crashing():
    with pytest.raises(ValueError, match="no pixel at half level"):
        RD.to_grid(np.full((28, 28), 100, np.uint8))


def test_run_chunked_keeps_every_row_in_order_across_chunks():
    from benchmarks.harness import run_chunked

    class Served:  # a model whose logits are its input's first pixel, so rows can be followed
        calls: list[int] = []

        def run(self, x):
            self.calls.append(len(x))
            return np.repeat(x[:, 0, 0, :1], 10, axis=1), 0.0

    x = np.arange(7, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 28, 28), np.float32)
    served = Served()
    out = run_chunked(served, x, chunk=3)
    assert served.calls == [3, 3, 1]
    assert np.array_equal(out[:, 0], np.arange(7, dtype=np.float32))
