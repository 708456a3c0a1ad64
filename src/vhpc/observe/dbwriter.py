"""One SQLite database in WAL mode with exactly one writer thread.

The pattern of datasette's ``execute_write_fn``: every write is a function queued to
the writer thread, which owns the only writing connection and runs each function in its
own transaction; callers get a Future (or wait for it). Reads use one connection per
reading thread, which WAL lets run concurrently with the writer.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_Job = tuple[Callable[[sqlite3.Connection], Any], "Future[Any]"]


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.row_factory = sqlite3.Row
    return conn


class Database:
    """A SQLite file with a writer thread (``write``) and per-thread readers (``read``)."""

    def __init__(self, path: Path, schema: str, name: str = "db") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[_Job | None] = queue.Queue()  # None stops the writer
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        writer = _connect(self.path, readonly=False)
        writer.executescript(schema)
        self._thread = threading.Thread(
            target=self._run, args=(writer,), name=f"vhpc-{name}-writer", daemon=True
        )
        self._thread.start()

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                fn, fut = item
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    result = fn(conn)
                    conn.execute("COMMIT")
                except Exception as exc:  # handed to the caller through its future
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    log.debug("write failed: %s", exc)
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
        finally:
            conn.close()

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue ``fn(conn)`` to run in one transaction on the writer thread."""
        fut: Future[T] = Future()
        if self._closed:
            fut.set_exception(RuntimeError(f"database {self.path} is closed"))
            return fut
        self._queue.put((fn, fut))
        return fut

    def write_wait(self, fn: Callable[[sqlite3.Connection], T], timeout: float = 30.0) -> T:
        """Run ``fn`` on the writer thread and wait for its result."""
        return self.write(fn).result(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every write queued so far has been committed."""
        self.write_wait(lambda _conn: None, timeout)

    def read(self) -> sqlite3.Connection:
        """This thread's read-only connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError(f"database {self.path} is closed")
            conn = _connect(self.path, readonly=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read query on this thread's connection."""
        return self.read().execute(sql, params).fetchall()

    def close(self, timeout: float = 30.0) -> None:
        """Finish queued writes, stop the writer and close every connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
