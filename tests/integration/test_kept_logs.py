"""A failed boot keeps its evidence (issue 12 item 5): the rollback removes the cluster but
moves its logs to the directory the error names, under <state root>/.failed/; so does
`vhpc down --keep-logs`; `vhpc clean` removes them and says so."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.helpers import break_db_template, leftovers, vhpc

pytestmark = pytest.mark.privileged

KEPT_RE = re.compile(r"logs are kept in (\S+)")


def _kept_path(stderr: str) -> Path:
    found = KEPT_RE.search(stderr)
    assert found, f"no kept-logs path named in: {stderr}"
    return Path(found.group(1))


def _used_by_anything(path: Path) -> list[str]:
    """Mounts and processes that still name `path`."""
    found = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
             if str(path) in line]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) + "/" in text:
            found.append(f"{cmdline.parent.name}: {text[:80]}")
    return found


def test_a_failed_boot_keeps_its_logs_where_the_error_says_and_clean_removes_them() -> None:
    """A broken MariaDB template datadir makes every boot fail the same way (mariadbd
    aborts): a private state root holds it, so no other cluster is affected."""
    root = Path(tempfile.mkdtemp(prefix="vhpc-sbkeep-", dir="/var/lib"))
    name = "sbkeep"
    env = {"VHPC_STATE_ROOT": str(root)}
    try:
        break_db_template(root)
        out = vhpc("-c", name, "up", "-n", "1", check=False, user_env=env)
        assert out.returncode != 0
        assert out.stderr.count("\n") == 1, out.stderr  # one line
        kept = _kept_path(out.stderr)
        assert kept.parent == root / ".failed" and kept.name.startswith(f"{name}-")
        assert f"'vhpc -c {name} clean' removes them" in out.stderr
        assert "Aborting" in (kept / "mariadbd.db.log").read_text(errors="replace")
        assert (kept / "spec.json").exists()
        assert "mariadbd" in (kept / "error.txt").read_text()
        assert kept.stat().st_mode & 0o777 == 0o700
        # nothing else of the cluster is left
        assert not (root / name).exists()
        assert _used_by_anything(root / name) == []
        assert [x for x in leftovers(name) if not x.startswith("state directory")] == []
        assert sorted(p.name for p in (root / ".failed").iterdir()) == [kept.name]

        cleaned = vhpc("-c", name, "clean", user_env=env)
        assert f"removed kept logs {kept}" in cleaned.stderr, cleaned.stderr
        assert not kept.exists() and not (root / ".failed").exists()
    finally:
        vhpc("-c", name, "clean", "--force", check=False, user_env=env)
        shutil.rmtree(root, ignore_errors=True)


def test_down_keep_logs_keeps_them_and_clean_removes_them() -> None:
    name = "sbkeepdown"
    try:
        vhpc("-c", name, "up", "-n", "1", "--no-accounting")
        down = vhpc("-c", name, "down", "--keep-logs")
        kept = _kept_path(down.stderr)
        assert kept.name.startswith(f"{name}-")
        assert "slurmd" in (kept / "slurmd.compute0.log").read_text()
        assert "slurmctld" in (kept / "slurmctld.log").read_text(), sorted(os.listdir(kept))
        assert not (kept / "error.txt").exists()  # not a failure
        assert leftovers(name) == []

        cleaned = vhpc("--cluster", "sbkeepdown-other", "clean")  # another cluster's: kept
        assert "removed kept logs" not in cleaned.stderr and kept.exists()
        cleaned = vhpc("-c", name, "clean")
        assert f"removed kept logs {kept}" in cleaned.stderr, cleaned.stderr
        assert not kept.exists()
    finally:
        vhpc("-c", name, "down", check=False)
        vhpc("-c", name, "clean", "--force", check=False)
