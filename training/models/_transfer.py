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
HEAD = "classifier.6"  # the final Linear of both torchvision VGG16 and AlexNet


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


def _exportable_pool(net: nn.Module, image_size: int) -> None:
    """Swap the net's adaptive pool for `FixedAdaptivePool`: the exporter rejects adaptive pooling of small maps."""
    with torch.no_grad():
        size = net.features(torch.zeros(1, 3, image_size, image_size)).shape[-1]
    out = net.avgpool.output_size
    net.avgpool = FixedAdaptivePool(size, out[0] if isinstance(out, tuple) else out)


def he_init(net: nn.Module) -> None:
    """He (fan_in) init of every conv and hidden Linear, for training from scratch; the 10-way head keeps its own."""
    head = net.classifier[6]
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
    """Load `state` into `net` whose head is already 10-way; a 1000-way ImageNet head is left out."""
    if state.get(f"{HEAD}.weight", torch.empty(0)).shape[:1] != torch.Size([10]):
        state = {k: v for k, v in state.items() if not k.startswith(f"{HEAD}.")}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{origin} does not fit this architecture: {exc}") from exc
    missing = [k for k in missing if not k.startswith(f"{HEAD}.")]
    if missing or unexpected:
        raise ValueError(f"{origin} does not fit this architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")


def build_transfer(
    make_net: Callable[[], nn.Module],
    imagenet: WeightsEnum,
    *,
    weights: str,
    image_size: int,
    min_size: int,
    scratch_init: Callable[[nn.Module], None] | None = None,
) -> TransferNet:
    """A torchvision net with a 10-way head and the weights that `weights` names, wrapped for the contract.

    `scratch_init` re-initialises the net when no pretrained weights are loaded (torchvision's init otherwise).
    """
    if image_size < min_size:
        raise ValueError(f"image_size={image_size} is too small for this architecture; it needs at least {min_size}")
    net = make_net()  # torchvision's own definition and init
    _exportable_pool(net, image_size)
    head = net.classifier[6]
    net.classifier[6] = nn.Linear(head.in_features, 10)
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
