"""Workloads that run inside the virtual cluster (the seed's block GEMM over MPI).

``BIN_DIR`` holds the user-facing executables and their sibling modules; the cluster
installs its files into /opt/vhpc/bin on every node. ``vhpc.workloads.gemm`` exposes the
same pure functions to the rest of vhpc.
"""

from pathlib import Path

BIN_DIR = Path(__file__).resolve().parent / "bin"
INSTALL_FILES = (
    "gemm_block_mpi", "gemm.sh", "gemm_mpi.py", "gemm_core.py", "gemm_grid.py",
)

__all__ = ["BIN_DIR", "INSTALL_FILES"]
