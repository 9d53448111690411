"""Client input -> the model contract: (1, 28, 28) float32 in [0, 1], a white digit on black, MNIST-centred.

Images follow MNIST's own recipe: crop to the ink, scale it (aspect ratio kept) into a 20x20 box,
then place it in 28x28 so that its centre of mass sits at (14, 14). Arrays are taken as MNIST-style
already and only scaled. Every failure is a `ServingError` whose `status` is the HTTP answer.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from typing import Any

import numpy as np
from PIL import Image

SIDE, BOX = 28, 20  # MNIST frame and the box the digit is scaled into
MIN_CONTRAST = 24.0  # grey levels (of 255) between ink and background below which an image is blank
INK_LEVEL = 0.2  # fraction of the ink's peak that counts as ink for the bounding box
NOISE_FLOOR = 0.08  # fraction of the peak below which a pixel is set to background
STROKE = 2.0  # thinnest stroke, in pixels of the 20x20 box; thinner drawings are thickened to it
POOL_TARGET = 2 * BOX  # longer crops are max-pooled to at most this first, so thin strokes survive the resize
# Formats Pillow may open: all but PostScript, whose loader shells out to Ghostscript.
UNSAFE_FORMATS = frozenset({"EPS", "PS"})


class ServingError(Exception):
    """A client error; `status` is the HTTP status to answer with."""

    status = 400


class BadInput(ServingError):
    """Not an image, a truncated image, or an array of the wrong shape or range."""

    status = 400


class UnknownModel(ServingError):
    """A model name that is not served."""

    status = 404


class TooLarge(ServingError):
    """A body, an image or a batch over the configured limit."""

    status = 413


class NoInk(ServingError):
    """An image with nothing drawn on it."""

    status = 422


class Unavailable(ServingError):
    """No model can answer (all skipped at start-up) or the batcher shed the request."""

    status = 503


def decode_base64(text: str) -> bytes:
    """Bytes of a base64 string, with or without a `data:image/...;base64,` prefix."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(f"image_base64 is not valid base64: {exc}") from None
    if not data:
        raise BadInput("image_base64 is empty")
    return data


def _safe_formats() -> list[str]:
    Image.init()  # registers every plugin, so that Image.OPEN is complete
    return [name for name in Image.OPEN if name not in UNSAFE_FORMATS]


def open_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Decode image bytes, checking the pixel count on the header before the full decode."""
    if not data:
        raise BadInput("empty body: expected an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_safe_formats())  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise TooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
            if width < 1 or height < 1:
                raise BadInput(f"image has no pixels ({width}x{height})")
            image.load()
    except ServingError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge(f"image rejected as a decompression bomb: {exc}") from None
    except MemoryError:
        raise TooLarge("image too large to decode") from None
    except Image.UnidentifiedImageError:
        raise BadInput("not an image: no image format recognises these bytes") from None
    except Exception as exc:  # Pillow's plugins raise many kinds; each means "not a usable image"
        raise BadInput(f"not a readable image: {type(exc).__name__}: {exc}"[:300]) from None
    return image


def _grey(image: Image.Image) -> np.ndarray:
    """(H, W) float32 luminance in [0, 255]; transparency is flattened onto a contrasting backdrop."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float32)
        return values / 257.0 if values.max(initial=0) > 255 else values
    if image.mode == "LAB":
        return np.asarray(image.getchannel("L"), dtype=np.float32)
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        return values * 255.0 if values.max(initial=0) <= 1.0 else np.clip(values, 0, 255)
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3] / 255.0
        lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if alpha.min(initial=1.0) < 1.0:
            # Dark strokes on a transparent canvas go onto white, light strokes onto black.
            opaque_lum = float((lum * alpha).sum() / max(alpha.sum(), 1e-6))
            backdrop = 255.0 if opaque_lum < 128 else 0.0
            return lum * alpha + backdrop * (1.0 - alpha)
        return lum
    return np.asarray(image.convert("L"), dtype=np.float32)


def _ink(grey: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] (1 = strongest stroke) on a 0 background; a light background is inverted."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    if background > 127.5:
        grey, background = 255.0 - grey, 255.0 - background
    contrast = float(grey.max()) - background
    if contrast < MIN_CONTRAST:
        raise NoInk("the image has no ink: it is blank or too faint to read a digit")
    ink = np.clip((grey - background) / contrast, 0.0, 1.0)
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def _max_pool(ink: np.ndarray, factor: int) -> np.ndarray:
    """Block maximum: shrinks by `factor` while a one-pixel stroke stays at full strength."""
    h, w = ink.shape
    padded = np.zeros((math.ceil(h / factor) * factor, math.ceil(w / factor) * factor), np.float32)
    padded[:h, :w] = ink
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).max(axis=(1, 3))


def _thicken(crop: np.ndarray) -> np.ndarray:
    """Dilate strokes much thinner than MNIST's (a pen of one pixel on a large canvas)."""
    mask = np.pad(crop >= 0.5, 1)
    edges = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    width = 2.0 * np.count_nonzero(mask) / max(edges, 1)  # area / half the perimeter, for long strokes
    radius = int((STROKE * max(crop.shape) / BOX - width) / 2)
    if radius <= 0:
        return crop
    padded = np.pad(crop, 2 * radius)
    out = padded.copy()
    h, w = padded.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                shifted = padded[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
                view = out[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
                np.maximum(view, shifted, out=view)
    rows, cols = np.nonzero(out >= INK_LEVEL)
    return out[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _fit_box(ink: np.ndarray) -> np.ndarray:
    """The ink's bounding box, scaled (aspect ratio kept) so its long side is 20 pixels."""
    rows, cols = np.nonzero(ink >= INK_LEVEL)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    if max(crop.shape) > POOL_TARGET:
        crop = _max_pool(crop, math.ceil(max(crop.shape) / POOL_TARGET))
    if max(crop.shape) > BOX:  # only a reduction can make thin strokes vanish
        crop = _thicken(crop)
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (width, height)
    resized = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.Resampling.BILINEAR))
    resized = np.clip(resized, 0.0, None)
    peak = float(resized.max())
    return resized / peak if peak > 0 else resized


def _centre(box: np.ndarray) -> np.ndarray:
    """Place the box in 28x28 with its centre of mass at (14, 14), without pushing ink out of the frame."""
    h, w = box.shape
    rows, cols = np.indices(box.shape)
    mass = float(box.sum())
    cy, cx = float((rows * box).sum() / mass), float((cols * box).sum() / mass)
    top = int(np.clip(round(SIDE / 2 - cy), 0, SIDE - h))
    left = int(np.clip(round(SIDE / 2 - cx), 0, SIDE - w))
    frame = np.zeros((SIDE, SIDE), np.float32)
    frame[top : top + h, left : left + w] = box
    return frame


WORK_SIDE = 512  # the digit ends up 20 px tall: larger images are box-reduced first


def _shrink(image: Image.Image) -> Image.Image:
    """Box-reduce a large image before any float maths (a 4096x4096 RGBA would need ~1 GB as float32)."""
    factor = -(-max(image.size) // WORK_SIDE)
    if factor <= 1:
        return image
    # Pillow cannot reduce these modes: convert to the nearest one it can (8 or 32 bits a pixel, not float).
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    try:
        return image.reduce(factor)  # box average: thin strokes fade but stay
    except (ValueError, OSError, NotImplementedError):
        return image  # a mode Pillow cannot reduce: take the slow path


def from_image(image: Image.Image) -> np.ndarray:
    """A decoded image -> (1, 28, 28) float32 in [0, 1], MNIST-style."""
    try:
        grey = _grey(_shrink(image))
    except (ValueError, OSError, TypeError) as exc:  # a mode Pillow cannot convert to luminance
        raise BadInput(f"unsupported image mode {image.mode}: {exc}") from None
    return _centre(_fit_box(_ink(grey)))[None].astype(np.float32)


def from_bytes(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Image bytes (PNG, JPEG or any format Pillow reads) -> (1, 28, 28) float32."""
    return from_image(open_image(data, max_pixels=max_pixels))


def from_array(values: Any) -> np.ndarray:
    """A 28x28 array of 0-255 values, white digit on black (MNIST style) -> (1, 28, 28) float32."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise BadInput("pixels must be a 28x28 array of numbers") from None
    if array.shape != (SIDE, SIDE):
        raise BadInput(f"pixels must be a 28x28 array; got shape {list(array.shape)}")
    if not np.isfinite(array).all():
        raise BadInput("pixels contain NaN or infinity")
    if array.min() < 0 or array.max() > 255:
        raise BadInput(f"pixels must lie in 0..255; got {array.min():g}..{array.max():g}")
    return (array / 255.0).astype(np.float32)[None]
