#!/usr/bin/env bash
# The Python that jobs run inside nodes: a world-readable venv made from Debian's python3
# (the repo's .venv may sit under a 0700 /root), with mpi4py built against system Open MPI.
#   usage: install-workload-venv.sh [DEST] [CONSTRAINTS]   (numpy's version comes from
#   CONSTRAINTS, the repo's constraints.txt, so jobs and tests run the same numpy)
set -euo pipefail
dest=${1:-/opt/vhpc/venv}
constraints=${2:-$(dirname "$0")/../constraints.txt}
if [ -x "$dest/bin/python" ] && "$dest/bin/python" -c "import mpi4py, numpy" 2>/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "vhpc install: $dest needs root to create (the job venv for mpi4py/numpy)" >&2
  exit 1
fi
echo "creating the job venv $dest (mpi4py, numpy)"
mkdir -p "$(dirname "$dest")"
/usr/bin/python3 -m venv "$dest"
"$dest/bin/pip" install -q --disable-pip-version-check -c "$constraints" "mpi4py==4.1.2" numpy
chmod -R a+rX "$(dirname "$dest")"
