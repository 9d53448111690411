"""Every registered model obeys the contract; Faster R-CNN's adapters and the transfer weights behave."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from training.export import to_onnx
from training.loop import model_loss
from training.models import build_model, get_spec, model_names
from training.models._transfer import WeightsUnavailable
from training.models.faster_rcnn import boxes_from_ink, detections_to_scores


def _build(name: str, **overrides) -> torch.nn.Module:
    """The model with its smoke-profile build settings (transfer models from scratch: no download in tests)."""
    spec = get_spec(name)
    kwargs = dict(spec.hparams("smoke").build)
    if spec.transfer:
        kwargs["weights"] = "none"
    torch.manual_seed(0)
    return build_model(name, **{**kwargs, **overrides})


def _digits(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, 28, 28) dark canvases with one bright, slightly noisy block each: digit-like enough for a detector."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.05
    for i in range(n):
        r, c = torch.randint(2, 10, (2,), generator=g).tolist()
        x[i, 0, r : r + 16, c : c + 10] = 0.7 + 0.3 * torch.rand(16, 10, generator=g)
    return x


@pytest.mark.parametrize("name", model_names())
def test_contract_scores_and_gradients(name: str) -> None:
    model = _build(name)
    x, y = _digits(2), torch.tensor([3, 7])
    with torch.no_grad():
        scores = model.eval()(x)
    assert scores.shape == (2, 10) and scores.dtype == torch.float32
    assert torch.isfinite(scores).all()
    model.train()
    loss = model_loss(model, x, y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", model_names())
def test_onnx_export_matches_pytorch(name: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    spec = get_spec(name)
    model = _build(name).eval()
    path = tmp_path / f"{name}.onnx"
    to_onnx(model, path, spec.export_batch)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed, n in enumerate([spec.export_batch] * 3 if spec.export_batch else [1, 3, 5]):
        x = _digits(n, seed=seed + 1)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"input": x.numpy()})
        assert got.shape == (n, 10)
        if name == "faster_rcnn":
            np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)
        else:
            assert np.abs(got - expected).max() < 1e-4


# Faster R-CNN's adapters


def test_boxes_from_ink_known_rectangle_and_empty_image() -> None:
    images = torch.zeros(3, 1, 28, 28)
    images[0, 0, 5:12, 8:20] = 1.0  # rows 5..11, columns 8..19
    images[2, 0, 0:3, 25:28] = 0.9  # touching the top-right corner
    images[2, 0, 20, 2] = 0.1  # faint: below the threshold, not ink
    boxes = boxes_from_ink(images, threshold=0.2)
    assert boxes.shape == (3, 4)
    assert boxes[0].tolist() == [8.0, 5.0, 20.0, 12.0]  # xyxy on pixel edges
    assert boxes[1].tolist() == [0.0, 0.0, 28.0, 28.0]  # no ink: the whole image
    assert boxes[2].tolist() == [25.0, 0.0, 28.0, 3.0]


def test_detections_to_scores_picks_best_box_per_digit() -> None:
    scores = detections_to_scores(torch.tensor([0.2, 0.9, 0.5]), torch.tensor([3, 3, 6]))  # labels = digit + 1
    assert scores.shape == (10,) and torch.isfinite(scores).all()
    assert scores.argmax().item() == 2
    assert scores[2] > scores[5] > scores[0]
    empty = detections_to_scores(torch.empty(0), torch.empty(0, dtype=torch.long))
    assert torch.isfinite(empty).all() and torch.all(empty == empty[0])  # no detection: a uniform row


def test_detections_to_scores_batched_ignores_invalid_detections() -> None:
    scores = torch.tensor([[0.9, 0.2], [0.95, 0.6]])
    labels = torch.tensor([[4, 2], [4, 8]])
    valid = torch.tensor([[False, True], [True, True]])  # image 0's 0.9 for digit 3 is padding, not a detection
    rows = detections_to_scores(scores, labels, valid)
    assert rows.shape == (2, 10)
    assert rows[0].argmax().item() == 1 and rows[0, 3] == rows[0, 0]  # digit 3 got nothing in image 0
    assert rows[1].argmax().item() == 3 and rows[1, 7] > rows[1, 0]


def test_faster_rcnn_without_detections_gives_finite_uniform_rows() -> None:
    model = _build("faster_rcnn").eval()
    model.detector.roi_heads.score_thresh = 1.1  # no detection can pass
    with torch.no_grad():
        scores = model(_digits(3))
    assert scores.shape == (3, 10) and torch.isfinite(scores).all()
    assert torch.all(scores == scores[0, 0])


def test_faster_rcnn_loss_under_eval_and_no_grad_restores_mode() -> None:
    model = _build("faster_rcnn").eval()
    with torch.no_grad():
        loss = model.loss(_digits(2), torch.tensor([1, 9]))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert not model.training and not model.detector.training


# Transfer weights: torchvision's hub-cache path, auto fallback, files, errors


@pytest.fixture
def hub_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $TORCH_HOME/hub/checkpoints, and no network (a missing file must fail, not download)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # restored afterwards
    torch.hub.set_dir(str(tmp_path / "hub"))

    def offline(url: str, *args, **kwargs) -> None:
        raise urllib.error.URLError(f"offline test: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    return checkpoints


@pytest.fixture(scope="module")
def fake_alexnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full torchvision AlexNet state dict (1000-way head) with features.0.weight all 0.25."""
    state = torchvision.models.alexnet().state_dict()
    state["features.0.weight"].fill_(0.25)
    path = tmp_path_factory.mktemp("weights") / Path(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url).name
    torch.save(state, path)
    return path


def test_imagenet_weights_come_from_torchvision_hub_cache(hub_checkpoints: Path, fake_alexnet: Path) -> None:
    (hub_checkpoints / fake_alexnet.name).symlink_to(fake_alexnet)
    model = build_model("alexnet", weights="imagenet", image_size=64)
    assert model.pretrained is True and model.weights_source == "imagenet:IMAGENET1K_V1"
    assert torch.all(model.net.features[0].weight == 0.25)
    assert model.net.classifier[6].out_features == 10
    assert len(model.feature_parameters()) == len(list(model.net.features.parameters())) > 0


def test_auto_without_weights_warns_and_trains_from_scratch(hub_checkpoints: Path) -> None:
    with pytest.warns(UserWarning, match="unavailable"):
        model = build_model("alexnet", weights="auto", image_size=64)
    assert model.pretrained is False and model.weights_source.startswith("none")
    assert model.feature_parameters() == []  # nothing pretrained to freeze


def test_imagenet_without_weights_raises_clear_error(hub_checkpoints: Path) -> None:
    with pytest.raises(WeightsUnavailable, match=r"IMAGENET1K_V1.*weights='none'"):
        build_model("alexnet", weights="imagenet", image_size=64)


def test_weights_path_full_or_10_way_head(fake_alexnet: Path, tmp_path: Path) -> None:
    model = build_model("alexnet", weights=str(fake_alexnet), image_size=64)
    assert model.pretrained is True and model.weights_source == f"file:{fake_alexnet.resolve()}"
    assert torch.all(model.net.features[0].weight == 0.25)
    # A file holding our own 10-way model (the "net." prefix included) loads its head too.
    torch.nn.init.constant_(model.net.classifier[6].bias, 0.5)
    own = tmp_path / "own.pt"
    torch.save(model.state_dict(), own)
    again = build_model("alexnet", weights=str(own), image_size=64)
    assert torch.all(again.net.classifier[6].bias == 0.5)


def test_bad_weights_paths_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("alexnet", weights=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="not a loadable state dict"):
        build_model("alexnet", weights=str(junk))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, wrong)
    with pytest.raises(ValueError, match="does not fit"):
        build_model("alexnet", weights=str(wrong))


def test_vgg16_from_scratch_gets_he_init() -> None:
    conv = build_model("vgg16", weights="none", image_size=32).net.features[5]  # 64 -> 128 channels, 3x3
    expected = (2 / (64 * 9)) ** 0.5  # He, fan_in (torchvision's own is fan_out: 1/sqrt(2) of this)
    assert abs(conv.weight.std().item() / expected - 1) < 0.05
    assert torch.all(conv.bias == 0)


def test_transfer_image_size_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 63"):
        build_model("alexnet", weights="none", image_size=32)
    with pytest.raises(ValueError, match="at least 32"):
        build_model("vgg16", weights="none", image_size=28)


@pytest.mark.slow
def test_vgg16_imagenet_weights_from_hub_cache(hub_checkpoints: Path) -> None:
    state = torchvision.models.vgg16().state_dict()  # 528 MB on disk
    state["features.0.weight"].fill_(0.25)
    torch.save(state, hub_checkpoints / Path(torchvision.models.VGG16_Weights.IMAGENET1K_V1.url).name)
    model = build_model("vgg16", weights="imagenet", image_size=32)
    assert model.pretrained is True and model.weights_source == "imagenet:IMAGENET1K_V1"
    assert torch.all(model.net.features[0].weight == 0.25)


def test_detector_classifies_without_rpn_nms_and_trains_with_it() -> None:
    model = build_model("faster_rcnn", width=8)
    rpn = model.detector.rpn
    seen = []
    original = rpn.filter_batched

    def spy(*args, **kwargs):
        seen.append(rpn.nms_thresh)
        return original(*args, **kwargs)

    rpn.filter_batched = spy
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    model.eval()
    model(x)
    model.loss(x, torch.tensor([1, 7]))
    assert seen == [1.0, 0.7]  # classification: no NMS between proposals; training: torchvision's default
    assert rpn.nms_thresh == 0.7  # restored afterwards


@pytest.mark.parametrize("name, build", [("vgg16", {"batch_norm": True}), ("alexnet", {})])
def test_small_head_keeps_imagenet_features_and_round_trips(name: str, build: dict, tmp_path: Path) -> None:
    full = build_model(name, weights="none", head="torchvision", **build)
    torch.nn.init.constant_(full.net.features[0].weight, 0.25)
    imagenet_like = tmp_path / "imagenet.pt"
    state = {k.removeprefix("net."): v for k, v in full.state_dict().items()}
    state["classifier.6.weight"], state["classifier.6.bias"] = torch.zeros(1000, 4096), torch.zeros(1000)
    torch.save(state, imagenet_like)
    small = build_model(name, weights=str(imagenet_like), head="small", **build)
    assert torch.all(small.net.features[0].weight == 0.25)  # the conv features came from the file
    assert small.net.classifier[-1].out_features == 10
    assert sum(p.numel() for p in small.net.classifier.parameters()) < 200_000  # not torchvision's 4096-wide one
    scores = small.eval()(torch.rand(3, 1, 28, 28))
    assert scores.shape == (3, 10) and torch.isfinite(scores).all()
    torch.nn.init.constant_(small.net.classifier[-1].bias, 0.5)
    own = tmp_path / "own.pt"
    torch.save(small.state_dict(), own)
    again = build_model(name, weights=str(own), head="small", **build)
    assert torch.all(again.net.classifier[-1].bias == 0.5)


def test_unknown_head_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown head 'big'; choose from torchvision, small"):
        build_model("alexnet", weights="none", head="big")
