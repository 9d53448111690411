"""Would another temperature meet issue 20's goal for confident mistakes (wrong with probability >= 0.9 on <= 1% of
inputs) without spoiling calibration? Each served model's scores on the flag benchmark's pools (`benchmarks.flag_rule`:
the real-world dev split; MNIST validation digits photographed faintly and as bubble outlines, seeds 7 and 11; and
reduced to UCI's 8x8 grid), read at the manifest's temperature (the one served: fitted on dev since stop 43, on
MNIST's validation split before), at the training run's MNIST-validation fit, at the one that minimises dev's NLL,
and at one fitted on all pools together. For each: accuracy is unchanged (a temperature does not move the top
digit); the share of inputs wrong at >= 0.9, the ECE, and the "unsure" flag refitted on dev by the export's rule
(caught / right flagged).

A temperature fitted on dev is a choice on dev (the export makes it); the pooled one reads validation pools too.
Dev and validation digits only: the sealed split is never read. Nothing here changes the export.
Usage:  python -m benchmarks.temperature [--exported exported] [--out reports/flag]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import harness as H
from benchmarks.flag_rule import pools
from mnistserve.contracts import softmax
from testkit.servers import REPO
from training.metrics import expected_calibration_error, fit_temperature, flag_stats, flag_threshold


def read(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray], temperature: float) -> dict:
    """Every pool at one temperature: wrong at >= 0.9, ECE, and the flag the export's rule would set on dev."""
    probabilities = {pool: softmax(s, temperature) for pool, s in scores.items()}
    threshold = flag_threshold(probabilities["dev"], labels["dev"])
    return {
        "temperature": temperature,
        "threshold": threshold,
        "pools": {
            pool: {
                **flag_stats(probabilities[pool], labels[pool], threshold),
                "ece": expected_calibration_error(probabilities[pool], labels[pool]),
            }
            for pool in scores
        },
    }


def score(exported: Path, made: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> dict:
    """Every served model at the manifest's, dev's and the pools' temperature (`made`: the pools, else built)."""
    from serving.store import ModelStore

    made = pools() if made is None else made
    labels = {pool: y for pool, (_, y) in made.items()}
    results = {}
    for name, served in ModelStore(exported).models.items():
        scores = {pool: H.run_chunked(served, x).astype(np.float64) for pool, (x, _) in made.items()}
        every = np.concatenate(list(scores.values()))
        calibration = served.entry.get("calibration") or {}
        fitted = {
            "manifest (served)": served.temperature,
            # The training run's fit, kept beside a dev-fitted one since stop 43 (training/export.py: dev_temperature)
            "MNIST validation": calibration.get("validation", calibration).get("temperature", served.temperature),
            "dev": fit_temperature(scores["dev"], labels["dev"]),
            "every pool": fit_temperature(every, np.concatenate(list(labels.values()))),
        }
        results[name] = {
            "sha256": served.entry["sha256"],
            "accuracy": {pool: float((s.argmax(1) == labels[pool]).mean()) for pool, s in scores.items()},
            "temperatures": {label: read(scores, labels, t) for label, t in fitted.items()},
        }
    return {"images": {pool: len(y) for pool, y in labels.items()}, "models": results}


def markdown(report: dict) -> str:
    """Per model: each temperature's confident mistakes, ECE and flag on every pool."""
    res = report["results"]
    lines = [
        *H.markdown_head(report["environment"], "Confident mistakes and calibration at other temperatures"),
        "- pools: " + ", ".join(f"{pool} {n} images" for pool, n in res["images"].items()) + " (as in"
        " benchmarks.flag_rule: dev, MNIST validation digits photographed faintly and as outlines, and on UCI's 8x8"
        " grid); the sealed split is not read",
        "- each cell: wrong at >= 0.9 (% of inputs) / ECE (%) / the flag the export's rule sets on dev at that"
        " temperature: wrong caught % / right flagged %",
        "",
    ]
    for name, m in res["models"].items():
        lines += [
            f"## {name} (sha256 {m['sha256'][:12]})",
            "",
            "accuracy (any temperature): " + ", ".join(f"{p} {100 * a:.2f}%" for p, a in m["accuracy"].items()),
            "",
            "| temperature fitted on | T | threshold | " + " | ".join(m["accuracy"]) + " |",
            "|---|---|---|" + "---|" * len(m["accuracy"]),
        ]
        for label, t in m["temperatures"].items():
            cells = [
                f"{100 * s['confident_wrong']:.2f} / {100 * s['ece']:.2f} / {100 * s['caught']:.1f} / "
                f"{100 * s['flagged_right']:.1f}"
                for s in t["pools"].values()
            ]
            lines.append(f"| {label} | {t['temperature']:.3f} | {t['threshold']:.4f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    H.exported_report(__doc__, "temperature", REPO / "reports" / "flag", score, markdown)


if __name__ == "__main__":
    main()
