"""Hypothesis strategies of hostile HTTP requests for the MNIST service, one per attack; benchmarks/fuzz.py and
tests/test_fuzz.py draw from them.

Each strategy yields a `Probe` (one request). Images reach the service in every form it reads: a raw body
with an image Content-Type, base64 inside JSON, or a multipart upload; multipart bodies are built by hand
so that malformed ones can be sent too.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import struct
import warnings
import zlib
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
from hypothesis import strategies as st
from PIL import Image, ImageDraw

IMAGE_ROUTES = ("/predict", "/predict_all", "/predict_batch")
POST_ROUTES = (*IMAGE_ROUTES, "/classify", "/latency/benchmark")
GET_ROUTES = ("/models", "/comparison", "/latency", "/readyz", "/livez", "/metrics", "/docs.json")
MODES = (
    "1",
    "L",
    "LA",
    "La",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBa",
    "RGBX",
    "CMYK",
    "YCbCr",
    "LAB",
    "HSV",
    "I",
    "I;16",
    "I;16L",
    "I;16B",
    "F",
)
FORMATS = (
    "PNG",
    "JPEG",
    "GIF",
    "BMP",
    "TIFF",
    "WEBP",
    "PPM",
    "ICO",
    "TGA",
    "PCX",
    "SGI",
    "IM",
    "QOI",
    "JPEG2000",
    "DDS",
    "ICNS",
    "MSP",
    "XBM",
    "SPIDER",
    "BLP",
    "EPS",
)
MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"qoif",
    b"P5\n",
    b"%!PS-Adobe-3.0 EPSF-3.0\n",
    b"\x00\x00\x01\x00",
    b"8BPS",
    b"DDS ",
    b"icns",
)
TRAVERSAL = (
    "../manifest.json",
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    ".",
    "manifest.json",
    "cnn.onnx",
    "cnn/../cnn",
    "./cnn",
    "cnn\x00",
    "..%2fmanifest.json",
    "%2e%2e/manifest.json",
    "..\\manifest.json",
    "file:///etc/passwd",
    "/proc/self/environ",
    "~/.ssh/id_rsa",
    "comparison.json",
    "plots/../manifest.json",
    "C:\\Windows\\win.ini",
    "\\\\server\\share",
    "cnn.onnx/../../manifest.json",
)
SECRET_MARKERS = ("root:x:0:0", "mnistserve.manifest", "PATH=", "BEGIN OPENSSH")  # what a leaked file would show
SPECIAL = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "-1e309",
    "-1",
    "-0.0",
    "255.0001",
    "256",
    "1e-320",
    "1e308",
    "100000000000000000000000000000",
    "true",
    "null",
    '"1"',
    "[]",
    "{}",
)


@dataclass(frozen=True)
class Probe:
    """One HTTP request; `chunked` sends the body in 64 KiB pieces without a Content-Length."""

    method: str
    path: str
    content: bytes = b""
    content_type: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    chunked: bool = False
    expect: tuple[int, ...] = ()  # statuses this attack must get (empty: any status below 500)
    item_status: int | None = None  # /classify: the status each item of a 200 answer must carry

    def headers(self) -> dict[str, str]:
        return {} if self.content_type is None else {"content-type": self.content_type}

    def body(self):
        if not self.chunked:
            return self.content
        return (self.content[i : i + 65536] for i in range(0, max(len(self.content), 1), 65536))

    def summary(self) -> dict:
        return {
            "method": self.method,
            "path": self.path,
            "params": dict(self.params),
            "content_type": self.content_type,
            "bytes": len(self.content),
            "head": repr(self.content[:160]),
            "chunked": self.chunked,
        }


def violation(probe: Probe, status: str, text: str) -> str | None:
    """What is wrong with this answer (`status`: the HTTP status, or "transport:<error>"), or None."""
    if status.startswith("transport"):
        return "connection failed or timed out (crash?)"
    if int(status) >= 500:
        return "server error"
    if probe.expect and int(status) not in probe.expect:
        return f"status {status}, expected one of {list(probe.expect)}"
    if any(marker in text for marker in SECRET_MARKERS):
        return "the answer holds file content"
    if probe.item_status is not None and status == "200":
        try:
            items = [item["status"] for item in json.loads(text)]
        except (ValueError, TypeError, KeyError):
            return "a /classify answer that is not a list of items"
        if any(s != probe.item_status for s in items):
            return f"/classify item statuses {items}, expected {probe.item_status}"
    return None


def multipart(parts: list[tuple[str | None, str | None, str | None, bytes]], boundary: str = "fuzzb0undary") -> Probe:
    """A multipart body from (name, filename, content type, data) parts; None leaves that header piece out."""
    out = b""
    for name, filename, ctype, data in parts:
        disposition = "form-data" + (f'; name="{name}"' if name is not None else "")
        disposition += f'; filename="{filename}"' if filename is not None else ""
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode("utf-8", "surrogatepass")
        out += f"Content-Type: {ctype}\r\n".encode() if ctype else b""
        out += b"\r\n" + data + b"\r\n"
    return Probe("POST", "/predict", out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}")


def _route(probe: Probe, path: str) -> Probe:
    return dataclasses.replace(probe, path=path)


@st.composite
def deliver(draw, data: bytes, media: str = "image/png") -> Probe:
    """Image bytes to one image route in one of the forms the service reads."""
    path = draw(st.sampled_from(IMAGE_ROUTES))
    form = draw(st.sampled_from(("raw", "octet", "json", "multipart")))
    if form in ("raw", "octet"):
        return Probe("POST", path, data, media if form == "raw" else "application/octet-stream")
    if form == "json":
        b64 = base64.b64encode(data).decode()
        body = {"images": [{"image_base64": b64}]} if path == "/predict_batch" else {"image_base64": b64}
        return Probe("POST", path, json.dumps(body).encode(), "application/json")
    field = "images" if path == "/predict_batch" else "image"
    return _route(multipart([(field, "digit.img", media, data)]), path)


# -- images -----------------------------------------------------------------------------------------------


def canvas(width: int, height: int, pattern: str, seed: int) -> Image.Image:
    """An 8-bit grey image: noise, a drawn stroke (a digit-like mark), or one flat colour."""
    if pattern == "noise":
        return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8))
    image = Image.new("L", (width, height), 255 if pattern == "stroke" else seed % 256)
    if pattern == "stroke":
        ImageDraw.Draw(image).line(
            [(0.3 * width, 0.2 * height), (0.7 * width, 0.2 * height), (0.5 * width, 0.8 * height)],
            fill=0,
            width=max(1, min(width, height) // 8),
        )
    return image


def in_mode(grey: Image.Image, mode: str, seed: int) -> Image.Image:
    """`grey` in `mode`; I and F get extreme values (negative, 2^31, NaN, infinity) where the seed says so."""
    if mode in ("I", "F") and seed % 3 == 0:
        values = np.asarray(grey, dtype=np.float64) * (2.0**23 if mode == "I" else 1.0 / 255)
        flat = values.reshape(-1)
        flat[::7] = -5.0 if mode == "I" else np.nan
        flat[3::11] = 2.0**31 - 1 if mode == "I" else np.inf
        return Image.fromarray(values.astype(np.int32 if mode == "I" else np.float32))  # mode I or F
    if mode.startswith("I;16"):
        return Image.fromarray((np.asarray(grey, dtype=np.uint16) * 257).astype(np.uint16))  # mode I;16
    try:
        return grey.convert(mode)
    except ValueError:
        return Image.new(mode, grey.size)


def encode_image(image: Image.Image, fmt: str) -> tuple[bytes, str]:
    """Encoded bytes and a media type; a mode the format cannot store falls back to TIFF, then to a grey PNG."""
    for target, make in ((fmt, lambda: image), ("TIFF", lambda: image), ("PNG", lambda: _grey_of(image))):
        buffer = io.BytesIO()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make().save(buffer, target)
        except Exception:  # Pillow raises OSError, ValueError, KeyError... for unsupported combinations
            continue
        return buffer.getvalue(), f"image/{target.lower()}"
    raise AssertionError("a grey PNG always encodes")


def _grey_of(image: Image.Image) -> Image.Image:
    try:
        return image.convert("L")
    except ValueError:
        return Image.new("L", image.size, 128)


@st.composite
def pil_images(draw, max_side: int = 64) -> Probe:
    """An image of any PIL mode, any saveable format, 1..max_side pixels a side."""
    width, height = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**16))
    grey = canvas(width, height, draw(st.sampled_from(("noise", "stroke", "flat"))), seed)
    data, media = encode_image(in_mode(grey, draw(st.sampled_from(MODES)), seed), draw(st.sampled_from(FORMATS)))
    return draw(deliver(data, media))


# Value patterns of number images (float and 16/32-bit): what a scanner, a depth camera or a bug writes.
EXTREMES = {
    "huge-negative-background": lambda ink: np.where(ink, 1.0, -1e38),
    "one-huge-negative": lambda ink: np.where(np.arange(ink.size).reshape(ink.shape) == 0, -1e37, ink * 1.0),
    "max-float": lambda ink: np.where(ink, 3.4e38, -3.4e38),
    "subnormal": lambda ink: ink * 1e-42,
    "constant": lambda ink: np.full(ink.shape, 7.5),
    "all-nan": lambda ink: np.full(ink.shape, np.nan),
    "all-inf": lambda ink: np.full(ink.shape, np.inf),
    "nan-background": lambda ink: np.where(ink, 1.0, np.nan),
    "inf-ink": lambda ink: np.where(ink, np.inf, 0.0),
    "negative-ink": lambda ink: np.where(ink, -1.0, 0.0),
    "huge-range": lambda ink: np.where(ink, 1e30, 1e-30),
    "zero": lambda ink: np.zeros(ink.shape),
}
# (mode, numpy dtype, formats) of the number images Pillow writes: float and 32-bit TIFF, 16-bit TIFF and PNG.
NUMBER_KINDS = (("F", np.float32, ("TIFF",)), ("I", np.int32, ("TIFF",)), ("I;16", np.uint16, ("TIFF", "PNG")))


def number_image(pattern: str, mode: str, dtype: type, size: tuple[int, int]) -> Image.Image:
    """A digit-like stroke as a number image whose values follow `pattern`, cast to `dtype` as a file stores it."""
    ink = np.asarray(canvas(size[0], size[1], "stroke", 0)) < 128
    with np.errstate(all="ignore"):
        values = np.asarray(EXTREMES[pattern](ink), dtype=np.float64)
        if dtype is not np.float32:  # integers: what a cast of these values gives, wrapped and clipped as C does
            info = np.iinfo(dtype)
            values = np.clip(np.nan_to_num(values, nan=0, posinf=info.max, neginf=info.min), info.min, info.max)
        array = values.astype(dtype)
    return Image.fromarray(array)  # float32 -> F, int32 -> I, uint16 -> I;16


@st.composite
def number_images(draw) -> Probe:
    """Float, 32-bit and 16-bit images with extreme values (NaN, +-inf, +-3.4e38, subnormal, constant), every form."""
    mode, dtype, formats = draw(st.sampled_from(NUMBER_KINDS))
    size = draw(st.sampled_from([(28, 28), (1, 1), (3, 40), (64, 48), (600, 20)]))
    image = number_image(draw(st.sampled_from(sorted(EXTREMES))), mode, dtype, size)
    fmt = draw(st.sampled_from(formats))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return draw(deliver(buffer.getvalue(), f"image/{fmt.lower()}"))


@st.composite
def multi_frame(draw) -> Probe:
    """Animations and multi-page files (GIF, TIFF, WebP, APNG) whose frames differ in mode, size and content."""
    fmt = draw(st.sampled_from(("GIF", "TIFF", "WEBP", "PNG")))
    frames = []
    for i in range(draw(st.integers(2, 5))):
        side = draw(st.sampled_from([1, 8, 28, 90]))
        grey = canvas(side, draw(st.sampled_from([side, 1, 40])), draw(st.sampled_from(("noise", "stroke", "flat"))), i)
        frames.append(in_mode(grey, draw(st.sampled_from(("L", "RGB", "RGBA", "P", "1", "F", "I;16"))), i))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:])
    except Exception:  # a mode or size the format cannot animate: the frames in 8-bit grey, at the first's size
        buffer = io.BytesIO()
        grey_frames = [_grey_of(f).resize(frames[0].size) for f in frames]
        grey_frames[0].save(buffer, fmt, save_all=True, append_images=grey_frames[1:])
    return draw(deliver(buffer.getvalue(), f"image/{fmt.lower()}"))


@st.composite
def extreme_sizes(draw, max_pixels: int) -> Probe:
    """1x1, single rows and columns, exactly the pixel limit and one row over it."""
    side = int(max_pixels**0.5)
    width, height = draw(
        st.sampled_from(
            [
                (1, 1),
                (1, 2),
                (2, 1),
                (1, 5000),
                (5000, 1),
                (3, 2000),
                (2000, 3),
                (side, side),
                (side + 1, side),
                (max_pixels, 1),
                (max_pixels + 1, 1),
            ]
        )
    )
    image = Image.new("1", (width, height), 1)  # mode 1 compresses a huge canvas to a few kilobytes
    ImageDraw.Draw(image).line([(0, 0), (width - 1, height - 1)], fill=0, width=max(1, min(width, height) // 10))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return draw(deliver(buffer.getvalue()))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, colour: int = 0, depth: int = 8) -> bytes:
    """A tiny PNG whose header declares `width` x `height`, with only a few rows of data: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    rows = zlib.compress(b"\x00" * min(width + 1, 1 << 20) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def headers_declaring(width: int, height: int) -> dict[str, bytes]:
    """GIF, BMP, JPEG and TIFF headers that declare a huge size over a few bytes of data."""
    gif = (
        b"GIF89a"
        + struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
        + b"\x00\x00\x00"
        + b",\x00\x00\x00\x00"
        + struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
        + b"\x00\x02\x02\x44\x01\x00;"
    )
    bmp = (
        b"BM"
        + struct.pack("<IHHI", 0, 0, 0, 54)
        + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
        + b"\x00" * 64
    )
    small = io.BytesIO()
    Image.new("L", (8, 8), 0).save(small, "JPEG")
    jpeg = bytearray(small.getvalue())
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", min(height, 65535), min(width, 65535))
    tiff = (
        b"II*\x00"
        + struct.pack("<I", 8)
        + struct.pack("<H", 4)
        + b"".join(
            struct.pack("<HHII", tag, 4, 1, value) for tag, value in ((256, width), (257, height), (258, 8), (273, 0))
        )
    )
    return {"image/gif": gif, "image/bmp": bmp, "image/jpeg": bytes(jpeg), "image/tiff": tiff + struct.pack("<I", 0)}


@st.composite
def bombs(draw) -> Probe:
    """Small files declaring 30000x30000 and more, in PNG (several colour types), GIF, BMP, JPEG and TIFF."""
    width, height = draw(
        st.sampled_from(
            [
                (30000, 30000),
                (65535, 65535),
                (100000, 100000),
                (2**31 - 1, 1),
                (1, 2**31 - 1),
                (2**31 - 1, 2**31 - 1),
                (4097, 4097),
                (20000, 1000),
            ]
        )
    )
    if draw(st.booleans()):
        colour, depth = draw(st.sampled_from([(0, 8), (0, 16), (2, 8), (6, 16), (3, 8), (0, 1)]))
        return draw(deliver(png_declaring(width, height, colour, depth)))
    media, data = draw(st.sampled_from(sorted(headers_declaring(width, height).items())))
    return draw(deliver(data, media))


@st.composite
def damaged(draw) -> Probe:
    """A good digit image in some format, truncated or with bytes overwritten."""
    data, media = encode_image(canvas(40, 40, "stroke", 0), draw(st.sampled_from(FORMATS[:14])))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    else:
        raw = bytearray(data)
        for pos, value in draw(
            st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), min_size=1, max_size=8)
        ):
            raw[pos] = value
        data = bytes(raw)
    return draw(deliver(data, media))


# -- bytes, JSON, numbers ------------------------------------------------------------------------------------


CONTENT_TYPES = (
    None,
    "image/png",
    "image/jpeg",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "image/svg+xml",
    "IMAGE/PNG",
    "image/png; charset=utf-8",
    "application/json; charset=latin-1",
    "",
    "multipart/mixed; boundary=x",
    "image/" + "x" * 300,
)


def random_bytes() -> st.SearchStrategy[Probe]:
    """Random bytes, or random bytes behind an image format's magic number, under any Content-Type."""
    data = st.binary(max_size=4096) | st.tuples(st.sampled_from(MAGIC), st.binary(max_size=2048)).map(b"".join)
    return st.builds(
        lambda path, body, ctype: Probe("POST", path, body, ctype),
        st.sampled_from(POST_ROUTES),
        data,
        st.sampled_from(CONTENT_TYPES),
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@st.composite
def json_shapes(draw) -> Probe:
    """Wrong JSON: any value for each field, wrong nesting, arrays of the wrong shape, non-objects, broken text."""
    path = draw(st.sampled_from(POST_ROUTES))
    kind = draw(st.sampled_from(("fields", "pixels-shape", "top-level", "broken", "deep")))
    if kind == "fields":
        keys = ("image_base64", "pixels", "model", "images", "items", "runs", "batch_size", "input")
        body = draw(st.dictionaries(st.sampled_from(keys), JSON, max_size=4))
        text = json.dumps(body)
    elif kind == "pixels-shape":
        rows, cols = draw(st.integers(0, 30)), draw(st.integers(0, 30))
        pixels = [[draw(st.integers(0, 255))] * cols for _ in range(rows)]
        item = {"model": "x", "input": pixels}
        text = json.dumps({"pixels": pixels, "images": [{"pixels": pixels}], "items": [item]})
    elif kind == "top-level":
        text = json.dumps(draw(JSON))
    elif kind == "broken":
        good = json.dumps({"image_base64": "iVBORw0KGgo=", "model": "cnn"})
        text = good[: draw(st.integers(0, len(good) - 1))]
    else:  # nesting deeper than any parser's recursion limit
        depth = draw(st.sampled_from((100, 1000, 100_000)))
        text = '{"pixels": ' + "[" * depth + "]" * draw(st.sampled_from((0, depth))) + "}"
    return Probe("POST", path, text.encode(), draw(st.sampled_from(("application/json", "application/json", None))))


@st.composite
def nan_inf_range(draw) -> Probe:
    """28x28 pixels, /classify inputs and benchmark numbers holding NaN, infinities and out-of-range values."""
    special = st.sampled_from(SPECIAL)
    grid = [["0"] * 28 for _ in range(28)]
    for _ in range(draw(st.integers(1, 5))):
        grid[draw(st.integers(0, 27))][draw(st.integers(0, 27))] = draw(special)
    matrix = "[" + ",".join("[" + ",".join(row) + "]" for row in grid) + "]"
    target = draw(st.sampled_from(("pixels", "batch", "classify", "benchmark")))
    if target == "pixels":
        return Probe(
            "POST",
            draw(st.sampled_from(("/predict", "/predict_all"))),
            f'{{"pixels": {matrix}}}'.encode(),
            "application/json",
        )
    if target == "batch":
        return Probe("POST", "/predict_batch", f'{{"images": [{{"pixels": {matrix}}}]}}'.encode(), "application/json")
    if target == "classify":
        return Probe(
            "POST", "/classify", f'{{"items": [{{"model": "cnn", "input": {matrix}}}]}}'.encode(), "application/json"
        )
    runs, size = draw(special | st.integers(-10, 10**20).map(str)), draw(special | st.integers(-5, 10**6).map(str))
    return Probe("POST", "/latency/benchmark", f'{{"runs": {runs}, "batch_size": {size}}}'.encode(), "application/json")


# -- model names, bodies, multipart, routes -------------------------------------------------------------------


@st.composite
def model_names(draw, names: st.SearchStrategy[str], digit_png: bytes, expect: tuple[int, ...] = ()) -> Probe:
    """A model name in each place one is read: ?model=, JSON `model`, a multipart field, a /classify item."""
    name = draw(names)
    where = draw(st.sampled_from(("query", "json", "multipart", "classify", "batch-json")))
    b64 = base64.b64encode(digit_png).decode()
    if where == "query":
        return Probe(
            "POST",
            draw(st.sampled_from(("/predict", "/predict_batch"))),
            digit_png,
            "image/png",
            (("model", name),),
            expect=expect,
        )
    if where == "json":
        return Probe(
            "POST",
            "/predict",
            json.dumps({"image_base64": b64, "model": name}).encode(),
            "application/json",
            expect=expect,
        )
    if where == "batch-json":
        body = {"images": [{"image_base64": b64}], "model": name}
        return Probe("POST", "/predict_batch", json.dumps(body).encode(), "application/json", expect=expect)
    if where == "multipart":
        probe = multipart(
            [("image", "d.png", "image/png", digit_png), ("model", None, None, name.encode("utf-8", "surrogatepass"))]
        )
        return dataclasses.replace(probe, expect=expect)
    body = {"items": [{"model": name, "input": [[0.0] * 28] * 28}]}  # per-item 404 inside a 200 answer
    return Probe(
        "POST",
        "/classify",
        json.dumps(body).encode(),
        "application/json",
        expect=expect and (200,),
        item_status=404 if expect else None,
    )


def unknown_models(digit_png: bytes) -> st.SearchStrategy[Probe]:
    names = (
        st.text(min_size=1, max_size=40)
        | st.text(max_size=3000)
        | st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
    )
    return model_names(names, digit_png)


def traversal(digit_png: bytes) -> st.SearchStrategy[Probe]:
    """Path-traversal model names: must be 404 (400 where the name is not even text the route reads)."""
    names = st.sampled_from(TRAVERSAL) | st.tuples(
        st.integers(1, 8), st.sampled_from(("etc/passwd", "manifest.json", "cnn.onnx", "proc/self/environ"))
    ).map(lambda t: "../" * t[0] + t[1])
    return model_names(names, digit_png, expect=(400, 404))


@st.composite
def oversized(draw, limit: int, digit_png: bytes) -> Probe:
    """Bodies at and over the body limit (declared or streamed), too many files, fields, images or items."""
    kind = draw(st.sampled_from(("raw", "chunked", "json", "files", "fields", "batch", "items")))
    size = draw(st.sampled_from((limit - 1, limit, limit + 1, 2 * limit, 5 * limit)))
    if kind in ("raw", "chunked"):
        body = digit_png + b"\x00" * max(size - len(digit_png), 0)  # a valid PNG with trailing padding
        return Probe("POST", draw(st.sampled_from(IMAGE_ROUTES)), body, "image/png", chunked=kind == "chunked")
    if kind == "json":
        return Probe("POST", "/predict", b'{"image_base64": "' + b"A" * size + b'"}', "application/json")
    if kind == "files":
        probe = multipart([("images", f"{i}.png", "image/png", digit_png) for i in range(draw(st.integers(60, 200)))])
        return _route(probe, "/predict_batch")
    if kind == "fields":
        return multipart([(f"f{i}", None, None, b"x") for i in range(draw(st.integers(60, 2000)))])
    if kind == "batch":
        image = {"image_base64": base64.b64encode(digit_png).decode()}
        return Probe(
            "POST",
            "/predict_batch",
            json.dumps({"images": [image] * draw(st.integers(60, 3000))}).encode(),
            "application/json",
        )
    items = [{"model": "cnn", "input": [[0] * 28] * 28}] * draw(st.integers(30, 1200))
    return Probe("POST", "/classify", json.dumps({"items": items}).encode(), "application/json")


@st.composite
def bad_multipart(draw, digit_png: bytes) -> Probe:
    """Malformed or hostile multipart: odd boundaries, parts without names, text where a file belongs, a file
    where text belongs, traversal filenames, `pixels` fields of any JSON (deep nesting included)."""
    kind = draw(st.sampled_from(("mangled", "roles", "filename", "pixels", "random-parts")))
    if kind == "mangled":
        good = multipart(
            [("image", "d.png", "image/png", digit_png)],
            boundary=draw(st.sampled_from(("b", "x" * 200, "a b", "--", '"quoted"'))),
        )
        cut = draw(st.integers(0, len(good.content)))
        ctype = draw(st.sampled_from((good.content_type, "multipart/form-data", "multipart/form-data; boundary=")))
        return Probe("POST", draw(st.sampled_from(IMAGE_ROUTES)), good.content[:cut], ctype)
    if kind == "roles":
        parts = draw(
            st.sampled_from(
                [
                    [("image", None, None, b"not a file")],
                    [("model", "m.txt", None, b"cnn"), ("image", "d.png", "image/png", digit_png)],
                    [("image", "a.png", None, digit_png), ("image", "b.png", None, digit_png)],
                    [(None, "d.png", "image/png", digit_png)],
                    [("other", "d.png", "image/png", digit_png)],
                    [],
                ]
            )
        )
        return _route(multipart(parts), draw(st.sampled_from(IMAGE_ROUTES)))
    if kind == "filename":
        name = draw(
            st.sampled_from(("../../../../tmp/pwned.png", "/etc/passwd", "..\\..\\x.png", "a\x00b.png", "x" * 5000))
        )
        return _route(multipart([("image", name, "image/png", digit_png)]), draw(st.sampled_from(IMAGE_ROUTES)))
    if kind == "pixels":
        value = draw(
            st.sampled_from(("NaN", "[[1,2]]", "{}", '"x"', "[" * 50 + "]" * 50, "[" * 100_000, "1e999"))
            | JSON.map(json.dumps)
        )
        return multipart([("pixels", None, None, value.encode())])
    part = st.tuples(
        st.sampled_from((None, "image", "images", "model", "pixels", "x")),
        st.sampled_from((None, "f.png")),
        st.sampled_from((None, "image/png", "text/plain")),
        st.binary(max_size=200),
    )
    parts = draw(st.lists(part, max_size=5))
    return _route(multipart(parts), draw(st.sampled_from(IMAGE_ROUTES)))


@st.composite
def content_types(draw, digit_png: bytes) -> Probe:
    """A good PNG, or the same image as JSON, under a Content-Type the route may not expect."""
    b64 = base64.b64encode(digit_png).decode()
    bodies = (
        digit_png,
        b64.encode(),
        json.dumps({"image_base64": b64}).encode(),
        json.dumps({"images": [{"image_base64": b64}]}).encode(),
        digit_png + b"\x00" * 64,
    )
    return Probe(
        "POST", draw(st.sampled_from(POST_ROUTES)), draw(st.sampled_from(bodies)), draw(st.sampled_from(CONTENT_TYPES))
    )


@st.composite
def routes_and_methods(draw) -> Probe:
    """Wrong methods, unknown and traversal paths, odd query strings on the GET routes."""
    kind = draw(st.sampled_from(("method", "path", "query")))
    if kind == "method":
        method = draw(st.sampled_from(("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "POST")))
        return Probe(method, draw(st.sampled_from(POST_ROUTES + GET_ROUTES)))
    if kind == "path":
        if draw(st.booleans()):
            return Probe("GET", "/" + quote(draw(st.text(max_size=40)), safe="/%?=&"))
        path = draw(
            st.sampled_from(
                (
                    "/../../etc/passwd",
                    "/plots/../manifest.json",
                    "/plots/..%2fmanifest.json",
                    "/plots/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                    "/plots/..%2f..%2f..%2fetc%2fpasswd",
                    "/static/../../manifest.json",
                    "/manifest.json",
                    "/cnn.onnx",
                    "//etc/passwd",
                    "/plots/" + "a" * 5000,
                    "/exported/manifest.json",
                )
            )
        )
        return Probe("GET", path, expect=(400, 404, 405))  # never a file from disk
    params = draw(st.lists(st.tuples(st.sampled_from(("format", "model", "x")), st.text(max_size=50)), max_size=3))
    return Probe("GET", draw(st.sampled_from(GET_ROUTES)), params=tuple(params))


def all_attacks(*, max_pixels: int, max_body_bytes: int, digit_png: bytes) -> dict[str, st.SearchStrategy[Probe]]:
    """Every attack by name."""
    return {
        "random-bytes": random_bytes(),
        "pil-modes-and-formats": pil_images(),
        "number-images-extreme-values": number_images(),
        "multi-frame-files": multi_frame(),
        "extreme-sizes": extreme_sizes(max_pixels),
        "decompression-bombs": bombs(),
        "truncated-or-corrupted": damaged(),
        "wrong-json-shapes": json_shapes(),
        "nan-inf-out-of-range": nan_inf_range(),
        "unknown-models": unknown_models(digit_png),
        "path-traversal-models": traversal(digit_png),
        "oversized-bodies": oversized(max_body_bytes, digit_png),
        "bad-multipart": bad_multipart(digit_png),
        "content-types": content_types(digit_png),
        "routes-and-methods": routes_and_methods(),
    }
