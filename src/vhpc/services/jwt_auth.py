"""JSON Web Tokens besides munge: the cluster's HS256 key and the config lines naming it.

slurmctld and slurmdbd (`AuthAltTypes=auth/jwt`) sign and check tokens with a key of
the cluster's own (0400, root, beside the munge key); `scontrol token` mints them and
slurmrestd (services/slurmrestd.py) passes them on. The same two lines go into
slurm.conf and slurmdbd.conf.
"""

from __future__ import annotations

import os
from pathlib import Path

from vhpc.spec.paths import ClusterPaths

KEY_SIZE = 32  # bytes, as Slurm's JWT guide makes it (dd bs=32 count=1)


def key_file(paths: ClusterPaths) -> Path:
    """The cluster's HS256 key (0400, root)."""
    return paths.etc / "jwt_hs256.key"


def conf_lines(paths: ClusterPaths) -> list[str]:
    """slurm.conf / slurmdbd.conf lines that accept JWTs besides munge."""
    return ["AuthAltTypes=auth/jwt", f"AuthAltParameters=jwt_key={key_file(paths)}"]


def write_key(paths: ClusterPaths) -> None:
    """A fresh random key, root's alone (made once per cluster, never rewritten)."""
    fd = os.open(key_file(paths), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(KEY_SIZE))
