"""benchmarks.versus' own logic: the TorchServe handler against a fake context, the one-model archive contents,
hiding httptools/uvloop from uvicorn, and the verdicts written from measured rows.

These test the benchmark's code itself (the brief of issue 16 asks for it), so this file imports `benchmarks`;
no helper is shared that way. Neither torchserve nor Java is needed: the handler never imports `ts`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.torchserve.handler import MNISTHandler, media_type
from benchmarks.torchserve.serve import one_model_export
from benchmarks.versus import hide_modules
from benchmarks.versus_report import goal_verdicts, http_gains, where_each_wins
from testkit.digits import digit_pngs


class FakeContext:
    """What TorchServe's Context gives a handler: the model dir, per-request headers, per-request status and type."""

    def __init__(self, model_dir: Path, headers: list[dict]) -> None:
        self.system_properties = {"model_dir": str(model_dir)}
        self.headers = headers
        self.status: dict[int, int] = {}
        self.types: dict[int, str] = {}

    def get_request_header(self, idx: int, key: str):
        return self.headers[idx].get(key)

    def get_all_request_header(self, idx: int) -> dict:
        return self.headers[idx]

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status[idx] = code

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.types[idx] = value


@pytest.fixture(scope="module")
def handler_dir(exported_dir, tmp_path_factory) -> Path:
    """What the archive holds: the default model's ONNX file and a manifest naming only it."""
    out = tmp_path_factory.mktemp("mar")
    one_model_export(exported_dir, "mlp", out)
    return out


def test_archive_holds_one_model_and_its_manifest(handler_dir, exported_dir):
    manifest = json.loads((handler_dir / "manifest.json").read_text())
    assert list(manifest["models"]) == ["mlp"] and manifest["default"] == "mlp" and "comparison" not in manifest
    entry = manifest["models"]["mlp"]
    assert (handler_dir / entry["file"]).read_bytes() == (exported_dir / entry["file"]).read_bytes()
    assert sorted(p.name for p in handler_dir.iterdir()) == sorted(["manifest.json", entry["file"]])


def test_unknown_model_is_refused_by_name(exported_dir, tmp_path):
    with pytest.raises(SystemExit, match="'nope' is not in"):
        one_model_export(exported_dir, "nope", tmp_path)


def test_handler_answers_like_predict(handler_dir):
    pngs = digit_pngs()
    handler = MNISTHandler()
    body_type = {"body": {"content-type": "image/png"}}
    context = FakeContext(handler_dir, [body_type, body_type, {"body": {"content-type": "application/json"}}])
    handler.initialize(context)
    assert list(handler.store.models) == ["mlp"]
    # TorchServe hands a JSON body over already parsed (decode_input_request): the handler takes that form too.
    pixels = [[0.0] * 28 for _ in range(28)]
    out = handler.handle(
        [{"body": pngs[3], "model": b"mlp"}, {"body": bytearray(pngs[7])}, {"body": {"pixels": pixels}}], context
    )
    answers = [json.loads(a) for a in out]
    for a in answers:
        assert set(a) >= {"digit", "probabilities", "top3", "model", "version", "batch_size"}
        assert a["model"] == "mlp" and a["batch_size"] == 1
        assert len(a["probabilities"]) == 10 and abs(sum(a["probabilities"]) - 1) < 1e-4
        assert a["digit"] == max(range(10), key=a["probabilities"].__getitem__)
    assert context.status == {} and context.types == {
        0: "application/json",
        1: "application/json",
        2: "application/json",
    }


def test_handler_bad_requests_get_their_own_status(handler_dir):
    handler = MNISTHandler()
    context = FakeContext(
        handler_dir,
        [
            {"body": {"content-type": "image/png"}},
            {},
            {"Content-Type": "image/png"},
            {"body": {"content-type": "image/png"}},
        ],
    )
    handler.initialize(context)
    out = handler.handle(
        [
            {"body": b"not an image"},
            {"nothing": b""},
            {"body": digit_pngs()[1]},
            {"body": digit_pngs()[2], "model": "nope"},
        ],
        context,
    )
    answers = [json.loads(a) for a in out]
    assert context.status == {0: 400, 1: 400, 3: 404}
    assert "not an image" in answers[0]["error"] and "request body" in answers[1]["error"]
    assert answers[2]["model"] == "mlp"  # one bad request does not spoil the others of the batch
    assert "unknown model 'nope'" in answers[3]["error"] and answers[3]["status"] == 404


def test_handler_refuses_a_body_over_the_limit_with_413(handler_dir):
    handler = MNISTHandler()
    context = FakeContext(handler_dir, [{"body": {"content-type": "image/png"}}])
    handler.initialize(context)
    answer = json.loads(handler.handle([{"body": b"\0" * (handler.settings.max_body_bytes + 1)}], context)[0])
    assert context.status == {0: 413} and "over the limit" in answer["error"]


def test_media_type_falls_back_to_the_request_header():
    context = FakeContext(Path("."), [{"body": {"content-type": "image/png; q=1"}}, {"CONTENT-TYPE": "Image/JPEG"}, {}])
    assert [media_type(context, i) for i in range(3)] == ["image/png", "image/jpeg", ""]


def test_handle_before_initialize_says_so():
    with pytest.raises(RuntimeError, match="before initialize"):
        MNISTHandler().handle([{"body": b""}], FakeContext(Path("."), [{}]))


def test_hidden_modules_make_uvicorn_fall_back_to_h11_and_asyncio(tmp_path):
    hidden = hide_modules(tmp_path / "hidden")
    probe = (
        "import uvicorn.protocols.http.auto as h, uvicorn.loops.auto as l, asyncio; "
        "print(h.AutoHTTPProtocol.__name__, type(l.auto_loop_factory()()).__module__)"
    )
    env = {**os.environ, "PYTHONPATH": str(hidden)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["H11Protocol", "asyncio.unix_events"]


def _row(mode: str, c: int, rps: float, p99: float, failed: int = 0, cpu: float = 5.0) -> dict:
    return {
        "mode": mode,
        "concurrency": c,
        "requests_per_second": rps,
        "latency_ms": {"p99": p99},
        "failed": failed,
        "server_cpu_ms_per_request": cpu,
    }


ROWS = [
    _row("bentoml-direct", 1, 80.0, 20.0),
    _row("reference", 1, 100.0, 15.0),
    _row("torchserve", 1, 60.0, 30.0),
    _row("bentoml-direct", 64, 70.0, 900.0),
    _row("reference", 64, 95.0, 700.0),
    _row("torchserve", 64, 75.0, 800.0, failed=2),
]


def test_goal_verdicts_compare_ours_with_torchserve_per_level():
    verdicts = goal_verdicts(ROWS, [1, 64])
    assert [v["met"] for v in verdicts] == [True, True, False, False]
    assert verdicts[2]["measured"] == [70.0, 75.0] and "concurrency 64" in verdicts[2]["goal"]
    h11 = goal_verdicts(ROWS + [_row("bentoml-direct:h11-asyncio", 1, 50.0, 40.0)], [1])
    assert [(v["goal"].split()[0], v["met"]) for v in h11] == [("bentoml-direct", True)] * 2 + [
        ("bentoml-direct:h11-asyncio", False)
    ] * 2  # each HTTP variant of the service is judged on its own
    failing = goal_verdicts([_row("bentoml-direct", 1, 90.0, 5.0, failed=1), _row("torchserve", 1, 60.0, 30.0)], [1])
    assert failing[0]["met"] is False  # faster but failing requests is not ahead


def test_where_each_wins_names_the_winners_from_the_numbers():
    lines = where_each_wins(ROWS, [1, 64])
    assert lines[0].startswith("- concurrency 1: most requests/s: **reference** (reference 100.0, bentoml-direct 80.0,")
    assert "lowest p99: **reference** (reference 15.0, bentoml-direct 20.0, torchserve 30.0 ms)" in lines[0]
    assert "failed requests: torchserve 2" in lines[1] and "failed" not in lines[0]
    assert where_each_wins(ROWS, [8]) == []  # a level nobody measured says nothing


def test_http_gains_pair_each_server_with_its_h11_run():
    rows = ROWS + [_row("bentoml-direct:h11-asyncio", 1, 64.0, 25.0, cpu=6.0)]
    gains = http_gains(rows, [1, 64], ":h11-asyncio")
    assert len(gains) == 1  # only the pair that was measured
    assert gains[0]["server"] == "bentoml-direct" and gains[0]["rps_gain"] == 0.25
    assert (gains[0]["p99_native"], gains[0]["p99_h11_asyncio"], gains[0]["cpu_ms_h11_asyncio"]) == (20.0, 25.0, 6.0)


def test_report_head_names_the_export_it_measured_and_an_image_only_when_one_was_measured(exported_dir):
    """A serving report's head names the export's run and checksums; the image line needs an image (this crashed
    `make versus` once, after its measurements)."""
    from benchmarks import harness as H

    report = H.environment(exported=exported_dir)
    lines = H.markdown_head(report, "t")
    measured = [line for line in lines if line.startswith("- measured:")]
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    assert len(measured) == 1 and all(m["sha256"][:12] in measured[0] for m in manifest["models"].values())
    assert not any(line.startswith("- image:") for line in lines)
    image = {**report["measured"], "image": "mnistserve:latest", "image_id": "sha256:abc", "repo_digests": []}
    assert "- image: `mnistserve:latest` sha256:abc" in H.measured_lines({"measured": image})
