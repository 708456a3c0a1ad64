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
`openapi/dbv0.0.36..38` (slurmdbd, with accounting) plugins; 24.11 (Debian 13) has
`openapi/slurmctld` and `openapi/slurmdbd` serving each `data_parser/v0.0.40..42`. vhpc
serves the newest API of the cluster's release (services/slurm_versions.py), at
`/slurm/<api>/` and `/slurmdb/<api>/`. Requests carry `X-SLURM-USER-NAME` and
`X-SLURM-USER-TOKEN` headers.
"""

from __future__ import annotations

from vhpc.services import slurm_versions, slurmdbd
from vhpc.services.base import DaemonSpec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths

REST_PORT = 6820
RUN_AS_USER = "nobody"
DEFAULT_LIFESPAN = 86400  # seconds a token of `vhpc env` or `vhpc token --slurm` lives
MAX_LIFESPAN = 365 * 86400


def openapi_plugins(spec: ClusterSpec) -> tuple[str, ...]:
    """The openapi plugins slurmrestd loads: slurmctld's, and slurmdbd's with accounting
    (the db plugin is fatal without slurmdbd)."""
    return slurm_versions.rest_plugins(spec.slurm_version, _accounting(spec))[0]


def api_version(spec: ClusterSpec) -> str:
    """The REST API version the cluster serves ('v0.0.38' on 22.05, 'v0.0.42' on 24.11)."""
    return slurm_versions.rest_api_version(spec.slurm_version)


def _accounting(spec: ClusterSpec) -> bool:
    return slurmdbd.db_node(spec) is not None


def listen_address(spec: ClusterSpec) -> str:
    """host:port slurmrestd listens on: the controller's address on the cluster network."""
    return f"{spec.ip_of(spec.controller)}:{REST_PORT}"


def url(spec: ClusterSpec) -> str:
    """The base URL of the REST API, as the host reaches it."""
    return f"http://{listen_address(spec)}"


def daemon(spec: ClusterSpec, paths: ClusterPaths) -> DaemonSpec:
    """slurmrestd on the controller node, JWT only, as `nobody` with the cluster's group."""
    node = spec.controller.name
    plugins, parsers = slurm_versions.rest_plugins(spec.slurm_version, _accounting(spec))
    argv = ("slurmrestd", "-f", str(paths.slurm_conf), "-a", "rest_auth/jwt",
            "-s", ",".join(plugins), *(("-d", ",".join(parsers)) if parsers else ()),
            "-u", RUN_AS_USER, "-g", spec.user, listen_address(spec))
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
