"""The block GEMM workload as seen from vhpc: its pure functions and where its files live.

The code itself lives in ``bin/`` (installed verbatim next to ``gemm_block_mpi`` on the
nodes, where the job venv has no vhpc package); this module re-exports it, so vhpc (e.g. a
CLI warning that a size will not fit the nodes' memory) and the unit tests use the same
functions the job runs.
"""

from __future__ import annotations

from vhpc.workloads.bin.gemm_core import (
    DTYPES,
    Verdict,
    corrupt_block,
    estimate_rank_bytes,
    freivalds_check,
    freivalds_tolerance,
    freivalds_vectors,
    generate_block,
    generate_matrix,
    largest_fitting_size,
    square_matvec,
)
from vhpc.workloads.bin.gemm_grid import (
    Panel,
    block_owner,
    block_range,
    block_sizes,
    coords_rank,
    factor_grid,
    parse_grid,
    rank_coords,
    summa_panels,
)
from vhpc.workloads.bin.gemm_mpi import Options, UsageError, parse_options, render_text

GEMM_EXECUTABLE = "gemm_block_mpi"
GEMM_BATCH_SCRIPT = "gemm.sh"

__all__ = [
    "DTYPES",
    "GEMM_BATCH_SCRIPT",
    "GEMM_EXECUTABLE",
    "Options",
    "Panel",
    "UsageError",
    "Verdict",
    "block_owner",
    "block_range",
    "block_sizes",
    "coords_rank",
    "corrupt_block",
    "estimate_rank_bytes",
    "factor_grid",
    "freivalds_check",
    "freivalds_tolerance",
    "freivalds_vectors",
    "generate_block",
    "generate_matrix",
    "largest_fitting_size",
    "parse_grid",
    "parse_options",
    "rank_coords",
    "render_text",
    "square_matvec",
    "summa_panels",
]
