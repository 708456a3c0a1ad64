#!/usr/bin/env bash
# Check the lower bounds of pyproject.toml's runtime ranges: install the lowest version each
# range allows (the dev tools at their constraints.txt versions) in a throwaway venv and run
# the unit tests there. A failure means a range claims more than vhpc works with: raise its
# lower bound.
#   usage: scripts/check-lowest.sh [PYTEST ARGS...]   (default: -q tests/unit)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${LOCK_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d /tmp/vhpc-lowest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

"$python" - "$tmp/lowest.txt" <<'EOF'
"""Write one requirement per line: runtime deps at their lower bound, dev tools as locked."""
import re
import sys
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
locked = {}
for line in open("constraints.txt"):
    if "==" in line and not line.startswith("#"):
        name, version = line.strip().split("==")
        locked[re.sub(r"[-_.]+", "-", name).lower()] = version
lines = []
for req in project["dependencies"]:
    match = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)", req)
    if not match:
        sys.exit(f"check-lowest: no lower bound in {req!r}")
    lines.append(f"{match[1]}=={match[2]}")
for req in project["optional-dependencies"]["dev"]:
    name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", req)[0]).lower()
    lines.append(f"{name}=={locked[name]}")
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
echo "lowest versions:" $(cat "$tmp/lowest.txt")
"$python" -m venv "$tmp/venv"
pip=("$tmp/venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -r "$tmp/lowest.txt"
"${pip[@]}" install --no-deps -e .
(($#)) || set -- -q tests/unit
"$tmp/venv/bin/python" -m pytest -p no:cacheprovider "$@"
