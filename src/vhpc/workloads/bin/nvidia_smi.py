"""A simulated ``nvidia-smi`` for vhpc's fake GPUs (launcher: ``nvidia-smi`` next to it).

Lists the GPUs a job was given (``CUDA_VISIBLE_DEVICES``, else ``SLURM_STEP_GPUS`` or
``SLURM_JOB_GPUS``; none in a job that asked for none), or, outside a job, every GPU of
the node (its ``/dev/nvidiaN``), in nvidia-smi's familiar
table, ``-L`` and ``--query-gpu=... --format=csv`` forms. Every line says the GPUs are
simulated: there is no driver, no memory and no utilisation behind them. The GPU type
comes from the node's line in gres.conf (``Type=a100``). Standard library only: it runs
with the system python of any node.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SIMULATED = "simulated by vhpc"
NO_DEVICES = "No devices were found"
EXIT_NO_DEVICES = 6  # what nvidia-smi returns when it finds no GPU
EXIT_USAGE = 2
#: Memory the simulated GPUs claim per type (MiB); others claim DEFAULT_MEMORY_MIB.
MEMORY_MIB = {"a100": 40960, "h100": 81920, "v100": 16384, "t4": 15360, "a10": 23028,
              "l4": 23034, "a40": 46068, "h200": 143771}
DEFAULT_MEMORY_MIB = 16384
QUERY_FIELDS = ("index", "name", "uuid", "pci.bus_id", "memory.total", "memory.used",
                "memory.free", "utilization.gpu", "temperature.gpu", "driver_version")
_DEVICE_RE = re.compile(r"^nvidia(\d+)$")


@dataclass(frozen=True)
class Gpu:
    """One simulated GPU as nvidia-smi shows it."""

    index: int
    name: str
    uuid: str
    bus_id: str
    memory_mib: int


def visible_indexes(env: dict[str, str], dev: Path = Path("/dev")) -> list[int]:
    """The GPU indexes the caller may use: the job's (none in a job that asked for no
    GPU), else, outside any job, every device of the node."""
    for var in ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        if var in env:
            return [int(x) for x in env[var].split(",") if x.strip().isdigit()]
    if "SLURM_JOB_ID" in env or "SLURM_JOBID" in env:
        return []
    try:
        names = os.listdir(dev)
    except OSError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := _DEVICE_RE.match(n)))


def gpu_type(host: str, gres_conf: Path) -> str:
    """The Type= of this node's GPU line in gres.conf ("" if untyped or not found)."""
    try:
        lines = gres_conf.read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("NodeName") == host and fields.get("Name") == "gpu":
            return fields.get("Type", "")
    return ""


def make_gpu(index: int, kind: str, host: str, cluster: str = "") -> Gpu:
    """The simulated GPU `index` of `host` (its UUID is stable for a cluster and node)."""
    digest = hashlib.sha1(f"vhpc:{cluster}:{host}:{index}".encode()).hexdigest()
    uuid = f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
    model = f"NVIDIA {kind.upper()}" if kind else "Simulated GPU"
    return Gpu(index, f"{model} ({SIMULATED})", uuid, f"00000000:{index + 1:02X}:00.0",
               MEMORY_MIB.get(kind.lower(), DEFAULT_MEMORY_MIB))


def gpus_of(env: dict[str, str], dev: Path = Path("/dev")) -> list[Gpu]:
    """The GPUs to show, with this node's name and GPU type."""
    host = env.get("SLURMD_NODENAME") or socket.gethostname()
    conf_dir = Path(env["SLURM_CONF"]).parent if env.get("SLURM_CONF") else Path("/etc/slurm")
    kind = gpu_type(host, conf_dir / "gres.conf")
    cluster = env.get("SLURM_CLUSTER_NAME", "")
    return [make_gpu(i, kind, host, cluster) for i in visible_indexes(env, dev)]


def render_list(gpus: list[Gpu]) -> str:
    """``nvidia-smi -L``."""
    return "".join(f"GPU {g.index}: {g.name} (UUID: {g.uuid})\n" for g in gpus)


def render_table(gpus: list[Gpu], now: float) -> str:
    """The default ``nvidia-smi`` table (no processes: nothing runs on a fake GPU)."""
    rule = "+" + "-" * 31 + "+" + "-" * 22 + "+" + "-" * 22 + "+"
    lines = [
        time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(now)),
        "+" + "-" * 77 + "+",
        f"| {'NVIDIA-SMI (' + SIMULATED + ': no real GPU, no driver)':<76}|",
        rule,
        "| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |",
        "| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |",
        "|===============================+======================+======================|",
    ]
    for g in gpus:
        short = g.name.replace(f" ({SIMULATED})", "").removeprefix("NVIDIA ")[:18]
        lines += [
            f"| {g.index:>3}  {short + ' (sim)':<19}  Off | {g.bus_id} Off |"
            f"{'N/A':>21} |",
            f"| N/A   N/A    P0    N/A /  N/A |{0:>7}MiB / {g.memory_mib:>5}MiB |"
            f"{'0%':>9}{'Default':>12} |",
            rule,
        ]
    lines += [
        "",
        "+" + "-" * 77 + "+",
        f"| {'Processes:':<76}|",
        f"| {'No running processes found (' + SIMULATED + ')':<76}|",
        "+" + "-" * 77 + "+",
    ]
    return "\n".join(lines) + "\n"


def query_value(gpu: Gpu, field: str, units: bool) -> str:
    """One --query-gpu field of a GPU."""
    mib = " MiB" if units else ""
    values = {
        "index": str(gpu.index), "name": gpu.name, "uuid": gpu.uuid,
        "pci.bus_id": gpu.bus_id, "memory.total": f"{gpu.memory_mib}{mib}",
        "memory.used": f"0{mib}", "memory.free": f"{gpu.memory_mib}{mib}",
        "utilization.gpu": "0 %" if units else "0", "temperature.gpu": "[N/A]",
        "driver_version": SIMULATED,
    }
    return values[field]


def render_query(gpus: list[Gpu], fields: list[str], fmt: str) -> str:
    """``--query-gpu=a,b --format=csv[,noheader][,nounits]``."""
    flags = set(fmt.split(","))
    units = "nounits" not in flags
    out = [] if "noheader" in flags else [", ".join(fields)]
    out += [", ".join(query_value(g, f, units) for f in fields) for g in gpus]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None, env: dict[str, str] | None = None,
         dev: Path = Path("/dev")) -> int:
    """Run like nvidia-smi: print to stdout, return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    environ = dict(os.environ) if env is None else env
    query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
    fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), "csv")
    known = {"-L", "--list-gpus", "-h", "--help"}
    unknown = [a for a in args if a not in known and not a.startswith(("--query-gpu=",
                                                                       "--format="))]
    if "-h" in args or "--help" in args or unknown:
        sys.stdout.write(f"nvidia-smi ({SIMULATED}): lists the fake GPUs this job was given\n"
                         "usage: nvidia-smi [-L] [--query-gpu=FIELD,... --format=csv"
                         "[,noheader][,nounits]]\n"
                         f"fields: {', '.join(QUERY_FIELDS)}\n")
        return EXIT_USAGE if unknown else 0
    gpus = gpus_of(environ, dev)
    if not gpus:
        sys.stdout.write(f"{NO_DEVICES} ({SIMULATED})\n")
        return EXIT_NO_DEVICES
    if "-L" in args or "--list-gpus" in args:
        sys.stdout.write(render_list(gpus))
    elif query is not None:
        fields = [f.strip() for f in query.split(",") if f.strip()]
        bad = [f for f in fields if f not in QUERY_FIELDS]
        if bad or not fields:
            sys.stdout.write(f"Field \"{(bad or [''])[0]}\" is not a valid field to query "
                             f"({SIMULATED}: {', '.join(QUERY_FIELDS)})\n")
            return EXIT_USAGE
        sys.stdout.write(render_query(gpus, fields, fmt))
    else:
        sys.stdout.write(render_table(gpus, time.time()))
    return 0
