"""torchvision's Faster R-CNN with its per-image Python loops replaced by batched tensor code.

Every image of a batch has the same size and exactly one ground-truth box (the digit), so anchors, proposals,
sampled RoIs and detections fit (N, K) tensors with a validity mask instead of lists of ragged tensors.
The modules are torchvision's own (same parameters, same state_dict keys): only the glue between them changes.
torchvision's list-based path stays reachable through `FasterRCNN.forward`, and the tests compare the two on
the same weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork, concat_box_prediction_layers
from torchvision.ops import boxes as box_ops
from torchvision.ops import roi_align

MIN_DETECTION_SIDE = 1e-2  # torchvision's RoIHeads.postprocess_detections drops boxes thinner than this
LATTICE = 64  # groups per lattice row in `nms_by_group`


def _area(boxes: Tensor) -> Tensor:
    """Areas of (..., 4) xyxy boxes, computed as `box_ops.box_area` does."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of boxes (..., 4) paired by broadcasting, in the same order of operations as `box_ops.box_iou`."""
    lt = torch.max(a[..., :2], b[..., :2])
    wh = (torch.min(a[..., 2:], b[..., 2:]) - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (_area(a) + _area(b) - inter)


def nms_by_group(boxes: Tensor, scores: Tensor, groups: Tensor, iou: float, side: float) -> Tensor:
    """Greedy NMS within each group in one call; boxes lie in [0, side] and are kept apart by group.

    torchvision's `batched_nms` shifts each group along the diagonal by group x (largest coordinate + 1), and on
    the CPU loops over the groups in Python above 4,000 boxes. Here the groups sit on a lattice LATTICE wide
    instead, so coordinates stay small: for 64 images x 10 classes under 3,700 px (float32 keeps ~2e-4 px there),
    where the diagonal would reach 36,000 px and blur IoUs near the threshold. A fixed width, not one from the
    data, keeps the ONNX graph free of data-dependent constants.
    """
    shift = torch.stack([groups % LATTICE, groups // LATTICE], 1).to(boxes.dtype) * (side + 1)
    return box_ops.nms(boxes + shift.repeat(1, 2), scores, iou)


def random_pick(mask: Tensor, count: Tensor) -> Tensor:
    """Per row of `mask` (N, K), `count[n]` of its True entries chosen uniformly at random."""
    keys = torch.rand(mask.shape, device=mask.device).masked_fill(~mask, 2.0)  # unmasked ones sort last
    rank = keys.argsort(1).argsort(1)
    return mask & (rank < count[:, None])


def balanced_sample(positive: Tensor, negative: Tensor, size: int, fraction: float) -> tuple[Tensor, Tensor]:
    """`BalancedPositiveNegativeSampler` for all images at once: up to size x fraction positives, negatives after."""
    num_pos = positive.sum(1).clamp(max=int(size * fraction))
    num_neg = torch.minimum(negative.sum(1), size - num_pos)
    return random_pick(positive, num_pos), random_pick(negative, num_neg)


def keep_mask(boxes: Tensor, scores: Tensor, valid: Tensor, groups: Tensor, iou: float, side: float) -> Tensor:
    """`valid` (N, K) narrowed to the boxes that survive NMS within their group."""
    flat = valid.reshape(-1)
    where = flat.nonzero().squeeze(1)
    kept = nms_by_group(boxes.reshape(-1, 4)[where], scores.reshape(-1)[where], groups.reshape(-1)[where], iou, side)
    out = torch.zeros_like(flat)
    out[where[kept]] = True
    return out.view(valid.shape)


def greedy_nms(boxes: Tensor, scores: Tensor, valid: Tensor, iou: float) -> Tensor:
    """`valid` (G, K) narrowed to what greedy NMS keeps within each row of boxes (G, K, 4): exact, vectorised.

    Rows are short (a class's candidates in one image), so walking their K ranks is K small steps for all rows at
    once, where one `nms` call over every row would compare every box with every other (quadratic in G x K).
    """
    order = scores.masked_fill(~valid, float("-inf")).argsort(1, descending=True)
    ranked = gather_rows(boxes, order)
    over = paired_iou(ranked[:, :, None], ranked[:, None, :]) > iou  # (G, K, K): rank i overlaps rank j
    k = boxes.shape[1]
    later = torch.arange(k, device=boxes.device)
    keep = gather_rows(valid, order)
    for i in range(k):  # a box still kept at rank i suppresses the lower-ranked boxes it overlaps
        keep = keep & ~(keep[:, i : i + 1] & over[:, i] & (later > i))
    return torch.zeros_like(valid).scatter(1, order, keep)


def top_valid(scores: Tensor, valid: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per row, the `k` best valid scores in decreasing order: (scores, their column, still valid)."""
    top, column = scores.masked_fill(~valid, float("-inf")).topk(min(k, scores.shape[1]), dim=1)
    return top, column, torch.isfinite(top)


def gather_rows(values: Tensor, column: Tensor) -> Tensor:
    """values (N, K, ...) picked at column (N, M) -> (N, M, ...)."""
    index = column.reshape(*column.shape, *([1] * (values.dim() - 2))).expand(*column.shape, *values.shape[2:])
    return values.gather(1, index)


class BatchedRPN(RegionProposalNetwork):
    """torchvision's region proposal network, with proposals and losses computed for the whole batch at once."""

    @classmethod
    def like(cls, rpn: RegionProposalNetwork) -> BatchedRPN:
        """The same network (its modules shared, its settings copied) with the batched methods."""
        return cls(
            rpn.anchor_generator,
            rpn.head,
            rpn.proposal_matcher.high_threshold,
            rpn.proposal_matcher.low_threshold,
            rpn.fg_bg_sampler.batch_size_per_image,
            rpn.fg_bg_sampler.positive_fraction,
            rpn._pre_nms_top_n,
            rpn._post_nms_top_n,
            rpn.nms_thresh,
            rpn.score_thresh,
        )

    def anchors_for(self, images: Tensor, size: tuple[int, int], feature: Tensor) -> Tensor:
        """(A, 4) anchors; images of one size share them, where torchvision builds a copy per image."""
        return self.anchor_generator(ImageList(images[:1], [size]), [feature[:1]])[0]

    def filter_batched(self, proposals: Tensor, objectness: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """`filter_proposals` for (N, A, 4) proposals: top-k, clip, drop tiny boxes, NMS per image, top-n."""
        n = proposals.shape[0]
        logits, column = objectness.detach().topk(min(self.pre_nms_top_n(), objectness.shape[1]), dim=1)
        boxes = box_ops.clip_boxes_to_image(gather_rows(proposals, column), size)
        scores = torch.sigmoid(logits)
        sides = boxes[..., 2:] - boxes[..., :2]
        valid = (sides >= self.min_size).all(-1) & (scores >= self.score_thresh)
        # An IoU can never exceed 1, so NMS at 1.0 keeps every box (the detector classifies that way).
        if self.nms_thresh < 1.0:
            image = torch.arange(n, device=boxes.device)[:, None].expand_as(scores)
            valid = keep_mask(boxes, scores, valid, image, self.nms_thresh, float(max(size)))
        scores, column, valid = top_valid(scores, valid, self.post_nms_top_n())
        return gather_rows(boxes, column), valid

    def losses_batched(
        self, objectness: Tensor, deltas: Tensor, anchors: Tensor, gt_boxes: Tensor
    ) -> dict[str, Tensor]:
        """torchvision's RPN losses against one ground-truth box per image (N, 4)."""
        iou = box_ops.box_iou(gt_boxes, anchors)  # (N, A): each row is torchvision's one-row match matrix
        matcher = self.proposal_matcher
        # Matcher with allow_low_quality_matches: >= high is foreground, < low background, in between ignored,
        # and the anchors of highest IoU with the box (ties included) are foreground whatever their IoU.
        foreground = (iou >= matcher.high_threshold) | (iou == iou.amax(1, keepdim=True))
        background = (iou < matcher.low_threshold) & ~foreground
        pos, neg = balanced_sample(
            foreground, background, self.fg_bg_sampler.batch_size_per_image, self.fg_bg_sampler.positive_fraction
        )
        sampled = pos | neg
        n, a = iou.shape
        targets = self.box_coder.encode_single(
            gt_boxes[:, None].expand(n, a, 4).reshape(-1, 4), anchors.repeat(n, 1)
        ).view(n, a, 4)
        box_loss = F.smooth_l1_loss(deltas[pos], targets[pos], beta=1 / 9, reduction="sum") / sampled.sum()
        objectness_loss = F.binary_cross_entropy_with_logits(
            objectness[sampled], foreground[sampled].to(objectness.dtype)
        )
        return {"loss_objectness": objectness_loss, "loss_rpn_box_reg": box_loss}

    def propose(
        self, images: Tensor, size: tuple[int, int], feature: Tensor, gt_boxes: Tensor | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(N, P, 4) proposals, (N, P) valid mask, and the losses when `gt_boxes` (N, 4) is given."""
        n = feature.shape[0]
        objectness, deltas = concat_box_prediction_layers(*self.head([feature]))
        objectness, deltas = objectness.view(n, -1), deltas.view(n, -1, 4)
        anchors = self.anchors_for(images, size, feature)
        # Faster R-CNN does not backpropagate through the proposals' coordinates.
        proposals = self.box_coder.decode_single(deltas.detach().reshape(-1, 4), anchors.repeat(n, 1)).view(n, -1, 4)
        proposals, valid = self.filter_batched(proposals, objectness, size)
        losses = {} if gt_boxes is None else self.losses_batched(objectness, deltas, anchors, gt_boxes)
        return proposals, valid, losses


class BatchedRoIHeads(RoIHeads):
    """torchvision's box head (RoIAlign, box head, predictor) with sampling and post-processing batched."""

    @classmethod
    def like(cls, heads: RoIHeads) -> BatchedRoIHeads:
        """The same heads (their modules shared, their settings copied) with the batched methods."""
        return cls(
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            heads.proposal_matcher.high_threshold,
            heads.proposal_matcher.low_threshold,
            heads.fg_bg_sampler.batch_size_per_image,
            heads.fg_bg_sampler.positive_fraction,
            heads.box_coder.weights,
            heads.score_thresh,
            heads.nms_thresh,
            heads.detections_per_img,
        )

    def classify_boxes(
        self, feature: Tensor, boxes: Tensor, image: Tensor, size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """Class logits and box regression of (K, 4) boxes on the images `image` (K,): one RoIAlign for all."""
        pool = self.box_roi_pool
        # MultiScaleRoIAlign's scale for one feature map: a power of two, as torchvision infers it.
        scale = 2.0 ** round(math.log2(feature.shape[-2] / size[0]))
        rois = torch.cat([image[:, None].to(boxes.dtype), boxes], 1)
        pooled = roi_align(feature, rois, pool.output_size, spatial_scale=scale, sampling_ratio=pool.sampling_ratio)
        return self.box_predictor(self.box_head(pooled))

    def losses_batched(
        self,
        feature: Tensor,
        proposals: Tensor,
        valid: Tensor,
        size: tuple[int, int],
        gt_boxes: Tensor,
        gt_labels: Tensor,
    ) -> dict[str, Tensor]:
        """torchvision's box-head losses: the ground truth joins the proposals, then balanced sampling per image."""
        n = proposals.shape[0]
        proposals = torch.cat([proposals, gt_boxes[:, None].to(proposals.dtype)], 1)
        valid = torch.cat([valid, valid.new_ones(n, 1)], 1)
        iou = paired_iou(proposals, gt_boxes[:, None].expand_as(proposals))
        matcher = self.proposal_matcher  # without low-quality matches here
        foreground = valid & (iou >= matcher.high_threshold)
        background = valid & (iou < matcher.low_threshold)
        pos, neg = balanced_sample(
            foreground, background, self.fg_bg_sampler.batch_size_per_image, self.fg_bg_sampler.positive_fraction
        )
        image, slot = (pos | neg).nonzero(as_tuple=True)
        boxes = proposals[image, slot]
        labels = torch.where(pos[image, slot], gt_labels[image], torch.zeros_like(gt_labels[image]))
        targets = self.box_coder.encode_single(gt_boxes[image].to(boxes.dtype), boxes)
        logits, regression = self.classify_boxes(feature, boxes, image, size)
        classifier, box = fastrcnn_loss(logits, regression, [labels], [targets])
        return {"loss_classifier": classifier, "loss_box_reg": box}

    def detect(
        self, feature: Tensor, proposals: Tensor, valid: Tensor, size: tuple[int, int]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """`postprocess_detections` for (N, P) proposals: per image the best detections' (scores, labels, valid)."""
        n, p = valid.shape
        image = torch.arange(n, device=proposals.device)[:, None].expand(n, p).reshape(-1)
        logits, regression = self.classify_boxes(feature, proposals.reshape(-1, 4), image, size)
        classes = logits.shape[-1]
        boxes = self.box_coder.decode(regression, [proposals.reshape(-1, 4)])  # (N*P, classes, 4)
        boxes = box_ops.clip_boxes_to_image(boxes, size).view(n, p, classes, 4)[:, :, 1:]  # background dropped
        scores = F.softmax(logits, -1).view(n, p, classes)[:, :, 1:]
        labels = torch.arange(1, classes, device=logits.device).expand(n, p, classes - 1)
        sides = boxes[..., 2:] - boxes[..., :2]
        ok = valid[:, :, None] & (scores > self.score_thresh) & (sides >= MIN_DETECTION_SIDE).all(-1)
        # NMS within each image and class: rows of P candidates, (N, P, C) -> (N * C, P).
        rows = classes - 1
        ok = (
            greedy_nms(
                boxes.transpose(1, 2).reshape(-1, p, 4),
                scores.transpose(1, 2).reshape(-1, p),
                ok.transpose(1, 2).reshape(-1, p),
                self.nms_thresh,
            )
            .view(n, rows, p)
            .transpose(1, 2)
        )
        scores, labels, ok = scores.reshape(n, -1), labels.reshape(n, -1), ok.reshape(n, -1)
        scores, column, ok = top_valid(scores, ok, self.detections_per_img)
        return scores, labels.gather(1, column), ok


class BatchedFasterRCNN(FasterRCNN):
    """FasterRCNN whose `batched_*` methods take an (N, C, H, W) batch of same-sized images and no Python loops."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rpn = BatchedRPN.like(self.rpn)
        self.roi_heads = BatchedRoIHeads.like(self.roi_heads)

    def prepare(self, images: Tensor) -> tuple[Tensor, tuple[int, int], float]:
        """GeneralizedRCNNTransform for a batch: normalise, resize, pad; (batch, resized size, scale)."""
        transform = self.transform
        mean = torch.as_tensor(transform.image_mean, dtype=images.dtype, device=images.device)[:, None, None]
        std = torch.as_tensor(transform.image_std, dtype=images.dtype, device=images.device)[:, None, None]
        h, w = images.shape[-2:]
        scale = min(transform.min_size[-1] / min(h, w), transform.max_size / max(h, w))
        x = F.interpolate(
            (images - mean) / std, scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
        )
        size = (int(x.shape[-2]), int(x.shape[-1]))
        step = transform.size_divisible
        pad_h, pad_w = -size[0] % step, -size[1] % step
        return (F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x), size, scale

    def features(self, images: Tensor) -> tuple[Tensor, Tensor, tuple[int, int], float]:
        """(padded batch, the one feature map, resized image size, scale)."""
        x, size, scale = self.prepare(images)
        feature = self.backbone(x)
        if isinstance(feature, dict):
            if len(feature) != 1:
                raise ValueError("the batched detector supports a backbone with one feature map")
            feature = next(iter(feature.values()))
        return x, feature, size, scale

    def batched_losses(self, images: Tensor, boxes: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """torchvision's four losses for one box (N, 4, in input pixels) and label (N,) per image."""
        x, feature, size, _ = self.features(images)
        # resize_boxes's ratio: the resized size over the input size, per axis.
        ratio = torch.tensor(
            [size[1] / images.shape[-1], size[0] / images.shape[-2]] * 2, dtype=boxes.dtype, device=boxes.device
        )
        boxes = boxes * ratio
        proposals, valid, losses = self.rpn.propose(x, size, feature, boxes)
        losses.update(self.roi_heads.losses_batched(feature, proposals, valid, size, boxes, labels))
        return losses

    def batched_detections(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per image the kept detections' scores, labels and valid mask, each (N, detections_per_img)."""
        x, feature, size, _ = self.features(images)
        proposals, valid, _ = self.rpn.propose(x, size, feature)
        return self.roi_heads.detect(feature, proposals, valid, size)
