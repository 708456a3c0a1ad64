"""`vhpc image build`: mmdebstrap, the node's needs in the tree, the accounting template,
the metadata; all into a hidden directory renamed into place at the end (nothing is
left of a failed build)."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from vhpc.atomic import write_atomic
from vhpc.errors import SpecError
from vhpc.runtime import images, spread_dirs
from vhpc.services import image_db
from vhpc.spec import images as recipes


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build(name: str, progress: images.Progress = _stderr) -> images.ImageInfo:
    """Build (or rebuild) an image; progress lines go to `progress`. All or nothing."""
    recipe = recipes.recipe_of(name)
    images.check_unused(name, "rebuild")
    if shutil.which("mmdebstrap") is None:
        raise SpecError("mmdebstrap is not installed: run 'make install' "
                        "(or apt-get install mmdebstrap)")
    base = images.images_dir()
    base.mkdir(parents=True, exist_ok=True)
    spread_dirs.spread_subdirectories(base)  # each image's tree in a group of its own
    work = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=base))
    work.chmod(0o755)  # apt downloads as _apt
    started = time.time()
    root = work / images.ROOTFS
    try:
        progress(f"image {name}: mmdebstrap {recipe.suite} ({len(recipe.packages)} packages "
                 f"and their dependencies) from {recipe.mirror}")
        images.run_mmdebstrap(images.mmdebstrap_argv(recipe, root), progress)
        images.prepare_rootfs(root)
        progress(f"image {name}: accounting database template (the image's MariaDB and "
                 "slurmdbd)")
        image_db.make_template(root, work / images.DB_TEMPLATE)
        progress(f"image {name}: measuring")
        meta = images.ImageInfo(
            name=name, suite=recipe.suite,
            slurm_version=images.package_version(root, "slurmd"),
            openmpi_version=images.package_version(root, "openmpi-bin"),
            python_version=images.package_version(root, "python3"),
            size=images.disk_usage(work), built_at=time.time(),
            build_seconds=round(time.time() - started, 1))
        write_atomic(work / images.METADATA, json.dumps(asdict(meta), indent=1) + "\n",
                     durable=True)  # an image outlives a host crash
        images.replace_dir(work, images.image_dir(name))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    progress(f"image {name}: Slurm {meta.slurm_version}, {meta.size / 2**20:.0f} MiB, "
             f"built in {meta.build_seconds:.0f} s")
    return meta
