#!/usr/bin/env bash
# Install the Debian packages named as arguments (Debian 12's names; debian-packages.sh
# gives this release's), idempotently: apt-get runs only when one of them is missing (and
# then `apt-get update` first, as on a fresh machine). A name this release has no package
# for is named in one line before apt-get would fail on it.
set -euo pipefail
mapfile -t wanted < <(bash "$(dirname "$0")/debian-packages.sh" "$@")
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "vhpc install: missing Debian packages: ${missing[*]}; run as root (or: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
absent=()
for p in "${missing[@]}"; do
  apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]' || absent+=("$p")
done
if [ ${#absent[@]} -gt 0 ]; then
  echo "vhpc install: no package ${absent[*]} in this machine's apt sources" \
    "($(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")): enable Debian's main" \
    "archive, or add the release's names to scripts/debian-packages.sh" >&2
  exit 1
fi
apt-get install -y -q --no-install-recommends "${missing[@]}"
