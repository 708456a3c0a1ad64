"""Which Slurm version a cluster's nodes run, resolved at plan time (ClusterSpec.slurm_version).

The image "host" runs the host's own Slurm: `slurmd -V` ("slurm-wlm 22.05.8"), a few
milliseconds, remembered on disk for as long as the slurmd binary is the same file (a
package upgrade replaces it; runtime/program_versions.py). A built image carries its
version in its metadata (runtime/images.py `image.json`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from vhpc.runtime import images, program_versions
from vhpc.spec.model import HOST_IMAGE

SLURMD = "slurmd"


def of_image(image: str) -> str:
    """The Slurm version ("24.11.5") the nodes of `image` run; "" if it cannot be told."""
    if image != HOST_IMAGE:
        return images.info(image).slurm_version
    return host_version()


def host_version() -> str:
    """The host's Slurm version from its slurmd, or "" when slurmd is not installed."""
    path = shutil.which(SLURMD, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        return ""
    return program_versions.remembered("slurmd -V", path, lambda: _ask(path))


def _ask(path: str) -> str:
    """`slurmd -V` of the slurmd at `path`."""
    try:
        out = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return short_version(out)


def short_version(text: str) -> str:
    """The bare version in a `slurmd -V` line ('slurm-wlm 24.11.5' -> '24.11.5'), or ""."""
    found = re.search(r"\d+\.\d+\.\d+", text)
    return found.group(0) if found else ""
