"""Cluster events (node added, daemon restarted, OOM kill...) with in-process subscribers."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Something that happened to the cluster."""

    kind: str
    message: str
    node: str = ""
    level: str = "info"
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class EventBus:
    """Keeps recent events and calls subscribers (owned by one Cluster, not global)."""

    def __init__(self, keep: int = 1000) -> None:
        self._recent: deque[Event] = deque(maxlen=keep)
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Call `callback` for every future event."""
        with self._lock:
            self._subscribers.append(callback)

    def emit(self, kind: str, message: str, node: str = "", level: str = "info") -> Event:
        """Record and publish an event."""
        event = Event(kind, message, node, level)
        with self._lock:
            self._recent.append(event)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break the cluster
                pass
        return event

    def recent(self, since: float = 0.0) -> list[Event]:
        """Events newer than `since`."""
        with self._lock:
            return [e for e in self._recent if e.ts > since]
