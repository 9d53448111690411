"""The served models: read `manifest.json` once, verify each file's SHA-256, open it with onnxruntime.

The manifest is the single source of truth: only the files it names are opened, and when an export replaces it
during loading (the old export's files may then be gone), loading starts again from the new one.

A model whose file is missing, altered or unusable is skipped with a logged reason; the others are
served. Only names listed in the manifest are ever looked up, and every file must resolve inside the
exported directory, so a name from a request cannot reach any other file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from mnistserve.contracts import (
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    comparison_entry,
    read_json,
    softmax,
    validate_manifest,
)
from serving.errors import InferenceFailed, Unavailable, UnknownModel

log = logging.getLogger("mnistserve.store")
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
RELOADS = 2  # how often a manifest replaced during loading is read again before the last one read is kept


class ManifestError(RuntimeError):
    """`manifest.json` is missing or invalid: the service cannot start."""


class SkipModel(Exception):
    """Why one model is not served."""


@dataclass
class ServedModel:
    """One verified onnxruntime session and what the manifest says about it."""

    name: str
    entry: dict[str, Any]
    session: ort.InferenceSession
    provider: str  # the execution provider onnxruntime actually chose
    max_batch: int | None  # None: any batch size; 1: images one by one (a fixed-batch export)
    temperature: float = 1.0  # calibration fitted at export; 1.0 for an export made before calibration
    uncertain_below: float = 0.7  # the "unsure" flag's threshold chosen at export (UNCERTAIN_BELOW before that)

    @property
    def version(self) -> str:
        """Short form of the file's SHA-256."""
        return self.entry["sha256"][:12]

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: softmax(scores / temperature), rows summing to 1."""
        return softmax(scores, self.temperature)

    def answer(self, probabilities: np.ndarray) -> dict[str, Any]:
        """`digit` of one row of this model's probabilities, flagged by this model's threshold."""
        return digit(probabilities, self.uncertain_below)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """(N, 1, 28, 28) float32 -> ((N, 10) logits, milliseconds spent in onnxruntime)."""
        if len(x) == 0:
            return np.zeros((0, NUM_CLASSES), np.float32), 0.0
        step = self.max_batch or len(x)
        start = time.perf_counter()
        try:
            parts = [self.session.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + step]})[0] for i in range(0, len(x), step)]
        except Exception as exc:  # onnxruntime's own error types (out of memory, a provider failing), all runtime
            log.exception("inference of %s failed on a batch of %d", self.name, len(x))
            raise InferenceFailed(
                f"inference of {self.name} failed; try again or choose another model ({type(exc).__name__})"
            ) from None
        return np.concatenate(parts).astype(np.float32), (time.perf_counter() - start) * 1000.0


def _open_session(data: bytes, providers: list[str], threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a CPU host must not log CUDA warnings per model
    if threads > 0:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(data, options, providers=providers)


def _check_contract(session: ort.InferenceSession, entry: dict[str, Any]) -> int | None:
    """Raise SkipModel unless the graph takes (N, 1, 28, 28) `input` and gives (N, 10) `scores`; return max_batch."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME or list(inputs[0].shape[1:]) != [1, 28, 28]:
        got = [(i.name, i.shape) for i in inputs]
        raise SkipModel(f"input is {got}, expected one {INPUT_NAME!r} of shape [N, 1, 28, 28]")
    if OUTPUT_NAME not in [o.name for o in outputs]:
        raise SkipModel(f"no output named {OUTPUT_NAME!r}")
    batch_dim = inputs[0].shape[0]
    fixed = batch_dim if isinstance(batch_dim, int) else None
    declared = entry.get("max_batch")
    declared = declared if isinstance(declared, int) and declared >= 1 else None
    return fixed or declared  # a graph with a fixed batch wins over what the manifest claims


@dataclass
class ModelStore:
    """Every model the manifest lists: the served ones, and the skipped ones with their reasons."""

    directory: Path
    threads: int = 0
    strict: bool = True  # False (the service): a missing or invalid manifest leaves an empty store, not an error
    manifest: dict[str, Any] = field(init=False)
    models: dict[str, ServedModel] = field(init=False, default_factory=dict)
    skipped: dict[str, str] = field(init=False, default_factory=dict)
    comparison: dict[str, Any] | None = field(init=False, default=None)
    use_cuda: bool = field(init=False, default=False)
    problem: str | None = field(init=False, default=None)  # why nothing is served when the manifest itself failed

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).resolve()
        try:
            self._load_consistent()
        except ManifestError as exc:
            if self.strict:
                raise
            # A container without models stays up and unready (/readyz 503) and says why, rather than crash-loop.
            self.manifest, self.models, self.skipped, self.problem = {"models": {}, "default": None}, {}, {}, str(exc)
            log.error("no model can be served: %s", exc)

    def _load_consistent(self) -> None:
        """Load, and load again while manifest.json is replaced under us (an export committing)."""
        # An export replaces manifest.json by one rename and deletes the files of the old one only afterwards: a
        # manifest that changed while we loaded may name files already gone, so load again from the new one.
        for attempt in range(RELOADS + 1):
            stamp = _stamp(self.directory / "manifest.json")
            self._load_all()
            if _stamp(self.directory / "manifest.json") == stamp:
                break
            log.warning(
                "%s/manifest.json was replaced while loading (a new export)%s",
                self.directory,
                "; loading the new one" if attempt < RELOADS else "",
            )
        if not self.models:
            log.error("no model in %s can be served; /readyz will fail", self.directory)

    def _load_all(self) -> None:
        """Every model the manifest names, and the comparison it names (checked against its SHA-256)."""
        self.manifest = load_manifest(self.directory)
        self.models, self.skipped = {}, {}
        self.use_cuda = CUDA in ort.get_available_providers()
        for name, entry in self.manifest["models"].items():
            try:
                self.models[name] = self._load(name, entry)
                log.info("serving %s (%s, %s)", name, self.models[name].version, self.models[name].provider)
            except SkipModel as exc:
                self.skipped[name] = str(exc)
                log.warning("skipping model %s: %s", name, exc)
        named = comparison_entry(self.manifest)
        self.comparison = _optional_json(self.directory / named["file"], named.get("sha256"))

    @property
    def default(self) -> str | None:
        """The manifest's default when served, else the first served model."""
        if self.manifest["default"] in self.models:
            return self.manifest["default"]
        return next(iter(self.models), None)

    def get(self, name: str | None) -> ServedModel:
        """The served model called `name` (None: the default); 404 names the served ones."""
        if not self.models:
            reasons = self.problem or "; ".join(f"{k}: {v}" for k, v in self.skipped.items())
            raise Unavailable(f"no model can be served: {reasons}")
        if name is None or name == "":
            return self.models[self.default]
        if isinstance(name, str) and name in self.models:
            return self.models[name]
        served = ", ".join(self.models)
        if isinstance(name, str) and name in self.skipped:
            raise UnknownModel(f"model {name!r} is not served ({self.skipped[name]}); served models: {served}")
        raise UnknownModel(f"unknown model {repr(name)[:80]}; served models: {served}")

    def _load(self, name: str, entry: dict[str, Any]) -> ServedModel:
        if not isinstance(entry.get("sha256"), str) or len(entry["sha256"]) != 64:
            raise SkipModel("the manifest's sha256 is not a SHA-256 hex digest")
        path = (self.directory / entry["file"]).resolve()
        if path.parent != self.directory:
            raise SkipModel(f"{entry['file']!r} resolves outside {self.directory}")
        if not path.is_file():
            why = "" if entry.get("shipped", True) else " (not shipped: too large for git)"
            raise SkipModel(f"file {entry['file']} is missing{why}")
        data = path.read_bytes()  # hash and load the same bytes: no window for a swap in between
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise SkipModel(
                f"checksum mismatch: manifest {entry['sha256'][:12]}, file {digest[:12]} (corrupt or altered)"
            )
        providers = [CUDA, CPU] if self.use_cuda else [CPU]
        try:
            session = _open_session(data, providers, self.threads)
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise SkipModel(f"onnxruntime cannot load {entry['file']}: {exc}"[:400]) from None
        max_batch = _check_contract(session, entry)
        served = ServedModel(name, entry, session, session.get_providers()[0], max_batch, *_calibration(entry))
        if self.use_cuda and served.provider != CUDA:
            self.use_cuda = False  # CUDA is built in but unusable here: the next models go straight to CPU
        try:
            logits, _ = served.run(np.zeros((1, 1, 28, 28), np.float32))  # warm-up, and proof that it runs
        except Exception as exc:
            raise SkipModel(f"test inference failed: {exc}"[:400]) from None
        if logits.shape != (1, NUM_CLASSES) or not np.isfinite(logits).all():
            raise SkipModel(f"test inference gave {logits.shape} scores, expected (1, {NUM_CLASSES}) finite values")
        return served


def _calibration(entry: dict[str, Any]) -> tuple[float, float]:
    """The entry's temperature and "unsure" threshold, checked once here: a bad one would break every answer."""
    calibration = entry.get("calibration") or {}
    if not isinstance(calibration, dict):
        raise SkipModel(f"calibration {calibration!r} is not an object")
    checked = []
    for key, default, low, high in (("temperature", 1.0, 0.01, 100), ("uncertain_below", UNCERTAIN_BELOW, 0.0, 1.0)):
        value = calibration.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
            raise SkipModel(f"calibration {key} {value!r} is not a number between {low} and {high}")
        checked.append(float(value))
    return checked[0], checked[1]


def load_manifest(directory: Path) -> dict[str, Any]:
    """The validated manifest of `directory`, or ManifestError with one clear reason."""
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise ManifestError(f"{path} not found: export models first, or set MNISTSERVE_EXPORTED")
    try:
        return validate_manifest(read_json(path))
    except (ValueError, OSError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{path} is invalid: {exc}") from None


def _optional_json(path: Path, sha256: str | None = None) -> dict[str, Any] | None:
    """A JSON file that may be absent; a broken one, or one that does not match `sha256`, is logged and ignored."""
    try:
        data = path.read_bytes()
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"checksum mismatch with the manifest's {sha256[:12]}")
        return json.loads(data)
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """Identity of a file version: a rename over it gives a new inode."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


# Below this calibrated probability the best answer is flagged uncertain, for a model whose manifest entry names no
# threshold of its own (`calibration.uncertain_below`, chosen on the development split at export).
UNCERTAIN_BELOW = 0.7


def digit(probabilities: np.ndarray, uncertain_below: float = UNCERTAIN_BELOW) -> dict[str, Any]:
    """Digit, probabilities, top-3 and the uncertainty flag of one row of probabilities."""
    order = np.argsort(-probabilities)[:3]
    return {
        "digit": int(order[0]),
        "uncertain": bool(probabilities[order[0]] < uncertain_below),
        "probabilities": [round(float(p), 6) for p in probabilities],
        "top3": [{"digit": int(d), "probability": round(float(probabilities[d]), 6)} for d in order],
    }
