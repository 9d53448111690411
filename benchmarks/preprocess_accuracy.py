"""What the preprocessing is worth to the models: the real-world development split through an earlier revision's
`serving.preprocess` (default c729eef, the hand-written numpy version, read with `git show`) and through this
tree's, each frame read by every servable model of `exported/`; accuracy per condition, before and after.

Every preprocessing choice is tuned on the development split (training.realworld.CHOICES). `--split sealed` scores
the sealed split before and after, once the choices are frozen, and nothing else: no variants, no gallery of its
mistakes. `--variant` adds this tree with some constants changed (an ablation: what each part buys), `--gallery`
saves the frames the default model still reads wrongly (dev only).
Usage:  python -m benchmarks.preprocess_accuracy [--against c729eef] [--per-condition 200] [--gallery]
            [--variant "no weak ink: paper.WEAK=1.0" ...] [--models cnn,vit]
"""

from __future__ import annotations

import argparse
import types
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks import harness as H
from benchmarks import variants
from benchmarks.preprocess_parity import load_revision, resolve_revision
from serving import ink
from serving import preprocess as P
from serving.errors import ServingError
from testkit.servers import REPO

RESERVED = ("before", "after", "labels", "conditions", "greys", "unread")  # frames()' keys: no variant's label
AGAINST = "c729eef"  # the last revision with the hand-written numpy preprocessing
SPLIT_NAMES = {
    "dev": "development split",
    "sealed": "sealed test split",
    "sealed-v1": "first sealed split (retired: its lamp light is now in dev)",
}


def frames(per_condition: int, old: types.ModuleType, split: str = "dev") -> dict:
    """A split's labels and conditions, its frames through the old preprocessing, and the grey levels this tree's
    preprocessing reads (`serving.preprocess._grey`: the frames come from `serving.ink`)."""
    from training.realworld import generate, get_split

    out = {"labels": [], "conditions": [], "before": [], "greys": [], "unread": {"before": 0}}
    for sample in generate(per_condition, seed=get_split(split).seed, split=split):
        out["labels"].append(sample.label)
        out["conditions"].append(sample.condition)
        try:
            out["before"].append(old.from_image(sample.image)[0])
        except ServingError:  # unread: a blank frame, which no model reads right
            out["before"].append(np.zeros((28, 28), np.float32))
            out["unread"]["before"] += 1
        out["greys"].append(P._grey(sample.image))
    return {k: np.asarray(v) if k in ("labels", "conditions", "before") else v for k, v in out.items()}


def after(made: dict, name: str, settings: list[str]) -> None:
    """This tree's frames (with `settings`, MODULE.CONSTANT=VALUE of serving.paper, .regions or .ink, patched
    for the run) into made[name]; unread images counted as before."""
    with variants.patched(settings):
        out, unread = [], 0
        for grey in made["greys"]:
            try:
                out.append(ink.to_frame(grey))
            except ink.Blank:
                out.append(np.zeros((28, 28), np.float32))
                unread += 1
    made[name], made["unread"][name] = np.asarray(out), unread


def score(made: dict, exported: Path, labels: list[str], models: list[str] | None) -> dict:
    """Each model's accuracy overall and per condition, before and after, and with each variant."""
    from serving.store import ModelStore

    store = ModelStore(exported)
    conditions = list(dict.fromkeys(made["conditions"].tolist()))
    results = {}
    for name, served in store.models.items():
        if models and name not in models:
            continue
        result = {"sha256": served.entry["sha256"]}
        for version in ["before", "after", *labels]:
            right = served.run(made[version][:, None])[0].argmax(1) == made["labels"]
            result[version] = {
                "all": float(right.mean()),
                "per_condition": {c: float(right[made["conditions"] == c].mean()) for c in conditions},
                "right": right,
            }
            if version in labels:  # a variant: the answers it gains and loses against this tree's
                base = result["after"]["right"]
                result[version] |= {"gained": int((right & ~base).sum()), "lost": int((~right & base).sum())}
        results[name] = result
    return results


def gallery(made: dict, right: np.ndarray, path: Path, limit: int = 80) -> None:
    """The new frames the default model reads wrongly, each with its condition and label, 10 to a row."""
    wrong = np.flatnonzero(~right)[:limit]
    cell = (84, 98)
    sheet = Image.new("L", (cell[0] * 10, cell[1] * max(1, -(-len(wrong) // 10))), 96)
    draw = ImageDraw.Draw(sheet)
    for k, i in enumerate(wrong):
        x, y = k % 10 * cell[0], k // 10 * cell[1]
        sheet.paste(Image.fromarray((made["after"][i] * 255).astype(np.uint8)).resize((84, 84), Image.NEAREST), (x, y))
        draw.text((x + 2, y + 85), f"{made['conditions'][i][:9]} {made['labels'][i]}", fill=255)
    sheet.save(path)


def markdown(report: dict, results: dict) -> str:
    env, made = report["environment"], report["set"]
    conditions = list(next(iter(results.values()))["after"]["per_condition"])
    unread = ", ".join(f"{v} {n}" for v, n in made["unread"].items())
    lines = [
        f"# The preprocessing on the real-world {SPLIT_NAMES[made['split']]}: before and after",
        "",
        f"- command: `{env['command']}`",
        f"- device: {env['device']['cpu']}; versions: Python {env['versions']['python']}, numpy "
        f"{env['versions']['numpy']}, Pillow {env['versions']['pillow']}, opencv-python-headless {report['opencv']}",
        f"- before: {report['against']['name']} = {report['against']['commit'][:12]} (its serving/ preprocessing read "
        f"with `git show`); after: this tree, git {env['git_revision']}",
        f"- set: the {SPLIT_NAMES[made['split']]} (training.realworld, seed {made['seed']}), {made['per_condition']} "
        f"images per condition, {made['images']} in all; unread (NoInk or another 4xx, scored as wrong): {unread}."
        + (
            " The sealed split is not scored here."
            if made["split"] == "dev"
            else " Scored once the choices were frozen."
        ),
        *H.measured_lines(env),
        "",
        "Accuracy (%), before -> after:",
        "",
        "| model | all | " + " | ".join(conditions) + " |",
        "|---|---|" + "---|" * len(conditions),
    ]
    for name, r in results.items():
        old, new = r["before"], r["after"]
        cells = [f"{100 * old['per_condition'][c]:.1f} -> {100 * new['per_condition'][c]:.1f}" for c in conditions]
        lines.append(f"| {name} | {100 * old['all']:.2f} -> {100 * new['all']:.2f} | " + " | ".join(cells) + " |")
    lines += [""]
    for name, r in results.items():
        gained = int((~r["before"]["right"] & r["after"]["right"]).sum())
        lost = int((r["before"]["right"] & ~r["after"]["right"]).sum())
        lines.append(f"- {name}: {gained} images read wrongly before and rightly after, {lost} the other way round.")
    if report["variants"]:
        lines += [
            "",
            "## Variants: this tree with some constants changed (accuracy %; answers gained and lost against after)",
            "",
            "| variant | settings | model | all | gained | lost | " + " | ".join(conditions) + " |",
            "|---|---|---|---|---|---|" + "---|" * len(conditions),
        ]
        for label, settings in [("after", []), *report["variants"].items()]:
            for name, r in results.items():
                gained, lost = r[label].get("gained", 0), r[label].get("lost", 0)  # after: none against itself
                cells = " | ".join(f"{100 * r[label]['per_condition'][c]:.1f}" for c in conditions)
                lines.append(
                    f"| {label} | {' '.join(settings) or '-'} | {name} | {100 * r[label]['all']:.2f} | {gained} | "
                    f"{lost} | {cells} |"
                )
    if report.get("gallery"):
        lines += ["", f"The default model's remaining mistakes, as the frames it received: ![]({report['gallery']})"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default=AGAINST, help="git revision whose preprocessing is 'before'")
    ap.add_argument("--per-condition", type=int, default=200, help="images per condition (the cpu profile's 200)")
    ap.add_argument("--exported", type=Path, default=REPO / "exported")
    ap.add_argument("--models", default="", help="comma-separated models to score (default: every servable one)")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help='"label: module.CONSTANT=value ..." this tree with constants of serving.paper/.regions/.ink changed',
    )
    ap.add_argument("--gallery", action="store_true", help="also save the default model's wrong frames as a PNG")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "preprocess")
    ap.add_argument("--split", choices=list(SPLIT_NAMES), default="dev", help="sealed: before and after only")
    args = ap.parse_args()
    if args.split != "dev" and (args.variant or args.gallery):
        ap.error("--split sealed scores before and after only: --variant and --gallery would tune on it")
    try:
        chosen = variants.parse(args.variant, reserved=RESERVED)
    except ValueError as error:
        ap.error(str(error))
    commit = resolve_revision(args.against)
    exported = H.require_manifest(args.exported)
    from training.realworld import get_split

    made = frames(args.per_condition, load_revision(args.against)["serving.preprocess"], args.split)
    after(made, "after", [])
    for label, settings in chosen.items():
        after(made, label, settings)
    results = score(made, exported, list(chosen), [m for m in args.models.split(",") if m])
    report = {
        "environment": H.environment(exported=exported),
        "opencv": __import__("cv2").__version__,
        "against": {"name": args.against, "commit": commit},
        "set": {
            "split": args.split,
            "seed": get_split(args.split).seed,
            "per_condition": args.per_condition,
            "images": len(made["labels"]),
        },
        "variants": chosen,
    }
    report["set"]["unread"] = made["unread"]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.gallery:
        default = H.default_model(exported)
        gallery(made, results[default]["after"]["right"], args.out / "accuracy-mistakes.png")
        report["gallery"] = "accuracy-mistakes.png"
    text = markdown(report, results)
    for r in results.values():
        for version in ("before", "after", *chosen):
            r[version].pop("right")
    H.write_report(
        args.out, "accuracy" if args.split == "dev" else f"accuracy-{args.split}", {**report, "models": results}, text
    )
    print(text)


if __name__ == "__main__":
    main()
