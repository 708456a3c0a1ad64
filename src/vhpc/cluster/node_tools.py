"""The workload programs every node runs (gemm and friends), installed on the host in a
world-readable place that is on every node's PATH."""

from __future__ import annotations

import os
from pathlib import Path

from vhpc.atomic import write_atomic

NODE_TOOLS_DIR = Path("/opt/vhpc/bin")
PACKAGE_TOOLS = Path(__file__).resolve().parent.parent / "workloads" / "bin"
USER_SCRIPTS = ("gemm.sh",)


def install_node_tools(dest: Path = NODE_TOOLS_DIR) -> list[Path]:
    """Copy the workload programs shipped with vhpc to /opt/vhpc/bin (on every node's PATH).

    Returns the user-facing scripts to link into the cluster user's home.
    """
    if not PACKAGE_TOOLS.is_dir():
        return []
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)
    for src in PACKAGE_TOOLS.iterdir():
        if src.name.startswith(("_", ".")) or not src.is_file():
            continue
        target = dest / src.name
        data = src.read_bytes()
        mode = 0o755 if os.access(src, os.X_OK) else 0o644
        if not target.exists() or target.read_bytes() != data:
            write_atomic(target, data, mode)  # a node may be running the old one
        target.chmod(mode)
    return [dest / name for name in USER_SCRIPTS if (dest / name).exists()]
