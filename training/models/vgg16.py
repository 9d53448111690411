"""VGG16 (torchvision's definition, no batch norm) as a transfer model: ImageNet features, a 10-way head."""

from __future__ import annotations

from functools import partial

from torch import nn
from torchvision.models import VGG16_BN_Weights, VGG16_Weights
from torchvision.models import vgg16 as tv_vgg16
from torchvision.models import vgg16_bn as tv_vgg16_bn

from training.models import Hparams, register_model
from training.models._transfer import build_transfer, he_init

MIN_SIZE = 32  # five 2x2 max-pools: a smaller input would pool below 1 px


@register_model(
    "vgg16",
    summary="VGG16 (torchvision), ImageNet weights when available; at 32 px with batch norm and a small head",
    transfer=True,
    profiles={
        "smoke": Hparams(
            epochs=1,
            batch_size=128,
            lr=3e-4,
            train_subset=512,
            eval_subset=256,
            build={"image_size": 32, "batch_norm": True, "head": "small"},
        ),
        # From scratch (no ImageNet weights offline): batch norm and the small head, two epochs over 30,000 images;
        # why, and what a step costs on 2 cores: reports/generalisation/README.md, reports/train_speed/step_cost.md.
        "cpu": Hparams(
            epochs=2,
            batch_size=128,
            lr=3e-4,
            train_subset=30_000,
            build={"image_size": 32, "batch_norm": True, "head": "small"},
        ),
        "gpu": Hparams(
            epochs=4, batch_size=128, lr=1e-4, freeze_epochs=1, label_smoothing=0.05, build={"image_size": 224}
        ),
    },
)
def vgg16(
    *,
    weights: str = "auto",
    image_size: int = 32,
    dropout: float = 0.5,
    batch_norm: bool = False,
    head: str = "torchvision",
) -> nn.Module:
    """Build VGG16 (with batch norm: torchvision's vgg16_bn); `weights` is auto | imagenet | none | PATH; `head` is
    torchvision | small (`_transfer.small_head`); `dropout` is the classifier's."""
    make, imagenet = (tv_vgg16_bn, VGG16_BN_Weights) if batch_norm else (tv_vgg16, VGG16_Weights)
    # From scratch, He (fan_in) init: torchvision's fan_out init, meant for ImageNet, shrinks the signal through the
    # 13 convs without batch norm and stalls the start.
    return build_transfer(
        partial(make, dropout=dropout),
        imagenet.IMAGENET1K_V1,
        weights=weights,
        image_size=image_size,
        min_size=MIN_SIZE,
        head=head,
        dropout=dropout,
        scratch_init=he_init,
    )
