"""Numerics of the block GEMM: deterministic data, local kernels, verification, memory.

Nothing here talks to MPI or touches a whole matrix unless asked: every function works on
the block a rank owns. This module is installed next to ``gemm_block_mpi`` (in
``/opt/vhpc/bin`` on every node) and imported from there by plain name; inside the vhpc
package it is ``vhpc.workloads.bin.gemm_core`` (re-exported by ``vhpc.workloads.gemm``).
Its only dependency is numpy.

Matrix data: element (i, j) of matrix ``which`` is a counter-based hash (splitmix64) of
(seed, which, i * cols + j) mapped to [-1, 1), so any block of any matrix can be generated
on its own, independent of the process grid, and no rank ever needs the whole matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

try:
    from vhpc.workloads.bin.gemm_grid import block_range, factor_grid
except ImportError:  # installed flat in /opt/vhpc/bin: the job venv has no vhpc package
    from gemm_grid import block_range, factor_grid  # type: ignore[no-redef]

Array: TypeAlias = npt.NDArray[Any]

MATRIX_A = 0
MATRIX_B = 1
MATRIX_X = 2
FREIVALDS_VECTORS = 2
DTYPES = ("float32", "float64")
# Elements generated per vectorized step: bounds the temporaries of generation (~2 MB each).
GEN_CHUNK_ELEMENTS = 1 << 18
# Bytes of the temporary used when accumulating C += A_panel @ B_panel chunk by chunk.
ACCUM_CHUNK_BYTES = 4 << 20
# Safety factor of the Freivalds tolerance over the statistical rounding-error estimate.
FREIVALDS_KAPPA = 32.0

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------- deterministic data

def _stream_key(seed: int, which: int) -> np.uint64:
    """A 64-bit key per (seed, matrix), so matrices of one seed are independent."""
    x = (seed * 0x100000001B3 + which * 0x9E3779B97F4A7C15 + 1) & _MASK64
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        x = ((x ^ (x >> shift)) * mult) & _MASK64
    return np.uint64(x ^ (x >> 31))


def _uniform(key: np.uint64, counters: Array) -> Array:
    """splitmix64 of (key + counter * golden), as float64 in [-1, 1). Modifies counters."""
    z = counters
    z *= _GOLDEN
    z += key
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    z >>= np.uint64(11)
    return z.astype(np.float64) * (2.0 ** -52) - 1.0


def generate_block(seed: int, which: int, ld: int, rows: tuple[int, int],
                   cols: tuple[int, int], dtype: str = "float64", order: str = "C") -> Array:
    """Block [rows) x [cols) of matrix ``which`` whose rows have ``ld`` columns.

    Generated in chunks along the slow axis, so temporaries stay small; ``order`` is the
    memory layout of the result ('C' or 'F').
    """
    shape = (rows[1] - rows[0], cols[1] - cols[0])
    out = np.empty(shape, dtype=dtype, order="F" if order == "F" else "C")
    if out.size == 0:
        return out
    key = _stream_key(seed, which)
    row_idx = np.arange(rows[0], rows[1], dtype=np.uint64)[:, None] * np.uint64(ld)
    col_idx = np.arange(cols[0], cols[1], dtype=np.uint64)[None, :]
    if order == "F":
        step = max(1, GEN_CHUNK_ELEMENTS // max(1, shape[0]))
        for c in range(0, shape[1], step):
            out[:, c:c + step] = _uniform(key, row_idx + col_idx[:, c:c + step])
    else:
        step = max(1, GEN_CHUNK_ELEMENTS // max(1, shape[1]))
        for r in range(0, shape[0], step):
            out[r:r + step, :] = _uniform(key, row_idx[r:r + step] + col_idx)
    return out


def generate_matrix(seed: int, which: int, n: int, dtype: str = "float64") -> Array:
    """The whole n x n matrix ``which`` (for tests and small checks only)."""
    return generate_block(seed, which, n, (0, n), (0, n), dtype)


def freivalds_vectors(seed: int, n: int, dtype: str = "float64",
                      count: int = FREIVALDS_VECTORS) -> Array:
    """The n x count random probe vectors, |x| in [0.5, 1) with random signs.

    Bounded away from zero, so a wrong element of C always moves C·x by at least half
    its error; every rank derives the same vectors from the shared seed.
    """
    v = generate_block(seed, MATRIX_X, count, (0, n), (0, count), "float64")
    return (np.sign(v) * (0.5 + 0.5 * np.abs(v))).astype(dtype)


# ---------------------------------------------------------------- local kernels

def accumulate_product(c: Array, a: Array, b: Array, scratch: Array | None = None) -> None:
    """c += a @ b, in row chunks so the product's temporary stays small."""
    rows = c.shape[0]
    if rows == 0 or c.shape[1] == 0 or a.shape[1] == 0:
        return
    step = max(1, ACCUM_CHUNK_BYTES // max(1, c.shape[1] * c.itemsize))
    if scratch is None or scratch.shape[1] != c.shape[1] or scratch.shape[0] < min(step, rows):
        scratch = np.empty((min(step, rows), c.shape[1]), dtype=c.dtype)
    for r in range(0, rows, step):
        chunk = c[r:r + step]
        tmp = scratch[:chunk.shape[0]]
        np.matmul(a[r:r + step], b, out=tmp)
        chunk += tmp


def accumulate_scratch(c: Array) -> Array:
    """A scratch buffer suited to ``accumulate_product`` for this C block."""
    step = max(1, ACCUM_CHUNK_BYTES // max(1, c.shape[1] * c.itemsize))
    return np.empty((max(1, min(step, c.shape[0])), c.shape[1]), dtype=c.dtype)


def square_matvec(m: Array, x: Array) -> Array:
    """(m * m) @ x, elementwise square, in row chunks (no temporary of the size of m)."""
    out = np.empty((m.shape[0], *x.shape[1:]), dtype=np.result_type(m, x))
    step = max(1, GEN_CHUNK_ELEMENTS // max(1, m.shape[1]))
    for r in range(0, m.shape[0], step):
        np.matmul(np.square(m[r:r + step]), x, out=out[r:r + step])
    return out


# ---------------------------------------------------------------- verification

@dataclass(frozen=True)
class Verdict:
    """Outcome of a Freivalds check: passed, and worst residual as a fraction of tolerance."""

    passed: bool
    worst_ratio: float
    tolerance_max: float


def freivalds_tolerance(sq_bound: Array, n: int, dtype: str) -> Array:
    """Componentwise tolerance for C·x - A·(B·x), given sq_bound = A²·(B²·x²) (elementwise
    squares).

    Rounding errors of long sums of random-signed terms add in quadrature (Wilkinson's
    statistical estimate): each product involved errs by about u * sqrt(n) * sqrt(sq_bound)
    per component; FREIVALDS_KAPPA covers the four products and the tail of the maximum.
    This is far tighter than the worst-case bound n * u * |A||B||x|, which would let a
    float32 run with a whole panel missing pass.
    """
    unit = float(np.finfo(np.dtype(dtype)).eps) / 2.0
    scale = FREIVALDS_KAPPA * unit * math.sqrt(max(n, 1))
    return scale * np.sqrt(sq_bound) + float(np.finfo(np.float64).tiny)


def judge(residual: Array, tolerance: Array) -> Verdict:
    """Compare a residual with its tolerance; NaN or inf fails."""
    ratio = np.abs(residual.astype(np.float64)) / tolerance.astype(np.float64)
    worst = float(np.max(ratio)) if ratio.size else 0.0
    passed = bool(np.all(ratio <= 1.0)) and math.isfinite(worst)
    return Verdict(passed, worst, float(np.max(tolerance)) if tolerance.size else 0.0)


def freivalds_check(a: Array, b: Array, c: Array, x: Array) -> Verdict:
    """Freivalds' test on local matrices: is C == A @ B (probed with vectors x)?"""
    residual = c @ x - a @ (b @ x)
    bound = square_matvec(a, square_matvec(b, np.square(x)))
    return judge(residual, freivalds_tolerance(bound, a.shape[1], str(c.dtype)))


def corrupt_block(c: Array) -> tuple[int, int] | None:
    """Perturb one element of a C block (test hook); returns its local index, if any."""
    if c.size == 0:
        return None
    i, j = c.shape[0] // 2, c.shape[1] // 2
    c[i, j] += 1.0 + abs(float(c[i, j]))
    return i, j


# ---------------------------------------------------------------- memory model

BASELINE_BYTES = 42 << 20  # interpreter + numpy + mpi4py + Open MPI, measured (docs/gemm.md)


def estimate_rank_bytes(n: int, grid: tuple[int, int], width: int, dtype: str = "float64",
                        baseline: int = BASELINE_BYTES) -> int:
    """Peak bytes of the largest rank: baseline + 3 blocks + received panels + scratch.

    A panel buffer is only touched when there is someone to receive from: the A panel
    (rows x width) when the grid has more than one column, the B panel (width x cols)
    when it has more than one row.
    """
    item = int(np.dtype(dtype).itemsize)
    rows = block_range(n, grid[0], 0)[1]
    cols = block_range(n, grid[1], 0)[1]
    width = min(width, n)
    panels = (width * rows if grid[1] > 1 else 0) + (width * cols if grid[0] > 1 else 0)
    scratch = min(rows, max(1, ACCUM_CHUNK_BYTES // max(1, cols * item))) * cols
    return baseline + item * (3 * rows * cols + panels + scratch)


def largest_fitting_size(ranks: int, limit_bytes: int, width: int = 256,
                         dtype: str = "float64", step: int = 256) -> int:
    """Largest multiple of ``step`` whose per-rank estimate stays under ``limit_bytes``."""
    grid = factor_grid(ranks)
    n = 0
    while estimate_rank_bytes(n + step, grid, width, dtype) <= limit_bytes:
        n += step
    return n
