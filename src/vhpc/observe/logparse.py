"""Turn one log line of a cluster daemon into (timestamp, level, message).

Formats recognised (anything else is kept whole, level ``info``, ingest time):
  slurm   ``[2026-11-28T15:00:00.123] error: msg`` (levels fatal/error/warning/
          verbose/debug..debug5, none = info; an optional ``[job.step]`` prefix is kept)
  munge   ``2026-11-28 15:00:00 +0000 Notice:    msg``
  etcd    capnslog ``2026-11-28 15:00:00.123456 W | etcdserver: msg`` or zap JSON lines
  syslog  ``Nov 28 15:00:00 dnsmasq[42]: msg`` (dnsmasq with --log-facility=FILE)
Levels are normalised to: debug, info, notice, warning, error, fatal.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime

LEVELS = ("debug", "info", "notice", "warning", "error", "fatal")
_RANK = {name: i for i, name in enumerate(LEVELS)}

_ALIASES = {
    "trace": "debug", "debug": "debug", "debug2": "debug", "debug3": "debug",
    "debug4": "debug", "debug5": "debug", "verbose": "debug", "d": "debug",
    "info": "info", "i": "info", "notice": "notice", "n": "notice",
    "warn": "warning", "warning": "warning", "w": "warning",
    "err": "error", "error": "error", "e": "error",
    "crit": "fatal", "critical": "fatal", "alert": "fatal", "emergency": "fatal",
    "emerg": "fatal", "fatal": "fatal", "panic": "fatal", "dpanic": "fatal",
    "c": "fatal", "f": "fatal", "p": "fatal",
}

_SLURM = re.compile(
    r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:?\d\d|Z)?)\]\s"
    r"(?:(\[[^\]]*\])\s)?"
    r"(?:(fatal|error|warning|verbose|debug\d?|info|sched|sched/\w+|Warning):\s+)?(.*)$"
)
_MUNGE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}) "
    r"(Emergency|Alert|Critical|Error|Warning|Notice|Info|Debug):\s+(.*)$"
)
_CAPNSLOG = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([DINWECF]) \| (.*)$"
)
_SYSLOG = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S+?)(?:\[\d+\])?: (.*)$")


@dataclass(frozen=True)
class ParsedLine:
    """A parsed log line; ``ts`` is None when the line carries no timestamp."""

    ts: float | None
    level: str
    message: str


def normalize_level(name: str) -> str:
    """Map a daemon's level word to one of :data:`LEVELS` (unknown -> ``info``)."""
    return _ALIASES.get(name.strip().lower(), "info")


def level_rank(level: str) -> int:
    """Severity order of a normalised level (debug=0 ... fatal=5)."""
    return _RANK.get(level, _RANK["info"])


def _iso(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _strp(text: str, fmt: str) -> float | None:
    try:
        return datetime.strptime(text, fmt).timestamp()
    except ValueError:
        return None


def _syslog_ts(text: str, now: float) -> float | None:
    year = datetime.fromtimestamp(now).year
    ts = _strp(f"{year} {text}", "%Y %b %d %H:%M:%S")
    if ts is not None and ts > now + 86400:  # a December line read in January
        ts = _strp(f"{year - 1} {text}", "%Y %b %d %H:%M:%S")
    return ts


def _json_line(line: str) -> ParsedLine | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or "msg" not in obj:
        return None
    ts = obj.get("ts")
    when = _iso(ts) if isinstance(ts, str) else float(ts) if isinstance(ts, int | float) else None
    extra = {k: v for k, v in obj.items() if k not in ("level", "ts", "msg", "caller")}
    message = str(obj["msg"]) + (f" {json.dumps(extra, sort_keys=True)}" if extra else "")
    return ParsedLine(when, normalize_level(str(obj.get("level", "info"))), message)


def parse_line(line: str, now: float | None = None) -> ParsedLine:
    """Parse one line of any recognised daemon format (``now`` dates syslog lines)."""
    line = line.rstrip("\r\n")
    m = _SLURM.match(line)
    if m:
        stamp, step, word, rest = m.groups()
        level = "info" if word is None or word.startswith("sched") else normalize_level(word)
        if word is not None and word.startswith("sched"):
            rest = f"{word}: {rest}"
        message = f"{step} {rest}" if step else rest
        return ParsedLine(_iso(stamp), level, message)
    m = _MUNGE.match(line)
    if m:
        return ParsedLine(_strp(m[1], "%Y-%m-%d %H:%M:%S %z"), normalize_level(m[2]), m[3])
    m = _CAPNSLOG.match(line)
    if m:
        return ParsedLine(_iso(m[1]), normalize_level(m[2]), m[3])
    if line.startswith("{"):
        parsed = _json_line(line)
        if parsed is not None:
            return parsed
    m = _SYSLOG.match(line)
    if m:
        return ParsedLine(_syslog_ts(m[1], time.time() if now is None else now), "info", m[3])
    return ParsedLine(None, "info", line)
