"""A background TCP sender that never blocks its caller: the shared transport of the
Graphite and syslog forwarders.

``send()`` only appends to a bounded in-memory queue (the oldest payloads are dropped
when it is full and counted); one daemon thread connects, writes and reconnects with
exponential backoff. Delivery is at-least-once: a batch whose write failed is resent.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections import deque
from dataclasses import dataclass

log = logging.getLogger(__name__)


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``"host:port"``, ``"[::1]:514"`` or ``"host"`` (with a default port) -> tuple."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if text.startswith("[") and "]" in text:
        end = text.index("]")
        host, port = text[1:end], text[end + 2:] if text[end + 1:end + 2] == ":" else ""
    elif not sep or ":" in host:
        host, port = text, ""
    if not port:
        if default_port is None:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port)


@dataclass
class SenderStats:
    """Counters of one sender (exported as vhpc_observe_* metrics)."""

    sent: int = 0
    dropped: int = 0
    connects: int = 0
    errors: int = 0


class TcpSender:
    """Queue byte payloads and write them to ``host:port`` from a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        name: str,
        max_queue: int = 20_000,
        connect_timeout: float = 2.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.host, self.port, self.name = host, port, name
        self.stats = SenderStats()
        self._queue: deque[bytes] = deque()
        self._max_queue = max_queue
        self._cond = threading.Condition()
        self._inflight = 0
        self._closing = False
        self._connect_timeout = connect_timeout
        self._max_backoff = max_backoff
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"vhpc-{name}", daemon=True)
        self._thread.start()

    def send(self, payload: bytes) -> None:
        """Queue one payload; returns at once."""
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.stats.dropped += 1
            self._queue.append(payload)
            self._cond.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and not self._inflight, timeout
            )

    def close(self, timeout: float = 2.0) -> None:
        """Try to write what is queued for up to ``timeout`` s, then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self._disconnect()

    def _take(self) -> list[bytes] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._closing)
            if self._closing:
                return None
            batch = list(self._queue)
            self._queue.clear()
            self._inflight = len(batch)
            return batch

    def _done(self, batch: list[bytes], ok: bool) -> None:
        with self._cond:
            if ok:
                self.stats.sent += len(batch)
            else:
                room = self._max_queue - len(self._queue)
                keep = batch[-room:] if room > 0 else []
                self.stats.dropped += len(batch) - len(keep)
                self._queue.extendleft(reversed(keep))
            self._inflight = 0
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = 0.5
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                sock = self._connect()
                sock.sendall(b"".join(batch))
            except OSError as exc:
                self.stats.errors += 1
                log.debug("%s: %s:%d: %s", self.name, self.host, self.port, exc)
                self._disconnect()
                self._done(batch, ok=False)
                with self._cond:
                    self._cond.wait_for(lambda: self._closing, backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 0.5
            self._done(batch, ok=True)

    def _connect(self) -> socket.socket:
        if self._sock is not None and self._peer_closed(self._sock):
            self._disconnect()
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), self._connect_timeout)
            sock.settimeout(10.0)
            self._sock = sock
            self.stats.connects += 1
        return self._sock

    @staticmethod
    def _peer_closed(sock: socket.socket) -> bool:
        """True if the receiver closed the connection (so a write would be lost)."""
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

