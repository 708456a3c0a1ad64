"""Mount points read from mountinfo (runtime/mount_calls.py), with its escapes."""

from __future__ import annotations

from pathlib import Path

from vhpc.runtime.mount_calls import is_mount_point

MOUNTINFO = (
    "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
    "97 22 254:1 /var/lib/vhpc/c/ns /var/lib/vhpc/c/ns rw,relatime - ext4 /dev/vda1 rw\n"
    "98 22 254:1 /a\\040b /srv/a\\040b\\134x rw - ext4 /dev/vda1 rw\n"
)


def test_a_directory_bound_onto_itself_is_a_mount_point(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert is_mount_point(Path("/var/lib/vhpc/c/ns"), info)
    assert not is_mount_point(Path("/var/lib/vhpc/c"), info)
    assert is_mount_point(Path("/"), info)


def test_escaped_characters_are_read_back(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert is_mount_point(Path("/srv/a b\\x"), info)
    assert not is_mount_point(Path("/srv/a\\040b\\134x"), info)


def test_this_process_root_is_a_mount_point() -> None:
    assert is_mount_point(Path("/"))
