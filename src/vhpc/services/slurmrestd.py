"""slurmrestd: Slurm's REST API on the controller node, authenticated by JSON Web Tokens.

slurmctld and slurmdbd accept JWTs besides munge (services/jwt_auth.py: the cluster's own
HS256 key, 0400 root, next to the munge key); `scontrol token username=U` mints one.
slurmrestd listens on the controller's address on the cluster network (the host reaches
it across the bridge) and forwards each request's token to slurmctld (`SLURM_JWT=daemon`:
it never authenticates as itself). It refuses to run as root: it drops to `nobody` with
the cluster's group, which it needs to read slurm.conf under the state directory (0750,
root:cluster group). A uid of the cluster's own block would need a passwd entry that
user management (spec/users.py) would then have to keep free; `nobody` in a PID
namespace of its own node is only visible to the controller node and the host.

Debian's 22.05 slurmrestd ships the `openapi/v0.0.36..38` (slurmctld) and
`openapi/dbv0.0.36..38` (slurmdbd, with accounting) plugins; vhpc serves the newest.
Requests carry `X-SLURM-USER-NAME` and `X-SLURM-USER-TOKEN` headers.
"""

from __future__ import annotations

from vhpc.services import slurmdbd
from vhpc.services.base import DaemonSpec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths

REST_PORT = 6820
OPENAPI_VERSION = "v0.0.38"  # the newest Debian 12's slurmrestd 22.05 ships
RUN_AS_USER = "nobody"
DEFAULT_LIFESPAN = 86400  # seconds a token of `vhpc env` or `vhpc token --slurm` lives
MAX_LIFESPAN = 365 * 86400


def openapi_plugins(spec: ClusterSpec) -> tuple[str, ...]:
    """The REST API versions slurmrestd serves: slurmctld's, and slurmdbd's with
    accounting (the db plugin is fatal without slurmdbd)."""
    plugins = [f"openapi/{OPENAPI_VERSION}"]
    if slurmdbd.db_node(spec) is not None:
        plugins.append(f"openapi/db{OPENAPI_VERSION}")
    return tuple(plugins)


def listen_address(spec: ClusterSpec) -> str:
    """host:port slurmrestd listens on: the controller's address on the cluster network."""
    return f"{spec.ip_of(spec.controller)}:{REST_PORT}"


def url(spec: ClusterSpec) -> str:
    """The base URL of the REST API, as the host reaches it."""
    return f"http://{listen_address(spec)}"


def daemon(spec: ClusterSpec, paths: ClusterPaths) -> DaemonSpec:
    """slurmrestd on the controller node, JWT only, as `nobody` with the cluster's group."""
    node = spec.controller.name
    argv = ("slurmrestd", "-f", str(paths.slurm_conf), "-a", "rest_auth/jwt",
            "-s", ",".join(openapi_plugins(spec)), "-u", RUN_AS_USER, "-g", spec.user,
            listen_address(spec))
    return DaemonSpec("slurmrestd", node, argv, paths.daemon_log("slurmrestd", node),
                      {"SLURM_CONF": str(paths.slurm_conf), "SLURM_JWT": "daemon"})


def token_argv(user: str, lifespan: int) -> list[str]:
    """The scontrol command that mints a JWT for a cluster user."""
    return ["scontrol", "token", f"username={user}", f"lifespan={lifespan}"]


def parse_token(stdout: str) -> str:
    """The token from `scontrol token` output (`SLURM_JWT=eyJ...`); "" if none."""
    for line in stdout.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key == "SLURM_JWT" and value:
            return value
    return ""
