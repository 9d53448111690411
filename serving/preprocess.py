"""Client input -> the model contract: (1, 28, 28) float32 in [0, 1], a white digit on black, MNIST-centred.

Here: decoding, every Pillow mode and every pixel value to finite grey levels. The digit
itself (paper, ink, components, stroke, slant, MNIST's 20x20 box centred by mass) is `serving.ink`'s.
Arrays are taken as MNIST-style already and only scaled. Every failure is a `serving.errors` class whose
`status` is the HTTP answer.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import math
import struct
import warnings
import zlib
from typing import Any

import cv2
import numpy as np
import pyspng
from PIL import Image
from zlib_ng import zlib_ng

from serving import ink
from serving.errors import BadInput, NoInk, ServingError, TooLarge
from serving.ink import BOX, SIDE  # noqa: F401  (part of this module's interface)

WORK_SIDE = 512  # the digit ends up 20 px tall: larger images are box-reduced to this before any float maths
NUMBER_MODES = ("F", "I", "I;16", "I;16L", "I;16B", "I;16N")  # pixels that are numbers, not 8-bit levels
# The scales a number image is read in, tried in order: the first that holds its values wins.
FULL_SCALES = {"F": (1.0, 255.0), "I": (255.0, 65535.0)}
OUTLIERS = 0.5  # percent of the pixels at each end that may lie outside a scale (a stray -1e38 in a float TIFF)
# Formats Pillow may open: all but PostScript, whose loader shells out to Ghostscript.
UNSAFE_FORMATS = frozenset({"EPS", "PS"})
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")  # modes with an alpha channel (a palette may have a transparent entry)
# PNG chunks that change how the pixels read (transparency, animation): such a PNG is decoded by Pillow.
PILLOW_ONLY_CHUNKS = frozenset({b"tRNS", b"acTL", b"fcTL", b"fdAT"})
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# IHDR colour type -> the Pillow mode of its 8-bit pixels, for the PNGs the fast path decodes (grey and RGBA; RGB's
# luminance would need Pillow's weights, which OpenCV's round differently for 0.1% of colours).
FAST_PNG_MODES = {0: "L", 6: "RGBA"}
# The preprocessing's modules: what caches of its output (the real-world set, training captures) are keyed on.
SOURCES = tuple(f"serving/{name}.py" for name in ("preprocess", "ink", "paper", "regions"))


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


@functools.cache
def _safe_formats() -> tuple[str, ...]:
    """The formats Image.open may try, in Pillow's order (built once: every request asks)."""
    Image.init()  # registers every plugin, so that Image.OPEN is complete
    return tuple(name for name in Image.OPEN if name not in UNSAFE_FORMATS)


def _ihdr(data: bytes) -> tuple[int, int, str] | None:
    """(width, height, Pillow mode) from a PNG's header when the fast path decodes its pixels to exactly Pillow's: 8-bit
    grey or RGBA, not interlaced, at most 2 * WORK_SIDE a side (larger ones Pillow reduces before they become
    arrays); None otherwise. Raises struct.error for bytes too short."""
    if not data.startswith(PNG_MAGIC):
        return None
    length, kind, width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(
        ">I4sIIBBBBB", data, 8
    )
    mode = FAST_PNG_MODES.get(colour)
    if kind != b"IHDR" or length != 13 or depth != 8 or (compression, filtering, interlace) != (0, 0, 0):
        return None
    if mode is None or max(width, height) > 2 * WORK_SIDE:
        return None
    return width, height, mode


def _data_then_end(data: bytes, *, others_before: bool) -> bool:
    """Whether the chunks after the IHDR lead to image data and end with the IEND right after it (Pillow reads
    chunks after the data on load and may reject them), with no transparency or animation chunk. Other chunks
    before the data only where `others_before` (Pillow has read and checked them). Raises struct.error for a
    chunk header past the end."""
    pos, seen_data = 33, False  # signature 8, IHDR 25
    while True:
        length, kind = struct.unpack_from(">I4s", data, pos)
        pos += 12 + length  # length, type, data, CRC
        if pos > len(data) or kind in PILLOW_ONLY_CHUNKS:
            return False
        if kind == b"IDAT":
            seen_data = True
        elif kind == b"IEND":
            return seen_data
        elif seen_data or not others_before:
            return False


def _plain_png(data: bytes, image: Image.Image) -> bool:
    """Whether `data`, which Pillow opened as `image`, is a PNG the fast path decodes to exactly Pillow's pixels."""
    try:
        header = _ihdr(data) if image.format == "PNG" else None
        return header is not None and header[2] == image.mode and _data_then_end(data, others_before=True)
    except struct.error:
        return False


def _bare_png(data: bytes) -> tuple[int, int, str] | None:
    """`_ihdr` of a PNG that is nothing but its signature, an IHDR whose CRC holds, image data and the IEND: what
    Pillow's header read accepts without a question, so it is decoded without Pillow opening it first (about a
    fifth of the 56 px digit's preprocessing). None for any other bytes, which take the `_plain_png` route."""
    try:
        header = _ihdr(data)
        if header is None or min(header[:2]) < 1 or zlib.crc32(data[12:29]) != struct.unpack_from(">I", data, 29)[0]:
            return None
        return header if _data_then_end(data, others_before=False) else None
    except struct.error:
        return None


def _chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk, its CRC computed."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib_ng.crc32(kind + payload))


def _stored(data: bytes, width: int, height: int, mode: str) -> bytes | None:
    """`data`, a PNG whose chunks `_data_then_end` has checked, rebuilt as its header, its image data inflated by
    zlib-ng and stored uncompressed, and the IEND; None at any doubt (an IDAT CRC wrong, a stream that is broken, cut
    short or longer than the header's rows), where Pillow decides."""
    expected = height * (1 + width * (1 if mode == "L" else 4))  # each row: its filter byte, then the pixels
    pos, stream = 33, []
    while True:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IEND":
            break
        if kind == b"IDAT":
            covered = data[pos + 4 : pos + 8 + length]  # type and data: what the CRC covers
            if zlib_ng.crc32(covered) != struct.unpack_from(">I", data, pos + 8 + length)[0]:
                return None  # libpng refused it too: Pillow, which reads it, decides
            stream.append(covered[4:])
        pos += 12 + length
    inflater = zlib_ng.decompressobj()
    try:
        rows = inflater.decompress(b"".join(stream), expected + 1)  # never more than the header's rows and a byte
    except zlib_ng.error:
        return None
    if len(rows) != expected or not inflater.eof or inflater.unused_data:
        return None
    return data[:33] + _chunk(b"IDAT", zlib_ng.compress(rows, 0)) + _chunk(b"IEND", b"")


def _fast_png(data: bytes, width: int, height: int, mode: str) -> np.ndarray | None:
    """A PNG's pixels ((H, W) grey or (H, W, 4) RGBA uint8); None where Pillow must decode it (any doubt, any error).
    OpenCV's wheel inflates with zlib 1.2.7, which copies a drawing's long runs byte by byte; zlib-ng copies them in
    blocks, and libspng reads the stored rows (reports/preprocess/preprocess.md times each way)."""
    stored = _stored(data, width, height, mode)
    if stored is None:
        return None
    try:
        pixels = pyspng.load(stored)
    except (RuntimeError, ValueError):
        return None
    shape = (height, width) if mode == "L" else (height, width, 4)
    if pixels.dtype != np.uint8 or pixels.shape != shape:
        return None
    return pixels


def _png_pixels(data: bytes, image: Image.Image) -> np.ndarray | None:
    """A plain PNG's pixels decoded by `_fast_png`, Pillow having read its header; None where Pillow must
    decode it."""
    if not _plain_png(data, image):
        return None
    return _fast_png(data, *image.size, image.mode)


def _check_size(width: int, height: int, max_pixels: int) -> None:
    """TooLarge or BadInput for an image's size, read from its header before anything is decoded."""
    if width * height > max_pixels:
        raise TooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    if width < 1 or height < 1:
        raise BadInput(f"image has no pixels ({width}x{height})")


def _open(
    data: bytes, *, max_pixels: int, grey_draft: bool, fast_png: bool
) -> tuple[Image.Image | None, np.ndarray | None]:
    """`open_image`'s decode; with `fast_png` a plain PNG's pixels come from `_fast_png` instead ((image, pixels) with
    the image unloaded, or (None, pixels) for a bare PNG Pillow never opened), else (image, None)."""
    if not data:
        raise BadInput("empty body: expected an image")
    if fast_png and (bare := _bare_png(data)) is not None:
        _check_size(*bare[:2], max_pixels)
        pixels = _fast_png(data, *bare)
        if pixels is not None:
            return None, pixels
        fast_png = False  # the fast path refused these bytes already: Pillow decides, without a second try
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_safe_formats())  # reads the header only
            width, height = image.size
            _check_size(width, height, max_pixels)
            if fast_png:
                pixels = _png_pixels(data, image)
                if pixels is not None:
                    return image, pixels
            if grey_draft and image.format == "JPEG" and image.mode in ("L", "RGB", "YCbCr"):
                # libjpeg scales by 1/2, 1/4 or 1/8 in the DCT (an area average) and skips the colour
                # conversion: reports/preprocess/preprocess.md times the 1000x750 photo's decoding both ways.
                # Not OpenCV's IMREAD_REDUCED_GRAYSCALE_2: the same pixels 7% faster, but it reads damaged JPEGs
                # that Pillow refuses (libjpeg's corrupt-data warnings), so bad uploads would become answers.
                factor = -(-max(width, height) // WORK_SIDE)
                image.draft("L", (-(-width // factor), -(-height // factor)))
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
    return image, None


def open_image(data: bytes, *, max_pixels: int, grey_draft: bool = False) -> Image.Image:
    """Decode image bytes, checking the pixel count on the header before the full decode. `grey_draft`: a JPEG
    is decoded straight to its luminance, scaled down in the decoder towards WORK_SIDE (what preprocessing reads)."""
    return _open(data, max_pixels=max_pixels, grey_draft=grey_draft, fast_png=False)[0]


def _first_frame(image: Image.Image) -> Image.Image:
    """Frame 0 of an animation or a multi-page TIFF (a still image is returned as it is)."""
    if getattr(image, "n_frames", 1) > 1 and image.tell() != 0:
        image.seek(0)
    return image


def _scale_of(values: np.ndarray, mode: str) -> tuple[float, float]:
    """(offset, factor) that map a number image's finite values to grey levels 0..255 (clipped)."""
    lo, hi = float(values.min()), float(values.max())
    scales = FULL_SCALES["F" if mode == "F" else "I"]
    for robust in (False, True):
        if robust:  # a few absurd pixels must not decide the scale of all the others
            lo, hi = (float(v) for v in np.percentile(values, [OUTLIERS, 100 - OUTLIERS]))
        for full in scales:
            if 0.0 <= lo and hi <= full:
                return 0.0, 255.0 / full
    # No known scale: stretch the robust range. Halves keep hi - lo finite even for -1e308..1e308.
    span = hi / 2 - lo / 2
    gain = 127.5 / span if span > 0 else 0.0
    return lo, gain if math.isfinite(gain) else 0.0  # a subnormal span is a flat image, not an infinite gain


def _numbers(image: Image.Image) -> np.ndarray:
    """A number image (float, 16- or 32-bit) -> finite grey levels, box-reduced to WORK_SIDE in strips."""
    factor = -(-max(image.size) // WORK_SIDE)
    sample = (
        image
        if factor == 1
        else image.resize(  # nearest: no arithmetic, so no overflow
            (-(-image.width // factor), -(-image.height // factor)), Image.Resampling.NEAREST
        )
    )
    values = np.asarray(sample, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise BadInput("the image holds no finite pixel value (all NaN or infinite)")
    offset, gain = _scale_of(finite, image.mode)
    neutral = float(np.median(finite))  # NaN is missing data: the image's typical level, not ink

    def grey(part: np.ndarray) -> np.ndarray:
        part = np.nan_to_num(part, nan=neutral, posinf=finite.max(), neginf=finite.min())
        return np.clip((part / 2 - offset / 2) * (2 * gain), 0.0, 255.0).astype(np.float32)

    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if factor == 1:
            return grey(values)
        strips = []
        for top in range(0, image.height, 8 * factor):  # a strip at a time: no full-size float copy
            part = grey(
                np.asarray(image.crop((0, top, image.width, min(top + 8 * factor, image.height))), dtype=np.float64)
            )
            strips.append(np.asarray(Image.fromarray(part, "F").reduce(factor)))
        return np.concatenate(strips)


def _work_side(image: Image.Image) -> np.ndarray:
    """An 8-bit image's pixels, box-averaged to at most WORK_SIDE a side (any mode Pillow reduces)."""
    factor = -(-max(image.size) // WORK_SIDE)
    if factor > 2:  # Pillow reduces a large image before it becomes an array (a 4096x4096 RGBA would be 64 MB)
        return np.asarray(image.reduce(factor))
    return _halve(np.asarray(image))


def _halve(pixels: np.ndarray) -> np.ndarray:
    """Pixels (at most 2 * WORK_SIDE a side) box-averaged to at most WORK_SIDE a side."""
    height, width = pixels.shape[:2]
    if max(height, width) <= WORK_SIDE:
        return pixels
    return cv2.resize(pixels, (-(-width // 2), -(-height // 2)), interpolation=cv2.INTER_AREA)


def _flatten(image: Image.Image) -> np.ndarray:
    """Luminance of an image with an alpha channel; where it is not opaque, on a backdrop that contrasts with its
    strokes (dark strokes on a transparent canvas go onto white, light strokes onto black)."""
    return _flatten_pixels(_work_side(image if image.mode == "RGBA" else image.convert("RGBA")))


def _flatten_pixels(pixels: np.ndarray) -> np.ndarray:
    """`_flatten` of (H, W, 4) RGBA uint8 pixels."""
    lum = cv2.cvtColor(pixels, cv2.COLOR_RGBA2GRAY)
    # Alpha is the high byte of each pixel read as a little-endian uint32: one contiguous minimum, 4x cheaper
    # than the minimum of the strided alpha plane.
    if np.ascontiguousarray(pixels).view("<u4").min() >= 0xFF000000:  # opaque (the web page's pad): its luminance
        return lum
    alpha = pixels[..., 3].astype(np.float32) / 255.0
    lum = lum.astype(np.float32)
    opaque_lum = float((lum * alpha).sum() / max(alpha.sum(), 1e-6))
    backdrop = 255.0 if opaque_lum < 128 else 0.0
    return lum * alpha + backdrop * (1.0 - alpha)


def _luminance(image: Image.Image) -> Image.Image:
    """The image in mode L (Pillow's ITU-R 601 luma), for every mode without transparency."""
    if image.mode == "LAB":  # Pillow has no LAB -> L conversion; L* is the lightness
        return image.getchannel("L")
    try:
        return image.convert("L")
    except ValueError:  # a mode without a direct conversion (HSV, ...): through RGB
        return image.convert("RGB").convert("L")


def _grey(image: Image.Image) -> np.ndarray:
    """(H, W) finite luminance in [0, 255] (uint8, or float32 for number images and transparency), at most
    WORK_SIDE a side, for every Pillow mode."""
    image = _first_frame(image)
    if image.mode in NUMBER_MODES:
        return _numbers(image)
    if image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        return _flatten(image)
    return _work_side(_luminance(image))


def _grey_png(pixels: np.ndarray) -> np.ndarray:
    """`_grey` of a plain PNG's `_fast_png` pixels ((H, W) grey or (H, W, 4) RGBA): the same array Pillow's give."""
    if pixels.ndim == 2:
        return _halve(pixels)
    return _flatten_pixels(_halve(pixels))


def _frame(grey: np.ndarray) -> np.ndarray:
    """Grey levels -> (1, 28, 28) float32 in [0, 1], MNIST-style."""
    try:
        return ink.to_frame(grey)[None]
    except ink.Blank as exc:
        raise NoInk(str(exc)) from None


def from_image(image: Image.Image) -> np.ndarray:
    """A decoded image -> (1, 28, 28) float32 in [0, 1], MNIST-style."""
    try:
        grey = _grey(image)
    except (ValueError, OSError, TypeError, EOFError) as exc:  # a mode Pillow cannot convert to luminance
        raise BadInput(f"unsupported image mode {image.mode}: {exc}"[:300]) from None
    return _frame(grey)


def from_bytes(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Image bytes (PNG, JPEG or any format Pillow reads) -> (1, 28, 28) float32."""
    image, pixels = _open(data, max_pixels=max_pixels, grey_draft=True, fast_png=True)
    return from_image(image) if pixels is None else _frame(_grey_png(pixels))


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


def from_json(image_base64: str | None, pixels: Any, *, max_pixels: int) -> np.ndarray:
    """Exactly one of the JSON bodies' two forms (a base64 image or a 28x28 array) -> (1, 28, 28) float32."""
    if (image_base64 is None) == (pixels is None):
        raise BadInput("send exactly one of image_base64 (an image) or pixels (a 28x28 array)")
    if pixels is not None:
        return from_array(pixels)
    return from_bytes(decode_base64(image_base64), max_pixels=max_pixels)
