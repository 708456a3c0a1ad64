"""Every numeric and length bound on user input, checked before anything is built.

The spec layer is the one place the CLI, the HTTP API and the Python API share, so each
limit lives here once. A check runs on the raw value (a count, a list's length, a text's
length) before any list, range or string of that size is made: a request for 10^30 nodes
costs the same few bytes as a request for one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vhpc.errors import SpecError

# A Linux bridge takes at most 1024 ports: past ~1000 nodes the compute nodes hang on leaf
# bridges joined to the cluster's bridge (spec/fabric.py). The bound is what one host of
# this kind carries (1024 nodes measured on 2 cores and 24 GB, docs/PERFORMANCE.md).
SERVICE_NODES = 3  # controller, dns, db
MAX_COMPUTE_NODES = 2048
MAX_CPU_ID = 8191  # the kernel's largest NR_CPUS (CONFIG_NR_CPUS <= 8192)
MAX_CPUS_PER_NODE = MAX_CPU_ID + 1
MAX_NODE_MEMORY = 1 << 50  # 1 PiB: far above any host, far below cgroup overflow
MAX_FEATURES = 32
MAX_FEATURE_LENGTH = 64
MAX_PARTITION_LENGTH = 64
MAX_TEXT = 256  # sizes, CPU lists, node names: anything longer is a mistake or an attack

_FEATURE_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_PARTITION_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_int(value: object, option: str, low: int, high: int, why: str = "") -> int:
    """`value` as an int within [low, high], else a SpecError naming the option and range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{option} {value!r}: give a whole number from {low} to {high}")
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 20 else f"{str(value)[:12]}...(too big)"
        reason = f" ({why})" if why else ""
        raise SpecError(f"{option} {shown}: must be from {low} to {high}{reason}")
    return value


def check_text(text: str, option: str, limit: int = MAX_TEXT) -> str:
    """Refuse a text argument longer than `limit` before it is parsed."""
    if not isinstance(text, str):
        raise SpecError(f"{option}: expected text, got {type(text).__name__}")
    if len(text) > limit:
        raise SpecError(f"{option}: {len(text)} characters is too long (at most {limit})")
    return text


def check_compute_count(count: object, option: str = "-n") -> int:
    """A number of compute nodes: 1 to MAX_COMPUTE_NODES."""
    return check_int(count, option, 1, MAX_COMPUTE_NODES,
                     f"a cluster holds at most {MAX_COMPUTE_NODES} compute nodes")


def check_cpus(cpus: int | None) -> int:
    """CPUs per node (--cpus): at least 1; None means the default of 1."""
    if cpus is None:
        return 1
    return check_int(cpus, "--cpus", 1, MAX_CPUS_PER_NODE, "CPUs per node")


def check_features(features: Sequence[str]) -> tuple[str, ...]:
    """Slurm node features: at most MAX_FEATURES plain words; empty entries dropped."""
    if len(features) > MAX_FEATURES:
        raise SpecError(f"--features: {len(features)} features, at most {MAX_FEATURES}")
    out = []
    for feature in features:
        check_text(feature, "--features", MAX_FEATURE_LENGTH)
        if not feature:
            continue
        if not _FEATURE_RE.fullmatch(feature):
            raise SpecError(f"invalid feature {feature!r}: use letters, digits, '_', '.', '-'")
        out.append(feature)
    return tuple(out)


def check_partition(name: str) -> str:
    """A Slurm partition name: a plain word (no spaces, '=', ','), not 'DEFAULT'."""
    check_text(name, "--partition", MAX_PARTITION_LENGTH)
    if not _PARTITION_RE.fullmatch(name) or name.lower() == "default":
        raise SpecError(
            f"invalid --partition {name!r}: use 1-{MAX_PARTITION_LENGTH} letters, digits, "
            "'_', '.' or '-' (not 'default'), e.g. --partition batch"
        )
    return name


def check_distinct(names: Sequence[str], what: str = "node") -> None:
    """Refuse a list that names the same thing twice (e.g. node stop compute3 compute3)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SpecError(f"{what} {name!r} is named twice: name each {what} once")
        seen.add(name)
