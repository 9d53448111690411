"""Parity with the hand-written numpy preprocessing (c729eef): its frames for a fixed sample of inputs are committed
(tests/samples/preprocess_reference.npz, made by `python -m benchmarks.preprocess_reference`); today's must agree.

The tolerance: the same outcome for every input (or a digit where the numpy version found none); frames alike
(similarity >= 0.9, the best correlation over shifts of at most one pixel) for >= 95% of the inputs, the median
>= 0.98; the exported default model reads the same digit in >= 97% of them and is right at least as often.
Changes that keep the whole digit (issue 20) may change a few. Light photos are compared apart: since dev is lit by
the lamp too (round two), c729eef reads its shadows and creases as ink there, and the only bar is being right at
least as often.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.preprocess_reference import REFERENCE, digest, outcome, reference_cases
from serving import preprocess as P
from testkit.servers import REPO

CHANGED = "light_photo"  # the condition round two changed on purpose (creases, hard shadows, a lamp's spot)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation over shifts of at most one pixel (centring rounds to whole pixels)."""
    t = b.ravel() - b.mean()
    best = -1.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            s = np.roll(a, (dy, dx), (0, 1)).ravel()
            s = s - s.mean()
            best = max(best, float(s @ t / max(np.sqrt((s @ s) * (t @ t)), 1e-12)))
    return best


@pytest.fixture(scope="module")
def compared() -> dict:
    """The reference, and today's outcome for each of its inputs."""
    with np.load(REFERENCE) as z:
        ref = {k: z[k] for k in z.files}
    cases = reference_cases(int(ref["per_condition"]), int(ref["seed"]))
    changed = [name for (name, image, _), d in zip(cases, ref["digests"], strict=True) if digest(image) != d]
    assert not changed and len(cases) == len(ref["digests"]), (
        f"the sample's inputs changed ({changed[:3]}...): re-run `python -m benchmarks.preprocess_reference`"
    )
    return {
        "ref": ref,
        "new": [outcome(P, image) for _, image, _ in cases],
        "light": np.array([name.startswith(f"{CHANGED} ") for name, _, _ in cases]),
    }


def test_every_input_has_the_same_outcome_as_before_or_a_digit_where_none_was_found(compared):
    """The same error class for every input, except that a faint digit the numpy version called blank (NoInk) may
    now be read (issue 20: light strokes on unevenly lit paper)."""
    for (_, error), old in zip(compared["new"], compared["ref"]["errors"].tolist(), strict=True):
        assert error == old or (old == "NoInk" and error == ""), (old, error)


def test_frames_look_as_they_did(compared):
    old = compared["ref"]["frames"].astype(np.float32) / 255
    pairs = zip(compared["new"], old, compared["light"], strict=True)
    sims = np.array([similarity(new, o) for (new, _), o, light in pairs if new is not None and not light])
    assert np.mean(sims >= 0.9) >= 0.95 and np.median(sims) >= 0.98, np.sort(sims)[:5]


def test_the_model_reads_the_same_digits(compared):
    from serving.store import ModelStore

    store = ModelStore(REPO / "exported")
    if not store.models:
        pytest.skip("exported/ has no servable model")
    served = store.get(None)
    ref, frames = compared["ref"], [f for f, _ in compared["new"]]
    read = {
        "old": served.run((ref["frames"].astype(np.float32) / 255)[:, None])[0].argmax(1),
        "new": served.run(np.stack([np.zeros((28, 28), np.float32) if f is None else f for f in frames])[:, None])[
            0
        ].argmax(1),
    }
    same = ~compared["light"]
    assert np.mean(read["old"][same] == read["new"][same]) >= 0.97
    assert np.mean(read["new"] == ref["labels"]) >= np.mean(read["old"] == ref["labels"])
    light = compared["light"]
    assert light.any() and np.mean(read["new"][light] == ref["labels"][light]) >= np.mean(
        read["old"][light] == ref["labels"][light]
    )


def test_the_sealed_split_is_scored_before_and_after_only(monkeypatch, capsys):
    """benchmarks.preprocess_accuracy refuses ablations and mistake galleries on the sealed split (choices read dev)."""
    import sys

    from benchmarks import preprocess_accuracy

    for extra in (["--variant", "x: paper.WEAK=1.0"], ["--gallery"]):
        monkeypatch.setattr(sys, "argv", ["preprocess_accuracy", "--split", "sealed", *extra])
        with pytest.raises(SystemExit) as exit_info:
            preprocess_accuracy.main()
        assert exit_info.value.code == 2 and "would tune on it" in capsys.readouterr().err


def test_an_earlier_revision_runs_on_its_own_paper_module():
    """'Before' in the benchmarks is the old revision whole: its ink reads ink maps with its own serving.paper."""
    from benchmarks.preprocess_parity import load_revision

    old = load_revision("6f985d0")
    assert old["serving.ink"].ink_map.__module__ == "serving.paper@6f985d0"
    assert not hasattr(old["serving.paper"], "SHADED")  # round two's paper is not what ran then
    assert "serving.paper" not in load_revision("c729eef")  # before paper.py existed: none is borrowed


def test_the_ablation_scores_each_variant_on_every_model_with_answers_gained_and_lost(exported_dir, tmp_path):
    """preprocess_accuracy's variants: every scored model gets each variant; a variant that refuses every image loses
    exactly the answers this tree had right and gains none; a variant equal to this tree moves nothing."""
    import json
    import sys

    from benchmarks import preprocess_accuracy

    blind = "blind: paper.MIN_CONTRAST=1000 paper.LIT_CONTRAST=1000"
    argv = ["preprocess_accuracy", "--per-condition", "1", "--exported", str(exported_dir), "--out", str(tmp_path)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", [*argv, "--variant", "same: regions.HOLLOW_RIM=2", "--variant", blind])
        preprocess_accuracy.main()
    report = json.loads((tmp_path / "accuracy.json").read_text())
    images = report["set"]["images"]
    assert report["set"]["unread"]["blind"] == images and report["models"]
    for name, r in report["models"].items():
        assert (r["same"]["gained"], r["same"]["lost"], r["same"]["all"]) == (0, 0, r["after"]["all"]), name
        assert (r["blind"]["gained"], r["blind"]["lost"]) == (0, round(r["after"]["all"] * images)), name
    text = (tmp_path / "accuracy.md").read_text()
    assert all(f"| blind | {blind[7:]} | {name} |" in text for name in report["models"])
