"""training.captures: training digits redrawn as users capture them, served through the service's preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from serving.preprocess import from_image
from training import captures
from training.config import make_config
from training.data import Split
from training.run import with_captures


@pytest.fixture(scope="module")
def few(mnist) -> tuple[np.ndarray, np.ndarray]:
    """The first 40 MNIST training digits and their labels, as numpy."""
    return mnist.train.images[:40].numpy(), mnist.train.labels[:40].numpy()


def test_parse_names_kinds_and_refuses_unknown_ones() -> None:
    assert captures.parse("all") == tuple(captures.CAPTURES)
    assert captures.parse("light, hollow") == ("light", "hollow")
    assert captures.parse("none") == () and captures.parse("") == ()
    with pytest.raises(ValueError, match="unknown capture kind blurry; choose from lowres, thick, light, hollow"):
        captures.parse("light,blurry")


@pytest.mark.parametrize("kind", list(captures.CAPTURES))
def test_every_kind_draws_a_picture_the_service_reads(few, kind: str) -> None:
    images, _ = few
    picture = captures.CAPTURES[kind](np.random.default_rng(1), images[0])
    assert isinstance(picture, Image.Image) and max(picture.size) >= 28
    frame = from_image(picture)[0]
    assert frame.shape == (28, 28) and frame.max() > 0.5  # a digit's ink, not a refusal or an empty frame


def test_build_keeps_each_digit_with_its_label_and_is_seeded(few) -> None:
    images, labels = few
    made, made_labels = captures.build(images, labels, 12, ("light", "hollow"), seed=3)
    assert made.dtype == np.uint8 and made.shape[1:] == (28, 28) and 9 <= len(made) <= 12
    assert set(made_labels) <= set(labels) and (made.reshape(len(made), -1).max(1) > 128).all()
    # Labels follow the digits they were drawn from: with every digit a copy of one, every label is that one's.
    one = captures.build(np.repeat(images[:1], 5, 0), np.full(5, 7), 6, ("hollow",), seed=3)[1]
    assert (one == 7).all()
    again = captures.build(images, labels, 12, ("light", "hollow"), seed=3)
    assert np.array_equal(made, again[0]) and np.array_equal(made_labels, again[1])
    assert not np.array_equal(made, captures.build(images, labels, 12, ("light", "hollow"), seed=4)[0])


def test_load_caches_a_pool_per_kinds_and_seed(few, tmp_path, monkeypatch) -> None:
    images, labels = few
    first = captures.load(images, labels, 6, ("hollow",), 0, tmp_path)
    assert len(list(tmp_path.glob("captures-*-hollow-6-0.npz"))) == 1

    def rebuilt(*args, **kwargs):
        raise AssertionError("the cached pool was built again")

    monkeypatch.setattr(captures, "build", rebuilt)
    cached = captures.load(images, labels, 6, ("hollow",), 0, tmp_path)
    assert np.array_equal(first[0], cached[0]) and np.array_equal(first[1], cached[1])
    with pytest.raises(AssertionError, match="built again"):  # other kinds are another pool
        captures.load(images, labels, 6, ("light",), 0, tmp_path)


def test_the_cnn_cpu_profile_mixes_light_outline_and_lowres_captures_into_its_training_split(mnist, tmp_path) -> None:
    cfg = make_config("cnn", "cpu", "cpu")
    assert captures.parse(cfg.capture_kinds) == ("light", "hollow", "lowres") and cfg.captures == 0.225
    train = Split(mnist.train.images[:40], mnist.train.labels[:40])
    mixed = with_captures(train, cfg, tmp_path)
    assert 40 < len(mixed) <= 40 + 9  # 22.5% of 40, less any the preprocessing would refuse
    assert (mixed.images[:40] == train.images).all() and (mixed.labels[:40] == train.labels).all()
    plain = make_config("vit", "cpu", "cpu")  # the other models were not measured with captures: none
    assert with_captures(train, plain, tmp_path) is train


def test_logs_and_reports_say_what_a_model_trained_on() -> None:
    from training.report import training_data

    cnn = make_config("cnn", "cpu", "cpu").to_dict()
    assert training_data(cnn) == "train images 50000 + 22.5% captures (light, hollow, lowres)"
    assert training_data({**cnn, "captures": 0.15}) == "train images 50000 + 15% captures (light, hollow, lowres)"
    assert training_data({**cnn, "captures": 0.0, "train_subset": 30000}) == "train images 30000"
