"""Config files and command lines rendered by pure functions, compared as text."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from vhpc.runtime import network
from vhpc.runtime.namespaces import Mount, NsPaths, render_fstab, setup_script
from vhpc.runtime.spawn import NodeTarget, UserLogin, node_argv
from vhpc.services import files, slurm
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

GOLDEN = Path(__file__).parent / "golden"
HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
SPEC = build_spec(ClusterOptions(name="lab", nodes=2, memory="125M", features=("gpu",)), HOST)
PATHS = ClusterPaths(Path("/var/lib/vhpc/lab"))


def test_slurm_conf_matches_golden() -> None:
    text = slurm.render_slurm_conf(SPEC, PATHS)
    assert text == (GOLDEN / "slurm.conf").read_text()
    assert "NodeName=" not in text  # compute nodes are dynamic
    assert "MaxNodeCount=245" in text


def test_slurmd_registers_as_dynamic_node_with_its_limits() -> None:
    daemon = slurm.slurmd(SPEC, PATHS, SPEC.computes[1])
    assert daemon.argv[:6] == ("slurmd", "-D", "-f", "/var/lib/vhpc/lab/etc/slurm/slurm.conf",
                               "-N", "compute1")
    assert daemon.argv[-2:] == ("--conf", "CPUs=1 RealMemory=125 NodeAddr=10.201.0.11 "
                                "NodeHostname=compute1 Feature=gpu")


def test_hosts_file_names_every_node_short_and_qualified() -> None:
    text = files.render_hosts(SPEC)
    assert "10.201.0.1\thost.lab host vhpc-host" in text
    assert "10.201.0.10\tcompute0.lab compute0" in text
    assert "10.201.0.2\tslurm.lab slurm" in text


def test_passwd_adds_the_cluster_user_and_keeps_the_host_entries() -> None:
    host = "root:x:0:0:root:/root:/bin/bash\ncluser:x:999:999::/old:/bin/sh\n"
    text = files.render_passwd(host, "cluser", 2000, "/var/lib/vhpc/lab/home/cluser")
    assert text.splitlines() == [
        "root:x:0:0:root:/root:/bin/bash",
        "cluser:x:2000:2000:vhpc cluster user:/var/lib/vhpc/lab/home/cluser:/bin/bash",
    ]


def test_resolv_conf_points_only_at_the_cluster_dns() -> None:
    assert files.render_resolv_conf(SPEC) == (
        "search lab\nnameserver 10.201.0.3\noptions timeout:2 attempts:4\n")


def test_node_setup_script_drops_namespace_pins_before_mounting() -> None:
    script = setup_script("compute0", Path("/s/ns"), Path("/s/ns/compute0.fstab"))
    assert script.splitlines()[:6] == [
        "set -e",
        "echo compute0 > /proc/sys/kernel/hostname",
        "exec 3< /s/ns/compute0.fstab",  # the fstab is in the directory unmounted next
        "umount -l /s/ns /run/netns 2>/dev/null || true",
        "mount -a -T /proc/self/fd/3",
        "exec 3<&-",
    ]  # then it becomes the node's init: tests/unit/test_isolation_node.py


def test_node_mounts_as_one_fstab_in_order() -> None:
    assert render_fstab([
        Mount("/tmp", "/s/nodes/compute0/tmp"),
        Mount("/dev/shm", None, "tmpfs", "mode=1777,size=1M"),
        Mount("/run/munge", "/s/run/munge", mkdir=True),
        Mount("/home", "/s/my home"),
    ]).splitlines() == [
        "/s/nodes/compute0/tmp /tmp none bind 0 0",
        "tmpfs /dev/shm tmpfs mode=1777,size=1M 0 0",
        "/s/run/munge /run/munge none bind,X-mount.mkdir 0 0",
        "/s/my\\040home /home none bind 0 0",
    ]


def test_veth_batches() -> None:
    veth = network.VethSpec("vhabcdn10", Path("/s/ns/compute0.net"),
                            ipaddress.IPv4Interface("10.201.0.10/24"),
                            ipaddress.IPv4Address("10.201.0.1"), "vhabcd-lab")
    assert network.host_batch([veth]) == (
        "link add vhabcdn10 type veth peer name eth0 netns /s/ns/compute0.net\n"
        "link set vhabcdn10 master vhabcd-lab up\n")
    assert network.node_batch(veth).splitlines() == [
        "addr add 10.201.0.10/24 dev eth0", "link set lo up", "link set eth0 up",
        "route add default via 10.201.0.1",
        "route replace 10.201.0.0/24 dev eth0 proto kernel scope link src 10.201.0.10 quickack 1"]


def test_node_argv_joins_cgroup_enters_namespaces_and_drops_to_user() -> None:
    target = NodeTarget("compute0", NsPaths.under(Path("/s/ns"), "compute0"),
                        (Path("/cg/memory/x/cgroup.procs"),), {"SLURM_CONF": "/s/slurm.conf"})
    user = UserLogin("cluser", 2000, 2000, "/s/home/cluser")
    argv = node_argv(target, ["srun", "hostname"], user=user)
    assert argv[:4] == ["/bin/sh", "-c", 'echo $$ > /cg/memory/x/cgroup.procs; exec "$@"',
                        "vhpc-node"]
    assert argv[4:11] == ["nsenter", "--net=/s/ns/compute0.net", "--uts=/s/ns/compute0.uts",
                          "--ipc=/s/ns/compute0.ipc", "--mount=/s/ns/compute0.mnt",
                          "--pid=/s/ns/compute0.pid", "--"]
    assert argv[11:16] == ["setpriv", "--reuid=2000", "--regid=2000", "--init-groups", "--"]
    assert argv[16:19] == ["env", "-i", "--chdir=/s/home/cluser"]  # inside the node's root
    assert "HOME=/s/home/cluser" in argv and "SLURM_CONF=/s/slurm.conf" in argv
    assert argv[-2:] == ["srun", "hostname"]


def test_queue_names_the_cluster_user_from_the_cluster_passwd() -> None:
    from vhpc.services.slurm_client import parse_jobs

    jobs = parse_jobs("7|gemm.sh|2000|RUNNING|compute[0-3]|0:09\n8|x|0|PENDING||0:00\n",
                      {"2000": "cluser", "0": "root"})
    assert [(j["id"], j["user"], j["state"], j["nodes"]) for j in jobs] == [
        ("7", "cluser", "RUNNING", "compute[0-3]"), ("8", "root", "PENDING", "")]
