"""The MPI side of ``gemm_block_mpi``: options, SUMMA, distributed Freivalds, report.

Every rank generates only its own blocks of A and B (see ``gemm_core``), SUMMA
broadcasts panels along grid rows and columns, and the result is checked with
Freivalds' test using distributed matrix-vector products (vectors of length N are the
largest thing ever reduced). Rank 0 prints the report; every rank exits 1 on a failed
verification, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

try:
    from vhpc.workloads.bin import gemm_core as core
    from vhpc.workloads.bin import gemm_grid as grid_
except ImportError:  # installed flat in /opt/vhpc/bin: the job venv has no vhpc package
    import gemm_core as core  # type: ignore[no-redef]
    import gemm_grid as grid_  # type: ignore[no-redef]

EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_WIDTH = 256


class UsageError(Exception):
    """Bad command line; rank 0 reports it, every rank exits 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # raise instead of exiting on every rank
        raise UsageError(message)


@dataclass(frozen=True)
class Options:
    """Parsed command line."""

    size: int
    grid: tuple[int, int] | None
    block: int
    reps: int
    delay_ms: float
    dtype: str
    seed: int
    json: bool
    corrupt_rank: int | None


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (positional N accepted like the seed's gemm.sh)."""
    p = _Parser(prog="gemm_block_mpi", description="Distributed block GEMM (SUMMA) over MPI, "
                "verified with Freivalds' test.")
    p.add_argument("n_pos", nargs="?", type=int, metavar="N", help="matrix size (same as -n)")
    p.add_argument("-n", "--size", type=int, help="matrix size N (default 1024)")
    p.add_argument("--grid", help="process grid PxQ (default: most square for the rank count)")
    p.add_argument("--block", type=int, default=DEFAULT_WIDTH,
                   help=f"SUMMA panel width B (default {DEFAULT_WIDTH})")
    p.add_argument("--reps", type=int, default=1, help="repetitions of the multiply")
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="sleep per panel step, so an overcommitted host stays usable")
    p.add_argument("--dtype", choices=core.DTYPES, default="float64")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout (rank 0)")
    p.add_argument("--corrupt-rank", type=int, metavar="K",
                   help="test hook: rank K perturbs one element of C; verification must fail")
    return p


def parse_options(argv: list[str]) -> Options:
    """Parse and validate argv; raises UsageError."""
    ns = build_parser().parse_args(argv)
    if ns.n_pos is not None and ns.size is not None and ns.n_pos != ns.size:
        raise UsageError(f"N given twice ({ns.n_pos} and {ns.size})")
    size = ns.size if ns.size is not None else (ns.n_pos if ns.n_pos is not None else 1024)
    if size < 1 or ns.block < 1 or ns.reps < 1 or ns.delay_ms < 0:
        raise UsageError("N, --block and --reps must be >= 1, --delay-ms >= 0")
    try:
        grid = grid_.parse_grid(ns.grid) if ns.grid else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Options(size, grid, ns.block, ns.reps, ns.delay_ms, ns.dtype, ns.seed, ns.json,
                   ns.corrupt_rank)


def resolve_grid(opts: Options, nprocs: int) -> tuple[int, int]:
    """The grid to use for nprocs ranks; raises UsageError if --grid does not match."""
    if opts.grid is None:
        return grid_.factor_grid(nprocs)
    if opts.grid[0] * opts.grid[1] != nprocs:
        raise UsageError(f"grid {opts.grid[0]}x{opts.grid[1]} needs "
                         f"{opts.grid[0] * opts.grid[1]} ranks, job has {nprocs}")
    return opts.grid


# ---------------------------------------------------------------- layout and data

@dataclass(frozen=True)
class Layout:
    """Where this rank sits: grid, coordinates and the global rows/columns it owns."""

    n: int
    grid: tuple[int, int]
    coords: tuple[int, int]

    @property
    def rows(self) -> tuple[int, int]:
        """Global rows of the C (and A, B) blocks held here."""
        return grid_.block_range(self.n, self.grid[0], self.coords[0])

    @property
    def cols(self) -> tuple[int, int]:
        """Global columns of the C (and A, B) blocks held here."""
        return grid_.block_range(self.n, self.grid[1], self.coords[1])


@dataclass
class Blocks:
    """This rank's blocks: A (Fortran order, so column panels are contiguous), B and C."""

    a: core.Array
    b: core.Array
    c: core.Array


def make_blocks(layout: Layout, opts: Options) -> Blocks:
    """Generate this rank's A and B blocks from the seed; C starts at zero."""
    shape = (layout.rows[1] - layout.rows[0], layout.cols[1] - layout.cols[0])
    a = core.generate_block(opts.seed, core.MATRIX_A, layout.n, layout.rows, layout.cols,
                            opts.dtype, order="F")
    b = core.generate_block(opts.seed, core.MATRIX_B, layout.n, layout.rows, layout.cols,
                            opts.dtype)
    return Blocks(a, b, np.zeros(shape, dtype=opts.dtype))


# ---------------------------------------------------------------- SUMMA

@dataclass
class Comms:
    """World, and the row / column communicators of the grid."""

    world: Any
    row: Any  # ranks (p, *), rank in it == q
    col: Any  # ranks (*, q), rank in it == p


def split_comms(world: Any, layout: Layout) -> Comms:
    """Split the world communicator into grid rows and columns."""
    p, q = layout.coords
    return Comms(world, world.Split(color=p, key=q), world.Split(color=q, key=p))


def summa(comms: Comms, layout: Layout, blk: Blocks, width: int, delay_s: float) -> None:
    """C = A @ B by SUMMA: per panel, broadcast A's columns along rows, B's rows along
    columns, then accumulate locally."""
    p, q = layout.coords
    nrows, ncols = blk.c.shape
    a_buf = np.empty(nrows * width, dtype=blk.c.dtype)
    b_buf = np.empty(width * ncols, dtype=blk.c.dtype)
    scratch = core.accumulate_scratch(blk.c)
    blk.c.fill(0)
    for panel in grid_.summa_panels(layout.n, layout.grid, width):
        w = panel.width
        if panel.a_col == q:
            lo = panel.start - layout.cols[0]
            a_pan = blk.a[:, lo:lo + w]
        else:
            a_pan = a_buf[:nrows * w].reshape((nrows, w), order="F")
        if panel.b_row == p:
            lo = panel.start - layout.rows[0]
            b_pan = blk.b[lo:lo + w, :]
        else:
            b_pan = b_buf[:w * ncols].reshape((w, ncols))
        if comms.row.Get_size() > 1:
            comms.row.Bcast(a_pan, root=panel.a_col)
        if comms.col.Get_size() > 1:
            comms.col.Bcast(b_pan, root=panel.b_row)
        core.accumulate_product(blk.c, a_pan, b_pan, scratch)
        if delay_s > 0:
            time.sleep(delay_s)


def timed_summa(comms: Comms, layout: Layout, blk: Blocks, opts: Options) -> list[float]:
    """Run SUMMA ``reps`` times; wall time of each repetition (slowest rank)."""
    times = []
    for _ in range(opts.reps):
        comms.world.Barrier()
        start = time.perf_counter()
        summa(comms, layout, blk, opts.block, opts.delay_ms / 1000.0)
        comms.world.Barrier()
        times.append(time.perf_counter() - start)
    return times


# ---------------------------------------------------------------- distributed Freivalds

def _global_matvec(comms: Comms, layout: Layout, m: core.Array, x: core.Array,
                   squared: bool = False) -> core.Array:
    """y = M @ x (or M² @ x) for a distributed M; every rank gets the whole y (N x k)."""
    from mpi4py import MPI

    lo, hi = layout.cols
    part = core.square_matvec(m, x[lo:hi]) if squared else m @ x[lo:hi]
    full = np.zeros((layout.n, *x.shape[1:]), dtype=part.dtype)
    full[layout.rows[0]:layout.rows[1]] = part
    comms.world.Allreduce(MPI.IN_PLACE, full, op=MPI.SUM)
    return full


def distributed_freivalds(comms: Comms, layout: Layout, blk: Blocks,
                          opts: Options) -> core.Verdict:
    """Freivalds' test of C == A @ B over the grid; all ranks reach the same verdict."""
    from mpi4py import MPI

    x = core.freivalds_vectors(opts.seed, layout.n, opts.dtype)
    cx = _global_matvec(comms, layout, blk.c, x)
    abx = _global_matvec(comms, layout, blk.a, _global_matvec(comms, layout, blk.b, x))
    bound = _global_matvec(comms, layout, blk.a,
                           _global_matvec(comms, layout, blk.b, np.square(x), squared=True),
                           squared=True)
    verdict = core.judge(cx - abx, core.freivalds_tolerance(bound, layout.n, opts.dtype))
    all_passed = comms.world.allreduce(int(verdict.passed), op=MPI.MIN)
    return core.Verdict(bool(all_passed), verdict.worst_ratio, verdict.tolerance_max)


# ---------------------------------------------------------------- report

@dataclass
class RankInfo:
    """What rank 0 reports for each rank."""

    rank: int
    host: str
    coords: list[int]
    local_shape: list[int]
    peak_rss_kib: int


@dataclass
class Report:
    """The result of a run, as printed (text or JSON) by rank 0."""

    n: int
    ranks: int
    grid: list[int]
    block: int
    dtype: str
    reps: int
    delay_ms: float
    seed: int
    time_s: float
    best_time_s: float
    gflops: float
    verification: str
    worst_residual_ratio: float
    corrupt_rank: int | None
    rank_info: list[RankInfo] = field(default_factory=list)


def peak_rss_kib() -> int:
    """Peak resident set size of this process in KiB (Linux ru_maxrss)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def make_report(opts: Options, layout: Layout, times: list[float], verdict: core.Verdict,
                infos: list[RankInfo]) -> Report:
    """Assemble the report from timings, the verdict and the gathered rank infos."""
    mean = sum(times) / len(times)
    flops = 2.0 * float(layout.n) ** 3
    return Report(layout.n, len(infos), list(layout.grid), opts.block, opts.dtype, opts.reps,
                  opts.delay_ms, opts.seed, mean, min(times), flops / mean / 1e9,
                  "PASSED" if verdict.passed else "FAILED", verdict.worst_ratio,
                  opts.corrupt_rank, infos)


def render_text(rep: Report) -> str:
    """Human-readable report."""
    mib = 1024.0
    lines = [
        f"gemm_block_mpi: N={rep.n} ranks={rep.ranks} grid={rep.grid[0]}x{rep.grid[1]} "
        f"block={rep.block} dtype={rep.dtype} reps={rep.reps} delay_ms={rep.delay_ms:g}",
        f"time {rep.time_s:.3f} s per multiply (best {rep.best_time_s:.3f} s)  "
        f"GFLOPS {rep.gflops:.2f}",
    ]
    for info in rep.rank_info:
        lines.append(f"rank {info.rank:>3} host {info.host} grid ({info.coords[0]},"
                     f"{info.coords[1]}) block {info.local_shape[0]}x{info.local_shape[1]} "
                     f"peak RSS {info.peak_rss_kib / mib:.1f} MiB")
    lines.append(f"verification {rep.verification} "
                 f"(worst residual {rep.worst_residual_ratio:.3g} x tolerance)")
    return "\n".join(lines)


def render_json(rep: Report) -> str:
    """The report as one JSON object."""
    return json.dumps(asdict(rep), sort_keys=True)


# ---------------------------------------------------------------- main

def _options_or_exit(world: Any, argv: list[str]) -> tuple[Options, tuple[int, int]]:
    try:
        opts = parse_options(argv)
        grid = resolve_grid(opts, world.Get_size())
        if opts.corrupt_rank is not None and not 0 <= opts.corrupt_rank < world.Get_size():
            raise UsageError(f"--corrupt-rank must be in 0..{world.Get_size() - 1}")
    except UsageError as exc:
        if world.Get_rank() == 0:
            build_parser().print_usage(sys.stderr)
            print(f"gemm_block_mpi: error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    return opts, grid


def memory_limit(cgroup_root: str = "/sys/fs/cgroup",
                 proc_cgroup: str = "/proc/self/cgroup") -> int | None:
    """This process's cgroup memory limit, None if unlimited/unknown: the tightest of its
    cgroup and their ancestors (a Slurm job's cgroups sit below the node's, in vhpc)."""
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found: tuple[str, str, str] | None = None  # (hierarchy root, path, limit file)
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # cgroup v1 memory hierarchy
            found = (f"{cgroup_root}/memory", path, "memory.limit_in_bytes")
            break
        if controllers == "":  # the cgroup v2 line
            found = (cgroup_root, path, "memory.max")
    if found is None:
        return None
    base, path, name = found
    limits = []
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        try:
            with open("/".join([base, *parts[:depth], name])) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text != "max" and int(text) < 1 << 62:
            limits.append(int(text))
    return min(limits, default=None)


def warn_if_too_big(world: Any, opts: Options, grid: tuple[int, int]) -> None:
    """Rank 0 says before the run when the matrices cannot fit a node's memory limit."""
    from mpi4py import MPI

    limits = world.gather((MPI.Get_processor_name(), memory_limit()), root=0)
    if world.Get_rank() != 0:
        return
    need = core.estimate_rank_bytes(opts.size, grid, opts.block, opts.dtype)
    tight = sorted((limit, host) for host, limit in limits if limit and need > limit)
    if tight:
        limit, host = tight[0]
        fits = core.largest_fitting_size(world.Get_size(), limit, opts.block, opts.dtype)
        print(f"gemm_block_mpi: warning: N={opts.size} needs about {need >> 20} MiB per rank "
              f"but {len(tight)} node(s) allow less (e.g. {host}: {limit >> 20} MiB): expect "
              f"the OOM killer; the largest N that fits {world.Get_size()} such ranks is "
              f"about {fits}", file=sys.stderr, flush=True)


def run(world: Any, opts: Options, grid: tuple[int, int]) -> Report | None:
    """Generate, multiply, verify; returns the report on rank 0, None elsewhere."""
    from mpi4py import MPI

    rank = world.Get_rank()
    warn_if_too_big(world, opts, grid)
    layout = Layout(opts.size, grid, grid_.rank_coords(rank, grid))
    comms = split_comms(world, layout)
    blk = make_blocks(layout, opts)
    times = timed_summa(comms, layout, blk, opts)
    if opts.corrupt_rank == rank:
        core.corrupt_block(blk.c)
    verdict = distributed_freivalds(comms, layout, blk, opts)
    info = RankInfo(rank, MPI.Get_processor_name(), list(layout.coords), list(blk.c.shape),
                    peak_rss_kib())
    infos = world.gather(info, root=0)
    comms.row.Free()
    comms.col.Free()
    return make_report(opts, layout, times, verdict, infos) if rank == 0 else None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``gemm_block_mpi``; returns the process exit code."""
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    opts, grid = _options_or_exit(world, sys.argv[1:] if argv is None else argv)
    report = run(world, opts, grid)
    passed = world.bcast(report.verification == "PASSED" if report else None, root=0)
    if report is not None:
        print(render_json(report) if opts.json else render_text(report), flush=True)
    return 0 if passed else EXIT_FAILED
