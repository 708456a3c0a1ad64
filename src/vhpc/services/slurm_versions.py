"""What differs between the Slurm releases vhpc runs, in one place (pure, tested as text).

The renderers (services/slurm.py, slurm_cgroup.py, gres.py, slurmdbd.py) write their
files for Slurm 22.05, the release of Debian 12 hosts, and pass the lines through
`adapt(file, lines, version)` once; the rules below drop or rename what a later release
removed. slurmrestd's plugin names and REST API version come from `rest_plugins` and
`rest_api_version`. A spec without a version (one written before versions were recorded)
is a 22.05 cluster: every such cluster ran the Debian 12 host's own Slurm.

Checked against the real daemons of Debian 13 (Slurm 24.11.5: slurmctld, slurmd -Z,
slurmdbd with MariaDB, slurmrestd, a job; tests/integration/test_slurm_versions.py) and
against Slurm's RELEASE_NOTES and sources of 23.02 to 24.11:
- 23.11 removed the `none` plugins other than auth and cred (`TaskPlugin=task/none` and
  `JobAcctGatherType=jobacct_gather/none` read as "no plugin"; not written any more);
- 23.11 removed cgroup.conf's `CgroupAutomount` (24.11's slurmctld and slurmd log 'The
  option "CgroupAutomount" is defunct'); on cgroup v2 its job is `EnableControllers`;
- 23.11 dropped the versioned openapi plugins' scheme: `openapi/slurmctld` and
  `openapi/slurmdbd` serve the endpoints of the `data_parser/v0.0.N` plugins, one per API
  version (23.11: v0.0.40, 24.05: v0.0.41, 24.11: v0.0.42); 24.11's slurmrestd fails
  fatally on `openapi/v0.0.38` ("unable to find plugin");
- 24.11's slurmctld waits for slurmdbd at start (fatal after a while without it): vhpc
  starts the db node's daemons first on every version;
- unchanged where vhpc uses them: `select/cons_tres` (cons_res, gone in 23.11, is not
  used), dynamic nodes (`slurmd -Z --conf`, `MaxNodeCount`, `Nodes=ALL`, NodeSets by
  feature), `TreeWidth` (a uint16 in both; 23.11 can fan out through dynamic nodes, but
  direct messages stay correct), `MpiDefault=pmix` (Debian links `mpi_pmix.so` to
  `mpi_pmix_v4.so` on 22.05 and `mpi_pmix_v5.so` on 24.11), `AuthInfo=socket=`,
  `AccountingStoragePass`, auth/jwt and gres.conf.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

Release = tuple[int, int]

#: The release a spec without a recorded version runs (Debian 12's).
BASELINE: Release = (22, 5)
#: Releases vhpc renders for and has checked against the real daemons.
CHECKED: tuple[Release, ...] = ((22, 5), (24, 11))
#: The REST API version (data_parser / openapi plugin) each release serves newest.
REST_API_VERSIONS: dict[Release, str] = {
    (22, 5): "v0.0.38", (23, 2): "v0.0.39", (23, 11): "v0.0.40", (24, 5): "v0.0.41",
    (24, 11): "v0.0.42", (25, 5): "v0.0.43",
}
#: The first release whose openapi plugins are `openapi/slurmctld` and `openapi/slurmdbd`.
UNVERSIONED_OPENAPI: Release = (23, 11)

_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_release(version: str) -> Release:
    """The release of a version text ('24.11.5', 'slurm-wlm 22.05.8'); '' is BASELINE."""
    found = _VERSION_RE.search(version)
    if found is None:
        if version.strip():
            raise ValueError(f"not a Slurm version: {version!r}")
        return BASELINE
    return int(found.group(1)), int(found.group(2))


@dataclass(frozen=True)
class Rule:
    """One option a release removed or renamed: from `since` on, a line `key=value`
    (with `value == match`, or any value when `match` is "") becomes `replace`:
    "" drops the line, "NewKey" keeps the value under a new name, "Key=Value" is literal."""

    file: str
    key: str
    since: Release
    replace: str
    why: str
    match: str = ""

    def applies(self, file: str, key: str, value: str, release: Release) -> bool:
        """Whether this rule rewrites the line `key=value` of `file` in `release`."""
        return (file == self.file and release >= self.since
                and key.lower() == self.key.lower()
                and (not self.match or value.lower() == self.match.lower()))

    def rewrite(self, value: str) -> str:
        """The line that replaces `key=value` ("" to drop it)."""
        if not self.replace or "=" in self.replace:
            return self.replace
        return f"{self.replace}={value}"


RULES: tuple[Rule, ...] = (
    Rule("slurm.conf", "TaskPlugin", (23, 11), "", "23.11 removed the 'none' plugins",
         match="task/none"),
    Rule("slurm.conf", "JobAcctGatherType", (23, 11), "", "23.11 removed the 'none' plugins",
         match="jobacct_gather/none"),
    Rule("cgroup.conf", "CgroupAutomount", (23, 11), "EnableControllers=yes",
         "23.11 removed CgroupAutomount; cgroup/v2 enables its controllers with "
         "EnableControllers", match="yes"),
    Rule("cgroup.conf", "CgroupAutomount", (23, 11), "",
         "23.11 removed CgroupAutomount (24.11: 'defunct' error)"),
)


def adapt(file: str, lines: Iterable[str], version: str,
          rules: tuple[Rule, ...] = RULES) -> list[str]:
    """The lines of a Slurm config file (`file`: its name) as `version` takes them.

    Only `Key=Value` lines a rule names change; comments and everything else pass as they
    are, in order. A partition or node line (several words) is never a rule's."""
    release = parse_release(version)
    out: list[str] = []
    for line in lines:
        key, sep, value = line.partition("=")
        rule = None
        if sep and not line.startswith("#") and " " not in line:
            rule = next((r for r in rules if r.applies(file, key, value, release)), None)
        if rule is None:
            out.append(line)
        elif replaced := rule.rewrite(value):
            out.append(replaced)
    return out


def rest_api_version(version: str) -> str:
    """The newest REST API version the release's slurmrestd serves ('v0.0.42')."""
    release = parse_release(version)
    known = [r for r in REST_API_VERSIONS if r <= release]
    return REST_API_VERSIONS[max(known)] if known else REST_API_VERSIONS[BASELINE]


def rest_plugins(version: str, accounting: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """slurmrestd's openapi plugins (`-s`) and data_parser plugins (`-d`, none before 23.11)
    for the release: slurmctld's endpoints, and slurmdbd's with accounting (the db
    plugin is fatal without slurmdbd)."""
    api = rest_api_version(version)
    if parse_release(version) < UNVERSIONED_OPENAPI:
        plugins = [f"openapi/{api}", *([f"openapi/db{api}"] if accounting else [])]
        return tuple(plugins), ()
    plugins = ["openapi/slurmctld", *(["openapi/slurmdbd"] if accounting else [])]
    return tuple(plugins), (f"data_parser/{api}",)
