"""The host-side wrappers of an image cluster: the image's own Slurm clients
(services/host_clients.py renders them), written at boot into the cluster's wrapper
directory, which `vhpc env` puts first on PATH and the manager's Slurm calls use."""

from __future__ import annotations

from vhpc.atomic import write_atomic
from vhpc.runtime import images
from vhpc.services import host_clients
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths


def write(spec: ClusterSpec, paths: ClusterPaths) -> None:
    """The shared mount script, one wrapper per client, and the marker naming the image."""
    out = host_clients.wrapper_dir(paths)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o755)
    host_clients.client_dir(paths).mkdir(parents=True, exist_ok=True)
    write_atomic(out / "vhpc-client.sh",
                 host_clients.render_client_script(images.rootfs(spec.image), paths), 0o755)
    for program in host_clients.IMAGE_CLIENTS:
        write_atomic(out / program,
                     host_clients.render_image_wrapper(program, spec.image, paths), 0o755)
    write_atomic(out / host_clients.IMAGE_MARKER, spec.image + "\n")
