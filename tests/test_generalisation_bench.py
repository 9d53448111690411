"""benchmarks.generalisation: its report renders photo figures, old and new, and marks the ones a variant lacks."""

from __future__ import annotations

from benchmarks.generalisation import markdown


def row(photos: dict | None) -> dict:
    """One variant's figures, as run_variant returns them (photos optional)."""
    flag = {"caught": 0.5, "flagged_right": 0.01, "confident_wrong": 0.002}
    return {
        "overrides": {},
        "train_seconds": 1.0,
        "val_accuracy": 0.99,
        "test_accuracy": 0.99,
        "dev": {"accuracy": 0.98, "per_condition": {"canvas": 0.97}, "ece": 0.01},
        "flag": flag,
        "flag_for_80": {"threshold": 0.9, **flag},
        **({"photos": photos} if photos is not None else {}),
    }


def test_photo_cells_read_both_formats_and_mark_what_is_missing():
    payload = {
        "model": "cnn",
        "profile": "cpu",
        "command": "python -m benchmarks.generalisation",
        "git_revision": "abc",
        "device": "cpu",
        "versions": {},
        "set": {"images": 1, "sha256": "0" * 64},
        "variants": {
            "old": row({"hollow": 0.5}),  # a report from before confident-wrong: accuracy alone
            "new": row({"hollow": {"accuracy": 0.75, "confident_wrong": 0.0125}}),
            "none": row(None),
        },
    }
    lines = {line.split(" | ")[0]: line for line in markdown(payload).splitlines() if line.startswith("| ")}
    assert lines["| old"].endswith("| 50.0 | - |")
    assert lines["| new"].endswith("| 75.0 | 1.25 |")
    assert lines["| none"].endswith("| - | - |")
    header = lines["| variant"]
    assert header.endswith("hollow photos | hollow photos wrong at >= 0.9 |")
