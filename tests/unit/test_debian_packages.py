"""scripts/debian-packages.sh: the Makefile's package names for the machine's Debian
release (issue 11, part 5), read from an os-release file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "debian-packages.sh"


def makefile_packages() -> list[str]:
    """RUN_PKGS and TEST_PKGS of the Makefile, in order."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    names: list[str] = []
    for var in ("RUN_PKGS", "TEST_PKGS"):
        found = re.search(rf"^{var} := (.*)$", text, re.M)
        assert found, var
        names += found.group(1).split()
    return names


def resolve(tmp_path: Path, os_release: str, names: list[str]) -> subprocess.CompletedProcess[str]:
    release = tmp_path / "os-release"
    release.write_text(os_release)
    return subprocess.run(["bash", str(SCRIPT), *names], capture_output=True, text=True,
                          check=True, env={"OS_RELEASE": str(release), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("os_release", [
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
    'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n',
])
def test_debian_12_and_13_install_the_makefiles_names(tmp_path: Path, os_release: str) -> None:
    names = makefile_packages()
    assert {"slurmd", "slurm-wlm-jwt-plugin", "libopenmpi-dev", "chromium"} <= set(names)
    done = resolve(tmp_path, os_release, names)
    assert done.stdout.split() == names
    assert done.stderr == ""


def test_an_unknown_release_gets_debian_12s_names_and_a_note(tmp_path: Path) -> None:
    done = resolve(tmp_path, 'VERSION_ID="14"\nVERSION_CODENAME=forky\n', ["slurmd", "munge"])
    assert done.stdout.split() == ["slurmd", "munge"]
    assert "release 'forky' is not one vhpc was checked on" in done.stderr


def test_no_os_release_is_an_unknown_release(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(SCRIPT), "munge"], capture_output=True, text=True,
                          check=True, env={"OS_RELEASE": str(tmp_path / "absent"),
                                           "PATH": "/usr/bin:/bin"})
    assert done.stdout == "munge\n"
    assert "release 'unknown'" in done.stderr
