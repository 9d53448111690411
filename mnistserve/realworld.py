"""The real-world set's splits as the stored files carry them: torch-free, for the CLI, the reports and the service.

A model's `realworld` field holds one result per split: `{"sealed": {...}, "dev": {...}}`. Files from before the
split hold a single result (`{"accuracy": ..., "per_condition": ...}`) measured on the set every choice was tuned
on, which is what the dev split is: they read as dev, with no sealed figure.
"""

from __future__ import annotations

from typing import Any

REALWORLD_SPLITS = ("sealed", "dev")  # the headline first
HEADLINE = "sealed"
SPLIT_TITLES = {
    "sealed": "sealed test split (the headline: no choice looked at it)",
    "dev": "development split (augmentation, default model, thresholds and calibration were chosen on it)",
}


def realworld_splits(realworld: Any) -> dict[str, dict]:
    """Split name -> result of a model's `realworld` field, headline first; a pre-split result reads as dev."""
    if not isinstance(realworld, dict):
        return {}
    if "accuracy" in realworld:
        return {"dev": realworld}
    return {name: realworld[name] for name in REALWORLD_SPLITS if isinstance(realworld.get(name), dict)}


def split_accuracy(realworld: Any, split: str) -> float | None:
    """A model's accuracy on one split, None where it was not measured."""
    return realworld_splits(realworld).get(split, {}).get("accuracy")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _ece(result: dict, calibration: dict, split: str) -> str:
    """ECE before -> after calibration: from the result, or (pre-split files) the calibration's dev figures."""
    if "ece_uncalibrated" in result:
        return f"{_pct(result['ece_uncalibrated'])} -> {_pct(result.get('ece'))}"
    old = calibration.get("ece_realworld", {}) if split == "dev" else {}
    return f"{_pct(old.get('before'))} -> {_pct(old.get('after'))}" if old else "-"


def realworld_markdown(comparison: dict[str, Any]) -> str:
    """Per split, headline first: each model's real-world accuracy per condition and ECE (empty if not measured)."""
    entries = [e for e in comparison.get("models", []) if e.get("status", "ok") == "ok" and e.get("realworld")]
    lines: list[str] = []
    for split in REALWORLD_SPLITS:
        measured = [
            (e, realworld_splits(e["realworld"])[split]) for e in entries if split in realworld_splits(e["realworld"])
        ]
        if not measured:
            continue
        conditions = list(measured[0][1]["per_condition"])
        lines += [
            "",
            f"Real-world accuracy by condition, {SPLIT_TITLES[split]}:",
            "",
            "| model | all | " + " | ".join(conditions) + " | ECE before -> after | temperature |",
            "|" + "---|" * (len(conditions) + 4),
        ]
        for e, r in measured:
            cal = e.get("calibration", {})
            temp = f"{cal['temperature']:.3f}" if "temperature" in cal else "-"
            per = r["per_condition"]
            lines.append(
                f"| {e['model']} | {_pct(r.get('accuracy'))} | "
                + " | ".join(_pct(per.get(c)) for c in conditions)
                + f" | {_ece(r, cal, split)} | {temp} |"
            )
    return "\n".join(lines) + "\n" if lines else ""
