"""Parse and format memory sizes ("125M", "1G", "512MiB"; a bare number means MiB, as Slurm)."""

from __future__ import annotations

import re

from vhpc.errors import SpecError

MIB = 1024 * 1024
_UNITS = {"": MIB, "K": 1024, "M": MIB, "G": 1024 * MIB, "T": 1024 * 1024 * MIB}
MAX_SIZE_TEXT = 32  # '1.5G' needs 4; anything long is refused before it is parsed
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Return bytes for a size like '125M', '1.5G', '512MiB' or 125 (MiB)."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise SpecError(f"invalid memory size {text!r}: use a number with a unit, e.g. 125M")
    if isinstance(text, int):
        if not 0 <= text < 1 << 40:
            raise SpecError(f"invalid memory size {text} MiB: out of range, e.g. use 125M")
        return text * MIB
    if len(text) > MAX_SIZE_TEXT:
        raise SpecError(f"invalid memory size ({len(text)} characters): use a number with a "
                        "unit, e.g. 125M or 1G")
    match = _SIZE_RE.match(text)
    if not match or len(match.group(1)) > 20:
        raise SpecError(f"invalid memory size {text!r}: use a number with a unit, e.g. 125M or 1G")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


def format_size(nbytes: int) -> str:
    """Format bytes compactly: 131072000 -> '125M', 25276502016 -> '23.5G'."""
    gib = 1024 * MIB
    if nbytes >= gib:
        return f"{nbytes // gib}G" if nbytes % gib == 0 else f"{nbytes / gib:.1f}G"
    if nbytes >= MIB:
        if nbytes % MIB == 0:
            return f"{nbytes // MIB}M"
        return f"{nbytes / MIB:.1f}M"
    return f"{nbytes // 1024}K" if nbytes >= 1024 else f"{nbytes}B"


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | float) -> float:
    """Seconds for '30s', '10m', '1h', '2d', '1w' or a bare number of seconds."""
    if isinstance(text, int | float):
        if text < 0:
            raise SpecError(f"invalid duration {text!r}: must not be negative")
        return float(text)
    match = _DURATION_RE.match(text)
    if not match:
        raise SpecError(f"invalid duration {text!r}: use e.g. 30s, 10m, 1h or 2d")
    number, unit = match.groups()
    return float(number) * _SECONDS[unit.lower()]
