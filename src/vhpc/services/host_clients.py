"""Host-side Slurm viewers that name the cluster's users (issue 9, "host-side names").

The cluster's users exist only in the cluster's passwd (the host's is never edited), so
the host's `squeue` shows their jobs as `nobody`. nss_wrapper (Debian libnss-wrapper)
makes getpwuid(3) of one process read another passwd file: `vhpc env` puts a directory
of small wrappers first on PATH, each running the host's real client with nss_wrapper
pointed at the cluster's passwd and group. Only read-only viewers are wrapped: srun and
sbatch would carry LD_PRELOAD into the jobs.

An image cluster (`up --image`) runs another Slurm release than the host's: its wrapper
directory holds every client instead, each running the image's own program in a private
mount namespace rooted at the image (render_client_script), and the manager's own Slurm
calls go through them too (client_env).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from vhpc.spec.paths import ClusterPaths

WRAPPED = ("squeue", "scontrol", "sacct", "sprio", "sshare", "sstat", "sreport", "sacctmgr",
           "sinfo")
#: where Debian's libnss-wrapper puts the library, on the architectures it is built for
LIBRARY_CANDIDATES = (
    Path("/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"),
    Path("/usr/lib/aarch64-linux-gnu/libnss_wrapper.so"),
    Path("/usr/lib/libnss_wrapper.so"),
)


def wrapper_dir(paths: ClusterPaths) -> Path:
    """The directory `vhpc env` puts first on PATH."""
    return paths.root / "bin"


def find_library(candidates: tuple[Path, ...] = LIBRARY_CANDIDATES) -> Path | None:
    """The nss_wrapper library, or None when libnss-wrapper is not installed."""
    return next((p for p in candidates if p.exists()), None)


def render_wrapper(program: str, real: str, library: Path, paths: ClusterPaths) -> str:
    """A shell wrapper running `real` with the cluster's passwd and group for names."""
    q = shlex.quote
    return (
        "#!/bin/sh\n"
        f"# written by vhpc: the host's {program}, naming cluster {paths.root.name}'s users\n"
        f"NSS_WRAPPER_PASSWD={q(str(paths.etc / 'passwd'))}\n"
        f"NSS_WRAPPER_GROUP={q(str(paths.etc / 'group'))}\n"
        f'LD_PRELOAD="{library}${{LD_PRELOAD:+ $LD_PRELOAD}}"\n'
        "export NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP LD_PRELOAD\n"
        f'exec {q(real)} "$@"\n'
    )


def render_path_export(paths: ClusterPaths) -> str:
    """The `vhpc env` line putting the wrappers first on PATH (once, however often run)."""
    d = shlex.quote(str(wrapper_dir(paths)))
    return f'case ":$PATH:" in *:{d}:*) ;; *) export PATH={d}:"$PATH" ;; esac'


# -- image clusters (issue 11): the image's own clients -------------------------------
#: Slurm clients an image cluster's wrappers run from the image: a host client of
#: another Slurm release cannot talk to the cluster's controller.
IMAGE_CLIENTS = ("sinfo", "squeue", "sbatch", "srun", "scontrol", "sacct", "scancel",
                 "salloc", "sacctmgr", "sprio", "sshare", "sstat", "sreport", "strigger",
                 "sattach", "sbcast", "sdiag")
#: In the root a wrapper makes (its throwaway upper layer): a wrapper run from there (by
#: salloc, inside the image) runs the image's program directly.
IN_IMAGE_MARKER = ".vhpc-image-client"
#: In the wrapper directory of an image cluster: the image it runs (its name).
IMAGE_MARKER = ".image"


def render_client_script(rootfs: Path, paths: ClusterPaths) -> str:
    """sh run by an image wrapper in a private mount namespace ($1: the caller's working
    directory, then the program and its arguments): an overlay of the image (writes go to
    a throwaway tmpfs) with the host's /dev, /proc, /sys, the cluster's state directory,
    /etc files and munge socket, and the working directory bound in; then chroot there."""
    q = shlex.quote
    state = q(str(paths.root))
    etc = paths.etc
    binds = [(str(etc / "passwd"), "/etc/passwd"), (str(etc / "group"), "/etc/group"),
             (str(etc / "hosts"), "/etc/hosts"), (str(etc / "resolv.conf"), "/etc/resolv.conf"),
             (str(paths.slurm_etc), "/etc/slurm"), (str(paths.munge_dir), "/run/munge")]
    return "\n".join([
        "set -e",
        f"c={q(str(client_dir(paths)))}",
        'mount -t tmpfs -o size=64m,mode=755 vhpc-client "$c"',
        'mkdir "$c/u" "$c/w" "$c/r"',
        f'mount -t overlay -o lowerdir={q(str(rootfs))},upperdir="$c/u",workdir="$c/w" '
        'vhpc-client-root "$c/r"',
        'r="$c/r"',
        f': > "$r/{IN_IMAGE_MARKER}"',
        'for d in dev proc sys; do mount --rbind "/$d" "$r/$d"; done',
        f'mkdir -p "$r"{state}; mount --bind {state} "$r"{state}',
        *(f'mount --bind {q(src)} "$r{dst}"' for src, dst in binds),
        'wd=$1; shift',
        'case $wd in /|"") wd=/ ;; *) mkdir -p "$r$wd"; mount --rbind "$wd" "$r$wd" ;; esac',
        'exec chroot "$r" /bin/sh -c \'cd "$1" 2>/dev/null || cd /; shift; exec "$@"\' '
        'vhpc-cd "$wd" "$@"',
    ]) + "\n"


def render_image_wrapper(program: str, image: str, paths: ClusterPaths) -> str:
    """A wrapper running the image's `program` against the cluster from the caller's
    working directory (the shared script does the mounts: render_client_script)."""
    q = shlex.quote
    script = wrapper_dir(paths) / "vhpc-client.sh"
    return (
        "#!/bin/sh\n"
        f"# written by vhpc: image {image}'s {program} for cluster {paths.root.name}\n"
        # already in the image's root (salloc's shell or command runs there): run it
        f'[ -e /{IN_IMAGE_MARKER} ] && exec /usr/bin/{program} "$@"\n'
        f'exec unshare --mount --propagation private -- /bin/sh {q(str(script))} '
        f'"$(pwd)" /usr/bin/{program} "$@"\n'
    )


def client_dir(paths: ClusterPaths) -> Path:
    """The empty directory an image client's private mounts are made on."""
    return paths.run / "client"


def client_env(conf: Path, base: Mapping[str, str]) -> dict[str, str]:
    """Environment for a host-side Slurm client of the cluster whose slurm.conf is
    `conf`: SLURM_CONF, and for an image cluster its wrappers first on PATH."""
    env = dict(base, SLURM_CONF=str(conf))
    wrappers = conf.parent.parent.parent / "bin"
    if (wrappers / IMAGE_MARKER).exists():
        env["PATH"] = f"{wrappers}:{env.get('PATH', os.defpath)}"
    return env
