"""Preprocessing: any image (or a 28x28 array) -> MNIST-style (1, 28, 28) float32, or an error with a status."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from serving import preprocess as P
from serving_fixtures import REPO, as_photo, draw_one, draw_seven, draw_zero, encode
from serving_fixtures import digits, mlp  # noqa: F401  (pytest fixtures)

LIMIT = 4096 * 4096


def geometry(x: np.ndarray) -> dict:
    """Shape, range, centre of mass and ink bounding box of one preprocessed image."""
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    img = x[0]
    rows, cols = np.indices(img.shape)
    ink_rows, ink_cols = np.nonzero(img > 0.0)
    return {
        "com": ((rows * img).sum() / img.sum(), (cols * img).sum() / img.sum()),
        "height": ink_rows.max() - ink_rows.min() + 1,
        "width": ink_cols.max() - ink_cols.min() + 1,
        "mass": float(img.sum()),
        "peak": float(img.max()),
    }


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation over shifts of at most one pixel (centring rounds to whole pixels)."""
    best = -1.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            s, t = np.roll(a.reshape(28, 28), (dy, dx), (0, 1)).ravel(), b.ravel()
            s, t = s - s.mean(), t - t.mean()
            best = max(best, float(s @ t / np.sqrt((s @ s) * (t @ t))))
    return best


def rgba_on_transparent(stroke: tuple[int, int, int]) -> Image.Image:
    seven = np.asarray(draw_seven(ink=255, paper=0))  # ink mask
    rgba = np.zeros((*seven.shape, 4), np.uint8)
    rgba[..., :3] = stroke
    rgba[..., 3] = seven
    return Image.fromarray(rgba, "RGBA")


DRAWN = {
    "dark on light": lambda: draw_seven(),
    "light on dark": lambda: draw_seven(ink=255, paper=0),
    "off-centre": lambda: draw_seven((600, 400), box=(0.02, 0.05, 0.25, 0.5)),
    "large": lambda: draw_seven((2400, 1800), width=120),
    "thin strokes": lambda: draw_seven((900, 900), width=2),
    "tiny": lambda: draw_seven((24, 24), width=2),
    "grey paper": lambda: draw_seven(ink=60, paper=190),
    "one": lambda: draw_one(),
    "zero": lambda: draw_zero(),
    "rgb": lambda: draw_seven(mode="RGB"),
    "black ink on transparent": lambda: rgba_on_transparent((0, 0, 0)),
    "white ink on transparent": lambda: rgba_on_transparent((255, 255, 255)),
    "palette": lambda: draw_seven(mode="RGB").convert("P"),
    "16-bit": lambda: Image.fromarray(np.asarray(draw_seven(), np.uint16) * 257),
    "1-bit": lambda: draw_seven().convert("1"),
    "cmyk": lambda: draw_seven(mode="RGB").convert("CMYK"),
    "lab": lambda: draw_seven(mode="RGB").convert("LAB"),
    "float": lambda: draw_seven().convert("F"),
    "grey with alpha": lambda: draw_seven().convert("LA"),
}


NOT_PNG = ("cmyk", "lab", "float")  # modes only TIFF stores


@pytest.mark.parametrize("name,fmt", [(n, f) for n in DRAWN for f in ("PNG", "TIFF") if f == "TIFF" or n not in NOT_PNG])
def test_drawn_digit_is_cropped_scaled_and_centred(name, fmt):
    g = geometry(P.from_bytes(encode(DRAWN[name](), fmt), max_pixels=LIMIT))
    assert abs(g["com"][0] - 14) <= 1.0 and abs(g["com"][1] - 14) <= 1.0, g["com"]
    assert max(g["height"], g["width"]) <= 20 + 2, g  # 20x20 box (+ anti-aliased rim of the resize)
    assert max(g["height"], g["width"]) >= 18, g  # and filled: the long side spans the box
    assert g["peak"] == pytest.approx(1.0)
    assert g["mass"] >= 15, g  # strokes survive, however thin or large the original


@pytest.mark.parametrize("fmt,options", [("JPEG", {"quality": 70}), ("GIF", {}), ("BMP", {}), ("WEBP", {}),
                                         ("PPM", {}), ("TGA", {})])
def test_common_formats_decode_to_the_same_digit(fmt, options):
    reference = P.from_bytes(encode(draw_seven(), "PNG"), max_pixels=LIMIT)
    image = draw_seven(mode="RGB") if fmt in ("JPEG", "WEBP", "PPM", "TGA") else draw_seven()
    assert similarity(P.from_bytes(encode(image, fmt, **options), max_pixels=LIMIT), reference[0]) > 0.95


def test_colour_position_and_size_do_not_change_the_result():
    reference = P.from_image(draw_seven(ink=255, paper=0))
    page = Image.new("L", (900, 600), 255)
    page.paste(draw_seven(), (610, 310))  # the same drawing in a corner of a larger page
    variants = [draw_seven(), page, draw_seven().resize((1400, 1400)), draw_seven(ink=40, paper=210),
                rgba_on_transparent((20, 20, 20))]
    for image in variants:
        assert similarity(P.from_image(image), reference[0]) > 0.95


def test_thin_strokes_are_thickened_towards_mnist_width():
    thick = geometry(P.from_image(draw_seven((900, 900), width=80)))["mass"]
    thin = geometry(P.from_image(draw_seven((900, 900), width=1)))["mass"]
    assert thin >= 0.4 * thick


def test_blank_and_faint_images_have_no_ink():
    for image in (Image.new("L", (100, 80), 255), Image.new("L", (50, 50), 0),
                  Image.new("RGB", (64, 64), (128, 90, 30)),
                  Image.fromarray(np.random.default_rng(0).integers(120, 130, (60, 60), dtype=np.uint8)),
                  Image.new("RGBA", (40, 40), (0, 0, 0, 0))):
        with pytest.raises(P.NoInk) as info:
            P.from_bytes(encode(image), max_pixels=LIMIT)
        assert info.value.status == 422


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the data is tiny and wrong)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_pixel_limit_is_checked_on_the_header_before_decoding():
    with pytest.raises(P.TooLarge) as info:
        P.from_bytes(_png_with_size(100_000, 100_000), max_pixels=LIMIT)  # 10^10 pixels: never allocated
    assert info.value.status == 413 and "pixels" in str(info.value)
    bomb = encode(Image.new("1", (5000, 5000), 0))  # a few kilobytes that decode to 25 megapixels
    assert len(bomb) < 50_000
    with pytest.raises(P.TooLarge):
        P.from_bytes(bomb, max_pixels=1_000_000)


@pytest.mark.parametrize("data", [
    b"", b"hello, world", b"\x89PNG\r\n\x1a\n", encode(draw_seven())[:300],
    encode(draw_seven(mode="RGB"), "JPEG")[:200],
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", b"GIF89a" + b"\xff" * 20, b"BM" + b"\x00" * 60,
    _png_with_size(0, 0),
])
def test_not_an_image_or_truncated_is_400(data):
    with pytest.raises(P.BadInput) as info:
        P.from_bytes(data, max_pixels=LIMIT)
    assert info.value.status == 400


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_give_an_image_or_a_client_error(data):
    try:
        x = P.from_bytes(data, max_pixels=LIMIT)
    except P.ServingError as exc:
        assert exc.status in (400, 413, 422)
    else:
        assert x.shape == (1, 28, 28)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_arbitrary_small_images_never_fail_unexpectedly(height, width, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    try:
        geometry(P.from_bytes(encode(Image.fromarray(pixels)), max_pixels=LIMIT))
    except P.NoInk:
        pass


def test_array_is_taken_as_mnist_and_only_scaled():
    values = np.zeros((28, 28))
    values[3, 5], values[20, 20] = 255, 51
    x = P.from_array(values.tolist())
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert x[0, 3, 5] == 1.0 and x[0, 20, 20] == pytest.approx(0.2) and x.sum() == pytest.approx(1.2)
    assert P.from_array([[0] * 28] * 28).sum() == 0  # an empty array is served as is (no ink check)


@pytest.mark.parametrize("values", [
    [[0] * 28] * 27, [[0] * 27] * 28, [[[0]] * 28] * 28, [], [[0] * 28] * 27 + [[0] * 27], "abc",
    [[None] * 28] * 28, [[{"a": 1}] * 28] * 28, [[-1] * 28] * 28, [[256] * 28] * 28, [[float("nan")] * 28] * 28,
    [[float("inf")] * 28] * 28, [[10**400] * 28] * 28,
])
def test_bad_arrays_are_400(values):
    with pytest.raises(P.BadInput) as info:
        P.from_array(values)
    assert info.value.status == 400


def test_base64_with_or_without_data_url():
    png = encode(draw_seven())
    plain = base64.b64encode(png).decode()
    assert P.decode_base64(plain) == png
    assert P.decode_base64("data:image/png;base64," + plain) == png
    assert P.decode_base64(plain[:40] + "\n" + plain[40:]) == png
    for bad in ("not base64!", "", "data:image/png;base64,", "abc"):
        with pytest.raises(P.BadInput):
            P.decode_base64(bad)


def test_errors_carry_their_http_status():
    assert (P.BadInput.status, P.UnknownModel.status, P.TooLarge.status, P.NoInk.status, P.Unavailable.status) == (
        400, 404, 413, 422, 503)


# -- with real digits and a real (small) model ------------------------------------------------------


def test_mnist_digit_comes_back_nearly_unchanged(digits):
    test = digits[1]
    if test.images is None:
        pytest.skip("MNIST is not available on this machine")
    scores = [similarity(P.from_bytes(encode(Image.fromarray(d)), max_pixels=LIMIT), d / 255.0)
              for d in test.images[:100]]
    assert np.mean(scores) > 0.98


def test_photographed_digits_are_read_as_well_as_mnist_itself(digits, mlp):
    test = digits[1]
    if test.images is None:
        pytest.skip("MNIST is not available on this machine")
    images, labels = test.images[:300], test.labels[:300]
    # JPEG, dark on light paper, 3 to 8 times larger, at varying places on a larger page
    photos = np.concatenate([
        P.from_bytes(encode(as_photo(d, scale=3 + i % 6, at=(10 + 40 * (i % 5), 20 + 20 * (i % 3))), "JPEG"),
                     max_pixels=LIMIT)
        for i, d in enumerate(images)
    ])
    with torch.no_grad():
        direct = (mlp(torch.from_numpy(images).float().div(255)[:, None]).argmax(1).numpy() == labels).mean()
        photo = (mlp(torch.from_numpy(photos)[:, None]).argmax(1).numpy() == labels).mean()
    assert direct > 0.9
    assert photo >= direct - 0.06, (direct, photo)


def test_drawn_digits_with_the_exported_model_when_there_is_one():
    manifest = REPO / "exported" / "manifest.json"
    if not manifest.is_file():
        pytest.skip("no trained model in exported/")
    from serving.store import ModelStore, softmax

    store = ModelStore(Path(manifest).parent)
    if not store.models:
        pytest.skip("exported/ has no servable model")
    served = store.get(None)
    cases = {7: draw_seven((500, 400), box=(0.1, 0.1, 0.45, 0.8)), 1: draw_one((300, 400)), 0: draw_zero((400, 400))}
    for label, image in cases.items():
        logits, _ = served.run(P.from_image(image)[None])
        assert int(softmax(logits)[0].argmax()) == label, (served.name, label)


@pytest.mark.parametrize("mode", ["1", "P", "I;16", "L", "RGBA"])
def test_a_4096_px_image_is_reduced_before_any_float_maths(mode: str) -> None:
    """Every mode, Pillow's unreducible ones included, stays far below one float32 copy of the image (64 MB)."""
    import tracemalloc

    canvas = Image.new("L", (4096, 4096), 255)
    canvas.paste(0, (1800, 1000, 2300, 3000))  # a thick dark bar: a "1"
    image = Image.fromarray(np.asarray(canvas, dtype=np.uint16) * 257) if mode == "I;16" else canvas.convert(mode)
    data = encode(image, "PNG")
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    try:
        x = P.from_bytes(data, max_pixels=LIMIT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"{mode}: {peak / 2**20:.0f} MB"
    assert geometry(x)["height"] >= 18  # still a tall stroke after the reduction
