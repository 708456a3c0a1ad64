"""Spare accounting datadirs (services/spare_datadir.py): a boot takes a template's spare
with a rename (once: a second boot copies), a finished copy becomes the spare only if
there is none, the leftovers of dead managers and the spares of removed templates go,
and pruning a registered template takes its spare along (fakes: the copy itself)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vhpc.cluster import accounting
from vhpc.services import db_template, mariadb, owned_work, registered_template, spare_datadir
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.sizes import MIB

HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)


def template(root: Path, name: str) -> Path:
    """A template directory with its database."""
    (root / name / mariadb.DATABASE).mkdir(parents=True)
    (root / name / "ibdata1").write_text(name)
    return root / name


def spare(template_dir: Path) -> Path:
    """A spare of `template_dir`, as a finished refill leaves it."""
    work, copy = spare_datadir.start_work(template_dir)
    copy.mkdir()
    (copy / "ibdata1").write_text(f"spare of {template_dir.name}")
    assert spare_datadir.install(template_dir, copy)
    (work / owned_work.OWNER).unlink()
    work.rmdir()
    return spare_datadir.spare_of(template_dir)


def test_a_boot_takes_the_spare_once(tmp_path: Path) -> None:
    base = template(tmp_path, "mariadb-x")
    assert spare_datadir.wanted(base)
    spare(base)
    assert not spare_datadir.wanted(base)
    data = tmp_path / "lab" / "data"
    data.parent.mkdir()
    assert spare_datadir.claim(base, data)
    assert (data / "ibdata1").read_text() == "spare of mariadb-x"
    assert not spare_datadir.claim(base, tmp_path / "lab" / "other")  # taken
    assert spare_datadir.wanted(base)


def test_a_copy_becomes_the_spare_only_if_there_is_none(tmp_path: Path) -> None:
    base = template(tmp_path, "mariadb-x")
    spare(base)
    _, copy = spare_datadir.start_work(base)
    copy.mkdir()
    assert not spare_datadir.install(base, copy)  # a spare is there: the caller removes it
    assert copy.exists() and spare_datadir.spare_of(base).exists()


def test_leftovers_of_dead_managers_and_spares_of_removed_templates_go(
        tmp_path: Path) -> None:
    kept = template(tmp_path, "registered-aaaa")
    kept_spare = spare(kept)
    orphan = spare(template(tmp_path, "registered-bbbb"))
    (tmp_path / "registered-bbbb" / mariadb.DATABASE).rmdir()
    (tmp_path / "registered-bbbb" / "ibdata1").unlink()
    (tmp_path / "registered-bbbb").rmdir()

    def work(owner: int, age: float) -> Path:
        path, _ = spare_datadir.start_work(kept)
        (path / owned_work.OWNER).write_text(f"{owner}\n")
        os.utime(path, (10_000 - age, 10_000 - age))
        return path

    dead = work(2**22 + 7, 60)  # above pid_max: no such process
    live = work(os.getpid(), 60)
    young = work(2**22 + 7, 2)  # may still be starting
    old = work(os.getpid(), spare_datadir.STALE_AFTER + 60)
    removed = spare_datadir.remove_stale(tmp_path, now=10_000)
    assert sorted(removed) == sorted([dead, old, orphan])
    assert live.exists() and young.exists() and kept_spare.exists()


def test_pruning_a_registered_template_removes_its_spare(tmp_path: Path) -> None:
    made = [template(tmp_path, f"registered-{i:04d}") for i in range(3)]
    for i, path in enumerate(made):
        os.utime(path, (1000 + i, 1000 + i))
    spares = [spare(path) for path in made]
    assert registered_template.prune(tmp_path, keep=2) == [made[0]]
    assert not spares[0].exists() and spares[1].exists() and spares[2].exists()


def test_the_boot_takes_the_spare_instead_of_copying(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = template(tmp_path, "mariadb-x")
    copies: list[Path] = []
    monkeypatch.setattr(db_template, "ensure_template", lambda: base)
    monkeypatch.setattr(mariadb, "copy_template", lambda src, data: copies.append(src))
    spec = build_spec(ClusterOptions(name="lab", nodes=2), HOST)
    spare(base)
    assert accounting.copy_datadir(spec, tmp_path / "a" / "data") == base
    assert copies == []
    assert (tmp_path / "a" / "data" / "ibdata1").read_text() == "spare of mariadb-x"
    assert accounting.copy_datadir(spec, tmp_path / "b" / "data") == base
    assert copies == [base]  # no spare left: a copy
