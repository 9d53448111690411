"""One frozen dataclass per run configuration; the CLI only maps its options onto it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from mnistserve.contracts import PROFILES
from training.models import Hparams, get_spec

PROFILE_CHOICES = (*PROFILES, "auto")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Hparams):
    """One model's registered `Hparams` for a profile, resolved for one run: overrides applied, plus the
    device, seed and weights. (The CLI's `RunRequest` is the other settings type: several models, and
    overrides that are None where the registry's value stands.)"""

    model: str
    profile: str  # smoke | cpu | gpu (auto is resolved before this is built)
    device: str  # cpu | cuda | cuda:N
    seed: int = 0
    weights: str = "auto"  # transfer models: auto | imagenet | none | PATH
    amp: bool = False  # bf16 autocast (CUDA; the CPU where the profile asks and the CPU has native bf16)
    channels_last: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready hyperparameters for the stored comparison."""
        return dataclasses.asdict(self)


def resolve_device(device: str = "auto") -> str:
    """'auto' -> cuda when available, else cpu; otherwise checked as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"unknown device {device!r}; choose auto, cpu, cuda or cuda:N")
    return device


def resolve_profile(profile: str, device: str) -> str:
    """'auto' -> gpu on CUDA, else cpu."""
    if profile not in PROFILE_CHOICES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILE_CHOICES)}")
    if profile == "auto":
        return "gpu" if device.startswith("cuda") else "cpu"
    return profile


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    caps = getattr(torch.cpu, "get_capabilities", dict)()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def make_config(model: str, profile: str, device: str, **overrides: Any) -> TrainConfig:
    """The registered settings of `model` under `profile`, with CLI overrides (None = keep) applied."""
    values = dataclasses.asdict(get_spec(model).hparams(profile))
    cpu_bf16 = values["cpu_bf16"]
    # bf16 and channels-last: always on CUDA; on the CPU where the model's profile asks and bf16 is native.
    fast = device.startswith("cuda") or (cpu_bf16 and device == "cpu" and cpu_has_native_bf16())
    values.update(amp=fast, channels_last=fast)
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("epochs", "batch_size"):
        if values[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {values[key]}")
    if values["lr"] <= 0:
        raise ValueError(f"--lr must be positive, got {values['lr']}")
    return TrainConfig(model=model, profile=profile, device=device, **values)
