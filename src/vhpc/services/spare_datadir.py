"""Spare accounting datadirs: a ready copy of a template, taken by the next boot with one
rename instead of a copy.

Copying a template (~6 MB of data, services/mariadb.py `copy_template`) took 0.02-0.17 s
of a quiet boot and ~0.3 s of a busy one, on the path to mariadbd, slurmdbd and
slurmctld. After a boot, the manager makes a spare of the template it copied (and of a
registered template it just made) in the background (services/registered_template.py
runs it: at the default priority, ~30 ms of CPU, and `down` lets it finish), so the next
boot of the same cluster, or the next first boot of any cluster for the base template,
renames it into place.

A spare sits beside its template as `.spare-<template name>`; it is made under a
temporary name (`.spare-tmp-...`, with its manager's pid) and renamed into place, so a
boot sees a whole spare or none. Two boots race for one spare by rename: one wins, the
other copies. A spare goes with its template when that is pruned.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from vhpc.services import mariadb, owned_work

STALE_AFTER = 300.0


def spare_of(template: Path) -> Path:
    """Where the spare copy of `template` is kept."""
    return template.parent / f".spare-{template.name}"


def claim(template: Path, data: Path) -> bool:
    """Move the spare of `template` to `data` (which must not exist); False if there is
    none (or another boot took it, or it is on another file system)."""
    try:
        os.rename(spare_of(template), data)
    except OSError:
        return False
    return True


def start_work(template: Path) -> tuple[Path, Path]:
    """A work directory for a new spare of `template`: (work, where the copy goes)."""
    work = owned_work.make(template.parent, f".spare-tmp-{template.name}-")
    return work, work / "data"


def copy_command(template: Path, copy: Path) -> list[str]:
    """The copy of a (sparse: `mariadb.make_sparse`) template, as the boot's copy does."""
    return ["cp", "-a", "--reflink=auto", "--sparse=auto", str(template), str(copy)]


def install(template: Path, copy: Path) -> bool:
    """Put a finished copy in the spare's place; False if a spare is there already (the
    copy is left to the caller's clean-up)."""
    try:
        os.rename(copy, spare_of(template))
    except OSError:
        return False
    return True


def wanted(template: Path) -> bool:
    """True if `template` exists and has no spare."""
    return (template / mariadb.DATABASE).is_dir() and not spare_of(template).exists()


def remove(template: Path) -> None:
    """Remove the spare of a template that is removed."""
    shutil.rmtree(spare_of(template), ignore_errors=True)


def remove_stale(root: Path, now: float | None = None) -> list[Path]:
    """Remove work directories of spares whose manager died (or that ran far too long),
    and spares whose template is gone; the removed."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    for work in root.glob(".spare-tmp-*"):
        if owned_work.is_stale(work, STALE_AFTER, now):
            shutil.rmtree(work, ignore_errors=True)
            removed.append(work)
    for spare in root.glob(".spare-*"):
        if not spare.name.startswith(".spare-tmp-") and \
                not (root / spare.name.removeprefix(".spare-")).is_dir():
            shutil.rmtree(spare, ignore_errors=True)
            removed.append(spare)
    return removed
