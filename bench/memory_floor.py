"""Find the smallest node memory limit at which slurmd starts and a job step runs.

Boots a 1-node cluster per limit (bypassing the spec's floor check) and reports, for each
limit, whether the node became idle and `srun hostname` worked. Result: bench/results/
memory_floor.json. Run as root: .venv/bin/python bench/memory_floor.py
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from vhpc.cluster.cluster import Cluster
from vhpc.errors import VhpcError
from vhpc.runtime import facts
from vhpc.runtime.linux import LinuxRuntime
from vhpc.spec.load import ClusterOptions, build_spec
from vhpc.spec.model import NodeRole
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB


def try_limit(mib: int) -> dict[str, object]:
    """Boot one node limited to `mib` MiB; did it become idle and run a step?"""
    spec = build_spec(ClusterOptions(name="benchfloor", nodes=1), facts.gather())
    nodes = tuple(dataclasses.replace(n, memory=mib * MIB) if n.role is NodeRole.COMPUTE
                  else n for n in spec.nodes)
    cluster = Cluster(spec.with_nodes(nodes), ClusterPaths.of("benchfloor"), LinuxRuntime())
    result: dict[str, object] = {"memory_mib": mib}
    t0 = time.monotonic()
    try:
        cluster.boot(timeout=20)
        result["idle"] = True
        step = cluster.slurm.run(["srun", "-N1", "hostname"], check=False, timeout=20)
        result["srun_ok"] = step.returncode == 0
        result["oom_kills"] = cluster.runtime.cgroup_stats("vhpc-benchfloor/compute0").oom_kills
    except VhpcError as err:
        result.setdefault("idle", False)
        result["srun_ok"] = False
        result["error"] = str(err)[:200]
    finally:
        cluster.teardown()
    result["seconds"] = round(time.monotonic() - t0, 2)
    return result


def main() -> None:
    limits = [int(x) for x in sys.argv[1:]] or [8, 12, 16, 20, 24, 32]
    results = [try_limit(m) for m in limits]
    for r in results:
        print(r)
    out = Path(__file__).parent / "results" / "memory_floor.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
