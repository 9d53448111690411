"""The `mnistserve` command line: train, compare, export and inspect the data."""

from __future__ import annotations

import json
import shlex
import sys
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mnistserve.contracts import (
    ARCHITECTURES,
    COMPARISON_COLUMNS,
    PROFILES,
    comparison_cells,
    comparison_markdown,
    read_json,
    realworld_markdown,
    shipped_comparison,
)

# `mnistserve --help` and argument errors answer at once: each command imports training (torch) and the settings
# (pydantic-settings, the largest import left in `python -X importtime -m mnistserve --help`) when it runs.

app = typer.Typer(
    help="Train, compare, export and serve five MNIST architectures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="The MNIST data set.", no_args_is_help=True)
app.add_typer(data_app, name="data")
# Wide enough for the comparison table when piped (rich falls back to 80 columns there).
console = Console(width=None if sys.stdout.isatty() else 150)

ModelName = Enum("ModelName", {n: n for n in ARCHITECTURES}, type=str)  # the registry's built-in modules
Profile = Enum("Profile", {p: p for p in ("auto", *PROFILES)}, type=str)


class Format(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def fail(message: str) -> typer.Exit:
    """Print a one-line error naming the problem and return the exit to raise (code 2)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


class RichReporter:
    """Draws one progress bar per model and prints each epoch's validation figures."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.task = progress, None

    def model_started(self, cfg, total_batches: int) -> None:
        from training.report import training_data

        console.print(
            f"[bold]{cfg.model}[/]: {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr}, "
            f"{training_data(cfg.to_dict())}, build {cfg.build}",
            highlight=False,
        )
        self.task = self.progress.add_task(cfg.model, total=total_batches)

    def batch(self, n: int) -> None:
        self.progress.advance(self.task)

    def epoch(self, record) -> None:
        self.progress.console.print(
            f"  epoch {record.epoch}: train loss {record.train_loss:.4f}, val loss {record.val_loss:.4f}, "
            f"val acc {100 * record.val_accuracy:.2f}% ({record.seconds:.1f}s)",
            highlight=False,
        )

    def model_finished(self, entry: dict) -> None:
        if entry["status"] == "ok":
            m = entry["metrics"]
            msg = (
                f"[green]{entry['model']}[/]: test accuracy {100 * m['accuracy']:.2f}%, macro-F1 {m['macro_f1']:.4f}, "
                f"{m['train_seconds']:.1f}s, pretrained: {'yes' if entry['pretrained'] else 'no'} ({entry['weights']})"
            )
        else:
            msg = f"[red]{entry['model']} failed[/]: {entry['error']}"
        self.progress.console.print(msg, highlight=False)


def print_comparison(comparison: dict, fmt: Format) -> None:
    """Print a stored comparison as a rich table, JSON or Markdown."""
    if fmt is Format.json:
        typer.echo(json.dumps(comparison, indent=2))
        return
    if fmt is Format.markdown:
        typer.echo(comparison_markdown(comparison))
        return
    table = Table(title=f"run {comparison['run_id']} ({comparison['profile']} profile, {comparison['device']})")
    for col in COMPARISON_COLUMNS:
        table.add_column(col, justify="left" if col in ("model", "pretrained", "profile") else "right")
    for cells in comparison_cells(comparison):
        table.add_row(*cells, style="red" if cells[1].startswith("failed") else None)
    console.print(table)
    breakdown = realworld_markdown(comparison)
    if breakdown:
        console.print(breakdown, highlight=False, markup=False)


@app.command()
def train(
    model: Annotated[
        list[ModelName] | None, typer.Option("--model", "-m", help="Architecture to train (repeatable).")
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Train every registered architecture.")] = False,
    profile: Annotated[
        Profile, typer.Option(help="smoke (seconds), cpu (2-core sized), gpu (the full lab), auto.")
    ] = Profile.auto,
    epochs: Annotated[int | None, typer.Option(help="Override the profile's epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the profile's batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Override the profile's peak learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    weights: Annotated[
        str | None, typer.Option(help="VGG16/AlexNet: auto, imagenet, none or a state-dict PATH.")
    ] = None,
    freeze_epochs: Annotated[
        int | None, typer.Option(help="VGG16/AlexNet: epochs with the feature extractor frozen.")
    ] = None,
    compile_step: Annotated[
        bool | None,
        typer.Option("--compile/--no-compile", help="torch.compile the training step [default: the profile's]."),
    ] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Where runs are stored [default: ./runs].")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="A directory with MNIST IDX files.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Finish the latest interrupted run from its last finished epoch.")
    ] = False,
) -> None:
    """Train models, evaluate them on the official test split and store the comparison."""
    from mnistserve import settings
    from training.config import resolve_device, resolve_profile
    from training.data import DataUnavailable, load_mnist
    from training.models import model_names
    from training.report import write_report
    from training.run import RunRequest, latest_incomplete_run, publish_latest, run_training

    runs_dir = runs_dir or settings.runs_dir()
    resume_dir = latest_incomplete_run(runs_dir) if resume else None
    if resume and resume_dir is None:
        raise fail(f"--resume: no interrupted run under {runs_dir}")
    names = model_names() if all_models else [m.value for m in model or []]
    if not names and not resume:
        raise fail("choose models with --model NAME (repeatable) or --all; known: " + ", ".join(model_names()))
    try:
        dev = resolve_device(device)
        prof = resolve_profile(profile.value, dev)
        req = RunRequest(
            models=tuple(dict.fromkeys(names)),
            profile=prof,
            device=dev,
            seed=seed,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weights=weights,
            freeze_epochs=freeze_epochs,
            compile=compile_step,
        )
        data = load_mnist(data_dir)
    except (ValueError, DataUnavailable) as exc:
        raise fail(str(exc)) from None
    target = f"resuming {resume_dir.name}" if resume_dir else f"{', '.join(req.models)} on {dev}"
    console.print(
        f"[bold]mnistserve train[/]: {target}, profile [bold]{prof}[/], data from {data.source}", highlight=False
    )
    columns = (
        TextColumn("{task.description:>12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            run_dir = run_training(req, data, runs_dir, RichReporter(progress), resume_dir=resume_dir)
    except ValueError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/]: the last complete comparison is untouched; "
            "continue with `mnistserve train --resume`",
            highlight=False,
        )
        raise typer.Exit(code=130) from None
    comparison = read_json(run_dir / "comparison.json")
    report = write_report(comparison, run_dir, command=" ".join(["mnistserve", *map(shlex.quote, sys.argv[1:])]))
    publish_latest(runs_dir, run_dir)  # only a complete run replaces the last good comparison
    print_comparison(comparison, Format.table)
    console.print(f"report: {report}", highlight=False)
    if any(e["status"] != "ok" for e in comparison["models"]):
        raise typer.Exit(code=1)


@app.command()
def compare(
    run: Annotated[Path | None, typer.Option(help="A run directory [default: runs/latest].")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or markdown.")] = Format.table,
    runs_dir: Annotated[Path | None, typer.Option(help="Where runs are stored [default: ./runs].")] = None,
) -> None:
    """Print the stored comparison of the latest (or a given) run; with no run yet, the shipped one in exported/."""
    from mnistserve import settings
    from training.run import resolve_run

    try:
        run_dir = resolve_run(runs_dir or settings.runs_dir(), run)
        comparison = read_json(run_dir / "comparison.json")
    except FileNotFoundError as exc:
        shipped = shipped_comparison(settings.exported_dir())  # the file the manifest names
        if run is not None or not shipped.is_file():
            raise fail(str(exc)) from None
        typer.echo(f"no run of your own yet: showing the shipped comparison, {shipped}", err=True)  # stdout stays JSON
        comparison = read_json(shipped)
    except ValueError as exc:
        raise fail(str(exc)) from None
    print_comparison(comparison, fmt)


@app.command()
def export(
    run: Annotated[Path | None, typer.Option(help="A run directory [default: runs/latest].")] = None,
    model: Annotated[
        list[ModelName] | None, typer.Option("--model", "-m", help="Export only these (repeatable).")
    ] = None,
    top: Annotated[int | None, typer.Option(help="Keep the K best architectures by test accuracy.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory [default: ./exported].")] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Where runs are stored [default: ./runs].")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="A directory with MNIST IDX files.")] = None,
) -> None:
    """Export each architecture's best checkpoint to ONNX, verify it and write the manifest."""
    from mnistserve import settings
    from training.data import DataUnavailable, load_mnist
    from training.export import ExportError, export_run
    from training.run import resolve_run

    if top is not None and top < 1:
        raise fail(f"--top must be at least 1, got {top}")
    try:
        run_dir = resolve_run(runs_dir or settings.runs_dir(), run)
        data = load_mnist(data_dir)
        manifest = export_run(
            run_dir,
            out or settings.exported_dir(),
            data,
            models=[m.value for m in model or []] or None,
            top=top,
            log=lambda msg: console.print(msg, highlight=False),
        )
    except (FileNotFoundError, ValueError, DataUnavailable, ExportError) as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"exported (default: {manifest['default']})")
    for col in ("model", "shipped", "size MB", "max |diff|", "ONNX accuracy", "ms @1", "ms/img @64"):
        table.add_column(col)
    for name, e in manifest["models"].items():
        table.add_row(
            name,
            "yes" if e["shipped"] else "no (too large for git)",
            f"{e['size_bytes'] / 1e6:.1f}",
            f"{e['parity']['max_abs_diff']:.2e}",
            f"{100 * e['onnx_accuracy']:.2f}%",
            f"{e['latency_ms']['batch1']:.2f}",
            f"{e['latency_ms']['batch64_per_image']:.3f}",
        )
    console.print(table)


def _splits_option(split: list[str] | None) -> tuple[str, ...]:
    """The requested splits in headline order (all when none); an unknown one fails naming the known ones."""
    from mnistserve.realworld import REALWORLD_SPLITS

    unknown = sorted(set(split or ()) - set(REALWORLD_SPLITS))
    if unknown:
        raise fail(f"unknown split(s) {', '.join(unknown)}; known: {', '.join(REALWORLD_SPLITS)}")
    return tuple(s for s in REALWORLD_SPLITS if s in (split or REALWORLD_SPLITS))


@app.command()
def robustness(
    exported: Annotated[Path | None, typer.Option(help="Exported models to measure [default: ./exported].")] = None,
    per_condition: Annotated[int, typer.Option(help="Images per condition (the cpu profile's set has 200).")] = 200,
    out: Annotated[Path | None, typer.Option(help="Write robustness.json, .md and plots here.")] = None,
    gallery: Annotated[bool, typer.Option(help="Also save PNG galleries of the splits' raw images.")] = True,
    split: Annotated[
        list[str] | None,
        typer.Option(help="sealed or dev (repeatable) [default: both]. Tune on dev: sealed decides nothing."),
    ] = None,
) -> None:
    """Measure every exported model on the real-world set's splits (handwriting, drawings, photos), per condition."""
    from mnistserve import settings
    from mnistserve.realworld import SPLIT_TITLES
    from training.robustness import evaluate_exported, load_splits, write_report

    if per_condition < 1:
        raise fail(f"--per-condition must be at least 1, got {per_condition}")
    splits = _splits_option(split)
    directory = exported or settings.exported_dir()
    if not (directory / "manifest.json").is_file():  # before minutes of building the set
        raise fail(f"{directory / 'manifest.json'} not found: export first (mnistserve export)")
    try:
        with console.status(f"generating and preprocessing {per_condition} images per condition of {splits}"):
            sets = load_splits(per_condition, settings.cache_dir(), splits)
        results = evaluate_exported(directory, sets)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    if not results:
        raise fail(f"no model in {directory} could be loaded")
    command = " ".join(["mnistserve", *map(shlex.quote, sys.argv[1:])])
    report = write_report(results, sets, out, command=command, gallery=gallery) if out else None
    for name, rw in sets.items():
        conditions = list(next(iter(results.values()))["splits"][name]["per_condition"])
        table = Table(title=f"real-world {SPLIT_TITLES[name]}: {len(rw)} images, {len(conditions)} conditions")
        for col in ("model", "all", *conditions, "ECE"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for model, r in results.items():
            s = r["splits"][name]
            table.add_row(
                model,
                f"{100 * s['accuracy']:.1f}%",
                *(f"{100 * s['per_condition'][c]:.1f}" for c in conditions),
                f"{100 * s['ece']:.1f}%",
            )
        console.print(table)
    if report:
        console.print(f"report: {report}", highlight=False)


@app.command()
def gallery(
    out: Annotated[Path, typer.Option(help="Write gallery-<split>.png here.")] = Path("reports/realworld"),
    per_condition: Annotated[int, typer.Option(help="Images per condition (a row each).")] = 10,
    split: Annotated[list[str] | None, typer.Option(help="dev or sealed (repeatable) [default: both].")] = None,
) -> None:
    """Galleries of the real-world set's splits, for people to look at (never scores a model)."""
    from training.realworld import write_galleries

    if per_condition < 1:
        raise fail(f"--per-condition must be at least 1, got {per_condition}")
    for path in write_galleries(out, per_condition, _splits_option(split)[::-1]):
        console.print(f"gallery: {path}", highlight=False)


@data_app.command("info")
def data_info(
    data_dir: Annotated[Path | None, typer.Option(help="A directory with MNIST IDX files.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """Where MNIST comes from, its sizes, class counts and checksum."""
    from training.data import DataUnavailable, load_mnist

    try:
        info = load_mnist(data_dir).info()
    except (DataUnavailable, ValueError) as exc:
        raise fail(str(exc)) from None
    if fmt is Format.json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key in ("source", "cache_dir", "sizes", "test_class_counts", "test_labels_sha256"):
        console.print(f"[bold]{key:>18}[/]: {info[key]}", highlight=False)


if __name__ == "__main__":
    app()
