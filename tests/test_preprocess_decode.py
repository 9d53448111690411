"""The request path's PNG decoding: the fast path (zlib-ng, libspng) gives exactly what Pillow's path gives, or is not
taken."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from serving import errors
from serving import preprocess as P
from testkit.digits import draw_seven, encode

LIMIT = 4096 * 4096


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk, its CRC right."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's (type, data) chunks, in order."""
    pos, out = 8, []
    while pos < len(png):
        (length,) = struct.unpack_from(">I", png, pos)
        out.append((png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def build(parts: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG from (type, data) chunks."""
    return P.PNG_MAGIC + b"".join(chunk(kind, data) for kind, data in parts)


def with_idat(png: bytes, stream: bytes, *, pieces: int = 1) -> bytes:
    """`png` with its image data replaced by `stream`, in `pieces` IDAT chunks."""
    head = [part for part in chunks(png) if part[0] not in (b"IDAT", b"IEND")]
    step = -(-len(stream) // pieces)
    idats = [(b"IDAT", stream[i : i + step]) for i in range(0, len(stream), step)]
    return build(head + idats + [(b"IEND", b"")])


def split(png: bytes, pieces: int) -> bytes:
    """`png` with its image data in `pieces` IDAT chunks."""
    return with_idat(png, b"".join(data for kind, data in chunks(png) if kind == b"IDAT"), pieces=pieces)


def interlaced(image: Image.Image) -> bytes:
    """An Adam7-interlaced 8-bit PNG of an L or RGBA image (Pillow writes none), rows unfiltered."""
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    colour = {"L": 0, "RGBA": 6}[image.mode]
    raw = b""
    for top, left, down, across in ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2)):
        part = pixels[top::down, left::across]
        raw += b"".join(b"\0" + row.tobytes() for row in part) if part.size else b""
    raw += b"".join(b"\0" + row.tobytes() for row in pixels[1::2])  # pass 7: every odd row in full
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 1)
    return build([(b"IHDR", header), (b"IDAT", zlib.compress(raw)), (b"IEND", b"")])


def seven(size: int, mode: str, alpha: str = "opaque") -> Image.Image:
    """A dark '7' on light paper in `mode`; for RGBA an opaque grey or coloured, a part-transparent (coloured) or
    a transparent canvas. Colours have red != blue, so that a swapped channel order would show."""
    grey = draw_seven((size, size), width=max(2, size // 12))
    if mode != "RGBA":
        return grey.convert(mode)
    if alpha == "opaque":
        return grey.convert("RGBA")
    if alpha == "coloured":
        return Image.merge(
            "RGBA",
            (
                grey,
                Image.eval(grey, lambda v: v // 2 + 64),
                Image.eval(grey, lambda v: 255 - v // 3),
                Image.new("L", grey.size, 255),
            ),
        )
    if alpha == "transparent":  # the strokes in the alpha plane, colour black: a transparent drawing pad
        zero = Image.new("L", grey.size, 0)
        return Image.merge("RGBA", (zero, zero, zero, Image.eval(grey, lambda v: 255 - v)))
    ramp = Image.linear_gradient("L").resize(grey.size)  # alpha from 0 to 255 down the image
    return Image.merge(
        "RGBA", (grey, Image.eval(grey, lambda v: v // 2 + 64), Image.eval(grey, lambda v: v // 4), ramp)
    )


def pillow_path(data: bytes) -> np.ndarray:
    """from_bytes as Pillow alone reads it: decode, grey levels, frame."""
    return P.from_image(P.open_image(data, max_pixels=LIMIT, grey_draft=True))


def fast_pixels(data: bytes) -> np.ndarray | None:
    """The fast path's pixels for `data` (None: not taken)."""
    return P._png_pixels(data, Image.open(io.BytesIO(data)))


def outcome(read, data: bytes) -> np.ndarray | tuple[str, str, int]:
    """What `read(data)` gives: its frame, or its error's class, message and status."""
    try:
        return read(data)
    except errors.ServingError as exc:
        return type(exc).__name__, str(exc), exc.status


def same(a: np.ndarray | tuple, b: np.ndarray | tuple) -> bool:
    """Two outcomes are the same frame or the same error."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def assert_same_as_pillow(data: bytes) -> None:
    """from_bytes gives exactly the Pillow path's frame (or error), and the fast path's grey levels are Pillow's."""
    assert same(outcome(lambda d: P.from_bytes(d, max_pixels=LIMIT), data), outcome(pillow_path, data))
    pixels = fast_pixels(data)
    if pixels is not None:
        grey = P._grey(P.open_image(data, max_pixels=LIMIT, grey_draft=True))
        fast = P._grey_png(pixels)
        assert fast.dtype == grey.dtype and np.array_equal(fast, grey)


TEXT = PngImagePlugin.PngInfo()
TEXT.add_text("Software", "a browser")
TEXT.add_text("note", "x" * 300, zip=True)

FAST_KINDS = {
    "56 px L (the served digits)": encode(seven(56, "L")),
    "280 px RGBA opaque (the web page's pad)": encode(seven(280, "RGBA")),
    "150 px RGBA opaque, coloured": encode(seven(150, "RGBA", "coloured")),
    "280 px RGBA transparent pad": encode(seven(280, "RGBA", "transparent")),
    "200 px RGBA alpha ramp": encode(seven(200, "RGBA", "ramp")),
    "700 px L, halved": encode(seven(700, "L")),
    "1024 px RGBA alpha ramp, halved": encode(seven(1024, "RGBA", "ramp")),
    "3 px L": encode(seven(3, "L")),
    "L, uncompressed": encode(seven(90, "L"), compress_level=0),
    "RGBA, text and pHYs chunks before the data": encode(seven(90, "RGBA", "ramp"), pnginfo=TEXT, dpi=(96, 96)),
    "L, image data in 7 IDAT chunks": split(encode(seven(90, "L")), 7),
    "L, bytes after IEND": encode(seven(90, "L")) + b"trailing",
}


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_the_fast_path_reads_exactly_what_pillow_reads(kind: str) -> None:
    data = FAST_KINDS[kind]
    assert fast_pixels(data) is not None, "this kind of PNG should take the fast path"
    assert_same_as_pillow(data)


BARE = ("56 px L (the served digits)", "280 px RGBA opaque (the web page's pad)", "L, image data in 7 IDAT chunks")


@pytest.mark.parametrize("kind", BARE)
def test_a_bare_png_is_decoded_without_pillow_opening_it(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    data = FAST_KINDS[kind]
    expected = pillow_path(data)

    def no_pillow(*args, **kwargs):
        raise AssertionError("Pillow opened a bare PNG")

    monkeypatch.setattr(P.Image, "open", no_pillow)
    assert P._bare_png(data) is not None
    assert np.array_equal(P.from_bytes(data, max_pixels=LIMIT), expected)


def test_a_png_with_other_chunks_or_a_broken_header_is_opened_by_pillow_first() -> None:
    assert P._bare_png(FAST_KINDS["RGBA, text and pHYs chunks before the data"]) is None
    assert P._bare_png(FAST_KINDS["L, bytes after IEND"]) is not None  # what follows IEND is never read
    broken = bytearray(FAST_KINDS["56 px L (the served digits)"])
    broken[29] ^= 0xFF  # the IHDR's CRC
    assert P._bare_png(bytes(broken)) is None
    answer = outcome(lambda d: P.from_bytes(d, max_pixels=LIMIT), bytes(broken))
    assert answer == outcome(pillow_path, bytes(broken)) and answer[0] == "BadInput"  # Pillow refuses it, as before


def filtered(width: int, height: int, colour: int, seed: int) -> bytes:
    """A PNG whose rows are random bytes under random filter types (None, Sub, Up, Average, Paeth): whatever they
    unfilter to, every decoder must agree."""
    rng = np.random.default_rng(seed)
    channels = {0: 1, 6: 4}[colour]
    rows = rng.integers(0, 256, (height, 1 + width * channels), dtype=np.uint8)
    rows[:, 0] = rng.integers(0, 5, height)
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return build([(b"IHDR", header), (b"IDAT", zlib.compress(rows.tobytes())), (b"IEND", b"")])


@pytest.mark.parametrize("colour", [0, 6])
@pytest.mark.parametrize("seed", range(3))
def test_every_filter_type_unfilters_as_pillow_does(colour: int, seed: int) -> None:
    data = filtered(37 + seed, 23, colour, seed)
    assert fast_pixels(data) is not None
    assert np.array_equal(fast_pixels(data), np.asarray(Image.open(io.BytesIO(data))))
    assert_same_as_pillow(data)


def _apng() -> bytes:
    first = seven(60, "L")
    buffer = io.BytesIO()
    first.save(buffer, "PNG", save_all=True, append_images=[Image.eval(first, lambda v: 255 - v)])
    return buffer.getvalue()


def _after_idat(png: bytes, extra: bytes) -> bytes:
    end = png.rfind(b"IEND") - 4
    return png[:end] + extra + png[end:]


PILLOW_KINDS = {
    "RGB (OpenCV's grey weights round differently)": encode(seven(80, "RGB")),
    "LA": encode(seven(80, "LA")),
    "P": encode(seven(80, "P")),
    "P with a transparent entry": encode(seven(80, "P"), transparency=255),
    "L with tRNS": encode(seven(80, "L"), transparency=255),
    "RGBA 16-bit": build(
        [
            (b"IHDR", struct.pack(">IIBBBBB", 4, 4, 16, 6, 0, 0, 0)),
            (b"IDAT", zlib.compress(b"".join(b"\0" + bytes(range(32)) for _ in range(4)))),
            (b"IEND", b""),
        ]
    ),
    "L 16-bit": encode(Image.fromarray(np.asarray(seven(80, "L")).astype(np.uint16) * 257)),
    "1-bit": encode(seven(80, "1")),
    "L interlaced": interlaced(seven(80, "L")),
    "RGBA interlaced": interlaced(seven(80, "RGBA", "ramp")),
    "APNG": _apng(),
    "L, a text chunk after the image data": _after_idat(encode(seven(80, "L")), chunk(b"tEXt", b"k\0v")),
    "L wider than 1024 px": encode(seven(1100, "L")),
}


@pytest.mark.parametrize("kind", PILLOW_KINDS)
def test_other_pngs_stay_with_pillow(kind: str) -> None:
    data = PILLOW_KINDS[kind]
    assert fast_pixels(data) is None
    assert_same_as_pillow(data)


GOOD = encode(seven(120, "RGBA", "ramp"))
STREAM = b"".join(data for kind, data in chunks(GOOD) if kind == b"IDAT")


def test_a_png_with_broken_image_data_is_a_client_error() -> None:
    broken = bytearray(STREAM)
    broken[len(broken) // 3 : len(broken) // 3 + 40] = b"\xff" * 40  # not deflate data any more; CRCs right
    for data in (
        with_idat(GOOD, bytes(broken)),
        with_idat(GOOD, STREAM[: len(STREAM) // 2]),  # too little image data, then IEND
        with_idat(GOOD, b"\x00" * len(STREAM)),  # not a zlib stream at all
        GOOD[: len(GOOD) // 2],  # the file cut off in its image data
    ):
        with pytest.raises(errors.BadInput) as info:
            P.from_bytes(data, max_pixels=LIMIT)
        assert info.value.status == 400
        with pytest.raises(errors.BadInput):
            pillow_path(data)


def test_what_the_fast_path_refuses_and_pillow_reads_is_still_read() -> None:
    # Pillow does not check the image data's CRC; the fast path does and refuses: Pillow's answer stands.
    damaged = bytearray(GOOD)
    idat = GOOD.index(b"IDAT")
    (length,) = struct.unpack_from(">I", GOOD, idat - 4)
    damaged[idat + 4 + length] ^= 0xFF  # the IDAT chunk's CRC
    data = bytes(damaged)
    assert fast_pixels(data) is None
    assert_same_as_pillow(data)


ROWS = zlib.decompress(STREAM)


@pytest.mark.parametrize(
    "stream",
    [
        zlib.compress(ROWS) + b"more",  # bytes after the zlib stream's end
        zlib.compress(ROWS + b"\0" * 600),  # more rows than the header's
        zlib.compress(ROWS[:-1]),  # a byte short
    ],
    ids=["trailing bytes", "too many rows", "a byte short"],
)
def test_image_data_of_the_wrong_length_is_left_to_pillow(stream: bytes) -> None:
    data = with_idat(GOOD, stream)
    assert fast_pixels(data) is None
    assert_same_as_pillow(data)


@pytest.mark.parametrize("failure", ["raises", "wrong shape", "wrong type"])
def test_a_decoder_failure_falls_back_to_pillow(monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    def load(data: bytes) -> np.ndarray:
        if failure == "raises":
            raise RuntimeError("simulated")
        return np.zeros((2, 2), np.uint8) if failure == "wrong shape" else np.zeros((120, 120, 4), np.uint16)

    expected = pillow_path(GOOD)
    monkeypatch.setattr(P.pyspng, "load", load)
    assert fast_pixels(GOOD) is None
    assert np.array_equal(P.from_bytes(GOOD, max_pixels=LIMIT), expected)


def test_the_header_checks_still_come_first() -> None:
    with pytest.raises(errors.TooLarge):
        P.from_bytes(GOOD, max_pixels=120 * 120 - 1)
    with pytest.raises(errors.BadInput):
        P.from_bytes(b"", max_pixels=LIMIT)


def test_safe_formats_are_built_once_without_postscript() -> None:
    assert P._safe_formats() is P._safe_formats()
    assert "PNG" in P._safe_formats() and not {"EPS", "PS"} & set(P._safe_formats())
