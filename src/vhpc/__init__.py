"""vhpc: a realistic virtual HPC cluster (real Slurm, MPI, etcd, DNS) on one Linux host.

The public Python entry point is :class:`vhpc.Cluster` (see docs/python-api.md).
"""

from vhpc.errors import VhpcError

# Not `from typing import TYPE_CHECKING` (~4 ms): every `vhpc` command imports this package
# first, `vhpc down` before it weights its session (cli/entry.py). Type checkers take any
# name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:  # type checkers see the class; at run time it is imported lazily
    from vhpc.python_api import Cluster

__all__ = ["Cluster", "VhpcError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Import the Python API lazily so `import vhpc` stays cheap for the CLI."""
    if name == "Cluster":
        from vhpc.python_api import Cluster

        return Cluster
    raise AttributeError(name)
