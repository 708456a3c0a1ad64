"""Node images (issue 11) against the real thing: a debian13 image built by mmdebstrap
from Debian's registry (once per test session; an image already built is reused), a
4-node cluster booted on it: Slurm 24.11 in every node, `srun -N4 hostname`, the gemm
workload on Open MPI 5 with the image's mpi4py and numpy, sacct, the host-side wrappers
(`sinfo -V` through `vhpc env` says 24.11, sbatch from a host directory), node add/rm,
the OOM kept in its step, and nothing left after `down`. Bad input: one line each.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import VHPC, leftovers, vhpc

pytestmark = pytest.mark.privileged

IMAGE = "debian13"
NAME = "imtest"


@pytest.fixture(scope="session")
def debian13() -> str:
    """The debian13 image: built once per session (minutes), reused when it exists."""
    listed = json.loads(vhpc("image", "ls", "--json").stdout)
    if not any(image["name"] == IMAGE for image in listed):
        vhpc("image", "build", IMAGE, timeout=1800)
        listed = json.loads(vhpc("image", "ls", "--json").stdout)
    [image] = [i for i in listed if i["name"] == IMAGE]
    assert image["slurm_version"].startswith("24.11")
    return IMAGE


@pytest.fixture(scope="module")
def cluster(debian13: str) -> Iterator[str]:
    """A 4-node cluster on the image; torn down (and checked) at the end."""
    vhpc("-c", NAME, "down", check=False)
    vhpc("-c", NAME, "up", "-n", "4", "--image", debian13, timeout=600)
    try:
        yield NAME
    finally:
        vhpc("-c", NAME, "down", check=False)
    assert leftovers(NAME) == []


def in_node(node: str, *argv: str, user: str | None = "cluser") -> str:
    """stdout of a command in a node (checked)."""
    who = ["--user", user] if user else []
    return vhpc("-c", NAME, "exec", node, *who, "--", *argv, timeout=300).stdout


def host_env(cluster: str) -> dict[str, str]:
    """The environment `eval "$(vhpc env)"` gives a host shell."""
    out = subprocess.run(["sh", "-c", f'eval "$({shlex.join(VHPC)} -c {cluster} env)" '
                          "&& env -0"], capture_output=True, check=True, text=True).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def test_every_slurm_node_runs_the_images_slurm(cluster: str) -> None:
    for node in ("slurm", "db", "compute0", "compute3"):
        out = in_node(node, "sh", "-c", "slurmd -V; head -1 /etc/os-release", user=None)
        assert "slurm-wlm 24.11" in out and "Debian GNU/Linux 13" in out, (node, out)
    # the dns node keeps the host's root (its etcd and dnsmasq)
    assert "Debian GNU/Linux 13" not in in_node("dns", "head", "-1", "/etc/os-release",
                                                user=None)


def test_srun_on_four_nodes(cluster: str) -> None:
    out = in_node("slurm", "srun", "-N4", "hostname")
    assert sorted(out.split()) == ["compute0", "compute1", "compute2", "compute3"]


def test_gemm_with_open_mpi_5(cluster: str) -> None:
    out = in_node("slurm", "bash", "-c", "cd ~ && sbatch -N4 --wait -o gemm-%j.out gemm.sh "
                  "256 --json >/dev/null && tail -n 1 gemm-*.out")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["verification"] == "PASSED" and result["ranks"] == 4
    assert "Open MPI v5" in in_node("compute0", "ompi_info", "--version")
    # as root too: Open MPI 5 needs $HOME ("Unable to get the user home directory")
    assert "Open MPI v5" in in_node("compute0", "ompi_info", "--version", user=None)
    assert in_node("compute0", "sh", "-c", "echo $HOME $USER", user=None).split() == [
        "/root", "root"]


def test_sacct_and_host_wrappers(cluster: str, tmp_path: Path) -> None:
    env = host_env(cluster)
    version = subprocess.run(["sinfo", "-V"], capture_output=True, text=True, env=env,
                             timeout=60, check=True)
    assert version.stdout.startswith("slurm-wlm 24.11"), version
    which = subprocess.run(["sh", "-c", "command -v sbatch"], capture_output=True,
                           text=True, env=env, check=True).stdout.strip()
    assert which.startswith(f"/var/lib/vhpc/{cluster}/bin/") or "/bin/sbatch" in which
    home = Path(f"/var/lib/vhpc/{cluster}/home/cluser")
    job = subprocess.run(["srun", "-N2", "hostname"], capture_output=True, text=True,
                         env=env, timeout=120, cwd=home)
    assert job.returncode == 0 and len(job.stdout.split()) == 2, job
    alloc = subprocess.run(["salloc", "-N2", "srun", "hostname"], capture_output=True,
                           text=True, env=env, timeout=120, cwd=home)
    # salloc's srun runs inside the image's root: the wrapper there runs it directly
    assert alloc.returncode == 0 and len(alloc.stdout.split()) == 2, alloc
    in_node("slurm", "srun", "-N1", "true")
    sacct = subprocess.run(["sacct", "-a", "-X", "-n", "-P", "-o", "JobName,State"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert "hostname|COMPLETED" in sacct.stdout, sacct


def test_node_add_rm_and_oom_on_the_image(cluster: str) -> None:
    vhpc("-c", cluster, "node", "add", "imx", timeout=300)
    assert in_node("slurm", "srun", "-w", "imx", "hostname").strip() == "imx"
    oom = vhpc("-c", cluster, "exec", "slurm", "--user", "cluser", "--", "srun", "-w",
               "compute1", "--mem=30M", "python3", "-c", "b = bytearray(80 << 20)",
               check=False, timeout=120)
    assert oom.returncode != 0 and "Out Of Memory" in oom.stderr + oom.stdout
    assert in_node("slurm", "srun", "-w", "compute1", "hostname").strip() == "compute1"
    vhpc("-c", cluster, "node", "rm", "imx", timeout=300)
    assert not Path(f"/var/lib/vhpc/{cluster}/nodes/imx").exists()


def test_image_in_use_and_unknown_names_one_line(cluster: str) -> None:
    for argv in (["image", "rm", IMAGE], ["image", "build", IMAGE],
                 ["-c", "imbad", "up", "--image", "debian99"]):
        result = vhpc(*argv, check=False)
        assert result.returncode == 2, (argv, result)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
