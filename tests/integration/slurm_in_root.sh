#!/bin/bash
# Run a root file tree's own Slurm against config files vhpc rendered, in private mount,
# UTS, network and PID namespaces (nothing of the host is changed; all ends with the PID
# namespace): MariaDB, slurmdbd, munged, slurmctld, a dynamic slurmd (`slurmd -Z`), a job,
# sacct, slurmrestd with a JWT; then prints every error line of the daemons' logs.
#   usage: slurm_in_root.sh ROOT LAB   (ROOT: / or an image's rootfs; LAB: the rendered
#   files of a cluster whose state directory is /tmp/lab, see test_slurm_versions.py)
set -u
if [ "${1:-}" != "--inside" ]; then
  ROOT=$1; LAB=$2
  cp "$0" "$LAB/slurm_in_root.sh"
  exec unshare --mount --uts --net --pid --fork --kill-child --propagation private \
    bash -s "$ROOT" "$LAB" <<'OUTER'
set -eu
ROOT=${1%/}; LAB=$2
mount --bind "$LAB" "$ROOT/mnt"          # LAB may be below /tmp, which the tmpfs hides
mount -t tmpfs vhpc-tmp "$ROOT/tmp"
mkdir "$ROOT/tmp/lab" && mount --move "$ROOT/mnt" "$ROOT/tmp/lab"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount -t tmpfs vhpc-dev "$ROOT/dev"
for d in null:1:3 zero:1:5 random:1:8 urandom:1:9 nvidia0:1:3 nvidia1:1:3; do
  IFS=: read -r n ma mi <<<"$d"; mknod -m 666 "$ROOT/dev/$n" c "$ma" "$mi"; done
mount -t tmpfs vhpc-run "$ROOT/run"
hostname slurm
ip link set lo up
for a in 10.201.0.2 10.201.0.4 10.201.0.10; do ip addr add $a/32 dev lo; done
printf '127.0.0.1 localhost\n10.201.0.2 slurm\n10.201.0.4 db\n10.201.0.10 compute0\n' \
  > "$ROOT/tmp/hosts"
{ cat "$ROOT/etc/passwd"; echo 'cluser:x:2000:2000::/tmp:/bin/sh'; } > "$ROOT/tmp/passwd"
{ cat "$ROOT/etc/group"; echo 'cluser:x:2000:'; } > "$ROOT/tmp/group"
for f in hosts passwd group; do
  [ -e "$ROOT/etc/$f" ] || exit 1
  mount --bind "$ROOT/tmp/$f" "$ROOT/etc/$f"
done
exec chroot "${ROOT:-/}" /bin/bash /tmp/lab/slurm_in_root.sh --inside
OUTER
fi

# --- inside the root ---
L=/tmp/lab
export SLURM_CONF=$L/etc/slurm/slurm.conf
wait_for() {  # wait_for WHAT TICKS COMMAND...: poll every 0.1 s
  local what=$1 ticks=$2; shift 2
  for _ in $(seq "$ticks"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "== FAILED: $what"; return 1
}
mkdir -p $L/run/munge $L/log $L/slurm/state $L/slurm/spool/compute0 $L/db
chmod 755 $L/etc
dd if=/dev/urandom of=$L/etc/munge.key bs=1024 count=1 2>/dev/null; chmod 400 $L/etc/munge.key
dd if=/dev/urandom of=$L/etc/jwt_hs256.key bs=32 count=1 2>/dev/null
chmod 400 $L/etc/jwt_hs256.key
chmod 600 $L/etc/slurm/slurmdbd.conf
echo "== version: $(slurmd -V)"
munged -F --force --socket=$L/run/munge/munge.socket.2 --key-file=$L/etc/munge.key \
  --pid-file=$L/run/munge.pid --seed-file=$L/run/munge.seed \
  --log-file=$L/log/munged.log >$L/log/munged.console 2>&1 &
wait_for munged 100 test -S $L/run/munge/munge.socket.2 || exit 1
mariadb-install-db --defaults-file=$L/db/mariadb.cnf --auth-root-authentication-method=normal \
  --skip-test-db >$L/log/install.log 2>&1
mariadbd --defaults-file=$L/db/mariadb.cnf >$L/log/mariadbd.log 2>&1 &
wait_for mariadbd 300 grep -q "ready for connections" $L/log/mariadbd.log || {
  tail -n 5 $L/log/install.log $L/log/mariadbd.log; exit 1; }
unshare --uts sh -c 'hostname db; exec slurmdbd -D' >$L/log/slurmdbd.console 2>&1 &
wait_for slurmdbd 300 grep -q 'slurmdbd version .* started' $L/log/slurmdbd.console || {
  tail -n 5 $L/log/slurmdbd.console; exit 1; }
sacctmgr -i add cluster lab >/dev/null
slurmctld -D -i -f $SLURM_CONF >$L/log/slurmctld.console 2>&1 &
wait_for slurmctld 300 sh -c 'scontrol ping | grep -q UP' || exit 1
slurmd -D -f $SLURM_CONF -N compute0 -Z --conf "$(cat $L/nodeconf)" \
  >$L/log/slurmd.console 2>&1 &
wait_for "slurmd registers" 300 sh -c "sinfo -h -N -o '%N %T' | grep -q 'compute0 idle'" ||
  exit 1
echo "== sinfo: $(sinfo -h -N -o '%N %P %T %c %m %G')"
echo "== srun: $(timeout 60 srun -N1 -w compute0 echo ran-on-compute0 2>&1)"
wait_for "sacct" 100 sh -c "sacct -n -X -o State | grep -q COMPLETED"
echo "== sacct: $(sacct -n -X -o JobID,State,ExitCode | tr -s ' ')"
eval "$(scontrol token username=cluser lifespan=600)"
SLURM_JWT=daemon $(cat $L/restd_argv) >$L/log/slurmrestd.console 2>&1 &
wait_for slurmrestd 300 bash -c 'exec 3<>/dev/tcp/10.201.0.2/6820'
get() {
  exec 3<>/dev/tcp/10.201.0.2/6820
  printf 'GET %s HTTP/1.1\r\nHost: slurm\r\nX-SLURM-USER-NAME: cluser\r\nX-SLURM-USER-TOKEN: %s\r\nConnection: close\r\n\r\n' \
    "$1" "$SLURM_JWT" >&3
  timeout 20 head -n 1 <&3 | tr -d '\r'; exec 3>&-
}
API=$(cat $L/api)
echo "== rest /slurm/$API/ping: $(get /slurm/$API/ping)"
echo "== rest /slurmdb/$API/jobs: $(get /slurmdb/$API/jobs)"
echo "== config: $(scontrol show config | grep -E '^(SLURM_VERSION|TaskPlugin|MpiDefault) ' |
  tr -s ' ' | tr '\n' ';')"
echo "== log errors:"
grep -h -i -E 'error|fatal|unknown|defunct|invalid|deprecat' $L/log/slurm*.log \
  $L/log/slurm*.console | sed 's/^\[[^]]*\] //' | sort -u
echo "== end"
