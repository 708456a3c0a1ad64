"""Executables and their sibling modules, installed verbatim into /opt/vhpc/bin on nodes.

gemm_block_mpi (launcher), gemm_mpi.py (MPI driver), gemm_core.py (numerics),
gemm_grid.py (grid and distribution) and gemm.sh (batch script). Installed, the modules
import each other by plain name from their own directory; here they form the package
``vhpc.workloads.bin``, so the vhpc package, its tests and mypy use the very same code.
"""
