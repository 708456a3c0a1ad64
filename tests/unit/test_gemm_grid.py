"""Process grid and block distribution of the block GEMM (pure Python, no numpy, no MPI)."""

from __future__ import annotations

import itertools

import pytest

from vhpc.workloads.bin.gemm_grid import (
    block_owner,
    block_range,
    block_sizes,
    coords_rank,
    factor_grid,
    parse_grid,
    rank_coords,
    summa_panels,
)


@pytest.mark.parametrize(
    ("nprocs", "grid"),
    [(1, (1, 1)), (2, (1, 2)), (3, (1, 3)), (4, (2, 2)), (6, (2, 3)), (8, (2, 4)),
     (12, (3, 4)), (16, (4, 4))],
)
def test_factor_grid_is_most_square(nprocs: int, grid: tuple[int, int]) -> None:
    assert factor_grid(nprocs) == grid


@pytest.mark.parametrize("prime", [2, 3, 5, 7, 11, 13, 97])
def test_factor_grid_prime_is_a_single_row(prime: int) -> None:
    assert factor_grid(prime) == (1, prime)


def test_factor_grid_rejects_zero() -> None:
    with pytest.raises(ValueError):
        factor_grid(0)


@pytest.mark.parametrize(("text", "grid"), [("2x3", (2, 3)), ("1X4", (1, 4)), ("4x1", (4, 1))])
def test_parse_grid(text: str, grid: tuple[int, int]) -> None:
    assert parse_grid(text) == grid


@pytest.mark.parametrize("bad", ["2", "2x", "x3", "2x3x1", "0x4", "axb", "-1x2"])
def test_parse_grid_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_grid(bad)


def test_rank_coords_row_major_round_trip() -> None:
    grid = (2, 3)
    assert [rank_coords(r, grid) for r in range(6)] == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert all(coords_rank(rank_coords(r, grid), grid) == r for r in range(6))


@pytest.mark.parametrize(("n", "parts"), [(16, 4), (17, 4), (1001, 3), (5, 8), (1, 1), (7, 7)])
def test_blocks_tile_the_range(n: int, parts: int) -> None:
    ranges = [block_range(n, parts, i) for i in range(parts)]
    assert ranges[0][0] == 0
    assert ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = block_sizes(n, parts)
    assert sum(sizes) == n
    assert max(sizes) - min(sizes) <= 1


def test_uneven_split_gives_extra_items_first() -> None:
    assert block_sizes(10, 4) == [3, 3, 2, 2]
    assert block_range(10, 4, 2) == (6, 8)


@pytest.mark.parametrize(("n", "parts"), [(16, 4), (17, 4), (1001, 3), (5, 8), (10, 4)])
def test_block_owner_matches_ranges(n: int, parts: int) -> None:
    for i in range(parts):
        start, stop = block_range(n, parts, i)
        assert all(block_owner(n, parts, item) == i for item in range(start, stop))


def test_block_owner_rejects_outside() -> None:
    with pytest.raises(ValueError):
        block_owner(10, 2, 10)


@pytest.mark.parametrize(
    ("n", "grid", "width"), [(16, (2, 2), 4), (17, (2, 3), 5), (100, (1, 4), 7), (10, (3, 1), 64)]
)
def test_summa_panels_cover_k_without_straddling_owners(
    n: int, grid: tuple[int, int], width: int
) -> None:
    panels = summa_panels(n, grid, width)
    assert panels[0].start == 0
    assert panels[-1].stop == n
    assert all(a.stop == b.start for a, b in itertools.pairwise(panels))
    for panel in panels:
        assert 1 <= panel.width <= width
        a_cols = block_range(n, grid[1], panel.a_col)
        b_rows = block_range(n, grid[0], panel.b_row)
        assert a_cols[0] <= panel.start and panel.stop <= a_cols[1]
        assert b_rows[0] <= panel.start and panel.stop <= b_rows[1]


def test_summa_panels_reject_zero_width() -> None:
    with pytest.raises(ValueError):
        summa_panels(8, (1, 1), 0)
