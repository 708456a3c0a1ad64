"""The cluster's Slurm REST API (slurmrestd) from outside: its URL and the JWTs it takes.

Shared by the CLI (`vhpc token --slurm`, `vhpc env`) and the Python API. A token is
minted by slurmctld (`scontrol token`, run as root on the host over munge) for a cluster
user and signed with the cluster's own key; slurmrestd takes it in the
`X-SLURM-USER-TOKEN` header with the user in `X-SLURM-USER-NAME`.

`vhpc env` does not export `SLURM_JWT` unless asked (`--jwt`): Slurm's own clients switch
to JWT authentication when it is set, and then `srun` cannot launch tasks (it loads no
munge plugin: "authentication plugin auth/munge(101) not found") and root's `sbatch`
with another user's token is refused ("Invalid user id").
"""

from __future__ import annotations

import os
import shlex

from vhpc import control
from vhpc.errors import ClusterStateError, UserError
from vhpc.runtime.hostops import run_command
from vhpc.services import slurmrestd
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths


def rest_url(name: str) -> str:
    """The base URL of a running cluster's slurmrestd, as the host reaches it."""
    return slurmrestd.url(control.load_spec(name))


def cluster_users(spec: ClusterSpec) -> list[str]:
    """Users a token can be minted for: root, the default user and the added ones."""
    return ["root", spec.user, *(u.name for u in spec.users)]


def check_token_request(spec: ClusterSpec, user: str, lifespan: int) -> None:
    """Refuse an unknown user or a lifespan out of bounds, in one line."""
    users = cluster_users(spec)
    if user not in users:
        raise UserError(f"unknown user {user!r}: cluster {spec.name!r} has "
                        f"{', '.join(users)} (vhpc token --slurm --user NAME)")
    if not 1 <= lifespan <= slurmrestd.MAX_LIFESPAN:
        raise UserError(f"--lifespan {lifespan}: give seconds from 1 to "
                        f"{slurmrestd.MAX_LIFESPAN} (a year)")


def slurm_token(name: str, user: str | None = None,
                lifespan: int = slurmrestd.DEFAULT_LIFESPAN) -> str:
    """A JWT for `user` (default: the cluster user) valid `lifespan` seconds."""
    spec = control.load_spec(name)
    who = user or spec.user
    check_token_request(spec, who, lifespan)
    paths = ClusterPaths.of(name)
    env = dict(os.environ, SLURM_CONF=str(paths.slurm_conf))
    env.pop("SLURM_JWT", None)  # minted as root over munge, not as a token's user
    result = run_command(slurmrestd.token_argv(who, lifespan), check=False, timeout=30,
                         env=env)
    token = slurmrestd.parse_token(result.stdout)
    if result.returncode != 0 or not token:
        detail = (result.stderr.strip() or result.stdout.strip() or "no output")
        raise ClusterStateError(f"slurmctld of cluster {name!r} gave no token for {who!r}: "
                                f"{detail.splitlines()[-1]}",
                                fix="run as root; see 'vhpc status' and the slurmctld log")
    return token


def env_lines(name: str, token: str | None = None, user: str = "") -> list[str]:
    """The `export` lines of `vhpc env` for the REST API (the token only if given)."""
    lines = [f"export VHPC_SLURMRESTD_URL={shlex.quote(rest_url(name))}"]
    if token is not None:
        lines.append(f"export SLURM_JWT={shlex.quote(token)}")
        lines.append(f"export VHPC_SLURM_USER={shlex.quote(user)}")
    return lines
