"""Fake GPUs of a compute node, as pure data: the request (`--gpus 2`, `--gpus a100:2`,
`gpus = "a100:2"` in a cluster file), the node's device names and Slurm's GRES string.

A node with GPUs gets a private /dev holding `nvidia0`..`nvidiaN-1` (character devices
with /dev/null's numbers: opening one works, nothing is behind it); Slurm schedules them
as `gpu` GRES from gres.conf (services/gres.py).
"""

from __future__ import annotations

import re

from vhpc.errors import SpecError

#: More than any real server holds (8-16), few enough to keep a node's /dev small.
MAX_GPUS_PER_NODE = 64
MAX_GPU_TYPE_LENGTH = 32
GPU_DEVICE_PREFIX = "/dev/nvidia"

_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def parse_gpus(value: str | int | None, option: str = "--gpus") -> tuple[int, str]:
    """`2`, `"2"` or `"a100:2"` as (count, type); None or "" is (0, "")."""
    if value is None or value == "":
        return 0, ""
    if isinstance(value, bool):
        raise SpecError(f"{option} {value!r}: give a number of GPUs (2) or TYPE:N (a100:2)")
    if isinstance(value, int):
        return _check_count(value, option, str(value)), ""
    if not isinstance(value, str) or len(value) > MAX_GPU_TYPE_LENGTH + 8:
        raise SpecError(f"{option}: give a number of GPUs (2) or TYPE:N (a100:2)")
    kind, sep, count_text = value.strip().rpartition(":")
    if not count_text.isdigit():
        raise SpecError(f"{option} {value!r}: give a number of GPUs (2) or TYPE:N (a100:2)")
    count = _check_count(int(count_text), option, value)
    if sep:
        check_gpu_type(kind, option)
    return count, kind


def _check_count(count: int, option: str, shown: str) -> int:
    if not 0 <= count <= MAX_GPUS_PER_NODE:
        raise SpecError(f"{option} {shown[:20]}: a node has from 0 to {MAX_GPUS_PER_NODE} "
                        "GPUs (e.g. --gpus 2)")
    return count


def check_gpu_type(kind: str, option: str = "--gpus") -> str:
    """A GRES type name (a100, h100, v100...): a letter, then letters, digits, '_.-'."""
    if not _TYPE_RE.fullmatch(kind) or len(kind) > MAX_GPU_TYPE_LENGTH:
        raise SpecError(f"{option}: invalid GPU type {kind!r}: use a word of at most "
                        f"{MAX_GPU_TYPE_LENGTH} letters, digits, '_', '.' or '-' "
                        "starting with a letter, e.g. a100:2")
    return kind


def format_gpus(count: int, kind: str = "") -> str:
    """The inverse of parse_gpus: "a100:2", "2", or "" for none."""
    if count <= 0:
        return ""
    return f"{kind}:{count}" if kind else str(count)


def device_names(count: int) -> list[str]:
    """The names of a node's GPU devices in its /dev: nvidia0, nvidia1, ..."""
    return [f"nvidia{i}" for i in range(count)]


def device_files(count: int) -> str:
    """The devices as gres.conf's File= takes them: /dev/nvidia0, /dev/nvidia[0-3]."""
    if count == 1:
        return f"{GPU_DEVICE_PREFIX}0"
    return f"{GPU_DEVICE_PREFIX}[0-{count - 1}]"


def gres(count: int, kind: str = "") -> str:
    """Slurm's GRES of a node (its `Gres=` value): gpu:2, gpu:a100:2, or "" for none."""
    if count <= 0:
        return ""
    return f"gpu:{kind}:{count}" if kind else f"gpu:{count}"
