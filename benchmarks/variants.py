"""Preprocessing variants for the validation benchmarks: this tree with some constants of `serving.paper`,
`serving.regions` or `serving.ink` changed for one run ("label: module.CONSTANT=value ...")."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from serving import ink, paper, regions

MODULES = {"paper": paper, "regions": regions, "ink": ink}


def parse(values: list[str]) -> dict[str, list[str]]:
    """`--variant` values ("label: module.CONSTANT=value ...") -> {label: settings}; a malformed one: ValueError."""
    variants = {}
    for value in values:
        label, colon, settings = value.partition(":")
        if not colon or not label.strip():
            raise ValueError(f"variant {value!r}: expected 'label: module.CONSTANT=value ...'")
        for setting in settings.split():
            _target(setting)  # checked now, not half-way through a run
        variants[label.strip()] = settings.split()
    return variants


def _target(setting: str) -> tuple[object, str, str]:
    """'module.CONSTANT=value' -> (module, constant, value); an unknown module or constant raises ValueError."""
    target, equals, value = setting.partition("=")
    module, _, constant = target.partition(".")
    if not equals or module not in MODULES or not hasattr(MODULES[module], constant):
        raise ValueError(f"setting {setting!r}: expected module.CONSTANT=value, module one of {', '.join(MODULES)}")
    return MODULES[module], constant, value


@contextlib.contextmanager
def patched(settings: list[str]) -> Iterator[None]:
    """Within the block, each 'module.CONSTANT=value' set (as the constant's own type); restored afterwards."""
    saved = []
    try:
        for setting in settings:
            owner, constant, value = _target(setting)
            old = getattr(owner, constant)
            saved.append((owner, constant, old))
            setattr(owner, constant, type(old)(float(value)))
        yield
    finally:
        for owner, constant, old in reversed(saved):
            setattr(owner, constant, old)
