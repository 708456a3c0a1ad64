"""Parsing of the log lines the cluster's daemons write."""

from __future__ import annotations

from datetime import datetime

import pytest

from vhpc.observe.logparse import level_rank, normalize_level, parse_line


def local(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(("line", "level", "message"), [
    ("[2026-11-28T15:00:00.123] error: Unable to register", "error", "Unable to register"),
    ("[2026-11-28T15:00:00.123] fatal: Unable to bind", "fatal", "Unable to bind"),
    ("[2026-11-28T15:00:00.123] debug2: Processing RPC", "debug", "Processing RPC"),
    ("[2026-11-28T15:00:00.123] warning: slurm.conf changed", "warning",
     "slurm.conf changed"),
    ("[2026-11-28T15:00:00.123] slurmd version 22.05.8 started", "info",
     "slurmd version 22.05.8 started"),
    ("[2026-11-28T15:00:00.123] sched: Allocate JobId=3", "info",
     "sched: Allocate JobId=3"),
    ("[2026-11-28T15:00:00.123] [3.0] error: task 0 killed", "error", "[3.0] task 0 killed"),
])
def test_slurm(line: str, level: str, message: str) -> None:
    p = parse_line(line)
    assert (p.level, p.message) == (level, message)
    assert p.ts == pytest.approx(local("2026-11-28T15:00:00.123"))


def test_slurm_with_timezone() -> None:
    p = parse_line("[2026-11-28T15:00:00.000+00:00] error: x")
    assert p.ts == datetime.fromisoformat("2026-11-28T15:00:00+00:00").timestamp()


def test_munge() -> None:
    p = parse_line("2026-11-28 15:00:00 +0000 Notice:    Running on \"compute1\"")
    assert (p.level, p.message) == ("notice", 'Running on "compute1"')
    assert p.ts == datetime.fromisoformat("2026-11-28T15:00:00+00:00").timestamp()


def test_etcd_capnslog_and_json() -> None:
    p = parse_line("2026-11-28 15:00:00.123456 W | etcdserver: read took too long")
    assert (p.level, p.message) == ("warning", "etcdserver: read took too long")
    j = parse_line('{"level":"error","ts":"2026-11-28T15:00:00.1Z","caller":"x.go:1",'
                   '"msg":"lost leader","term":3}')
    assert j.level == "error"
    assert j.message == 'lost leader {"term": 3}'
    assert j.ts == datetime.fromisoformat("2026-11-28T15:00:00.1+00:00").timestamp()


def test_syslog_style_dnsmasq() -> None:
    now = local("2026-11-28T16:00:00")
    p = parse_line("Nov 28 15:00:01 dnsmasq[42]: read /var/lib/hosts - 4 names", now)
    assert (p.level, p.message) == ("info", "read /var/lib/hosts - 4 names")
    assert p.ts == local("2026-11-28T15:00:01")
    jan = parse_line("Dec 31 23:59:59 dnsmasq[1]: x", local("2027-01-01T00:00:10"))
    assert jan.ts == local("2026-12-31T23:59:59")


def test_anything_else_is_info_without_ts() -> None:
    p = parse_line("Hello from rank 3 of 4\n")
    assert (p.ts, p.level, p.message) == (None, "info", "Hello from rank 3 of 4")
    assert parse_line("{not json").message == "{not json"


def test_levels() -> None:
    assert normalize_level("Warn") == "warning"
    assert normalize_level("whatever") == "info"
    assert level_rank("fatal") > level_rank("error") > level_rank("debug")
