"""CPU placement: round-robin over the host's online CPUs, or explicit lists, validated."""

from __future__ import annotations

from vhpc.errors import SpecError
from vhpc.spec.bounds import MAX_CPU_ID, MAX_TEXT


def format_cpulist(cpus: tuple[int, ...] | list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (the kernel's cpuset list format)."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = prev = None
    for cpu in ordered:
        if start is None:
            start = prev = cpu
        elif prev is not None and cpu == prev + 1:
            prev = cpu
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = cpu
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def parse_cpulist(text: str) -> tuple[int, ...]:
    """'0-2,5' -> (0, 1, 2, 5); raises SpecError with the expected format.

    Ids above MAX_CPU_ID are refused before a range is expanded ('0-99999999999' costs
    nothing), so the set built here has at most MAX_CPU_ID + 1 members.
    """
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise SpecError(f"invalid CPU list ({len(str(text))} characters): use ids and ranges "
                        "like 0,2-3")
    cpus: set[int] = set()
    try:
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            lo_text, dash, hi_text = part.partition("-")
            if not lo_text.isdigit() or (dash and not hi_text.isdigit()):
                raise ValueError(part)
            lo, hi = int(lo_text), int(hi_text or lo_text)
            if not 0 <= lo <= hi:
                raise ValueError(part)
            if hi > MAX_CPU_ID:
                raise SpecError(f"invalid CPU list {text!r}: CPU {hi} is above the kernel's "
                                f"largest CPU id {MAX_CPU_ID}")
            cpus.update(range(lo, hi + 1))
    except ValueError:
        raise SpecError(f"invalid CPU list {text!r}: use ids and ranges like 0,2-3") from None
    if not cpus:
        raise SpecError(f"empty CPU list {text!r}: use ids and ranges like 0,2-3")
    return tuple(sorted(cpus))


def check_cpus_exist(cpus: tuple[int, ...], online: tuple[int, ...], what: str) -> None:
    """Refuse CPU ids the host does not have, naming the CPUs it has."""
    missing = [c for c in cpus if c not in online]
    if missing:
        have = format_cpulist(online)
        raise SpecError(
            f"{what}: CPU {format_cpulist(missing)} does not exist on this host "
            f"(online CPUs: {have}); pick CPUs within {have}"
        )


def round_robin(count: int, per_node: int, online: tuple[int, ...], start: int = 0) -> list[
    tuple[int, ...]
]:
    """`count` cpusets of `per_node` CPUs each, dealt round-robin over the online CPUs."""
    if isinstance(per_node, bool) or not isinstance(per_node, int) or per_node < 1:
        raise SpecError(f"--cpus must be at least 1, got {per_node!r}")
    if per_node > len(online):
        raise SpecError(
            f"--cpus {per_node} is more than the host's {len(online)} online CPUs "
            f"({format_cpulist(online)}): use --cpus {len(online)} or fewer"
        )
    sets = []
    for i in range(count):
        first = (start + i) * per_node
        sets.append(tuple(sorted(online[(first + k) % len(online)] for k in range(per_node))))
    return sets
