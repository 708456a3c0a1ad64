"""Node images as data: the names `vhpc image build` knows, what each is built from,
and the metadata a built image carries (no I/O here; runtime/images.py builds them).

An image is a Debian root file tree made by mmdebstrap from Debian's own packages; a
cluster whose spec names it runs every node with that tree as its root (cluster/node.py
image mounts). The image "host" is the host's own file system (no image).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vhpc.errors import SpecError
from vhpc.spec.model import HOST_IMAGE

_IMAGE_NAME_RE = re.compile(r"[a-z][a-z0-9.-]{0,31}")

#: What every image holds besides the minimal base: the Slurm daemons and clients (auth/jwt
#: is a package of its own in Debian 12 and 13), munge,
#: accounting (slurmdbd + MariaDB), REST, Open MPI and Python with mpi4py/numpy for the
#: workloads, and what vhpc runs in a node (sh, mount, setpriv, sleep: base packages;
#: bash for the cluster user's login shell, procps for the workloads' ps/pgrep).
PACKAGES = (
    "slurmd", "slurmctld", "slurm-client", "slurmdbd", "slurmrestd", "slurm-wlm-jwt-plugin",
    "munge",
    "mariadb-server", "openmpi-bin", "python3", "python3-mpi4py", "python3-numpy",
    "bash", "procps", "util-linux", "mount", "iproute2",
)


@dataclass(frozen=True)
class Recipe:
    """How to build one image: its Debian suite and packages."""

    name: str
    suite: str
    description: str
    packages: tuple[str, ...] = PACKAGES
    mirror: str = "http://deb.debian.org/debian"


RECIPES: dict[str, Recipe] = {
    # Slurm 22.05's mpi/pmix dlopens libpmix.so, which only the -dev package ships.
    "debian12": Recipe("debian12", "bookworm", "Debian 12: Slurm 22.05, Open MPI 4.1",
                       (*PACKAGES, "libpmix-dev")),
    "debian13": Recipe("debian13", "trixie", "Debian 13: Slurm 24.11, Open MPI 5.0"),
}


def check_image_name(name: str, what: str = "--image") -> str:
    """An image name is a short plain word: it becomes a directory name."""
    if name == HOST_IMAGE or _IMAGE_NAME_RE.fullmatch(name):
        return name
    raise SpecError(f"invalid {what} {name!r}: use 1-32 lowercase letters, digits, '.' or "
                    "'-', starting with a letter (e.g. debian13)")


def unknown_image_message(name: str, built: tuple[str, ...]) -> str:
    """The one line for an image that is neither built nor the host's."""
    have = ", ".join((HOST_IMAGE, *built))
    buildable = ", ".join(sorted(RECIPES))
    return f"no image {name!r}: built are {have}; buildable are {buildable}"


def recipe_of(name: str) -> Recipe:
    """The recipe of a buildable image (SpecError naming the buildable ones)."""
    check_image_name(name, "image name")
    recipe = RECIPES.get(name)
    if recipe is None:
        raise SpecError(f"cannot build image {name!r}: buildable are "
                        f"{', '.join(sorted(RECIPES))}",
                        fix=f"vhpc image build {sorted(RECIPES)[-1]}")
    return recipe
