"""Remove exactly what a ledger holds: processes, cgroups (and all their processes),
namespaces, links, mounts and the state directory, in dependency order."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from vhpc.cluster.ledger import Entry, Kind, Ledger
from vhpc.errors import VhpcError
from vhpc.runtime import Runtime
from vhpc.runtime.proc import ProcessRecord

log = logging.getLogger(__name__)
MANAGER_KEY = "manager"


def process_record(entry: Entry) -> ProcessRecord:
    """The process identity stored in a PROCESS entry."""
    return ProcessRecord(int(entry.data.get("pid", 0)), int(entry.data.get("starttime", -1)))


def remove_owned(ledger: Ledger, runtime: Runtime, node: str | None = None) -> list[str]:
    """Tear down the ledger's entries (of one node, or all); return what could not go."""
    plan = list(ledger.teardown_plan(node))
    procs = [e for e in plan if e.kind is Kind.PROCESS]
    # The manager first, so it cannot restart what is being stopped.
    managers = [e for e in procs if e.ident == MANAGER_KEY]
    others = [e for e in procs if e.ident != MANAGER_KEY]
    for group in (managers, others):
        records = [process_record(e) for e in group]
        runtime.terminate([r for r in records if r.pid != os.getpid()])
        for entry in group:
            ledger.remove(entry)
    failed: list[str] = []
    for entry in plan:
        if entry.kind is not Kind.PROCESS and not _remove(ledger, runtime, entry):
            failed.append(f"{entry.kind.value} {entry.ident}")
    return failed


def _remove(ledger: Ledger, runtime: Runtime, entry: Entry) -> bool:
    try:
        if entry.kind is Kind.CGROUP:
            runtime.kill_cgroup(entry.ident)
            for d in runtime.cgroup_dirs(entry.ident):
                runtime.remove_cgroup_dir(d)
        elif entry.kind in (Kind.NAMESPACE, Kind.MOUNT):
            runtime.release_mount(Path(entry.ident))
        elif entry.kind in (Kind.VETH, Kind.BRIDGE):
            runtime.delete_link(entry.ident)
        elif entry.kind is Kind.DIRECTORY:
            shutil.rmtree(entry.ident, ignore_errors=True)
            return True  # the ledger file lived there
    except (OSError, VhpcError) as err:
        log.warning("could not remove %s %s: %s", entry.kind.value, entry.ident, err)
        return False
    ledger.remove(entry)
    return True
