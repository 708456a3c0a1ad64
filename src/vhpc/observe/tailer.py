"""Follow many log files by polling, surviving rotation, truncation and restarts.

Each poll reads what was appended to every followed file since the last poll, splits
it into complete lines (a partial last line waits for its newline), parses each line
(:mod:`vhpc.observe.logparse`) and hands records plus the new file offsets to a sink in
one call; the log store commits both in one transaction. On start the committed
offsets are reused, so a restarted manager does not re-ingest old lines.

Rotation by rename is seen as a new inode at the path: the old file is drained to its
end first. Truncation (copytruncate, ``> file``) is seen as a size below our position.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from vhpc.observe.log_store import FileOffset, LogRecord
from vhpc.observe.logparse import parse_line

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024


@dataclass(frozen=True)
class LogSource:
    """Who wrote a file: every line of it is tagged with this node and service."""

    node: str
    service: str


class LogSink(Protocol):
    """Where parsed lines go (the LogStore, or a fan-out to store + syslog)."""

    def ingest(
        self, records: Sequence[LogRecord], offsets: Mapping[str, FileOffset] | None = None
    ) -> object:
        """Store records and the offsets they reach."""


class _Followed:
    """Read state of one path."""

    def __init__(self, path: Path, source: LogSource) -> None:
        self.path = path
        self.source = source
        self.fh: BinaryIO | None = None
        self.inode = 0
        self.pending = b""

    @property
    def offset(self) -> int:
        """Position after the last complete line handed out."""
        return 0 if self.fh is None else self.fh.tell() - len(self.pending)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
        self.fh = None
        self.pending = b""


class Tailer:
    """Polls a changing set of files and feeds new lines to a sink."""

    def __init__(
        self,
        sink: LogSink,
        offsets: Mapping[str, FileOffset] | None = None,
        initial_max_bytes: int = 1 << 20,
        read_max_bytes: int = 256 << 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sink = sink
        self._saved = dict(offsets or {})
        self._initial_max = initial_max_bytes
        self._read_max = read_max_bytes
        self._clock = clock
        self._files: dict[Path, _Followed] = {}

    def set_files(self, files: Mapping[Path, LogSource]) -> None:
        """Follow exactly these files from now on (new ones open at the next poll)."""
        for path in list(self._files):
            if path not in files:
                self._files.pop(path).close()
        for path, source in files.items():
            followed = self._files.get(path)
            if followed is None:
                self._files[path] = _Followed(path, source)
            elif followed.source != source:
                followed.source = source

    def followed(self) -> list[Path]:
        """The paths currently followed."""
        return list(self._files)

    def poll(self) -> int:
        """Read every file once; returns how many lines went to the sink."""
        records: list[LogRecord] = []
        offsets: dict[str, FileOffset] = {}
        for f in self._files.values():
            try:
                records += self._poll_one(f)
            except OSError as exc:
                log.debug("tail %s: %s", f.path, exc)
                f.close()
                continue
            if f.fh is not None:
                offsets[str(f.path)] = FileOffset(f.inode, f.offset)
        changed = {
            p: o for p, o in offsets.items() if self._saved.get(p) != o
        }
        if records or changed:
            self._sink.ingest(records, changed)
            self._saved.update(changed)
        return len(records)

    def close(self) -> None:
        """Close every open file."""
        for f in self._files.values():
            f.close()
        self._files.clear()

    def _poll_one(self, f: _Followed) -> list[LogRecord]:
        try:
            st = os.stat(f.path)
        except FileNotFoundError:
            st = None
        out: list[LogRecord] = []
        if f.fh is not None and (st is None or st.st_ino != f.inode):
            out += self._read(f, final=st is not None, drain=st is not None)  # rotated
            if st is None:
                return out
            f.close()
        if st is None:
            return out
        if f.fh is None:
            self._open(f, st)
        elif st.st_size < f.offset:  # truncated in place
            assert f.fh is not None
            f.fh.seek(0)
            f.pending = b""
        return out + self._read(f, final=False)

    def _open(self, f: _Followed, st: os.stat_result) -> None:
        fh = open(f.path, "rb")  # noqa: SIM115 - kept open across polls
        saved = self._saved.get(str(f.path))
        start = 0
        if saved is not None and saved.inode == st.st_ino and saved.offset <= st.st_size:
            start = saved.offset
        elif saved is None and st.st_size > self._initial_max:
            fh.seek(st.st_size - self._initial_max)
            fh.readline()  # skip to the start of the next whole line
            start = fh.tell()
        fh.seek(start)
        f.fh, f.inode, f.pending = fh, st.st_ino, b""

    def _read(self, f: _Followed, final: bool, drain: bool = False) -> list[LogRecord]:
        assert f.fh is not None
        data = f.pending + (f.fh.read() if drain else f.fh.read(self._read_max))
        lines = data.split(b"\n")
        f.pending = lines.pop()
        if final or len(f.pending) > MAX_LINE:
            if f.pending:
                lines.append(f.pending)
            f.pending = b""
        now = self._clock()
        out = []
        for raw in lines:
            text = raw.decode("utf-8", errors="replace").rstrip("\r")
            if not text.strip():
                continue
            parsed = parse_line(text, now)
            out.append(LogRecord(
                parsed.ts if parsed.ts is not None else now,
                f.source.node, f.source.service, parsed.level, parsed.message,
            ))
        return out
