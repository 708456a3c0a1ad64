"""Shared host directories (`up --share HOST[:PATH]`, `[[shares]]`): parsed and checked.

A share is a host directory bind-mounted read-write into every node at PATH (default:
the same path as on the host), so a job submitted from the host in that directory runs
there on the nodes. vhpc never creates or deletes the host directory: `down` only
unmounts it. Checks are pure; whether the directory exists is asked through `is_dir`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence

from vhpc.errors import SpecError
from vhpc.spec import bounds
from vhpc.spec.model import ShareSpec

MAX_SHARES = 32
MAX_PATH = 1024
#: Host directories never shared: the host's own system trees and vhpc's state.
SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
               "/proc", "/run", "/sbin", "/sys", "/usr", "/var/lib/vhpc", "/var/run")
#: Node paths a share may not cover: the node's own mounts and the system trees.
NODE_RESERVED = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64",
                 "/libx32", "/proc", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var",
                 "/var/lib/vhpc", "/var/tmp")


#: A node's own directories: a share may lie inside one (/tmp/work), in every node's copy.
NODE_PRIVATE = ("/tmp", "/var/tmp")


def parse_share(text: str) -> ShareSpec:
    """`HOST[:PATH]` (the CLI form) as a ShareSpec; PATH defaults to HOST."""
    bounds.check_text(text, "--share", 2 * MAX_PATH + 1)
    host, sep, path = text.partition(":")
    return ShareSpec(host=host, path=path if sep else host)


def _normal(path: str, what: str, example: str) -> str:
    bounds.check_text(path, what, MAX_PATH)
    if not path.startswith("/"):
        raise SpecError(f"{what} {path!r} is not an absolute path: give one, e.g. {example}")
    if any(c in path for c in "\n\0,") or any(c.isspace() for c in path):
        raise SpecError(f"{what} {path!r}: a path with spaces, commas or newlines cannot be "
                        f"mounted: use a plain one, e.g. {example}")
    return posixpath.normpath(path).replace("//", "/")


def _under(path: str, roots: Sequence[str]) -> str | None:
    """The root of `roots` that `path` is or lies under ('/' only matches itself)."""
    for root in roots:
        if path == root or (root != "/" and path.startswith(root + "/")):
            return root
    return None


def check_share(share: ShareSpec) -> ShareSpec:
    """A share with normalized paths; refuses system directories on either side."""
    host = _normal(share.host, "share host directory", "/srv/data")
    path = _normal(share.path or share.host, "share path", "/data")
    holds_state = _under("/var/lib/vhpc", (host,)) is not None  # e.g. /var, /var/lib
    system = _under(host, SYSTEM_DIRS) or ("/var/lib/vhpc" if holds_state else None)
    if system is not None:
        raise SpecError(f"share host directory {host!r}: {system} is a system "
                        "or vhpc directory: share a directory of your own, e.g. /srv/data")
    private = any(path.startswith(root + "/") for root in NODE_PRIVATE)
    reserved = None if private else _under(path, NODE_RESERVED)
    if reserved is not None or _under("/var/lib/vhpc", (path,)) is not None:
        shown = reserved or path
        raise SpecError(f"share path {path!r} would cover {shown} inside the nodes (the "
                        "node's own files): mount it elsewhere, e.g. path = \"/data\" or "
                        f"--share {host}:/data")
    return ShareSpec(host=host, path=path)


def check_shares(shares: Sequence[ShareSpec]) -> tuple[ShareSpec, ...]:
    """Every share checked; two shares may not mount at (or inside) the same node path."""
    if len(shares) > MAX_SHARES:
        raise SpecError(f"{len(shares)} shares: at most {MAX_SHARES}")
    out = [check_share(s) for s in shares]
    paths = [s.path for s in out]
    for i, path in enumerate(paths):
        other = _under(path, paths[:i] + paths[i + 1:])
        if other is not None:
            raise SpecError(f"shares mount both {other!r} and {path!r} in the nodes: one "
                            "would hide the other; give each share its own path")
    return tuple(out)


def check_host_dirs(shares: Sequence[ShareSpec], is_dir: Callable[[str], bool]) -> None:
    """Refuse a share whose host directory does not exist (vhpc never makes it)."""
    for share in shares:
        if not is_dir(share.host):
            raise SpecError(f"share host directory {share.host!r} does not exist (or is not "
                            f"a directory): create it first (mkdir -p {share.host})")


def visible_path(cwd: str, shares: Sequence[ShareSpec], home: str) -> str | None:
    """Where the nodes see host directory `cwd`: under the cluster home or a share."""
    if _under(cwd, (home,)) is not None:
        return cwd
    for share in shares:
        if _under(cwd, (share.host,)) is not None:
            return share.path + cwd[len(share.host):]
    return None


def invisible_dir_warning(directory: str, shares: Sequence[ShareSpec], home: str,
                          cluster: str) -> str | None:
    """The warning for a host directory the nodes do not see at the same path (a job
    submitted from it fails with "couldn't chdir"), with the fix; None when they do."""
    seen = visible_path(directory, shares, home)
    if seen == directory:
        return None
    where = f"the nodes see it as {seen}" if seen else "the nodes do not see it"
    return (f"{directory} is not shared with cluster {cluster!r} at the same path ({where}): "
            f"a job submitted from here fails with \"couldn't chdir\"; submit from "
            f"{home} or a share, give sbatch --chdir, or boot with "
            f"'vhpc up --share {directory}'")
