"""runtime/listening.py: a listening TCP port is seen by a socket-diagnostics query made
in a namespace (here the test's own), without connecting; a bound but not listening port
and a closed one are not."""

from __future__ import annotations

import socket
from pathlib import Path

from vhpc.runtime.listening import Listening, PortCheck

OWN_NETNS = Path("/proc/self/ns/net")


def test_a_listening_port_is_seen_and_a_bound_or_closed_one_is_not() -> None:
    with socket.socket() as server, Listening(OWN_NETNS) as probe:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert not probe.listens(port)  # bound, not yet listening
        server.listen()
        assert probe.listens(port)
        with socket.socket(socket.AF_INET6) as other:  # IPv6 too
            other.bind(("::1", 0))
            other.listen()
            assert other.getsockname()[1] in probe.ports()
        server.close()
        assert not probe.listens(port)


def test_the_check_is_true_once_the_port_listens() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        check = PortCheck(OWN_NETNS, server.getsockname()[1], fallback=lambda: False)
        assert not check()
        server.listen()
        assert check()


def test_without_socket_diagnostics_the_fallback_answers(tmp_path: Path) -> None:
    asked: list[int] = []

    def fallback() -> bool:
        asked.append(1)
        return len(asked) > 1

    check = PortCheck(tmp_path / "no-such-netns", 6817, fallback)  # setns fails
    assert not check() and check()
    assert len(asked) == 2


def test_a_missing_namespace_is_an_os_error(tmp_path: Path) -> None:
    try:
        Listening(tmp_path / "gone")
    except OSError:
        return
    raise AssertionError("no error for a namespace file that does not exist")
