"""Embedded central log store: every node's daemon logs and vhpc's events, searchable.

One SQLite file: table ``logs`` (id, ts, node, service, level, message, kind) with an
FTS5 index on the message, and table ``offsets`` where the tailer's file positions are
committed in the same transaction as the lines they cover, so a restarted manager
neither loses nor re-ingests lines. vhpc's own events are rows with service ``vhpc`` and
their event kind (``node_added``, ``oom_kill``...) in ``kind`` (empty for log lines).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vhpc.observe.dbwriter import Database
from vhpc.observe.logparse import LEVELS, level_rank

EVENT_SERVICE = "vhpc"

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, node TEXT NOT NULL,
  service TEXT NOT NULL, level TEXT NOT NULL, lvl INTEGER NOT NULL, message TEXT NOT NULL,
  kind TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS logs_ts ON logs(ts);
CREATE INDEX IF NOT EXISTS logs_node ON logs(node, id);
CREATE INDEX IF NOT EXISTS logs_service ON logs(service, id);
CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(
  message, content='logs', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS logs_ai AFTER INSERT ON logs BEGIN
  INSERT INTO logs_fts(rowid, message) VALUES (new.id, new.message);
END;
CREATE TRIGGER IF NOT EXISTS logs_ad AFTER DELETE ON logs BEGIN
  INSERT INTO logs_fts(logs_fts, rowid, message) VALUES ('delete', old.id, old.message);
END;
CREATE TABLE IF NOT EXISTS offsets (
  path TEXT PRIMARY KEY, inode INTEGER NOT NULL, offset INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class LogRecord:
    """One log line to store."""

    ts: float
    node: str
    service: str
    level: str
    message: str
    kind: str = ""  # an event's kind; "" for a log line


@dataclass(frozen=True)
class LogRow:
    """One stored log line, with its id (ids only grow: use them to follow)."""

    id: int
    ts: float
    node: str
    service: str
    level: str
    message: str
    kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"id","ts","node","service","level","message","kind"}``."""
        return asdict(self)


@dataclass(frozen=True)
class FileOffset:
    """Where the tailer stopped reading one file (inode tells a rotated file apart)."""

    inode: int
    offset: int


def fts_query(text: str) -> str:
    """Turn free user text into a safe FTS5 query: every word a quoted phrase, ANDed.

    Quotes and operators in the input lose their meaning; a trailing ``*`` on a word
    is kept as a prefix search. Returns ``""`` when nothing searchable is left.
    """
    terms = []
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    for word in text.split():
        prefix = word.endswith("*")
        word = word.rstrip("*")
        if not any(ch.isalnum() for ch in word):
            continue
        terms.append('"' + word.replace('"', '""') + '"' + (" *" if prefix else ""))
    return " ".join(terms)


def _row(r: sqlite3.Row) -> LogRow:
    return LogRow(r["id"], r["ts"], r["node"], r["service"], r["level"], r["message"],
                  r["kind"])


class LogStore:
    """All logs of one cluster in one SQLite FTS5 file, written by one thread."""

    def __init__(
        self, path: Path, max_rows: int = 1_000_000, max_age: float = 7 * 86400.0
    ) -> None:
        self.max_rows = max_rows
        self.max_age = max_age
        self._db = Database(Path(path), SCHEMA, name="logs")
        self._cond = threading.Condition()
        self._add_kind_column()
        self._last_id = int(self._db.query("SELECT coalesce(max(id), 0) FROM logs")[0][0])
        self._inserted_since_prune = 0

    def _add_kind_column(self) -> None:
        """A store written before events had a kind column gets one (re-adoption)."""
        columns = {r[1] for r in self._db.query("PRAGMA table_info(logs)")}
        if "kind" not in columns:
            self._db.write(lambda conn: conn.execute(
                "ALTER TABLE logs ADD COLUMN kind TEXT NOT NULL DEFAULT ''")).result(30)

    # -- writing -------------------------------------------------------------------
    def ingest(
        self,
        records: Sequence[LogRecord],
        offsets: Mapping[str, FileOffset] | None = None,
    ) -> Future[int]:
        """Queue records and the tailer offsets they reach; one transaction for both."""
        batch = list(records)
        offs = dict(offsets or {})
        fut = self._db.write(lambda conn: self._insert(conn, batch, offs))
        fut.add_done_callback(self._notify)
        return fut

    def append(self, record: LogRecord) -> Future[int]:
        """Queue one record."""
        return self.ingest([record])

    def record_event(
        self, message: str, node: str = "", level: str = "info", ts: float | None = None,
        kind: str = "event",
    ) -> Future[int]:
        """Store one of vhpc's own events (service ``vhpc``)."""
        when = time.time() if ts is None else ts
        return self.append(LogRecord(when, node, EVENT_SERVICE, level, message, kind))

    def flush(self) -> None:
        """Wait until every queued write is committed."""
        self._db.flush()

    def _insert(
        self, conn: sqlite3.Connection, batch: list[LogRecord], offs: dict[str, FileOffset]
    ) -> int:
        conn.executemany(
            "INSERT INTO logs (ts, node, service, level, lvl, message, kind) "
            "VALUES (?,?,?,?,?,?,?)",
            [
                (r.ts, r.node, r.service, r.level if r.level in LEVELS else "info",
                 level_rank(r.level), r.message, r.kind)
                for r in batch
            ],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO offsets (path, inode, offset) VALUES (?,?,?)",
            [(p, o.inode, o.offset) for p, o in offs.items()],
        )
        last = int(conn.execute("SELECT coalesce(max(id), 0) FROM logs").fetchone()[0])
        self._inserted_since_prune += len(batch)
        if self._inserted_since_prune >= 10_000:
            self._prune(conn, last)
        return last

    def _prune(self, conn: sqlite3.Connection, last: int) -> None:
        self._inserted_since_prune = 0
        conn.execute("DELETE FROM logs WHERE id <= ?", (last - self.max_rows,))
        conn.execute("DELETE FROM logs WHERE ts < ?", (time.time() - self.max_age,))

    def _notify(self, fut: Future[int]) -> None:
        """After a commit: publish the new last id and wake followers."""
        with self._cond:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._last_id = max(self._last_id, fut.result())
            self._cond.notify_all()

    def forget_offsets(self, paths: Sequence[str]) -> None:
        """Drop stored offsets of files no longer followed."""
        keys = list(paths)
        self._db.write(
            lambda conn: conn.executemany("DELETE FROM offsets WHERE path = ?",
                                          [(p,) for p in keys])
        )

    # -- reading -------------------------------------------------------------------
    def offsets(self) -> dict[str, FileOffset]:
        """The committed tailer offsets, by path."""
        rows = self._db.query("SELECT path, inode, offset FROM offsets")
        return {r[0]: FileOffset(r[1], r[2]) for r in rows}

    def last_id(self) -> int:
        """The id of the newest committed row (0 when empty)."""
        return self._last_id

    def wait(self, after_id: int, timeout: float) -> bool:
        """Block until a row newer than ``after_id`` is committed, or ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._last_id > after_id, timeout)

    def search(
        self,
        q: str | None = None,
        node: str | None = None,
        service: str | None = None,
        level: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 200,
        before_id: int | None = None,
    ) -> list[LogRow]:
        """Newest-first rows matching every given filter.

        ``q`` is free text (see :func:`fts_query`), ``level`` means "this level or more
        severe", ``since``/``until`` are epoch seconds, ``before_id`` pages backwards.
        """
        where, params = self._filters(q, node, service, level, since, until)
        if before_id is not None:
            where.append("logs.id < ?")
            params.append(before_id)
        return self._select(where, params, "logs.id DESC", limit)

    def follow(
        self,
        after_id: int,
        limit: int = 500,
        q: str | None = None,
        node: str | None = None,
        service: str | None = None,
        level: str | None = None,
    ) -> list[LogRow]:
        """Oldest-first rows with id > ``after_id`` (matching the filters)."""
        where, params = self._filters(q, node, service, level, None, None)
        where.append("logs.id > ?")
        params.append(after_id)
        return self._select(where, params, "logs.id ASC", limit)

    def events(self, since: float | None = None, limit: int = 200) -> list[LogRow]:
        """vhpc's own events, newest first."""
        return self.search(service=EVENT_SERVICE, since=since, limit=limit)

    def count(self) -> int:
        """Number of stored rows."""
        return int(self._db.query("SELECT count(*) FROM logs")[0][0])

    def _filters(
        self,
        q: str | None,
        node: str | None,
        service: str | None,
        level: str | None,
        since: float | None,
        until: float | None,
    ) -> tuple[list[str], list[object]]:
        where: list[str] = []
        params: list[object] = []
        match = fts_query(q or "")
        if match:
            where.append("logs.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ?)")
            params.append(match)
        for column, value in (("node", node), ("service", service)):
            if value:
                where.append(f"logs.{column} = ?")
                params.append(value)
        if level:
            where.append("logs.lvl >= ?")
            params.append(level_rank(level))
        if since is not None:
            where.append("logs.ts >= ?")
            params.append(since)
        if until is not None:
            where.append("logs.ts <= ?")
            params.append(until)
        return where, params

    def _select(
        self, where: list[str], params: list[object], order: str, limit: int
    ) -> list[LogRow]:
        sql = "SELECT * FROM logs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order} LIMIT ?"
        params.append(max(0, min(int(limit), 10_000)))
        return [_row(r) for r in self._db.query(sql, tuple(params))]

    def close(self) -> None:
        """Commit queued writes and close the database."""
        self._db.close()
        with self._cond:
            self._cond.notify_all()
