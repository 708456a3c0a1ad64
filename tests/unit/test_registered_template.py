"""Registered accounting datadirs (services/registered_template.py): the key follows the
exact bootstrap script, the cache keeps at most MAX_KEPT (least recently used removed),
a boot copies the registered datadir when there is one, and `wait_ready` then skips the
registration (fakes of vhpc's own pieces: the Slurm client, the port probe, the copy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import pytest

from vhpc.cluster import accounting
from vhpc.cluster.states import DaemonState
from vhpc.cluster.supervisor import Supervised
from vhpc.runtime.hostops import CommandResult
from vhpc.services import db_template, mariadb, owned_work, registered_template, slurmdbd
from vhpc.services.slurm_client import SlurmClient
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
BASE = Path("/var/lib/vhpc/.templates/mariadb-10.11.19-slurmdbd-22.05.8-abcd1234")


def spec_of(name: str = "lab", **kw: object) -> ClusterSpec:
    return build_spec(ClusterOptions(name=name, nodes=2, **kw), HOST)  # type: ignore[arg-type]


def key_of(spec: ClusterSpec, base: Path = BASE) -> Path:
    return registered_template.registered_dir(base, slurmdbd.bootstrap_script(spec))


def test_the_key_changes_with_the_name_users_accounts_and_base_template() -> None:
    lab = key_of(spec_of())
    assert lab == key_of(spec_of())  # the same cluster: the same datadir
    assert lab.parent == BASE.parent and lab.name.startswith("registered-")
    others = {key_of(spec_of("lab2")), key_of(spec_of(users=("alice:physics",))),
              key_of(spec_of(users=("alice:chemistry",))),
              key_of(spec_of(users=("alice:physics", "bob:physics"))),
              key_of(spec_of(), BASE.with_name("mariadb-11.4-slurmdbd-24.11-abcd1234"))}
    assert lab not in others and len(others) == 5


def make_registered(root: Path, count: int) -> list[Path]:
    made = []
    for i in range(count):
        path = root / f"registered-{i:016x}"
        (path / registered_template.MARKER).parent.mkdir(parents=True)
        (path / registered_template.MARKER).write_text("x y\n")
        os.utime(path, (1000 + i, 1000 + i))
        made.append(path)
    return made


def test_the_cache_keeps_at_most_max_kept_the_least_recently_used_removed(
        tmp_path: Path) -> None:
    keep = registered_template.MAX_KEPT
    made = make_registered(tmp_path, keep + 3)
    (tmp_path / BASE.name).mkdir()  # the base template is never removed
    # a boot used the oldest one: it is now the most recently used
    base = tmp_path / BASE.name
    oldest = made[0]
    os.utime(oldest, (5000, 5000))
    for template in made[:2]:  # copied once: holes made (services/mariadb.py make_sparse)
        (tmp_path / f".{template.name}.123.sparse").touch()
    removed = registered_template.prune(tmp_path)
    assert sorted(removed) == made[1:4]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert f".{oldest.name}.123.sparse" in left and f".{made[1].name}.123.sparse" not in left
    left = [n for n in left if not n.endswith(".sparse")]
    assert len([n for n in left if n.startswith("registered-")]) == keep
    assert oldest.name in left and base.name in left and not any(
        n.startswith(".trash-") for n in left)
    assert registered_template.prune(tmp_path) == []


def test_lookup_finds_only_a_finished_datadir_and_marks_it_used(tmp_path: Path) -> None:
    base = tmp_path / BASE.name
    script = slurmdbd.bootstrap_script(spec_of())
    target = registered_template.registered_dir(base, script)
    assert registered_template.lookup(base, script) is None
    target.mkdir()  # a datadir without its marker is not one
    assert registered_template.lookup(base, script) is None
    (target / registered_template.MARKER).write_text(
        registered_template.marker_text(base, script))
    os.utime(target, (1000, 1000))
    assert registered_template.lookup(base, script) == target
    assert target.stat().st_mtime > 1000


class RecordingClient:
    """A SlurmClient that records the sacctmgr scripts it is given."""

    def __init__(self) -> None:
        self.scripts: list[str] = []

    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0,
            input: str | None = None) -> CommandResult:
        assert argv == ["sacctmgr", "-i"]
        self.scripts.append(input or "")
        return CommandResult(argv, 0, "", "")


def wait_for_slurmdbd(spec: ClusterSpec, paths: ClusterPaths,
                      monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(accounting, "PortCheck", lambda netns, port, fallback: lambda: True)
    client = RecordingClient()
    daemon = slurmdbd.daemon(paths, "db")
    supervised = cast(Supervised, type("S", (), {"failures": 0,
                                                  "state": DaemonState.RUNNING})())
    accounting.wait_ready(spec, paths, cast(SlurmClient, client), daemon, supervised)
    return client.scripts


def test_wait_ready_skips_sacctmgr_when_the_datadir_holds_the_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, paths = spec_of(), ClusterPaths(tmp_path / "lab")
    script = slurmdbd.bootstrap_script(spec)
    data = mariadb.datadir(paths)
    data.mkdir(parents=True)
    assert wait_for_slurmdbd(spec, paths, monkeypatch) == [script]  # the base template's
    (data / registered_template.MARKER).write_text(
        registered_template.marker_text(BASE, slurmdbd.bootstrap_script(spec_of("other"))))
    assert wait_for_slurmdbd(spec, paths, monkeypatch) == [script]  # another cluster's
    (data / registered_template.MARKER).write_text(
        registered_template.marker_text(BASE, script))
    assert registered_template.registered_from(data, script) == key_of(spec).name
    assert wait_for_slurmdbd(spec, paths, monkeypatch) == []


def test_prepare_copies_the_registered_datadir_when_there_is_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_of()
    base = tmp_path / BASE.name
    copies: list[Path] = []

    def copy(template: Path, data: Path) -> None:
        copies.append(template)

    monkeypatch.setattr(db_template, "ensure_template", lambda: base)
    monkeypatch.setattr(mariadb, "copy_template", copy)
    data = tmp_path / "data"
    accounting.copy_datadir(spec, data)
    script = slurmdbd.bootstrap_script(spec)
    target = registered_template.registered_dir(base, script)
    (target / registered_template.MARKER).parent.mkdir(parents=True)
    (target / registered_template.MARKER).write_text(
        registered_template.marker_text(base, script))
    accounting.copy_datadir(spec, data)
    accounting.copy_datadir(spec_of(users=("alice:physics",)), data)
    assert copies == [base, target, base]


def test_the_build_registers_with_the_same_script_in_a_private_namespace() -> None:
    work = Path("/t/.registering-lab-x")
    script = registered_template.render_script(BASE, work)
    assert script.startswith(f"set -e\ncp -a --reflink=auto --sparse=always {BASE} {work}/data\n")
    assert "mariadb-install-db" not in script  # a copy of the base template: no install
    assert script.index("slurmdbd -D") < script.index(
        f"SLURM_CONF={work}/slurm.conf sacctmgr -i <{work}/bootstrap.sacctmgr") \
        < script.index("kill $dbd")
    conf = registered_template.render_slurm_conf("lab", work).splitlines()
    assert {"ClusterName=lab", "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1", f"AccountingStoragePort={slurmdbd.SLURMDBD_PORT}",
            f"AuthInfo=socket={work}/munge.socket.2",
            f"AccountingStoragePass={work}/munge.socket.2"} <= set(conf)
    command = [*registered_template.LOW_PRIORITY, *db_template.private_command(script)]
    assert command[command.index("unshare"):][:6] == [
        "unshare", "--net", "--pid", "--fork", "--kill-child", "--"]
    assert "--idle" in command and command[7:10] == ["nice", "-n", "19"]


def test_no_build_without_accounting_or_for_an_image_cluster() -> None:
    assert registered_template.start_build(spec_of(accounting=False)) is None
    image = spec_of()
    data: dict[str, Any] = image.to_dict()
    data["image"] = "rocky9"
    assert registered_template.start_build(ClusterSpec.from_dict(data)) is None


def test_work_dirs_of_dead_managers_are_removed_live_and_new_ones_kept(
        tmp_path: Path) -> None:
    def work(name: str, owner: int | None, age: float) -> Path:
        path = tmp_path / name
        path.mkdir()
        if owner is not None:
            (path / owned_work.OWNER).write_text(f"{owner}\n")
        os.utime(path, (10_000 - age, 10_000 - age))
        return path

    gone = work(".registering-lab-a", 2**22 + 7, 60)  # above pid_max: no such process
    live = work(".registering-lab-b", os.getpid(), 60)
    new = work(".registering-lab-c", None, 2)  # its owner file comes next
    old = work(".registering-lab-d", os.getpid(), registered_template.BUILD_TIMEOUT + 120)
    trash = work(".trash-registered-0123-9", None, 60)
    (tmp_path / BASE.name).mkdir()  # mariadb.make_sparse's markers: of a template gone
    kept_marker = tmp_path / f".{BASE.name}.123.sparse"
    orphan_marker = tmp_path / ".registered-4567.89.sparse"
    kept_marker.touch()
    orphan_marker.touch()
    removed = registered_template.remove_stale(tmp_path, now=10_000)
    assert sorted(removed) == sorted([gone, old, trash, orphan_marker])
    assert live.exists() and new.exists() and kept_marker.exists()
