"""TcpSender against a loopback listener: delivery, reconnect, bounded queue."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from vhpc.observe.tcpsink import TcpSender, parse_hostport


class Listener:
    """Accepts connections on 127.0.0.1 and collects the bytes received."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.data = b""
        self.conns = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            with conn:
                while chunk := conn.recv(65536):
                    self.data += chunk

    def close(self) -> None:
        self.sock.close()


def wait_for(pred: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(pred) and pred():
            return True
        time.sleep(0.02)
    return False


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:2003") == ("127.0.0.1", 2003)
    assert parse_hostport("[::1]:514") == ("::1", 514)
    assert parse_hostport("loghost", 514) == ("loghost", 514)
    assert parse_hostport("::1", 514) == ("::1", 514)
    for bad in ("host:x", "host:0", "host:70000"):
        with pytest.raises(ValueError):
            parse_hostport(bad)
    with pytest.raises(ValueError):
        parse_hostport("host")


def test_delivers_in_order() -> None:
    lst = Listener()
    sender = TcpSender("127.0.0.1", lst.port, "t")
    for i in range(100):
        sender.send(f"{i}\n".encode())
    assert sender.flush(5)
    sender.close()
    assert wait_for(lambda: lst.data.count(b"\n") == 100)
    assert lst.data.split() == [str(i).encode() for i in range(100)]
    lst.close()


def test_send_never_blocks_and_queue_is_bounded_when_down() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    sender = TcpSender("127.0.0.1", port, "t", max_queue=10)
    start = time.monotonic()
    for i in range(1000):
        sender.send(b"%d\n" % i)
    assert time.monotonic() - start < 0.5
    assert wait_for(lambda: sender.stats.errors >= 1)
    assert sender.stats.dropped >= 990
    # the receiver comes up: the kept (newest) payloads are delivered after backoff
    lst = Listener(port)
    assert wait_for(lambda: sender.stats.sent >= 1, timeout=10)
    sender.close()
    assert b"999\n" in lst.data
    lst.close()
