"""Host-side Slurm viewers that name the cluster's users (issue 9, "host-side names").

The cluster's users exist only in the cluster's passwd (the host's is never edited), so
the host's `squeue` shows their jobs as `nobody`. nss_wrapper (Debian libnss-wrapper)
makes getpwuid(3) of one process read another passwd file: `vhpc env` puts a directory
of small wrappers first on PATH, each running the host's real client with nss_wrapper
pointed at the cluster's passwd and group. Only read-only viewers are wrapped: srun and
sbatch would carry LD_PRELOAD into the jobs.
"""

from __future__ import annotations

import shlex
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
