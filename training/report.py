"""The run report: a Markdown page with the comparison table and PNG plots beside it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np

from mnistserve.contracts import atomic_write_bytes, comparison_markdown


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


def plot_confusion(entry: dict, path: Path) -> None:
    """One model's confusion matrix on the test split."""
    cm = np.asarray(entry["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(np.log1p(cm), cmap="Blues")  # log scale so the off-diagonal errors are visible
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"{entry['model']}: {100 * entry['metrics']['accuracy']:.2f}%")
    fig.colorbar(im, ax=ax, fraction=0.046, label="log(1 + count)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(comparison: dict, run_dir: Path, command: str = "") -> Path:
    """Write report.md and its plots into `run_dir`; return the report's path."""
    plot_accuracy_vs_time(comparison, run_dir / "accuracy_vs_time.png")
    plot_validation_curves(comparison, run_dir / "validation_curves.png")
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
        f"- data: {comparison['data']['source']}, test labels SHA-256 {comparison['data']['test_labels_sha256'][:16]}...",
        "",
        "## Comparison (official test split)",
        "",
        comparison_markdown(comparison),
        "Loss is cross-entropy except for Faster R-CNN, whose loss is the sum of its detection losses.",
        "`pretrained: no` means trained from scratch (no ImageNet weights were available or asked for).",
        "",
        "## Plots",
        "",
        "![accuracy vs training time](accuracy_vs_time.png)",
        "",
        "![validation curves](validation_curves.png)",
        "",
    ]
    lines += [f"![confusion matrix {e['model']}](confusion_{e['model']}.png)" for e in _ok(comparison)]
    for e in comparison["models"]:
        hp = e["hyperparameters"]
        lines.append(f"\n- `{e['model']}`: epochs {hp['epochs']}, batch {hp['batch_size']}, lr {hp['lr']}, "
                     f"train images {hp['train_subset'] or 50000}, build {hp['build']}, weights {e.get('weights', '-')}")
    path = run_dir / "report.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path
