"""Which rule should set a model's "unsure" threshold (issue 20, point 5)? Each rule is applied as the export
applies it, on the real-world development split's calibrated probabilities; what the resulting flag catches and
costs is then read on dev and on three validation pools no rule was fitted on: MNIST validation digits photographed
faintly and as bubble outlines (`benchmarks.shadowed_digits`, the choice seeds 7 and 11) and reduced to UCI's 8x8
grid and upscaled (`benchmarks.real_digits --digits mnist-val`, every rendering).

Dev and validation digits only: a choice is made here, so the sealed split is never read.
Usage:  python -m benchmarks.flag_rule [--exported exported] [--out reports/flag]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import harness as H
from mnistserve import settings
from testkit.servers import REPO
from training import robustness
from training.metrics import UNSURE_BUDGET, UNSURE_CATCH, flag_stats, flag_threshold

# (share of dev's wrong answers to catch, most of dev's right answers to flag): the rule before this report first.
RULES = [(0.8, 0.10), (0.9, 0.10), (0.9, 0.08), (0.95, 0.08), (1.0, 0.08), (1.0, 0.06)]
POOLS = ["dev", "faint", "hollow", "lowres"]


def pools() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each pool's frames, as the service makes them, and labels (a frame the service refused: blank, so a miss)."""
    from benchmarks.generalisation import photo_sets  # the faint and outline photos, and the 8x8 digits (`lowres`)

    dev = robustness.load(robustness.PER_CONDITION["cpu"], settings.cache_dir(), "dev")
    made = {"dev": (dev.images, dev.labels)}
    made.update({style: (images, labels) for style, (images, labels, _) in photo_sets().items()})
    return made


def score(exported: Path) -> dict:
    """Every served model: each rule's dev threshold and its flag's figures on every pool."""
    from serving.store import ModelStore

    data = pools()
    results = {}
    for name, served in ModelStore(exported).models.items():
        probabilities = {pool: served.probabilities(H.run_chunked(served, x)) for pool, (x, _) in data.items()}
        rules = {}
        for catch, budget in RULES:
            threshold = flag_threshold(probabilities["dev"], data["dev"][1], catch=catch, budget=budget)
            rules[f"{catch:.2f}/{budget:.2f}"] = {
                "catch": catch,
                "budget": budget,
                "threshold": threshold,
                "pools": {pool: flag_stats(probabilities[pool], data[pool][1], threshold) for pool in POOLS},
            }
        results[name] = {
            "sha256": served.entry["sha256"],
            "temperature": served.temperature,
            "accuracy": {pool: float((p.argmax(1) == data[pool][1]).mean()) for pool, p in probabilities.items()},
            "rules": rules,
        }
    return {"images": {pool: len(y) for pool, (_, y) in data.items()}, "models": results}


def markdown(report: dict) -> str:
    """The rules side by side per model: caught / right flagged on each pool."""
    res = report["results"]
    lines = [
        *H.markdown_head(report["environment"], 'Which rule sets the "unsure" threshold'),
        "- pools: " + ", ".join(f"{pool} {n} images" for pool, n in res["images"].items()) + " (dev: the real-world"
        " development split; faint, hollow: MNIST validation digits photographed, seeds 7 and 11; lowres: 2,000 MNIST"
        " validation digits on UCI's 8x8 grid, every rendering); the sealed split is not read",
        "- a rule: catch this share of dev's wrong answers, unless that flags more than this share of dev's right ones"
        " (then that share's line); the threshold is on the model's calibrated probability, as served",
        f"- the export's rule: catch {UNSURE_CATCH:.2f}, budget {UNSURE_BUDGET:.2f}",
        "- each cell: wrong answers caught % / right answers flagged % (wrong with probability >= 0.9, which no"
        " threshold changes, is in the accuracy table)",
        "",
    ]
    for name, m in res["models"].items():
        lines += [
            f"## {name} (sha256 {m['sha256'][:12]}, temperature {m['temperature']:.3f})",
            "",
            "accuracy: "
            + ", ".join(f"{pool} {100 * a:.2f}%" for pool, a in m["accuracy"].items())
            + "; wrong at >= 0.9: "
            + ", ".join(
                f"{pool} {100 * s['confident_wrong']:.2f}%"
                for pool, s in next(iter(m["rules"].values()))["pools"].items()
            ),
            "",
            "| catch / budget | threshold | " + " | ".join(POOLS) + " |",
            "|---|---|" + "---|" * len(POOLS),
        ]
        for label, rule in m["rules"].items():
            cells = [f"{100 * s['caught']:.1f} / {100 * s['flagged_right']:.1f}" for s in rule["pools"].values()]
            lines.append(f"| {label} | {rule['threshold']:.4f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    H.exported_report(__doc__, "rule", REPO / "reports" / "flag", score, markdown)


if __name__ == "__main__":
    main()
