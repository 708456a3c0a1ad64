"""Process grid and block distribution of the block GEMM (pure Python, no numpy).

A P x Q grid of ranks (row-major), N rows split into P nearly equal blocks and N columns
into Q, and the SUMMA panels: column ranges of A (= row ranges of B) that never straddle
two owners. Installed next to ``gemm_block_mpi`` and imported from there by plain name;
inside the vhpc package it is ``vhpc.workloads.bin.gemm_grid``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

# ---------------------------------------------------------------- process grid

def factor_grid(nprocs: int) -> tuple[int, int]:
    """Most square P x Q with P <= Q and P * Q == nprocs (a prime p gives 1 x p)."""
    if nprocs < 1:
        raise ValueError(f"process count must be >= 1, got {nprocs}")
    rows = math.isqrt(nprocs)
    while nprocs % rows:
        rows -= 1
    return rows, nprocs // rows


def parse_grid(text: str) -> tuple[int, int]:
    """Parse 'PxQ' (e.g. '2x3') into (P, Q)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"grid must look like PxQ (e.g. 2x3), got {text!r}")
    rows, cols = int(parts[0]), int(parts[1])
    if rows < 1 or cols < 1:
        raise ValueError(f"grid dimensions must be >= 1, got {text!r}")
    return rows, cols


def rank_coords(rank: int, grid: tuple[int, int]) -> tuple[int, int]:
    """Grid coordinates (p, q) of a rank, row-major."""
    return divmod(rank, grid[1])


def coords_rank(coords: tuple[int, int], grid: tuple[int, int]) -> int:
    """Rank at grid coordinates (p, q), row-major."""
    return coords[0] * grid[1] + coords[1]


# ---------------------------------------------------------------- block distribution

def block_range(n: int, parts: int, index: int) -> tuple[int, int]:
    """Half-open [start, stop) of part ``index`` when n items split into ``parts`` blocks.

    The first n % parts blocks get one extra item, so sizes differ by at most one.
    """
    base, extra = divmod(n, parts)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


def block_sizes(n: int, parts: int) -> list[int]:
    """Sizes of all blocks of an n-item split into ``parts`` (they sum to n)."""
    return [stop - start for start, stop in (block_range(n, parts, i) for i in range(parts))]


def block_owner(n: int, parts: int, item: int) -> int:
    """Index of the block that holds ``item`` (0 <= item < n)."""
    if not 0 <= item < n:
        raise ValueError(f"item {item} outside 0..{n - 1}")
    base, extra = divmod(n, parts)
    boundary = extra * (base + 1)
    if item < boundary:
        return item // (base + 1)
    return extra + (item - boundary) // base


@dataclass(frozen=True)
class Panel:
    """One SUMMA step: columns [start, stop) of A (= rows of B) and who broadcasts them."""

    start: int
    stop: int
    a_col: int  # grid column that owns A[:, start:stop]
    b_row: int  # grid row that owns B[start:stop, :]

    @property
    def width(self) -> int:
        """Number of columns in the panel."""
        return self.stop - self.start


def summa_panels(n: int, grid: tuple[int, int], width: int) -> list[Panel]:
    """Split k = 0..n into panels of at most ``width`` that never straddle an owner."""
    if width < 1:
        raise ValueError(f"block width must be >= 1, got {width}")
    cuts = {0, n}
    cuts.update(block_range(n, grid[0], p)[0] for p in range(grid[0]))
    cuts.update(block_range(n, grid[1], q)[0] for q in range(grid[1]))
    edges = sorted(c for c in cuts if 0 <= c <= n)
    panels = []
    for lo, hi in itertools.pairwise(edges):
        for start in range(lo, hi, width):
            stop = min(start + width, hi)
            panels.append(Panel(start, stop, block_owner(n, grid[1], start),
                                block_owner(n, grid[0], start)))
    return panels
