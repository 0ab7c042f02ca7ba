"""Human-friendly sizes ("256MiB") and durations ("30s", "250ms") as numbers."""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER_UNIT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(value: object) -> int:
    """Bytes from an int or a string such as ``"256MiB"``, ``"1.5GB"`` or ``"4096"``.

    Raises:
        ValueError: the value is negative, not a number, or has an unknown unit.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size such as 4096 or '256MiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("expected a size such as 4096 or '256MiB'")
    match = _NUMBER_UNIT.fullmatch(value)
    if match is None or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(
            "expected a size such as 4096 or '256MiB' (units: B, KiB, MiB, GiB, KB, MB…)"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(value: object) -> float:
    """Seconds from a number (taken as seconds) or a string such as ``"30s"`` or ``"250ms"``.

    Raises:
        ValueError: the value is negative, not a number, or has an unknown unit.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '30s' or '250ms'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30, '30s' or '250ms'")
    match = _NUMBER_UNIT.fullmatch(value)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit and unit not in _DURATION_UNITS):
        raise ValueError("expected a duration such as 30, '30s' or '250ms' (units: ms, s, m, h, d)")
    return float(match.group(1)) * _DURATION_UNITS.get(unit, 1.0)
