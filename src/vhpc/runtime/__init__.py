"""The only code that touches the kernel: namespaces, mounts, links, cgroups, processes.

`Runtime` (runtime/adapter.py) is the typed adapter the cluster layer calls;
`LinuxRuntime` is the real one and tests use a fake that implements the same Protocol
(so the fake cannot drift). Importing this package costs nothing: `Runtime` is imported
when first named (`vhpc down` imports runtime/priority.py before it weights its session,
when a loaded host gives it the least CPU; `typing` alone is ~4 ms).
"""

from __future__ import annotations

TYPE_CHECKING = False  # type checkers take any name TYPE_CHECKING as true
if TYPE_CHECKING:
    from vhpc.runtime.adapter import Runtime

__all__ = ["Runtime"]


def __getattr__(name: str) -> object:
    """`Runtime`, imported on first use."""
    if name == "Runtime":
        from vhpc.runtime.adapter import Runtime

        return Runtime
    raise AttributeError(name)
