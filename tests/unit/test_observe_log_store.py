"""LogStore: FTS search safe against user input, filters, follow, offsets, events."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vhpc.observe.log_store import FileOffset, LogRecord, LogStore, fts_query

T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LogStore]:
    st = LogStore(tmp_path / "logs.sqlite")
    st.ingest([
        LogRecord(T0, "slurm", "slurmctld", "info", "slurmctld version 22.05.8 started"),
        LogRecord(T0 + 1, "compute1", "slurmd", "error", "Unable to register: Zero Bytes"),
        LogRecord(T0 + 2, "compute2", "slurmd", "warning", 'job "gemm" AND stuff NEAR(x)'),
        LogRecord(T0 + 3, "compute2", "munged", "debug", "Munge daemon 0.5.15 starting"),
        LogRecord(T0 + 4, "compute1", "job", "info", "rank 0: gemm done in 1.2 s"),
    ]).result(5)
    yield st
    st.close()


def test_fts_query_quotes_everything() -> None:
    assert fts_query('error "quoted" AND OR NOT') == '"error" """quoted""" "AND" "OR" "NOT"'
    assert fts_query("regi*") == '"regi" *'
    assert fts_query('  " * ( ) : ') == ""


@pytest.mark.parametrize("hostile", [
    '"', '""', "AND", "NOT x", "a OR", "NEAR(a b)", "col:val", "(", "*", "^x", "-x", "'",
    'message:"x', "a AND (b", "\\", "x\x00y",
])
def test_search_never_raises_on_user_text(store: LogStore, hostile: str) -> None:
    store.search(q=hostile)


def test_search_text_and_filters(store: LogStore) -> None:
    assert [r.node for r in store.search(q="register")] == ["compute1"]
    assert [r.service for r in store.search(q="gemm")] == ["job", "slurmd"]  # newest first
    assert next(r.message for r in store.search(q='"gemm" AND')).startswith("job")
    assert [r.node for r in store.search(q="regis*")] == ["compute1"]
    assert {r.service for r in store.search(node="compute2")} == {"slurmd", "munged"}
    assert [r.service for r in store.search(service="munged")] == ["munged"]
    assert [r.level for r in store.search(level="warning")] == ["warning", "error"]
    assert len(store.search(since=T0 + 3)) == 2
    assert len(store.search(until=T0 + 1)) == 2
    assert len(store.search(limit=2)) == 2
    first = store.search(limit=2)
    older = store.search(before_id=first[-1].id)
    assert [r.id for r in older] == sorted((r.id for r in older), reverse=True)
    assert len(older) == 3


def test_follow_and_wait(store: LogStore) -> None:
    last = store.last_id()
    assert store.follow(last) == []
    assert not store.wait(last, timeout=0.05)
    woke: list[bool] = []
    t = threading.Thread(target=lambda: woke.append(store.wait(last, timeout=5)))
    t.start()
    time.sleep(0.05)
    store.append(LogRecord(T0 + 9, "compute3", "slurmd", "info", "new node"))
    t.join()
    assert woke == [True]
    rows = store.follow(last)
    assert [r.message for r in rows] == ["new node"]
    assert rows[0].to_dict()["node"] == "compute3"
    assert store.follow(0, limit=2)[0].id < store.follow(0, limit=2)[1].id
    assert [r.node for r in store.follow(0, node="compute2")] == ["compute2", "compute2"]


def test_events_are_service_vhpc(store: LogStore) -> None:
    store.record_event("node compute3 added", node="compute3", ts=T0 + 10).result(5)
    events = store.events()
    assert [e.message for e in events] == ["node compute3 added"]
    assert events[0].service == "vhpc"


def test_events_keep_their_kind_and_log_lines_have_none(store: LogStore) -> None:
    store.record_event("added compute3", node="compute3", ts=T0 + 10,
                       kind="node_added").result(5)
    (event,) = store.events()
    assert (event.kind, event.message) == ("node_added", "added compute3")
    assert {r.kind for r in store.search(service="slurmd")} == {""}


def test_a_store_from_before_the_kind_column_gets_it(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the schema of earlier versions
        conn.execute("CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT "
                     "NULL, node TEXT NOT NULL, service TEXT NOT NULL, level TEXT NOT NULL, "
                     "lvl INTEGER NOT NULL, message TEXT NOT NULL)")
        conn.execute("INSERT INTO logs (ts, node, service, level, lvl, message) VALUES "
                     "(1, '', 'vhpc', 'info', 20, 'cluster_up: old event')")
    st = LogStore(path)
    try:
        st.record_event("new event", ts=T0, kind="node_added").result(5)
        assert [(e.kind, e.message) for e in st.events()] == [
            ("node_added", "new event"), ("", "cluster_up: old event")]
    finally:
        st.close()


def test_offsets_committed_with_rows(tmp_path: Path) -> None:
    st = LogStore(tmp_path / "l.sqlite")
    st.ingest([LogRecord(T0, "n", "s", "info", "x")], {"/a.log": FileOffset(5, 120)}).result(5)
    st.close()
    st = LogStore(tmp_path / "l.sqlite")
    assert st.offsets() == {"/a.log": FileOffset(5, 120)}
    assert st.last_id() == 1
    st.forget_offsets(["/a.log"])
    st.flush()
    assert st.offsets() == {}
    st.close()


def test_prune_by_row_count(tmp_path: Path) -> None:
    st = LogStore(tmp_path / "l.sqlite", max_rows=100)
    now = time.time()
    st.ingest([LogRecord(now, "n", "s", "info", f"line {i}") for i in range(10_050)]).result(30)
    assert st.count() == 100
    assert st.search(q="9000") == []
    assert len(st.search(q="10049")) == 1
    st.close()


def test_unknown_level_stored_as_info(store: LogStore) -> None:
    store.append(LogRecord(T0, "n", "s", "LOUD", "m")).result(5)
    assert store.search(q="m")[0].level == "info"
