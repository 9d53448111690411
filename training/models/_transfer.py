"""Shared by VGG16 and AlexNet: a torchvision ImageNet classifier adapted to the MNIST contract, and its weights."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import WeightsEnum

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_CHOICES = "'auto', 'imagenet', 'none' or a path to a state dict file"
HEADS = ("torchvision", "small")  # the 10-way classifier on the conv features: see `small_head`


class WeightsUnavailable(RuntimeError):
    """The requested pretrained weights could not be loaded; the message says what was tried."""


class FixedAdaptivePool(nn.Module):
    """AdaptiveAvgPool2d for one known input size, as ops the legacy ONNX exporter handles (same numbers)."""

    def __init__(self, in_size: int, out_size: int) -> None:
        super().__init__()
        self.in_size, self.out_size = in_size, out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i, o = self.in_size, self.out_size
        if o % i == 0:  # e.g. a 1x1 map pooled "up" to 7x7: every output cell averages one input cell
            return F.interpolate(x, scale_factor=o // i, mode="nearest") if o != i else x
        if i % o == 0:
            return F.avg_pool2d(x, i // o)
        return F.adaptive_avg_pool2d(x, o)


def _exportable_pool(net: nn.Module, image_size: int, out: int | None = None) -> int:
    """Swap the net's adaptive pool for `FixedAdaptivePool` (the exporter rejects adaptive pooling of small maps);
    pool to `out` (default: the net's own size). Returns the feature channels."""
    with torch.no_grad():
        _, channels, size, _ = net.features(torch.zeros(1, 3, image_size, image_size)).shape
    if out is None:
        out = net.avgpool.output_size
        out = out[0] if isinstance(out, tuple) else out
    net.avgpool = FixedAdaptivePool(size, out)
    return channels


def small_head(net: nn.Module, image_size: int, dropout: float, hidden: int = 256) -> None:
    """Global average pooling and a 2-layer head instead of torchvision's 4096-4096 classifier.

    Why: at 32-64 px the conv features are 1x1 to 2x2; torchvision's pool copies them out to 7x7 (6x6) and the
    classifier's 120M (55M) weights then learn from copies, at ~40% of a training step's arithmetic.
    """
    channels = _exportable_pool(net, image_size, out=1)
    net.classifier = nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(channels, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, 10),
    )


def he_init(net: nn.Module) -> None:
    """He (fan_in) init of every conv and hidden Linear, for training from scratch; the 10-way head keeps its own."""
    head = net.classifier[-1]
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not head:
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)


class TransferNet(nn.Module):
    """Resize to `image_size`, repeat to 3 channels, ImageNet-normalise, then the torchvision net (10-way head)."""

    def __init__(self, net: nn.Module, *, image_size: int, pretrained: bool, weights_source: str) -> None:
        super().__init__()
        self.net = net
        self.image_size = image_size
        self.pretrained = pretrained
        self.weights_source = weights_source
        # Non-persistent: the state dict then holds only the torchvision net's own keys (plus the "net." prefix).
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [0, 1] -> (N, 10) scores."""
        if self.image_size != 28:  # the contract's input size; a Python test, so the ONNX trace has no branch
            s = self.image_size
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)  # (N, 1, s, s)
        x = x.expand(-1, 3, -1, -1)  # (N, 3, s, s): grey -> RGB, as the ImageNet filters expect
        return self.net((x - self.mean) / self.std)

    def feature_parameters(self) -> list[nn.Parameter]:
        """The pretrained conv features (what --freeze-epochs freezes); none when trained from scratch."""
        # Freezing randomly initialised features would only waste the frozen epochs.
        return list(self.net.features.parameters()) if self.pretrained else []


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist; weights= takes {WEIGHTS_CHOICES}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError) as exc:
        raise ValueError(f"weights file {str(path)!r} is not a loadable state dict: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a training checkpoint {model, optimizer, ...}
    if not isinstance(state, dict):
        raise ValueError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("net."): v for k, v in state.items()}  # also accept our own wrapper's state dict


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load `state` into `net`, whose classifier is already ours: classifier weights that do not fit it (ImageNet's
    1000-way head; its whole 4096-wide classifier under a small head) are left out, the conv features never."""
    own = net.state_dict()
    state = {
        k: v for k, v in state.items() if not k.startswith("classifier.") or (k in own and own[k].shape == v.shape)
    }
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{origin} does not fit this architecture: {exc}") from exc
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise ValueError(f"{origin} does not fit this architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")


def build_transfer(
    make_net: Callable[[], nn.Module],
    imagenet: WeightsEnum,
    *,
    weights: str,
    image_size: int,
    min_size: int,
    head: str = "torchvision",
    dropout: float = 0.5,
    scratch_init: Callable[[nn.Module], None] | None = None,
) -> TransferNet:
    """A torchvision net with a 10-way head and the weights that `weights` names, wrapped for the contract.

    `head`: "torchvision" keeps its classifier with a 10-way last layer; "small" is `small_head`. `scratch_init`
    re-initialises the net when no pretrained weights are loaded (torchvision's init otherwise).
    """
    if image_size < min_size:
        raise ValueError(f"image_size={image_size} is too small for this architecture; it needs at least {min_size}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose from {', '.join(HEADS)}")
    net = make_net()  # torchvision's own definition and init
    if head == "small":
        small_head(net, image_size, dropout)
    else:
        _exportable_pool(net, image_size)
        net.classifier[6] = nn.Linear(net.classifier[6].in_features, 10)
    tag = f"imagenet:{imagenet.name}"

    def from_scratch(source: str) -> TransferNet:
        if scratch_init:
            scratch_init(net)
        return TransferNet(net, image_size=image_size, pretrained=False, weights_source=source)

    if weights in ("auto", "imagenet"):
        try:
            # torchvision's own path: $TORCH_HOME/hub/checkpoints/<file>, downloaded when missing and online.
            state = imagenet.get_state_dict(progress=True, check_hash=True, weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
            where = Path(torch.hub.get_dir()) / "checkpoints" / Path(imagenet.url).name
            msg = (
                f"ImageNet weights {imagenet} unavailable ({exc}); torchvision reads {where} and downloads it "
                f"from {imagenet.url} when missing. Place the file there, pass weights=PATH, or weights='none'."
            )
            if weights == "imagenet":
                raise WeightsUnavailable(msg) from exc
            warnings.warn(f"{msg} Training from scratch instead.", stacklevel=3)
            return from_scratch("none (imagenet weights unavailable)")
        _load_into(net, state, tag)
        return TransferNet(net, image_size=image_size, pretrained=True, weights_source=tag)
    if weights == "none":
        return from_scratch("none")
    path = Path(weights).expanduser()
    _load_into(net, _load_file(path), f"weights file {str(path)!r}")
    return TransferNet(net, image_size=image_size, pretrained=True, weights_source=f"file:{path.resolve()}")
