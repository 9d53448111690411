"""Faster R-CNN (torchvision) trained to detect the digit's ink box; class scores come from its detections."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from training.models import Hparams, register_model
from training.models._batched_rcnn import BatchedFasterRCNN

NUM_CLASSES = 10
SCORE_EPS = 1e-4  # floor under log(): a class without any detection gets log(1e-4), never -inf
# No RPN NMS when classifying: the top proposals by objectness all sit on the digit anyway, and NMS's IoU cut was
# the one step where float noise between PyTorch and onnxruntime changed the proposal set (max probability
# difference on 1,000 test images, earlier checkpoint: 1.4e-3 with it, 2.7e-6 without; benchmarks/detector_parity.py,
# reports/export/). Training keeps torchvision's 0.7, which spreads the proposals the RoI head learns from.
TEST_RPN_NMS = 1.0


def boxes_from_ink(images: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """(N, 1, H, W) in [0, 1] -> (N, 4) xyxy pixel-edge box around pixels > threshold; no ink -> the whole image."""
    _, _, h, w = images.shape
    ink = images[:, 0] > threshold  # (N, H, W)
    cols, rows = ink.any(1), ink.any(2)  # (N, W), (N, H)
    # argmax of a bool row finds its first True; on the flipped row, the last one.
    x0, y0 = cols.int().argmax(1), rows.int().argmax(1)
    x1, y1 = w - cols.flip(1).int().argmax(1), h - rows.flip(1).int().argmax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).to(images.dtype)  # (N, 4)
    full = torch.tensor([0, 0, w, h], dtype=images.dtype, device=images.device)
    return torch.where(cols.any(1, keepdim=True), boxes, full)


def detections_to_scores(scores: Tensor, labels: Tensor, valid: Tensor | None = None, eps: float = SCORE_EPS) -> Tensor:
    """Detections (N, D) scores and labels 1..10 (and which are real) -> (N, 10) log(best score of that digit + eps).

    log keeps the order of the detection scores, and softmax over the row gives each digit's best score
    divided by their sum; with no detection at all every digit gets log(eps), a uniform row.
    """
    digits = torch.arange(1, NUM_CLASSES + 1, device=labels.device)
    hit = labels[..., None] == digits  # (..., D, 10)
    if valid is not None:
        hit = hit & valid[..., None]
    per_digit = torch.where(hit, scores[..., None], 0.0)
    floor = per_digit.new_zeros(*per_digit.shape[:-2], 1, NUM_CLASSES)  # covers D = 0
    return torch.log(torch.cat([floor, per_digit], -2).amax(-2) + eps)


@contextmanager
def _mode(module: nn.Module, training: bool) -> Iterator[None]:
    """Run `module` in train or eval mode for a while, then restore it."""
    was = module.training
    module.train(training)
    try:
        yield
    finally:
        module.train(was)


@contextmanager
def _rpn_nms(detector: FasterRCNN, threshold: float) -> Iterator[None]:
    """Use another RPN NMS threshold for a while, then restore it."""
    was = detector.rpn.nms_thresh
    detector.rpn.nms_thresh = threshold
    try:
        yield
    finally:
        detector.rpn.nms_thresh = was


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    # GroupNorm, not BatchNorm: no running statistics, so `loss` may flip the detector to train mode under eval.
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True))


def _backbone(width: int) -> nn.Sequential:
    """Four 3x3 convs, stride 4 overall: a 56 px image gives a 14x14 feature map with 2*width channels."""
    w = width
    # Striding at once: the upsampled 56 px image holds no more detail than the 28 px one.
    net = nn.Sequential(_conv(1, w, 2), _conv(w, w), _conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
    net.out_channels = 2 * w  # what FasterRCNN reads to size the RPN and RoI heads
    return net


class DigitDetector(nn.Module):
    """A Faster R-CNN behind the model contract: forward gives (N, 10) scores, loss the summed detection losses.

    `batched` (the default) runs the detector's batched tensor path; False runs torchvision's own per-image path
    on the same weights, kept for comparison (tests, benchmarks/train_speed.py --detector).
    """

    def __init__(self, detector: BatchedFasterRCNN, ink_threshold: float = 0.2, batched: bool = True) -> None:
        super().__init__()
        self.detector = detector
        self.ink_threshold = ink_threshold
        self.batched = batched

    def forward(self, x: Tensor) -> Tensor:
        """(N, 1, 28, 28) in [0, 1] -> (N, 10) scores from the detections (see `detections_to_scores`)."""
        with _mode(self.detector, False), _rpn_nms(self.detector, TEST_RPN_NMS):
            if self.batched:
                return detections_to_scores(*self.detector.batched_detections(x))
            found = self.detector(list(x))
        return torch.stack([detections_to_scores(d["scores"], d["labels"]) for d in found])

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Sum of the RPN and box-head losses against one ink box per image, labelled digit + 1 (0 = background)."""
        boxes = boxes_from_ink(x, self.ink_threshold)
        with _mode(self.detector, True):  # also under evaluate's no_grad, so validation reports the same loss
            if self.batched:
                losses = self.detector.batched_losses(x, boxes, y + 1)
            else:
                targets = [{"boxes": b[None], "labels": (label + 1)[None]} for b, label in zip(boxes, y, strict=True)]
                losses = self.detector(list(x), targets)
        return sum(losses.values())


def detector_settings(*, width: int = 32, image_size: int = 56, representation: int = 128) -> dict:
    """FasterRCNN's keyword arguments for a digit on a 28 px canvas, upsampled to `image_size`."""
    scale = image_size / 28
    # Ink boxes span about 4-20 px wide and 14-20 px tall at 28 px; anchors are tall or square.
    sizes = tuple(round(s * scale) for s in (10, 16, 24))
    channels = 2 * width
    return dict(
        backbone=_backbone(width),
        min_size=image_size,
        max_size=image_size,
        size_divisible=8,  # no padding to 32: 56 stays 56
        image_mean=[0.1307],
        image_std=[0.3081],  # MNIST statistics on the 1-channel input
        rpn_anchor_generator=AnchorGenerator(sizes=(sizes,), aspect_ratios=((1.0, 2.0),)),
        # One object per image: a few proposals are plenty (the defaults are 2000/1000).
        rpn_pre_nms_top_n_train=100,
        rpn_post_nms_top_n_train=20,
        rpn_pre_nms_top_n_test=50,
        rpn_post_nms_top_n_test=10,
        rpn_batch_size_per_image=64,
        # One sample per bin: RoIs span only ~10 feature cells, and RoIAlign's backward is costly on the CPU.
        box_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=1),
        box_head=TwoMLPHead(channels * 7 * 7, representation),
        box_predictor=FastRCNNPredictor(representation, NUM_CLASSES + 1),
        box_batch_size_per_image=16,
        box_positive_fraction=0.5,  # half of the sampled RoIs teach the digit
        # Keep every class's candidate (no 0.05 cut), so each digit gets a score from its best box.
        box_score_thresh=0.0,
        box_detections_per_img=50,
    )


def build_detector(*, width: int = 32, image_size: int = 56, representation: int = 128) -> DigitDetector:
    """A small Faster R-CNN (batched) sized for a digit on a 28 px canvas, upsampled to `image_size`."""
    return DigitDetector(
        BatchedFasterRCNN(**detector_settings(width=width, image_size=image_size, representation=representation))
    )


@register_model(
    "faster_rcnn",
    summary="Faster R-CNN (torchvision) on ink boxes, small GroupNorm backbone at 56 px; scores from detections",
    loss_kind="detection (sum of Faster R-CNN losses)",
    profiles={
        "smoke": Hparams(epochs=1, batch_size=32, lr=2e-3, train_subset=512, eval_subset=256, build={"width": 16}),
        # On the CPU the convolutions and RoIAlign's backward, not Python, set the pace (reports/detector/): a
        # subset, and small batches for more updates per image seen.
        "cpu": Hparams(epochs=3, batch_size=32, lr=2e-3, train_subset=25_000, build={"width": 32}),
        # Six epochs, where torchvision's per-image path allowed one in gpu.sh's budget (424 images/s on an H100,
        # reports/gpu/); the batched path's GPU speed is not measured yet (benchmarks/detector_speed.py in gpu.sh).
        "gpu": Hparams(epochs=6, batch_size=128, lr=2e-3, build={"width": 64, "image_size": 84, "representation": 256}),
    },
)
def faster_rcnn(*, width: int = 32, image_size: int = 56, representation: int = 128) -> nn.Module:
    """Build the Faster R-CNN digit detector."""
    return build_detector(width=width, image_size=image_size, representation=representation)
