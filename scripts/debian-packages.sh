#!/usr/bin/env bash
# The Debian package names of this machine's release for the names the Makefile lists
# (Debian 12's): one a line, in order. The release comes from /etc/os-release (OS_RELEASE
# overrides, for tests). Names a release renamed (say a t64 library, or a package split)
# are replaced from the table below; a release not in it gets the names as they are,
# with a note on stderr.
#   usage: debian-packages.sh NAME...
#
# Checked: every name of RUN_PKGS and TEST_PKGS has an install candidate in bookworm and
# in trixie under the same name (apt-cache policy in a trixie root made by mmdebstrap,
# and `make install` run in it: README, "Debian 13 hosts"), so neither needs a rename.
set -euo pipefail
os_release=${OS_RELEASE:-/etc/os-release}
codename=$( (. "$os_release" && echo "${VERSION_CODENAME:-${VERSION_ID:-unknown}}") 2>/dev/null ||
  echo unknown)

declare -A renamed=()
case "$codename" in
  bookworm | 12) ;;  # Debian 12: the Makefile's names
  trixie | 13) ;;    # Debian 13: the same names (Slurm 24.11, Open MPI 5, Python 3.13)
  *)
    echo "vhpc install: release '$codename' is not one vhpc was checked on (bookworm," \
      "trixie): using Debian 12's package names" >&2 ;;
esac

for name in "$@"; do
  echo "${renamed[$name]:-$name}"
done
