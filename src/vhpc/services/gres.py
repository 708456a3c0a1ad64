"""Slurm GRES for fake GPUs: gres.conf rendered from the spec (pure, tested as text).

Compute nodes are dynamic (`slurmd -Z`), so no node is in slurm.conf: each GPU node
registers its count with `--conf "... Gres=gpu:a100:2"` (services/slurm.py) and finds its
devices in gres.conf, one `NodeName=` line per GPU node (slurmd reads only its own
line). `AutoDetect=off`: there is no NVML to ask. The devices are in the node's own /dev
(cluster/node.py), where slurmd checks that each `File=` exists when it starts.

The file lives next to slurm.conf (Slurm reads it from there) in the directory every
node mounts, so a rewrite for nodes added at run time reaches every node.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vhpc.services import slurm_versions, slurmdbd
from vhpc.spec import gpus
from vhpc.spec.model import ClusterSpec, NodeRole, NodeSpec
from vhpc.spec.paths import ClusterPaths

#: The GRES types slurm.conf declares (`GresTypes=`).
GRES_TYPES = "gpu"


def gres_conf_file(paths: ClusterPaths) -> Path:
    """gres.conf, next to slurm.conf."""
    return paths.slurm_etc / "gres.conf"


def render_gres_conf(nodes: Iterable[NodeSpec], slurm_version: str = "") -> str:
    """gres.conf for these nodes (one line per compute node with GPUs, in name order), for
    the cluster's Slurm version."""
    lines = [
        "# gres.conf written by vhpc: fake GPUs, character devices with /dev/null's",
        "# numbers in each GPU node's own /dev (nothing is behind them)",
        "AutoDetect=off",
    ]
    for node in sorted(nodes, key=lambda n: n.name):
        if node.role is not NodeRole.COMPUTE or node.gpus <= 0:
            continue
        kind = f" Type={node.gpu_type}" if node.gpu_type else ""
        lines.append(f"NodeName={node.name} Name=gpu{kind} "
                     f"File={gpus.device_files(node.gpus)}")
    return "\n".join(slurm_versions.adapt("gres.conf", lines, slurm_version)) + "\n"


def slurm_conf_lines(spec: ClusterSpec) -> list[str]:
    """slurm.conf lines of GPUs: the GRES type, and with accounting, GPUs as a TRES (so
    `sacct -o AllocTRES` and `sreport` count them; without slurmdbd Slurm refuses it)."""
    lines = [f"GresTypes={GRES_TYPES}"]
    if slurmdbd.db_node(spec) is not None:
        lines.append("AccountingStorageTRES=gres/gpu")
    return lines


def node_gres(node: NodeSpec) -> str:
    """The node's GRES as Slurm writes it (gpu:a100:2), or "" without GPUs."""
    return gpus.gres(node.gpus, node.gpu_type)
