"""Block GEMM numerics: deterministic blocks, local kernels, Freivalds, memory model, options.

numpy is a dependency of the job venv (/opt/vhpc/venv), not of vhpc itself; if the test
venv lacks it, the job venv's site-packages (same Python version) are appended to
sys.path, otherwise these tests are skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

_JOB_SITE = Path(
    f"/opt/vhpc/venv/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages")
try:
    import numpy  # noqa: F401
except ImportError:
    if _JOB_SITE.is_dir():
        sys.path.append(str(_JOB_SITE))
np = pytest.importorskip("numpy", reason="numpy is in neither this venv nor /opt/vhpc/venv")

from vhpc.workloads import gemm  # noqa: E402
from vhpc.workloads.bin import gemm_mpi  # noqa: E402


def _product(seed: int, n: int, dtype: str) -> tuple[Any, Any, Any]:
    a = gemm.generate_matrix(seed, 0, n, dtype)
    b = gemm.generate_matrix(seed, 1, n, dtype)
    return a, b, a @ b


# ---------------------------------------------------------------- deterministic blocks

def test_same_seed_same_block() -> None:
    one = gemm.generate_block(7, 0, 100, (10, 40), (5, 70))
    two = gemm.generate_block(7, 0, 100, (10, 40), (5, 70))
    assert np.array_equal(one, two)


def test_seeds_and_matrices_differ() -> None:
    base = gemm.generate_block(7, 0, 64, (0, 64), (0, 64))
    assert not np.array_equal(base, gemm.generate_block(8, 0, 64, (0, 64), (0, 64)))
    assert not np.array_equal(base, gemm.generate_block(7, 1, 64, (0, 64), (0, 64)))


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("rows", "cols"), [((0, 37), (0, 37)), ((3, 20), (11, 36)),
                                            ((36, 37), (0, 37)), ((5, 5), (0, 10))])
def test_block_of_global_matrix_equals_generated_block(
    rows: tuple[int, int], cols: tuple[int, int], dtype: str, order: str
) -> None:
    whole = gemm.generate_matrix(3, 0, 37, dtype)
    block = gemm.generate_block(3, 0, 37, rows, cols, dtype, order=order)
    assert block.dtype == np.dtype(dtype)
    assert block.flags["F_CONTIGUOUS" if order == "F" else "C_CONTIGUOUS"]
    assert np.array_equal(block, whole[rows[0]:rows[1], cols[0]:cols[1]])


def test_generation_in_chunks_matches_one_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = gemm.generate_matrix(5, 1, 50)
    monkeypatch.setattr("vhpc.workloads.bin.gemm_core.GEN_CHUNK_ELEMENTS", 7)
    assert np.array_equal(whole, gemm.generate_block(5, 1, 50, (0, 50), (0, 50), order="F"))
    assert np.array_equal(whole, gemm.generate_matrix(5, 1, 50))


def test_values_are_uniform_in_minus_one_one() -> None:
    m = gemm.generate_matrix(1, 0, 300)
    assert m.min() >= -1.0 and m.max() < 1.0
    assert abs(float(m.mean())) < 0.01
    assert abs(float(m.var()) - 1.0 / 3.0) < 0.01


def test_freivalds_vectors_bounded_away_from_zero_and_shared() -> None:
    x = gemm.freivalds_vectors(9, 1000)
    assert x.shape == (1000, 2)
    assert np.all(np.abs(x) >= 0.5) and np.all(np.abs(x) < 1.0)
    assert (x > 0).any() and (x < 0).any()
    assert np.array_equal(x, gemm.freivalds_vectors(9, 1000))


# ---------------------------------------------------------------- local kernels

def test_accumulate_product_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vhpc.workloads.bin.gemm_core.ACCUM_CHUNK_BYTES", 256)
    a = gemm.generate_block(2, 0, 40, (0, 33), (0, 40), order="F")
    b = gemm.generate_block(2, 1, 40, (0, 40), (0, 21))
    c = np.ones((33, 21))
    gemm_core = sys.modules["vhpc.workloads.bin.gemm_core"]
    gemm_core.accumulate_product(c, a, b)
    assert np.allclose(c, 1.0 + a @ b)


def test_square_matvec() -> None:
    m = gemm.generate_matrix(4, 0, 45)
    x = gemm.freivalds_vectors(4, 45)
    assert np.allclose(gemm.square_matvec(m, x), (m * m) @ x)


class _SoloComm:
    """A one-rank communicator: SUMMA on a 1x1 grid never broadcasts."""

    def Get_size(self) -> int:
        return 1

    def Barrier(self) -> None:
        return None


@pytest.mark.parametrize("width", [1, 7, 64])
def test_summa_on_one_rank_equals_matmul(width: int) -> None:
    opts = gemm.parse_options(["-n", "45", "--block", str(width), "--seed", "3"])
    layout = gemm_mpi.Layout(45, (1, 1), (0, 0))
    blk = gemm_mpi.make_blocks(layout, opts)
    solo = _SoloComm()
    comms = gemm_mpi.Comms(solo, solo, solo)
    gemm_mpi.summa(comms, layout, blk, width, 0.0)
    assert np.allclose(blk.c, blk.a @ blk.b)


# ---------------------------------------------------------------- Freivalds

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 2, 17, 128, 300])
def test_freivalds_passes_correct_product(n: int, dtype: str) -> None:
    for seed in range(3):
        a, b, c = _product(seed, n, dtype)
        verdict = gemm.freivalds_check(a, b, c, gemm.freivalds_vectors(seed, n, dtype))
        assert verdict.passed, verdict
        assert verdict.worst_ratio < 0.5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_freivalds_fails_one_corrupted_element(dtype: str) -> None:
    a, b, c = _product(1, 200, dtype)
    assert gemm.corrupt_block(c) == (100, 100)
    verdict = gemm.freivalds_check(a, b, c, gemm.freivalds_vectors(1, 200, dtype))
    assert not verdict.passed
    assert verdict.worst_ratio > 10


@pytest.mark.parametrize(("i", "j", "delta"), [(0, 0, 1e-6), (149, 3, -1e-6), (77, 149, 1e-7)])
def test_freivalds_float64_catches_tiny_error(i: int, j: int, delta: float) -> None:
    a, b, c = _product(2, 150, "float64")
    c[i, j] += delta
    assert not gemm.freivalds_check(a, b, c, gemm.freivalds_vectors(2, 150)).passed


def test_freivalds_float32_catches_a_missing_panel() -> None:
    n = 512
    a, b, _ = _product(4, n, "float32")
    c = a[:, 32:] @ b[32:, :]  # k = 0..31 never added
    assert not gemm.freivalds_check(a, b, c, gemm.freivalds_vectors(4, n, "float32")).passed


def test_freivalds_nan_fails() -> None:
    a, b, c = _product(5, 20, "float64")
    c[3, 4] = np.nan
    assert not gemm.freivalds_check(a, b, c, gemm.freivalds_vectors(5, 20)).passed


def test_corrupt_empty_block_is_a_no_op() -> None:
    assert gemm.corrupt_block(np.zeros((0, 5))) is None


# ---------------------------------------------------------------- memory model

def test_memory_estimate_shrinks_with_ranks_and_grows_with_n() -> None:
    one = gemm.estimate_rank_bytes(4096, (1, 1), 256)
    four = gemm.estimate_rank_bytes(4096, (2, 2), 256)
    assert four < one
    assert gemm.estimate_rank_bytes(8192, (2, 2), 256) > four
    assert gemm.estimate_rank_bytes(4096, (2, 2), 256, "float32") < four
    three_blocks = 3 * 4096 * 4096 * 8
    assert three_blocks < one - gemm.estimate_rank_bytes(0, (1, 1), 256) < 1.1 * three_blocks


def test_largest_fitting_size_fits_and_next_does_not() -> None:
    limit = 125 << 20
    n = gemm.largest_fitting_size(4, limit, step=256)
    assert gemm.estimate_rank_bytes(n, (2, 2), 256) <= limit
    assert gemm.estimate_rank_bytes(n + 256, (2, 2), 256) > limit
    assert gemm.largest_fitting_size(16, limit) > n


# ---------------------------------------------------------------- options and report

def test_options_positional_size_like_the_seed() -> None:
    assert gemm.parse_options(["4096"]).size == 4096
    assert gemm.parse_options(["-n", "512", "--grid", "2x3"]).grid == (2, 3)
    opts = gemm.parse_options(["--size", "64", "--dtype", "float32", "--json",
                               "--corrupt-rank", "1", "--delay-ms", "5", "--reps", "3"])
    assert (opts.size, opts.dtype, opts.json, opts.corrupt_rank, opts.delay_ms, opts.reps) == (
        64, "float32", True, 1, 5.0, 3)


@pytest.mark.parametrize("argv", [["4", "-n", "8"], ["-n", "0"], ["--grid", "2by2"],
                                  ["--dtype", "float16"], ["--bogus"], ["--reps", "0"]])
def test_options_rejected(argv: list[str]) -> None:
    with pytest.raises(gemm.UsageError):
        gemm.parse_options(argv)


def test_grid_must_match_rank_count() -> None:
    opts = gemm.parse_options(["-n", "8", "--grid", "2x2"])
    assert gemm_mpi.resolve_grid(opts, 4) == (2, 2)
    with pytest.raises(gemm.UsageError):
        gemm_mpi.resolve_grid(opts, 6)
    assert gemm_mpi.resolve_grid(gemm.parse_options(["8"]), 6) == (2, 3)


def test_text_report_lists_ranks_and_verdict() -> None:
    opts = gemm.parse_options(["-n", "64"])
    layout = gemm_mpi.Layout(64, (1, 2), (0, 0))
    infos = [gemm_mpi.RankInfo(r, f"compute{r}", [0, r], [64, 32], 40960) for r in range(2)]
    verdict = SimpleNamespace(passed=False, worst_ratio=12.5, tolerance_max=1.0)
    report = gemm_mpi.make_report(opts, layout, [0.5, 0.25], verdict, infos)  # type: ignore[arg-type]
    text = gemm.render_text(report)
    assert "grid=1x2" in text and "compute1" in text and "40.0 MiB" in text
    assert text.splitlines()[-1].startswith("verification FAILED")
    assert report.best_time_s == 0.25
