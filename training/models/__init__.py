"""Model registry: `name -> builder`, each architecture in its own module, with its per-profile settings."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mnistserve.contracts import ARCHITECTURES, PROFILES


@dataclass(frozen=True)
class Hparams:
    """Training settings of one model under one profile."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 1e-4
    train_subset: int | None = None  # first N training images; None = all 50,000
    eval_subset: int | None = None  # first N validation/test images; None = all (smoke only)
    augment: str = "all"  # batched parts of training.augment: 'all', 'none' or a comma list
    captures: float = 0.0  # training.captures mixed in, as a fraction of the training images (0: none)
    capture_kinds: str = "all"  # which kinds of training.captures: 'all' or a comma list
    freeze_epochs: int = 0  # epochs with the pretrained feature extractor frozen
    label_smoothing: float = 0.0
    cpu_bf16: bool = False  # bf16 autocast and channels-last on CPUs with native bf16 (AVX512-BF16, AMX)
    compile: bool = False  # torch.compile the training step's loss (benchmarks/compile_gain.py says where it pays)
    build: dict[str, Any] = field(default_factory=dict)  # keyword arguments for the builder


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its builder, per-profile settings and what the exporter must know."""

    name: str
    builder: Callable[..., nn.Module]
    profiles: dict[str, Hparams]
    summary: str
    loss_kind: str = "cross-entropy"
    transfer: bool = False  # accepts `weights=` (imagenet | none | auto | PATH)
    export_batch: int | None = None  # fixed ONNX batch size; None = dynamic batch axis

    def hparams(self, profile: str) -> Hparams:
        """Settings for `profile`, with an error naming the choices."""
        if profile not in self.profiles:
            raise ValueError(f"unknown profile {profile!r} for {self.name}; choose from {sorted(self.profiles)}")
        return self.profiles[profile]


_REGISTRY: dict[str, ModelSpec] = {}
# One module per architecture; importing it registers it. The order is the comparison's order.
_MODULES = ARCHITECTURES


def register_model(
    name: str, *, profiles: dict[str, Hparams], summary: str, **spec: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a builder under `name`."""
    missing = set(PROFILES) - set(profiles)
    if missing:
        raise ValueError(f"model {name!r} lacks settings for profiles {sorted(missing)}")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(name=name, builder=builder, profiles=profiles, summary=summary, **spec)
        return builder

    return wrap


def _load_all() -> None:
    for module in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise


def model_names() -> list[str]:
    """Registered architecture names, in comparison order."""
    _load_all()
    return [m for m in _MODULES if m in _REGISTRY] + sorted(set(_REGISTRY) - set(_MODULES))


def get_spec(name: str) -> ModelSpec:
    """The spec registered under `name`; ValueError listing the known names otherwise."""
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    return _REGISTRY[name]


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the architecture registered under `name`."""
    return get_spec(name).builder(**kwargs)
