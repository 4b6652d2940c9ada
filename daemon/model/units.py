"""Durations (`30s`, `250ms`, `1h30m`) and sizes (`16M`, `1GiB`) as users write them."""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "DurationError",
    "SizeError",
    "UnitError",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]

_DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)")
_NUMBER: Final = re.compile(r"\d+(?:\.\d+)?|\.\d+")
# binary multiples for K/M/G (a log size of `16M` is 16 MiB, as `ulimit` and `docker` read
# it); the explicit SI spellings kB/MB/GB are decimal
_SIZE_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tib": 1 << 40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}
_SIZE: Final = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)")
_MAX_TEXT: Final = 64  # longer text is no duration or size anyone means


class UnitError(ValueError):
    """Text that is not a quantity of the expected kind."""


class DurationError(UnitError):
    """Text that is not a duration."""


class SizeError(UnitError):
    """Text that is not a size."""


def parse_duration(text: str) -> float:
    """Seconds in `text`: a bare number is seconds; units ms, s, m, h, d may be chained."""
    s = text.strip().lower()
    if len(s) <= _MAX_TEXT:
        if _NUMBER.fullmatch(s):
            return float(s)
        pos, total = 0, 0.0
        for match in _PART.finditer(s):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != 0 and pos == len(s):
            return total
    raise DurationError(f"invalid duration {text!r} (try 10s, 5m, 1h30m, 250ms)")


def parse_size(text: str) -> int:
    """Bytes in `text`: a bare number is bytes; K/KiB, M/MiB, G/GiB, T/TiB are binary,
    kB, MB, GB, TB decimal; case does not matter. A fraction is rounded down to a byte."""
    s = text.strip().lower()
    match = _SIZE.fullmatch(s) if len(s) <= _MAX_TEXT else None
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise SizeError(f"invalid size {text!r} (try 16M, 512KiB, 1GiB, 4096)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def format_duration(seconds: float) -> str:
    """A spelling `parse_duration` reads back: `250ms`, `30s`, `2m`, `1.5s`, `90m`, `2h`."""
    if 0 < seconds < 1 and seconds * 1000 == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    """`16MiB`, `512KiB`, `1GiB`, or plain bytes when no binary unit divides it."""
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
