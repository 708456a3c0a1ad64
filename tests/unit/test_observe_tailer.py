"""Tailer: new lines, partial lines, rotation, truncation, restart without re-ingest."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from vhpc.observe.log_store import FileOffset, LogRecord, LogStore
from vhpc.observe.tailer import LogSource, Tailer

SRC = LogSource("compute1", "slurmd")


class Sink:
    """Collects what the tailer hands out."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self.offsets: dict[str, FileOffset] = {}

    def ingest(
        self, records: Sequence[LogRecord], offsets: Mapping[str, FileOffset] | None = None
    ) -> object:
        self.records += records
        self.offsets.update(offsets or {})
        return None

    def messages(self) -> list[str]:
        return [r.message for r in self.records]


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_reads_new_complete_lines_and_tags_them(tmp_path: Path) -> None:
    log = tmp_path / "slurmd.log"
    log.write_text("[2026-11-28T15:00:00.000] error: first\nsecond\n")
    sink = Sink()
    t = Tailer(sink, clock=lambda: 123.0)
    t.set_files({log: SRC})
    assert t.poll() == 2
    assert sink.records[0].level == "error"
    assert (sink.records[1].node, sink.records[1].service) == ("compute1", "slurmd")
    assert sink.records[1].ts == 123.0
    assert sink.offsets[str(log)] == FileOffset(os.stat(log).st_ino, log.stat().st_size)
    assert t.poll() == 0
    append(log, "third\n\n")
    t.poll()
    assert sink.messages() == ["first", "second", "third"]


def test_partial_line_waits_for_newline(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("hel")
    sink = Sink()
    t = Tailer(sink)
    t.set_files({log: SRC})
    t.poll()
    assert sink.messages() == []
    assert sink.offsets[str(log)].offset == 0
    append(log, "lo\nwor")
    t.poll()
    assert sink.messages() == ["hello"]
    assert sink.offsets[str(log)].offset == 6


def test_rotation_by_rename_drains_old_file_then_follows_new(tmp_path: Path) -> None:
    log = tmp_path / "slurmctld.log"
    log.write_text("one\n")
    sink = Sink()
    t = Tailer(sink)
    t.set_files({log: SRC})
    t.poll()
    append(log, "two\nthree-partial")
    log.rename(tmp_path / "slurmctld.log.1")
    t.poll()  # old file gone from the path, new not there yet: keep reading the old one
    assert sink.messages() == ["one", "two"]
    log.write_text("four\n")
    t.poll()
    assert sink.messages() == ["one", "two", "three-partial", "four"]


def test_truncation_restarts_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "job.out"
    log.write_text("aaaa\nbbbb\n")
    sink = Sink()
    t = Tailer(sink)
    t.set_files({log: SRC})
    t.poll()
    log.write_text("c\n")  # truncate in place, same inode
    t.poll()
    assert sink.messages() == ["aaaa", "bbbb", "c"]


def test_restart_resumes_from_committed_offsets(tmp_path: Path) -> None:
    log = tmp_path / "slurmd.log"
    log.write_text("a\nb\n")
    store = LogStore(tmp_path / "logs.sqlite")
    t = Tailer(store)
    t.set_files({log: SRC})
    t.poll()
    store.flush()
    t.close()
    append(log, "c\n")
    t2 = Tailer(store, store.offsets())  # a restarted manager
    t2.set_files({log: SRC})
    assert t2.poll() == 1
    store.flush()
    assert [r.message for r in store.follow(0)] == ["a", "b", "c"]
    store.close()


def test_restart_after_rotation_while_down_reads_new_file_from_start(tmp_path: Path) -> None:
    log = tmp_path / "slurmd.log"
    log.write_text("a\nb\n")
    saved = {str(log): FileOffset(log.stat().st_ino, 4)}
    log.rename(tmp_path / "slurmd.log.1")
    log.write_text("new\n")
    sink = Sink()
    t = Tailer(sink, saved)
    t.set_files({log: SRC})
    t.poll()
    assert sink.messages() == ["new"]


def test_big_unknown_file_starts_near_its_end(tmp_path: Path) -> None:
    log = tmp_path / "big.out"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    sink = Sink()
    t = Tailer(sink, initial_max_bytes=100)
    t.set_files({log: SRC})
    t.poll()
    assert 5 <= len(sink.records) <= 12
    assert sink.messages()[-1] == "line 999"
    assert all(m.startswith("line ") for m in sink.messages())


def test_missing_file_appears_later_and_removed_file_is_dropped(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    sink = Sink()
    t = Tailer(sink)
    t.set_files({log: SRC})
    assert t.poll() == 0
    log.write_text("x\n")
    assert t.poll() == 1
    t.set_files({})
    append(log, "y\n")
    assert t.poll() == 0
    assert t.followed() == []


def test_invalid_utf8_and_long_lines(tmp_path: Path) -> None:
    log = tmp_path / "bin.out"
    log.write_bytes(b"\xff\xfe ok\n" + b"x" * 70_000)
    sink = Sink()
    t = Tailer(sink)
    t.set_files({log: SRC})
    t.poll()
    assert sink.messages()[0].endswith(" ok")
    assert len(sink.messages()[1]) == 70_000
