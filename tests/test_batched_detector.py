"""The batched Faster R-CNN gives torchvision's results on the same weights, and its pieces do what they say."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import FasterRCNN
from torchvision.ops import batched_nms, box_iou

from training.models import build_model
from training.models._batched_rcnn import balanced_sample, greedy_nms, nms_by_group, paired_iou
from training.models.faster_rcnn import detector_settings

SAMPLE_ALL = 10**6  # a sampler this large takes every candidate: no randomness left to differ


def _digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, 28, 28) canvases with one bright block of random place and size each, and random labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.05
    for i in range(n):
        h, w = torch.randint(8, 20, (2,), generator=g).tolist()
        r, c = torch.randint(0, 28 - h, (1,), generator=g).item(), torch.randint(0, 28 - w, (1,), generator=g).item()
        x[i, 0, r : r + h, c : c + w] = 0.6 + 0.4 * torch.rand(h, w, generator=g)
    return x, torch.randint(0, 10, (n,), generator=g)


def _trained(image_size: int) -> torch.nn.Module:
    """A small detector after a few steps, so that its proposals and detections are no longer uniform."""
    torch.manual_seed(0)
    model = build_model("faster_rcnn", width=8, image_size=image_size, representation=32)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    for step in range(6):
        x, y = _digits(16, seed=100 + step)
        loss = model.loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("image_size", [56, 84])  # 84 is padded to 88 (size_divisible=8), as the gpu profile is
def test_batched_scores_equal_torchvision_path(image_size: int) -> None:
    model = _trained(image_size)
    x, _ = _digits(24, seed=7)
    with torch.no_grad():
        model.batched = True
        batched = model(x)
        model.batched = False
        reference = model(x)
    assert batched.shape == (24, 10)
    assert reference.std(1).min() > 0.1  # real detections, not the uniform row of an empty result
    torch.testing.assert_close(batched, reference, rtol=1e-5, atol=1e-5)


def test_batched_losses_and_gradients_equal_torchvision_path() -> None:
    model = _trained(56).train()
    for sampler in (model.detector.rpn.fg_bg_sampler, model.detector.roi_heads.fg_bg_sampler):
        sampler.batch_size_per_image = SAMPLE_ALL
    x, y = _digits(12, seed=3)
    results = []
    for batched in (True, False):
        model.batched = batched
        model.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_b, grads_b), (loss_t, grads_t) = results
    assert loss_b > 0
    torch.testing.assert_close(loss_b, loss_t, rtol=1e-5, atol=1e-6)
    for gb, gt in zip(grads_b, grads_t, strict=True):
        torch.testing.assert_close(gb, gt, rtol=1e-4, atol=1e-6)


def test_state_dict_is_torchvision_faster_rcnn_layout() -> None:
    """Checkpoints made before the batched path (a plain FasterRCNN inside DigitDetector) still load."""
    ours = build_model("faster_rcnn", width=8).detector
    plain = FasterRCNN(**detector_settings(width=8))
    assert list(ours.state_dict()) == list(plain.state_dict())
    ours.load_state_dict(plain.state_dict(), strict=True)
    assert torch.equal(ours.roi_heads.box_predictor.cls_score.weight, plain.roi_heads.box_predictor.cls_score.weight)


def _random_boxes(n: int, g: torch.Generator, side: float = 56.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * side * 0.7
    wh = 2 + torch.rand(n, 2, generator=g) * side * 0.3
    return torch.cat([xy, (xy + wh).clamp(max=side)], 1)


def test_greedy_nms_keeps_what_torchvision_nms_keeps() -> None:
    g = torch.Generator().manual_seed(0)
    rows, k = 40, 12
    boxes = _random_boxes(rows * k, g).view(rows, k, 4)
    scores = torch.rand(rows, k, generator=g)
    valid = torch.rand(rows, k, generator=g) > 0.2
    keep = greedy_nms(boxes, scores, valid, 0.5)
    row = torch.arange(rows)[:, None].expand(rows, k)
    expected = torch.zeros(rows * k, dtype=torch.bool)
    where = valid.reshape(-1).nonzero().squeeze(1)
    expected[where[batched_nms(boxes.view(-1, 4)[where], scores.view(-1)[where], row.reshape(-1)[where], 0.5)]] = True
    assert keep.sum() < valid.sum()  # something was suppressed
    assert torch.equal(keep.view(-1), expected)


def test_nms_by_group_keeps_groups_apart() -> None:
    g = torch.Generator().manual_seed(1)
    boxes = _random_boxes(600, g)
    scores = torch.rand(600, generator=g)
    groups = torch.randint(0, 150, (600,), generator=g)  # more groups than one lattice row holds
    kept = nms_by_group(boxes, scores, groups, 0.5, 56.0)
    expected = batched_nms(boxes, scores, groups, 0.5)
    assert torch.equal(kept.sort().values, expected.sort().values)


def test_paired_iou_is_the_diagonal_of_box_iou() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = _random_boxes(30, g), _random_boxes(30, g)
    assert torch.equal(paired_iou(a, b), box_iou(a, b).diagonal())


def test_balanced_sample_respects_counts_and_masks() -> None:
    torch.manual_seed(0)
    positive = torch.rand(50, 40) > 0.8
    negative = ~positive & (torch.rand(50, 40) > 0.3)
    pos, neg = balanced_sample(positive, negative, size=16, fraction=0.25)
    assert not (pos & ~positive).any() and not (neg & ~negative).any()
    assert torch.equal(pos.sum(1), positive.sum(1).clamp(max=4))
    assert torch.equal(neg.sum(1), torch.minimum(negative.sum(1), 16 - pos.sum(1)))
    few = torch.zeros(2, 40, dtype=torch.bool)
    few[0, :3] = True  # fewer positives than allowed: all of them
    assert balanced_sample(few, ~few, size=16, fraction=0.5)[0][0].sum() == 3
