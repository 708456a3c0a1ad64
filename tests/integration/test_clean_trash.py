"""`vhpc clean` sweeps the trash an interrupted `down` left (issue 12): the real CLI, in a
private state root, removes one cluster's `.trash-*` directories (with --all everyone's)
and never a directory vhpc did not name."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.helpers import vhpc
from vhpc.runtime.trash import trash_name

pytestmark = pytest.mark.privileged


def test_clean_removes_the_trash_of_an_interrupted_down() -> None:
    root = Path(tempfile.mkdtemp(prefix="vhpc-hltrash-", dir="/var/lib"))
    env = {"VHPC_STATE_ROOT": str(root)}
    try:
        trash = {}
        for name in ("hltrash", "hltrash-b"):  # what `down` renamed aside, never deleted
            trash[name] = trash_name(root / name)
            (trash[name] / "log").mkdir(parents=True)
            (trash[name] / "ledger.jsonl").write_text("")
        foreign = root / ".trash-notes"
        foreign.mkdir()
        assert "hltrash" not in vhpc("ls", user_env=env).stdout  # trash is no cluster

        cleaned = vhpc("-c", "hltrash", "clean", user_env=env)
        assert f"removed trash {trash['hltrash']}" in cleaned.stderr, cleaned.stderr
        assert not trash["hltrash"].exists() and trash["hltrash-b"].exists()
        cleaned = vhpc("clean", "--all", user_env=env)
        assert f"removed trash {trash['hltrash-b']}" in cleaned.stderr, cleaned.stderr
        assert sorted(p.name for p in root.iterdir()) == [foreign.name]
    finally:
        shutil.rmtree(root, ignore_errors=True)
