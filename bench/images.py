"""Node images (issue 11): build time, disk per image, and an N-node boot on an image
against the same boot on the host's own packages, in one run.

Per repeat, in turn: `vhpc up -n N` (image host), `vhpc up -n N --image IMAGE`, and the
floor (`bare_boot.sh N`, the fewest steps by hand), each `up` followed by `down`; the
medians and the image/host ratio (goal <= 1.2) go to bench/results/images.json. The build
time and size come from each image's metadata (`vhpc image ls --json`: what its last
build took); `--build` first rebuilds IMAGE here, timed from outside. Run as root:

    .venv/bin/python bench/images.py -n 16 -r 3 [--build]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import FLOOR_NAME, REPO, VHPC, median_of, run_floor, timed_run, vhpc_timed

CLUSTER = "imbench"
UP_TIMEOUT = 900.0


def boot(n: int, image: str) -> dict[str, Any]:
    """One `up` (timed) and `down` of an N-node cluster on `image`."""
    seconds, proc = vhpc_timed(CLUSTER, "up", "-n", str(n), "--image", image,
                               timeout=UP_TIMEOUT)
    result: dict[str, Any] = {"image": image, "boot_s": round(seconds, 3)}
    if proc.returncode != 0:
        result["error"] = proc.stderr.strip()[-500:]
    down_s, down = vhpc_timed(CLUSTER, "down", timeout=UP_TIMEOUT)
    result["down_s"] = round(down_s, 3)
    if down.returncode != 0:
        result["down_error"] = down.stderr.strip()[-300:]
    return result




def images() -> list[dict[str, Any]]:
    """`vhpc image ls --json`."""
    out = subprocess.run([VHPC, "image", "ls", "--json"], capture_output=True, text=True,
                         check=True).stdout
    listed: list[dict[str, Any]] = json.loads(out)
    return listed


def machine() -> dict[str, Any]:
    """Where and when this ran."""
    return {"nproc": os.cpu_count(), "kernel": platform.release(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
            "git_head": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short",
                                        "HEAD"], capture_output=True, text=True,
                                       check=False).stdout.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--nodes", type=int, default=16, help="compute nodes (default 16)")
    ap.add_argument("-r", "--repeats", type=int, default=3, help="boots of each (default 3)")
    ap.add_argument("--image", default="debian13", help="the image (default debian13)")
    ap.add_argument("--build", action="store_true", help="rebuild the image first, timed")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "images.json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    result: dict[str, Any] = {"machine": machine(), "floor": FLOOR_NAME, "n": args.nodes}
    if args.build:
        seconds, proc = timed_run([VHPC, "image", "build", args.image], 3600)
        if proc.returncode != 0:
            sys.exit(f"image build failed: {proc.stderr.strip()[-300:]}")
        result["build_wall_s"] = round(seconds, 1)
    result["images"] = [{k: i[k] for k in ("name", "suite", "slurm_version",
                                           "openmpi_version", "python_version", "size",
                                           "build_seconds")} for i in images()]
    runs: dict[str, list[dict[str, Any]]] = {"host": [], args.image: [], "floor": []}
    for i in range(args.repeats):
        for image in ("host", args.image):
            runs[image].append(boot(args.nodes, image))
            print(f"#{i} {image}: {runs[image][-1]}", file=sys.stderr, flush=True)
        runs["floor"].append(run_floor(args.nodes, UP_TIMEOUT))
        print(f"#{i} floor: {runs['floor'][-1]}", file=sys.stderr, flush=True)
    host, image = median_of(runs["host"], "boot_s"), median_of(runs[args.image], "boot_s")
    result.update({
        "boot_s_median": {name: median_of(r, "boot_s") for name, r in runs.items()},
        "down_s_median": {name: median_of(runs[name], "down_s")
                          for name in ("host", args.image)},
        "image_over_host": round(image / host, 2) if image and host else None,
        "runs": runs,
    })
    result["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"N={args.nodes}: host {host}s, {args.image} {image}s "
          f"(x{result['image_over_host']}), floor {result['boot_s_median']['floor']}s")
    for i in result["images"]:
        print(f"image {i['name']}: Slurm {i['slurm_version']}, {i['size'] / 2**20:.0f} MiB, "
              f"built in {i['build_seconds']} s")


if __name__ == "__main__":
    main()
