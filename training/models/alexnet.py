"""AlexNet (torchvision's definition) as a transfer model: ImageNet features, a 10-way head."""

from __future__ import annotations

from functools import partial

from torch import nn
from torchvision.models import AlexNet_Weights
from torchvision.models import alexnet as tv_alexnet

from training.models import Hparams, register_model
from training.models._transfer import build_transfer

MIN_SIZE = 63  # the 11x11/4 stem and three 3x3/2 max-pools leave nothing of a smaller input


@register_model(
    "alexnet",
    summary="AlexNet (torchvision), ImageNet weights when available; at 64 px a small head (global pooling, 256, 10)",
    transfer=True,
    profiles={
        "smoke": Hparams(
            epochs=1,
            batch_size=64,
            lr=1e-4,
            train_subset=512,
            eval_subset=256,
            build={"image_size": 64, "head": "small"},
        ),
        # The small head: a sixth of torchvision's step on the CPU, so epochs over all the data fit where two over
        # 30,000 did (reports/generalisation/README.md). 10, not 6: +1.35 and +0.93 points of dev at training seeds
        # 0 and 1 for ~2.3 more minutes (reports/generalisation/cpu-alexnet-epochs); sealed moved +0.04.
        "cpu": Hparams(epochs=10, batch_size=128, lr=3e-4, build={"image_size": 64, "head": "small"}),
        "gpu": Hparams(
            epochs=6, batch_size=256, lr=1e-4, freeze_epochs=1, label_smoothing=0.05, build={"image_size": 224}
        ),
    },
)
def alexnet(
    *, weights: str = "auto", image_size: int = 64, dropout: float = 0.5, head: str = "torchvision"
) -> nn.Module:
    """Build AlexNet; `weights` is auto | imagenet | none | PATH; `head` is torchvision | small
    (`_transfer.small_head`); `dropout` is the classifier's."""
    return build_transfer(
        partial(tv_alexnet, dropout=dropout),
        AlexNet_Weights.IMAGENET1K_V1,
        weights=weights,
        image_size=image_size,
        min_size=MIN_SIZE,
        head=head,
        dropout=dropout,
    )
