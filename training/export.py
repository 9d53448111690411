"""Export each architecture's best checkpoint to ONNX, verify it, and write `exported/manifest.json`."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from mnistserve.contracts import (
    INPUT_NAME,
    INPUT_SPEC,
    MANIFEST_SCHEMA,
    OUTPUT_NAME,
    OUTPUT_SPEC,
    read_json,
    sha256_file,
    softmax,
)
from mnistserve.realworld import split_accuracy
from training import robustness
from training.calibrate import ece_before_after
from training.data import MnistData
from training.environment import git_revision
from training.loop import to_input
from training.metrics import (
    UNSURE_BUDGET,
    UNSURE_CATCH,
    fit_temperature,
    flag_threshold,
    nll,
)
from training.models import build_model, get_spec
from training.publish import ExportError, commit, publishing, versioned

OPSET = 18
PARITY_IMAGES = 1000
DETECTOR_PROB_LIMIT = 1e-3  # max |probability difference| between runtimes for Faster R-CNN
SHIP_LIMIT_BYTES = 20 * 1024 * 1024  # larger files stay out of git and are marked "not shipped"
MNIST_MARGIN = 0.005  # a default may trail the best shipped MNIST test accuracy by at most this much
DEFAULT_RULE = (
    "the shipped model with the highest real-world accuracy on the dev split (never the sealed one) among those "
    f"whose MNIST test accuracy is within {100 * MNIST_MARGIN:.1f} pt of the best shipped one; ties go to the "
    "higher test accuracy"
)


def load_checkpoint(run_dir: Path, entry: dict) -> torch.nn.Module:
    """Rebuild a model from its best-validation checkpoint (tensors only: weights_only=True)."""
    ckpt = torch.load(run_dir / entry["checkpoint"], map_location="cpu", weights_only=True)
    model = build_model(ckpt["name"], **ckpt["build"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


def to_onnx(model: torch.nn.Module, path: Path, batch: int | None) -> None:
    """Export with named input/output; dynamic batch axis unless `batch` fixes it."""
    dummy = torch.rand(batch or 2, 1, 28, 28)
    dynamic = None if batch else {INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def run_onnx(session: ort.InferenceSession, x: np.ndarray, batch: int | None, chunk: int = 256) -> np.ndarray:
    """Scores for all of `x`, in chunks (or one by one for a fixed batch of one)."""
    step = batch or chunk
    return np.concatenate(
        [session.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + step]})[0] for i in range(0, len(x), step)]
    )


@torch.no_grad()
def run_torch(model: torch.nn.Module, x: torch.Tensor, batch: int | None, chunk: int = 256) -> np.ndarray:
    """PyTorch scores for all of `x`, batched the same way as ONNX."""
    step = batch or chunk
    return torch.cat([model(x[i : i + step]) for i in range(0, len(x), step)]).numpy()


def check_parity(torch_scores: np.ndarray, onnx_scores: np.ndarray, relative: bool) -> dict:
    """Identical predictions, and scores within 1e-4 (classifiers) or probabilities within 1e-3 (detector).

    The detector's scores are log(best detection score + eps): a box scored 1e-5 by one runtime and 3e-5 by the
    other differs by 1.1 in log space but by 2e-5 in probability, so it is compared as probabilities.
    """
    diff = float(np.abs(torch_scores - onnx_scores).max())
    prob_diff = float(np.abs(softmax(torch_scores) - softmax(onnx_scores)).max())
    equal = bool((torch_scores.argmax(1) == onnx_scores.argmax(1)).all())
    # The detector's class scores pass discrete steps (top-k proposals, per-class NMS) where float noise between
    # the runtimes can change which boxes survive; its RPN runs without NMS when classifying for that reason.
    measured, limit = (prob_diff, DETECTOR_PROB_LIMIT) if relative else (diff, 1e-4)
    return {
        "images": len(torch_scores),
        "max_abs_diff": diff,
        "max_prob_diff": prob_diff,
        "compared": "probabilities" if relative else "scores",
        "limit": limit,
        "relative": relative,
        "predictions_equal": equal,
        "ok": equal and measured <= limit,
    }


def measure_latency(session: ort.InferenceSession, batch: int | None, repeats: int = 30) -> dict:
    """Median ms per call at batch 1, and per image at batch 64 (where the batch axis is dynamic)."""

    def median_ms(x: np.ndarray) -> float:
        session.run(None, {INPUT_NAME: x})  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            session.run(None, {INPUT_NAME: x})
            times.append(time.perf_counter() - t0)
        return 1000 * float(np.median(times))

    one = median_ms(np.random.rand(1, 1, 28, 28).astype(np.float32))
    many = median_ms(np.random.rand(64, 1, 28, 28).astype(np.float32)) / 64 if batch is None else one
    return {"batch1": one, "batch64_per_image": many, "provider": session.get_providers()[0]}


def choose(comparison: dict, models: list[str] | None, top: int | None) -> list[dict]:
    """The comparison rows to export: completed ones, filtered by name, best `top` by test accuracy."""
    ok = [e for e in comparison["models"] if e.get("status") == "ok"]
    if models:
        unknown = sorted(set(models) - {e["model"] for e in ok})
        if unknown:
            raise ValueError(
                f"not trained successfully in this run: {', '.join(unknown)}; "
                f"available: {', '.join(e['model'] for e in ok)}"
            )
        ok = [e for e in ok if e["model"] in models]
    ok.sort(key=lambda e: e["metrics"]["accuracy"], reverse=True)
    if not ok:
        raise ValueError("the run has no successfully trained model to export")
    return ok[:top] if top else ok


def pick_default(entries: dict[str, dict]) -> str:
    """The served default by DEFAULT_RULE (dev real-world accuracy first, MNIST as a gate); any model if none ships.

    A choice, so it reads the dev split only (training.realworld.CHOICES): the sealed split decides nothing.
    """
    shipped = {n: e for n, e in entries.items() if e["shipped"]} or entries
    best_test = max(e["onnx_accuracy"] for e in shipped.values())
    eligible = [n for n, e in shipped.items() if e["onnx_accuracy"] >= best_test - MNIST_MARGIN]
    real = lambda n: split_accuracy(shipped[n].get("realworld"), "dev") or 0.0  # noqa: E731
    return max(eligible, key=lambda n: (real(n), shipped[n]["onnx_accuracy"]))


UNCALIBRATED = {"temperature": 1.0, "fitted_on": "none (run made before calibration)"}
# A temperature fitted on fewer wrong answers than this says little about how sure the model should be: with none at
# all, the best NLL lies at the search's lowest temperature (every answer made certain).
DEV_FIT_MIN_WRONG = 20


def dev_temperature(scores: np.ndarray, dev: robustness.RealWorldSet, trained: dict | None) -> dict:
    """The served temperature, fitted on the development split as served: fitted on MNIST's validation split, even
    augmented, AlexNet and VGG16 were sure of wrong answers about twice as often on dev and on faintly photographed
    validation digits (reports/flag/validation-temperature/temperature.md).

    A choice on dev (training.realworld.CHOICES), so dev's calibration figures are in-sample from here on. The
    training run's fit (`trained`; None for a run made before calibration) stays beside it, under "validation"; with
    fewer than DEV_FIT_MIN_WRONG wrong answers on dev that fit is served (temperature 1 without one), and
    `fitted_on` says so.
    """
    wrong = int((scores.argmax(1) != dev.labels).sum())
    served = trained or UNCALIBRATED
    kept = {"validation": trained} if trained else {}
    if wrong < DEV_FIT_MIN_WRONG:
        return {**served, **kept, "dev_wrong": wrong}
    before = float(served["temperature"])
    temperature = fit_temperature(scores.astype(np.float64), dev.labels)
    return {
        "temperature": temperature,
        "fitted_on": f"real-world development split as served ({len(dev.labels)} images, the ONNX file's scores)",
        "images": len(dev.labels),
        "dev_wrong": wrong,
        "dev_nll_before": nll(scores, dev.labels, before),  # at training's temperature
        "dev_nll_after": nll(scores, dev.labels, temperature),
        **kept,
    }


def unsure_threshold(scores: np.ndarray, dev: robustness.RealWorldSet, temperature: float) -> dict:
    """The model's "unsure" threshold: the lowest calibrated probability under which UNSURE_CATCH of its wrong answers
    on the development split fall, unless that would flag over UNSURE_BUDGET of its right ones (then that line)."""
    threshold = flag_threshold(softmax(scores, temperature), dev.labels)
    return {
        # Unrounded: rounded up to 4 decimals, a threshold at the budget's line flags the right answers just above it
        # (AlexNet of run 20261206T025519Z: 0.9913 flagged 10.03% of them on dev).
        "uncertain_below": threshold,
        "uncertain_fitted_on": (
            f"real-world development split: catch {UNSURE_CATCH:.0%} of wrong answers, "
            f"flag <= {UNSURE_BUDGET:.0%} of right ones"
        ),
    }


def export_one(
    run_dir: Path,
    entry: dict,
    staging: Path,
    data: MnistData,
    log: Callable[[str], None],
    realworld: dict[str, robustness.RealWorldSet] | None = None,
) -> dict:
    """Export, check and measure one model into `staging`; return its manifest entry."""
    name, spec = entry["model"], get_spec(entry["model"])
    model = load_checkpoint(run_dir, entry)
    path = staging / f"{name}.onnx"
    if spec.export_batch:
        log(f"{name}: exporting with a fixed batch of {spec.export_batch} (its graph does not take a dynamic batch)")
    to_onnx(model, path, spec.export_batch)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = to_input(data.test.images[:PARITY_IMAGES])
    parity = check_parity(
        run_torch(model, x, spec.export_batch),
        run_onnx(session, x.numpy(), spec.export_batch),
        relative=spec.loss_kind != "cross-entropy",
    )
    if not parity["ok"]:
        raise ExportError(f"{name}: onnxruntime disagrees with PyTorch on {PARITY_IMAGES} test images: {parity}")
    test = data.test.subset(entry["metrics"]["test_images"])  # the split training reported on (all but smoke)
    scores = run_onnx(session, to_input(test.images).numpy(), spec.export_batch)
    onnx_accuracy = float((scores.argmax(1) == test.labels.numpy()).mean())
    latency = measure_latency(session, spec.export_batch)
    # A run trained before calibration existed has no temperature of its own: without a dev fit it is served
    # uncalibrated, and says so.
    trained = entry.get("calibration")
    calibration = trained or UNCALIBRATED
    real = None
    if realworld:  # measured on the ONNX file itself, as the service will run it
        scores_of = {split: run_onnx(session, rw.images, spec.export_batch) for split, rw in realworld.items()}
        if "dev" in realworld:  # the temperature and the "unsure" threshold are choices: dev's alone (CHOICES)
            calibration = dev_temperature(scores_of["dev"], realworld["dev"], trained)
            calibration.update(unsure_threshold(scores_of["dev"], realworld["dev"], calibration["temperature"]))
            # MNIST test's ECE on the ONNX file's scores at 1 and at the temperature served (training's own figures,
            # on PyTorch's scores at its temperature, stay under "validation").
            calibration["ece_test"] = ece_before_after(scores, test.labels.numpy(), calibration["temperature"])
        real = {
            split: robustness.score(
                scores_of[split], rw, calibration["temperature"], calibration.get("uncertain_below")
            )
            for split, rw in realworld.items()
        }
    log(
        f"{name}: parity max |diff| {parity['max_abs_diff']:.2e}, ONNX accuracy {100 * onnx_accuracy:.2f}%, "
        + "".join(f"real-world {split} {100 * r['accuracy']:.2f}%, " for split, r in (real or {}).items())
        + f"temperature {calibration['temperature']:.3f}, {latency['batch1']:.2f} ms at batch 1"
    )
    info = {
        "model": name,
        "run_id": run_dir.name,
        # Training's record, but ECE at the temperature served (training's own fit: calibration["validation"]).
        "metrics": {
            **entry["metrics"],
            **({"ece_test": calibration["ece_test"]["after"]} if "ece_test" in calibration else {}),
        },
        "pretrained": entry["pretrained"],
        "weights": entry.get("weights", "none"),
        "profile": entry["hyperparameters"]["profile"],
        "opset": OPSET,
        "max_batch": spec.export_batch,
        "parity": parity,
        "onnx_accuracy": onnx_accuracy,
        "latency_ms": latency,
        "summary": spec.summary,
        "onnx_accuracy_images": len(test),
        "calibration": calibration,
        "realworld": real,
    }
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {"mnistserve": json.dumps(info), "model": name, "input": json.dumps(INPUT_SPEC)})
    onnx.save(proto, str(path))
    size, digest = path.stat().st_size, sha256_file(path)
    final = path.rename(staging / versioned(path.name, digest))
    return {**info, "file": final.name, "sha256": digest, "size_bytes": size, "shipped": size <= SHIP_LIMIT_BYTES}


def _stage_extras(run_dir: Path, staging: Path, comparison: dict) -> tuple[dict, list[str]]:
    """The comparison and the run's plots under content-addressed names; their manifest fields."""
    data = (json.dumps(comparison, indent=2) + "\n").encode()
    digest = hashlib.sha256(data).hexdigest()
    name = versioned("comparison.json", digest)
    (staging / name).write_bytes(data)
    (staging / "plots").mkdir()
    plots = []
    for png in sorted(run_dir.glob("*.png")):  # the run's report plots, for the service's page
        target = staging / "plots" / versioned(png.name, sha256_file(png))
        shutil.copyfile(png, target)
        plots.append(f"plots/{target.name}")
    return {"file": name, "sha256": digest}, plots


def export_run(
    run_dir: Path,
    out_dir: Path,
    data: MnistData,
    *,
    models: list[str] | None = None,
    top: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Export the chosen models of a run; on any failure or kill the previous `out_dir` is served as it was."""
    comparison = read_json(run_dir / "comparison.json")
    chosen = choose(comparison, models, top)
    realworld = robustness.load_splits(robustness.PER_CONDITION[comparison["profile"]], data.cache_dir)
    with publishing(out_dir) as staging:
        entries = {}
        for entry in chosen:
            try:
                entries[entry["model"]] = export_one(run_dir, entry, staging, data, log, realworld)
            except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:
                raise ExportError(f"{entry['model']}: export failed: {exc}") from exc
        shipped_comparison, plots = _stage_extras(run_dir, staging, comparison)
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_id": comparison["run_id"],
            "git_revision": git_revision(),
            "winner": chosen[0]["model"],  # the overall winner by MNIST test accuracy
            # What the service answers with when no model is named (README, "Which model answers").
            "default": pick_default(entries),
            "default_rule": DEFAULT_RULE,
            "realworld": robustness.sets_info(realworld),
            "input": INPUT_SPEC,
            "output": OUTPUT_SPEC,
            "models": entries,
            "comparison": shipped_comparison,  # the run's comparison.json, as GET /comparison serves it
            "plots": plots,
        }
        commit(staging, out_dir, manifest)
        return manifest
