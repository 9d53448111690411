"""Preprocessing variants for the validation benchmarks: this tree with some constants of `serving.paper`,
`serving.regions` or `serving.ink` changed for one run ("label: module.CONSTANT=value ...").

Only module-level UPPER_CASE numbers and switches can be set. A constant read once at import (`paper.LIT_CONTRAST`
is computed from `MIN_CONTRAST`) or bound as a default argument (`ink.INK_LEVEL`, `_crop`'s) is not followed by
what was computed from it: set the one the code reads.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

from serving import ink, paper, regions

MODULES = {"paper": paper, "regions": regions, "ink": ink}
BOOLS = {"0": False, "1": True, "false": False, "true": True}


def parse(values: list[str], reserved: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """`--variant` values ("label: module.CONSTANT=value ...") -> {label: settings}; ValueError names a bad one (a
    malformed value, an unknown or unsettable constant, a repeated label or one of the caller's `reserved`)."""
    chosen: dict[str, list[str]] = {}
    for value in values:
        label, colon, settings = value.partition(":")
        label = label.strip()
        if not colon or not label:
            raise ValueError(f"variant {value!r}: expected 'label: module.CONSTANT=value ...'")
        if label in chosen or label in reserved:
            raise ValueError(f"variant label {label!r} is taken (reserved: {', '.join(reserved) or 'none'})")
        for setting in settings.split():
            _target(setting)  # checked now, not half-way through a run
        chosen[label] = settings.split()
    return chosen


def _target(setting: str) -> tuple[types.ModuleType, str, bool | int | float]:
    """'module.CONSTANT=value' -> (module, constant, the value as the constant's type); ValueError otherwise."""
    target, equals, text = setting.partition("=")
    module, _, constant = target.partition(".")
    owner = MODULES.get(module)
    old = getattr(owner, constant, None) if constant.isupper() else None
    if not equals or owner is None or type(old) not in (bool, int, float):
        raise ValueError(
            f"setting {setting!r}: expected module.CONSTANT=value, module one of {', '.join(MODULES)}, "
            "CONSTANT an UPPER_CASE number or switch"
        )
    try:
        if isinstance(old, bool):
            return owner, constant, BOOLS[text.lower()]
        number = float(text)
        if isinstance(old, int) and not number.is_integer():
            raise ValueError
        return owner, constant, type(old)(number)
    except (KeyError, ValueError):
        kind = "0/1/true/false" if isinstance(old, bool) else type(old).__name__
        raise ValueError(f"setting {setting!r}: {module}.{constant} takes {kind}") from None


@contextlib.contextmanager
def patched(settings: list[str]) -> Iterator[None]:
    """Within the block, each 'module.CONSTANT=value' set (as the constant's own type); restored afterwards."""
    saved = []
    try:
        for setting in settings:
            owner, constant, value = _target(setting)
            saved.append((owner, constant, getattr(owner, constant)))
            setattr(owner, constant, value)
        yield
    finally:
        for owner, constant, old in reversed(saved):
            setattr(owner, constant, old)
