"""Directory trees laid out like cgroup v1/v2 and /sys/class/net, for tests and benches.

Counters are plain files, so a test can write new values between two samples.
"""

from __future__ import annotations

from pathlib import Path

from vhpc.observe.samples import NodeHandle


def _write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def write_v1(
    root: Path,
    node: str,
    mem: int = 0,
    limit: int = 125 << 20,
    peak: int = 0,
    failcnt: int = 0,
    oom_kills: int = 0,
    cpu_ns: int = 0,
    pids: tuple[int, ...] = (),
) -> dict[str, Path]:
    """Write (or update) a v1 node: ``root/{memory,cpuacct}/vhpc/<node>``; returns dirs."""
    dirs = {c: root / c / "vhpc" / node for c in ("memory", "cpuacct")}
    procs = "".join(f"{p}\n" for p in pids)
    _write(dirs["memory"], {
        "memory.usage_in_bytes": f"{mem}\n",
        "memory.limit_in_bytes": f"{limit}\n",
        "memory.max_usage_in_bytes": f"{peak}\n",
        "memory.failcnt": f"{failcnt}\n",
        "memory.oom_control": f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kills}\n",
        "cgroup.procs": procs,
    })
    _write(dirs["cpuacct"], {"cpuacct.usage": f"{cpu_ns}\n", "cgroup.procs": procs})
    return dirs


def write_v2(
    root: Path,
    node: str,
    mem: int = 0,
    limit: int | None = 125 << 20,
    peak: int | None = 0,
    oom_kills: int = 0,
    cpu_usec: int = 0,
    pids: tuple[int, ...] = (),
    pids_current: bool = True,
) -> Path:
    """Write (or update) a v2 node directory ``root/vhpc/<node>``; returns it."""
    d = root / "vhpc" / node
    files = {
        "memory.current": f"{mem}\n",
        "memory.max": "max\n" if limit is None else f"{limit}\n",
        "memory.events": f"low 0\nhigh 0\nmax 3\noom 1\noom_kill {oom_kills}\noom_group_kill 0\n",
        "cpu.stat": f"usage_usec {cpu_usec}\nuser_usec {cpu_usec // 2}\n"
                    f"system_usec {cpu_usec // 2}\n",
        "cgroup.procs": "".join(f"{p}\n" for p in pids),
    }
    if peak is not None:
        files["memory.peak"] = f"{peak}\n"
    if pids_current:
        files["pids.current"] = f"{len(pids)}\n"
    _write(d, files)
    return d


def write_veth(
    net_root: Path,
    veth: str,
    rx_bytes: int = 0,
    tx_bytes: int = 0,
    rx_packets: int = 0,
    tx_packets: int = 0,
) -> None:
    """Write host-side veth counters (host view: rx = what the node sent)."""
    _write(net_root / veth / "statistics", {
        "rx_bytes": f"{rx_bytes}\n", "tx_bytes": f"{tx_bytes}\n",
        "rx_packets": f"{rx_packets}\n", "tx_packets": f"{tx_packets}\n",
    })


def fake_cluster(root: Path, n: int, prefix: str = "compute") -> list[NodeHandle]:
    """``n`` v1 nodes with veths and one slurmd log file each, under ``root``."""
    handles = []
    (root / "log").mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        name = f"{prefix}{i}"
        dirs = write_v1(root / "cgroup", name, mem=(10 + i) << 20, cpu_ns=i * 10**9,
                        pids=(1000 + i,))
        write_veth(root / "net", f"vh{i}", rx_bytes=i * 1000, tx_bytes=i * 2000)
        log = root / "log" / f"slurmd.{name}.log"
        log.touch()
        handles.append(NodeHandle(name, dirs, f"vh{i}", {"slurmd": log}))
    return handles
