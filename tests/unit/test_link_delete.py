"""Batched link deletion (runtime/link_delete.py) as bytes, and the session share of a
manager that tears a cluster down (runtime/priority.py)."""

from __future__ import annotations

import random
import socket
import struct
import subprocess
import sys
from pathlib import Path

from vhpc.runtime import link_delete
from vhpc.runtime.link_delete import (
    IFLA_GROUP,
    IFLA_IFNAME,
    NLMSG_ERROR,
    RTM_DELLINK,
    RTM_NEWLINK,
    link_request,
    parse_acks,
    unused_group,
)


def attributes(message: bytes) -> dict[int, bytes]:
    """The rtattrs of one link message, by type."""
    out, offset = {}, 16 + 16  # nlmsghdr, ifinfomsg
    while offset < len(message):
        length, kind = struct.unpack_from("=HH", message, offset)
        out[kind] = message[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


def test_a_group_change_names_the_link_and_the_group() -> None:
    msg = link_request(RTM_NEWLINK, 7, "vh12ab3", 123456789)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", msg)
    assert (length, kind, seq) == (len(msg), RTM_NEWLINK, 7)
    assert flags & 0x4  # acknowledged
    family, _, index = struct.unpack_from("=BxHi", msg, 16)
    assert (family, index) == (socket.AF_UNSPEC, 0)  # by name, never by index
    attrs = attributes(msg)
    assert attrs[IFLA_IFNAME] == b"vh12ab3\0"
    assert struct.unpack("=I", attrs[IFLA_GROUP]) == (123456789,)


def test_a_group_deletion_names_no_link() -> None:
    msg = link_request(RTM_DELLINK, 1, group=5 << 20)
    assert struct.unpack_from("=H", msg, 4) == (RTM_DELLINK,)
    assert set(attributes(msg)) == {IFLA_GROUP}


def ack(seq: int, err: int) -> bytes:
    return struct.pack("=IHHIIi", 16 + 4 + 16, NLMSG_ERROR, 0, seq, 0, -err) + bytes(16)


def test_acks_are_read_by_sequence_number() -> None:
    assert parse_acks(ack(1, 0) + ack(2, 19) + ack(3, 1)) == {1: 0, 2: 19, 3: 1}
    assert parse_acks(b"") == {}


def test_the_group_is_never_the_default_nor_one_in_use() -> None:
    rng = random.Random(1)
    first = unused_group([], random.Random(1))
    assert unused_group([0, first], rng) not in (0, first)
    assert all(unused_group([0], random.Random(s)) >= 1 << 20 for s in range(50))


def test_host_groups_reads_each_links_group(tmp_path: Path) -> None:
    for name, group in (("lo", "0"), ("vh1", "77")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "netdev_group").write_text(group + "\n")
    (tmp_path / "gone").mkdir()  # a link that vanished while being read
    assert sorted(link_delete.host_groups(tmp_path)) == [0, 77]


def test_only_a_session_leader_changes_its_sessions_share(tmp_path: Path) -> None:
    autogroup = tmp_path / "autogroup"
    autogroup.write_text("/autogroup-1 nice 0\n")
    code = ("import sys; from pathlib import Path; from vhpc.runtime.priority import "
            f"raise_session_share as r; sys.exit(0 if r(-20, Path({str(autogroup)!r})) else 3)")
    # a child in its parent's session (a command run from a terminal) leaves it alone
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 3
    assert autogroup.read_text() == "/autogroup-1 nice 0\n"
    subprocess.run([sys.executable, "-c", code], check=True, start_new_session=True)
    assert autogroup.read_text() == "-20\n"


def test_a_commands_session_weighs_more_only_while_it_runs(tmp_path: Path) -> None:
    from vhpc.runtime.priority import session_share

    autogroup = tmp_path / "autogroup"
    autogroup.write_text("/autogroup-7 nice 3\n")
    with session_share(-20, autogroup) as done:
        assert done and autogroup.read_text() == "-20\n"
    assert autogroup.read_text() == "3\n"
    autogroup.write_text("/autogroup-7 nice -20\n")  # weighs as much already: untouched
    with session_share(-10, autogroup) as done:
        assert not done
    assert autogroup.read_text() == "/autogroup-7 nice -20\n"
