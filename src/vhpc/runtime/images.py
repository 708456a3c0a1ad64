"""Node images on the host: the store (list, metadata, remove) and the mmdebstrap step
of a build (cluster/image_build.py runs the whole build; spec/images.py: recipes).

An image lives in `<state root>/.images/<name>/`: `rootfs/` (the Debian tree, every
node's read-only lower layer), `image.json` (its metadata, "slurm_version" included)
and `db-template/` (the accounting database made by the image's own MariaDB and
slurmdbd). A build goes into a hidden directory beside it and is renamed into place only
when complete, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vhpc.errors import BootError, ClusterStateError, SpecError
from vhpc.spec import images as recipes
from vhpc.spec.model import HOST_IMAGE
from vhpc.spec.paths import state_root

METADATA = "image.json"
ROOTFS = "rootfs"
DB_TEMPLATE = "db-template"
BUILD_TIMEOUT = 1800.0
#: Where the workload programs' `#!/opt/vhpc/venv/bin/python` points in an image: the
#: image's own python3, with Debian's mpi4py and numpy (the host's venv is the host's).
VENV_PYTHON = "opt/vhpc/venv/bin/python"
LOCALHOST = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
#: Mount points an image node needs that Debian's tree lacks.
MOUNT_POINTS = ("etc/slurm", "opt/vhpc/bin", "run/munge", "home")


@dataclass(frozen=True)
class ImageInfo:
    """What `vhpc image ls` shows of one built image (image.json)."""

    name: str
    suite: str
    slurm_version: str
    openmpi_version: str
    python_version: str
    size: int  # bytes on disk
    built_at: float  # Unix time
    build_seconds: float

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ImageInfo:
        """Inverse of dataclasses.asdict (unknown keys ignored)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})  # type: ignore[arg-type]


def images_dir() -> Path:
    """Where every image is kept, shared by all clusters."""
    return state_root() / ".images"


def image_dir(name: str) -> Path:
    """The directory of one image."""
    return images_dir() / name


def rootfs(name: str) -> Path:
    """The root file tree of a built image."""
    return image_dir(name) / ROOTFS


def mmdebstrap_argv(recipe: recipes.Recipe, target: Path) -> list[str]:
    """The mmdebstrap command that makes an image's root tree in `target`."""
    return ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory",
            f"--include={','.join(recipe.packages)}",
            "--aptopt=Acquire::Retries \"2\"",
            recipe.suite, str(target), recipe.mirror]


def upstream_version(debian_version: str) -> str:
    """'24.11.5-4+deb13u1' -> '24.11.5' (no epoch, no Debian revision)."""
    version = debian_version.split(":", 1)[-1]
    return version.rsplit("-", 1)[0] if "-" in version else version


def built() -> list[ImageInfo]:
    """Every complete image, by name."""
    out = []
    base = images_dir()
    if base.is_dir():
        for d in sorted(base.iterdir()):
            if d.name.startswith(".") or not (d / METADATA).is_file():
                continue
            try:
                out.append(ImageInfo.from_dict(json.loads((d / METADATA).read_text())))
            except (OSError, ValueError, TypeError):
                continue
    return out


def built_names() -> tuple[str, ...]:
    """Names of the complete images."""
    return tuple(i.name for i in built())


def info(name: str) -> ImageInfo:
    """A built image's metadata; SpecError (listing built and buildable) when absent."""
    recipes.check_image_name(name, "image")
    for image in built():
        if image.name == name:
            return image
    raise SpecError(recipes.unknown_image_message(name, built_names()),
                    fix=f"vhpc image build {name}" if name in recipes.RECIPES else "")


def clusters_using(name: str) -> list[str]:
    """Clusters on this host whose spec names the image (booted or booting)."""
    out: list[str] = []
    root = state_root()
    if not root.is_dir():
        return out
    for spec in sorted(root.glob("*/spec.json")):
        try:
            image = json.loads(spec.read_text()).get("image", HOST_IMAGE)
        except (OSError, ValueError, AttributeError):
            continue
        if image == name:
            out.append(spec.parent.name)
    return out


def check_unused(name: str, doing: str) -> None:
    """Refuse to replace or remove an image a cluster runs on."""
    users = clusters_using(name)
    if users:
        raise ClusterStateError(
            f"cannot {doing} image {name!r}: cluster(s) {', '.join(users)} use it",
            fix=f"vhpc -c {users[0]} down first")


def remove(name: str) -> None:
    """Delete a built image (refused while a cluster uses it)."""
    info(name)
    check_unused(name, "remove")
    d = image_dir(name)
    trash = d.with_name(f".rm-{name}-{os.getpid()}")
    os.rename(d, trash)
    shutil.rmtree(trash)


Progress = Callable[[str], None]


def run_mmdebstrap(argv: list[str], progress: Progress) -> None:
    """Run mmdebstrap, its lines as progress; a failure raises its first error line."""
    lines: list[str] = []
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + BUILD_TIMEOUT
    try:
        for raw in proc.stdout:
            line = raw.rstrip()
            lines.append(line)
            if line.startswith(("I:", "E:", "W:")):
                progress(f"  {line}")
            if time.monotonic() > deadline:
                proc.kill()
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise BootError(f"image build failed: {first_error(lines)}",
                        fix="check the network and the package names; nothing was kept")


def first_error(lines: list[str]) -> str:
    """The line that says why mmdebstrap failed (apt's first E: line, else the last)."""
    errors = [ln for ln in lines if ln.startswith(("E:", "Err:")) and ln.strip()]
    prefer = [ln for ln in errors if "Unable to locate" in ln or "Could not resolve" in ln
              or "Failed to fetch" in ln or "unable to" in ln.lower()]
    line = (prefer or errors or [ln for ln in lines if ln.strip()] or ["no output"])[0]
    return re.sub(r"\s+", " ", line).strip()[:300]


def prepare_rootfs(root: Path) -> None:
    """What a node needs in the tree: mount points, plain resolv.conf/hosts files, and
    /opt/vhpc/venv/bin/python as the image's python3."""
    for rel in MOUNT_POINTS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    for rel, text in (("etc/resolv.conf", ""), ("etc/hosts", LOCALHOST)):
        path = root / rel
        if path.is_symlink() or not path.exists() or not path.read_text().strip():
            path.unlink(missing_ok=True)
            path.write_text(text)  # MariaDB 10.11's install-db looks localhost up
    python = root / VENV_PYTHON
    python.parent.mkdir(parents=True, exist_ok=True)
    python.unlink(missing_ok=True)
    python.symlink_to("/usr/bin/python3")


def package_version(root: Path, package: str) -> str:
    result = subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W",
                             "-f=${Version}", package], capture_output=True, text=True,
                            check=False)
    return upstream_version(result.stdout.strip()) if result.returncode == 0 else ""


def disk_usage(path: Path) -> int:
    """Bytes a tree takes on disk (du: hard links once)."""
    result = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True,
                            check=False)
    try:
        return int(result.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


def replace_dir(work: Path, final: Path) -> None:
    """Rename the finished build into place (an older build of it is removed after)."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.rename(final, old)
    os.rename(work, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
