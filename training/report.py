"""The run report: a Markdown page with the comparison table and PNG plots beside it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np

from mnistserve.contracts import atomic_write_bytes, comparison_markdown
from mnistserve.realworld import REALWORLD_SPLITS, SPLIT_TITLES, realworld_splits


def training_data(hp: dict) -> str:
    """'train images 50000 + 15% captures (light, hollow)': what a config trains on, for logs and reports."""
    text = f"train images {hp['train_subset'] or 50000}"
    if hp.get("captures", 0) > 0:  # training.captures mixed in on top of the MNIST images
        text += f" + {100 * hp['captures']:g}% captures ({', '.join(hp['capture_kinds'].split(','))})"
    return text


def _ok(comparison: dict) -> list[dict]:
    return [e for e in comparison["models"] if e.get("status") == "ok"]


def plot_accuracy_vs_time(comparison: dict, path: Path) -> None:
    """Test accuracy against training time, one labelled point per model."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for e in _ok(comparison):
        m = e["metrics"]
        ax.scatter(m["train_seconds"], 100 * m["accuracy"], s=40)
        ax.annotate(e["model"], (m["train_seconds"], 100 * m["accuracy"]), textcoords="offset points", xytext=(5, 3))
    ax.set_xscale("log")
    ax.set_xlabel("training time (s, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Accuracy vs training time ({comparison['profile']} profile)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_validation_curves(comparison: dict, path: Path) -> None:
    """Per-epoch validation accuracy and loss of every model."""
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for e in _ok(comparison):
        epochs = [h["epoch"] for h in e["history"]]
        acc_ax.plot(epochs, [100 * h["val_accuracy"] for h in e["history"]], marker="o", label=e["model"])
        loss_ax.plot(epochs, [h["val_loss"] for h in e["history"]], marker="o", label=e["model"])
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy")
    loss_ax.set(xlabel="epoch", ylabel="validation loss (model's own)", title="Validation loss", yscale="log")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _split_bars(ax, entries: list[dict], split: str, with_test: bool) -> None:
    """One panel: each model's accuracy on one split, overall and per condition (MNIST test first if asked)."""
    measured = [
        (e, realworld_splits(e["realworld"])[split]) for e in entries if split in realworld_splits(e["realworld"])
    ]
    conditions = ["MNIST test"] * with_test + ["real-world (all)", *measured[0][1]["per_condition"]]
    width = 0.8 / len(measured)
    for i, (e, r) in enumerate(measured):
        values = [e["metrics"]["accuracy"]] * with_test + [r["accuracy"], *r["per_condition"].values()]
        x = np.arange(len(conditions)) + (i - (len(measured) - 1) / 2) * width
        ax.bar(x, [100 * v for v in values], width, label=e["model"])
    ax.axhline(90, color="grey", lw=0.8, ls="--")  # the per-condition goal
    ax.set_xticks(range(len(conditions)), conditions, rotation=25, ha="right")
    ax.set(ylabel="accuracy (%)", ylim=(max(0, min(ax.get_ylim()[0], 60)), 100.5), title=SPLIT_TITLES[split])
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, ncol=len(measured))


def plot_realworld(comparison: dict, path: Path, with_test: bool = True) -> bool:
    """Real-world accuracy per condition, one bar per model, a panel per split (sealed, the headline, on top)."""
    entries = [e for e in _ok(comparison) if realworld_splits(e.get("realworld"))]
    if not entries:
        return False
    splits = [s for s in REALWORLD_SPLITS if any(s in realworld_splits(e["realworld"]) for e in entries)]
    width = max(8, 1.1 * (len(next(iter(realworld_splits(entries[0]["realworld"]).values()))["per_condition"]) + 2))
    fig, axes = plt.subplots(len(splits), 1, figsize=(width, 4.2 * len(splits)), squeeze=False)
    for ax, split in zip(axes[:, 0], splits, strict=True):
        _split_bars(ax, entries, split, with_test)
    fig.suptitle("Real-world set by split and condition (evaluation only)" + " beside MNIST's test split" * with_test)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_confusion(entry: dict, path: Path) -> None:
    """One model's confusion matrix on the test split."""
    cm = np.asarray(entry["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(np.log1p(cm), cmap="Blues")  # log scale so the off-diagonal errors are visible
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="white" if i == j else "black")
    ax.set(
        xticks=range(10),
        yticks=range(10),
        xlabel="predicted",
        ylabel="true",
        title=f"{entry['model']}: {100 * entry['metrics']['accuracy']:.2f}%",
    )
    fig.colorbar(im, ax=ax, fraction=0.046, label="log(1 + count)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(comparison: dict, run_dir: Path, command: str = "") -> Path:
    """Write report.md and its plots into `run_dir`; return the report's path."""
    plot_accuracy_vs_time(comparison, run_dir / "accuracy_vs_time.png")
    plot_validation_curves(comparison, run_dir / "validation_curves.png")
    has_realworld = plot_realworld(comparison, run_dir / "realworld.png")
    for e in _ok(comparison):
        plot_confusion(e, run_dir / f"confusion_{e['model']}.png")
    v = comparison["versions"]
    lines = [
        f"# mnistserve training report: {comparison['run_id']}",
        "",
        f"- command: `{command or 'mnistserve train'}`",
        f"- profile: **{comparison['profile']}**, device: {comparison['device']}, seed: {comparison['seed']}",
        f"- git revision: {comparison['git_revision']}, created: {comparison['created']}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- data: {comparison['data']['source']}, "
        f"test labels SHA-256 {comparison['data']['test_labels_sha256'][:16]}...",
        "",
        "## Comparison (official test split, and the real-world set's sealed and dev splits)",
        "",
        comparison_markdown(comparison),
        "Real-world: generated handwriting, drawings and photos that are not MNIST (`training/realworld/`), sent "
        "through the service's preprocessing; evaluation only, never trained on. Two splits: **sealed** (the "
        "headline: glyph sources and render settings no choice looked at) and dev (augmentation, the default model, "
        "thresholds and calibration were chosen on it, so it overstates). ECE: expected calibration error "
        "(15 bins) before -> after temperature scaling fitted on the validation split.",
        "",
        "Loss is cross-entropy except for Faster R-CNN, whose loss is the sum of its detection losses.",
        "`pretrained: no` means trained from scratch (no ImageNet weights were available or asked for).",
        "",
        "## Plots",
        "",
        "![accuracy vs training time](accuracy_vs_time.png)",
        "",
        "![validation curves](validation_curves.png)",
        "",
        *(["![real-world accuracy by condition](realworld.png)", ""] if has_realworld else []),
    ]
    lines += [f"![confusion matrix {e['model']}](confusion_{e['model']}.png)" for e in _ok(comparison)]
    for e in comparison["models"]:
        hp = e["hyperparameters"]
        lines.append(
            f"\n- `{e['model']}`: epochs {hp['epochs']}, batch {hp['batch_size']}, lr {hp['lr']}, "
            f"{training_data(hp)}, build {hp['build']}, weights {e.get('weights', '-')}"
        )
    path = run_dir / "report.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path
