"""Fast fuzzing for `make test`: property tests of `serving.preprocess`, then a few hundred hostile requests
(`testkit.attacks`, the strategies benchmarks/fuzz.py runs at length) against the live `bentoml serve`."""

from __future__ import annotations

import base64
import io
import sys
import warnings

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnistserve.settings import Settings
from serving import errors
from serving import preprocess as P
from serving.store import ModelStore
from testkit.attacks import (
    EXTREMES,
    FORMATS,
    MAGIC,
    MODES,
    NUMBER_KINDS,
    TRAVERSAL,
    all_attacks,
    canvas,
    encode_image,
    headers_declaring,
    in_mode,
    multipart,
    number_image,
    png_declaring,
    violation,
)
from testkit.digits import digit_pngs
from testkit.exported import untrained, write_exported

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about every corrupt file it reads
LIMITS = Settings.from_env({})
MAX_PIXELS = 1_000_000  # the live server's limit (conftest.LIVE_ENV): small, so that the largest images stay quick
DIGIT = digit_pngs()[7]
CLIENT_ERRORS = (400, 413, 422)


def assert_model_input_or_client_error(data: bytes) -> None:
    """The preprocessing contract: a (1, 28, 28) float32 array in [0, 1], or a ServingError with a 4xx status."""
    try:
        x = P.from_bytes(data, max_pixels=MAX_PIXELS)
    except errors.ServingError as exc:
        assert exc.status in CLIENT_ERRORS, (type(exc).__name__, exc.status, str(exc))
        return
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0


# -- serving.preprocess ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", sorted(EXTREMES))
def test_number_images_with_extreme_values_give_a_model_input_or_a_client_error(pattern):
    # float TIFFs with -1e38 backgrounds once overflowed to NaN and answered 500: every kind, format and size here
    for mode, dtype, formats in NUMBER_KINDS:
        for size in ((28, 28), (1, 1), (600, 20)):
            for fmt in formats:
                buffer = io.BytesIO()
                number_image(pattern, mode, dtype, size).save(buffer, fmt)
                assert_model_input_or_client_error(buffer.getvalue())


def test_a_float_digit_on_a_huge_negative_background_is_still_read_as_its_digit():
    buffer = io.BytesIO()
    number_image("huge-negative-background", "F", np.float32, (28, 28)).save(buffer, "TIFF")
    x = P.from_bytes(buffer.getvalue(), max_pixels=MAX_PIXELS)
    assert x.max() == 1.0 and 0.02 < (x > 0.5).mean() < 0.5  # ink stays ink: the -1e38 paper did not swamp it


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "WEBP", "PNG"])
def test_multi_frame_files_are_read_from_their_first_frame(fmt):
    first = canvas(40, 40, "stroke", 0)
    frames = [first, Image.new("L", (40, 40), 0), canvas(40, 40, "noise", 1)]
    buffer = io.BytesIO()
    first.save(buffer, fmt, save_all=True, append_images=frames[1:])
    alone = io.BytesIO()
    first.save(alone, "PNG")
    x = P.from_bytes(buffer.getvalue(), max_pixels=MAX_PIXELS)
    reference = P.from_bytes(alone.getvalue(), max_pixels=MAX_PIXELS)
    assert np.abs(x - reference).max() < 0.15  # the first frame, not the black or the noisy one (WebP is lossy)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from((b"", *MAGIC)), st.binary(max_size=1024))  # behind a magic number, bytes reach the decoders
def test_any_bytes_give_a_model_input_or_a_client_error(magic, data):
    assert_model_input_or_client_error(magic + data)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(MODES),
    st.sampled_from(FORMATS),
    st.integers(1, 70),
    st.integers(1, 70),
    st.sampled_from(("noise", "stroke", "flat")),
    st.integers(0, 2**16),
)
def test_any_mode_format_and_size_give_a_model_input_or_a_client_error(mode, fmt, width, height, pattern, seed):
    data, _ = encode_image(in_mode(canvas(width, height, pattern, seed), mode, seed), fmt)
    assert_model_input_or_client_error(data)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(FORMATS[:14]), st.data())
def test_truncated_or_corrupted_images_give_a_model_input_or_a_client_error(fmt, data):
    encoded, _ = encode_image(canvas(40, 40, "stroke", 0), fmt)
    cut = data.draw(st.integers(0, len(encoded)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(cut - 1, 0)), st.integers(0, 255)), max_size=4))
    damaged = bytearray(encoded[:cut])
    for pos, value in flips:
        if pos < len(damaged):
            damaged[pos] = value
    assert_model_input_or_client_error(bytes(damaged))


@pytest.mark.parametrize("size", [(1, 1), (1, 3000), (3000, 1), (1000, 1000), (1000 * 1000, 1)])
def test_extreme_shapes_inside_the_limit_are_read(size):
    image = Image.new("1", size, 1)
    image.putpixel((0, 0), 0)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    assert_model_input_or_client_error(buffer.getvalue())


@pytest.mark.parametrize("size", [(30000, 30000), (65535, 65535), (2**31 - 1, 1), (1001, 1000)])
def test_decompression_bombs_are_refused_from_the_header(size):
    files = [png_declaring(*size, colour, depth) for colour, depth in ((0, 8), (2, 8), (6, 16), (0, 1))]
    files += list(headers_declaring(*size).values())
    for data in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(errors.ServingError) as info:
                P.from_bytes(data, max_pixels=MAX_PIXELS)
        assert info.value.status in (400, 413)
    with pytest.raises(errors.TooLarge):
        P.from_bytes(png_declaring(*size), max_pixels=MAX_PIXELS)


SPECIAL = st.sampled_from([float("nan"), float("inf"), -float("inf"), -1.0, -0.0, 255.0001, 256.0, 1e308, 5e-324])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 27), st.integers(0, 27), SPECIAL), min_size=1, max_size=5),
    st.integers(26, 29),
    st.integers(26, 29),
)
def test_arrays_with_nan_infinity_or_out_of_range_values_are_refused(cells, rows, cols):
    grid = np.zeros((rows, cols))
    for r, c, v in cells:
        if r < rows and c < cols:
            grid[r, c] = v
    valid = grid.shape == (28, 28) and np.isfinite(grid).all() and grid.min() >= 0 and grid.max() <= 255
    if valid:
        x = P.from_array(grid.tolist())
        assert x.shape == (1, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    else:
        with pytest.raises(errors.BadInput):
            P.from_array(grid.tolist())


def test_model_names_never_reach_the_file_system(tmp_path_factory):
    """Looking a name up opens no file at all: the store only consults the manifest's names, in memory."""
    directory = tmp_path_factory.mktemp("exported-store")
    write_exported(directory, untrained())
    store = ModelStore(directory)
    opened: list[str] = []
    watching = [True]

    def hook(event: str, args: tuple) -> None:
        if watching[0] and event in ("open", "os.listdir", "os.scandir", "os.stat"):
            opened.append(f"{event} {args[0]!r}")

    sys.addaudithook(hook)  # audit hooks cannot be removed: this one stops recording when the test ends
    try:
        for name in (*TRAVERSAL, str(directory / "manifest.json"), "tampered", "faster_rcnn"):
            with pytest.raises(errors.UnknownModel) as info:
                store.get(name)
            assert info.value.status == 404
    finally:
        watching[0] = False
    assert opened == []


# -- a live server -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http(live_server):
    with live_server.client(timeout=60.0) as client:
        yield client


ATTACKS = all_attacks(max_pixels=MAX_PIXELS, max_body_bytes=LIMITS.max_body_bytes, digit_png=DIGIT)
EXAMPLES = {"extreme-sizes": 8, "oversized-bodies": 8, "decompression-bombs": 15}  # the slow ones; others 25


def send(http: httpx.Client, probe) -> tuple[str, str]:
    try:
        r = http.request(
            probe.method, probe.path, content=probe.body(), headers=probe.headers(), params=list(probe.params)
        )
    except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError):
        return "not-sent", ""  # our own client refused to send it
    except httpx.HTTPError as exc:
        return f"transport:{type(exc).__name__}", str(exc)
    return str(r.status_code), r.text


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_hostile_requests_get_no_server_error(http, attack):
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES.get(attack, 25),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(ATTACKS[attack])
    def probe_once(probe):
        status, text = send(http, probe)
        if status == "not-sent":
            return
        if problem := violation(probe, status, text):
            found.append(f"{problem}: {status} for {probe.summary()} -> {text[:200]!r}")

    probe_once()
    assert found == [], "\n".join(found[:5])


@pytest.mark.parametrize("name", TRAVERSAL + ("../" * 6 + "etc/passwd",))
def test_path_traversal_model_names_are_404_in_every_form(http, name):
    b64 = base64.b64encode(DIGIT).decode()
    forms = [
        dict(params={"model": name}, content=DIGIT, headers={"content-type": "image/png"}),
        dict(json={"image_base64": b64, "model": name}),
        dict(files={"image": ("d.png", DIGIT, "image/png")}, data={"model": name}),
    ]
    for form in forms:
        r = http.post("/predict", **form)
        assert r.status_code == 404, (form.keys(), r.status_code, r.text)
        assert "served models" in r.json()["error"] and "root:" not in r.text
    r = http.post("/predict_batch", json={"images": [{"image_base64": b64}], "model": name})
    assert r.status_code == 404, r.text
    items = http.post("/classify", json={"items": [{"model": name, "input": [[0.0] * 28] * 28}]}).json()
    assert [i["status"] for i in items] == [404]


def test_deeply_nested_multipart_pixels_is_a_client_error(http):
    probe = multipart([("pixels", None, None, b"[" * 100_000)])
    r = http.post(probe.path, content=probe.content, headers=probe.headers())
    assert r.status_code == 400, r.status_code


def test_the_server_still_answers_after_the_fuzzing(live_server, http):
    assert live_server.alive()
    assert http.get("/readyz").status_code == 200
    r = http.post("/predict", content=DIGIT, headers={"content-type": "image/png"})
    assert r.status_code == 200 and len(r.json()["probabilities"]) == 10
