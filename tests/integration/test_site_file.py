"""A heterogeneous cluster booted from a cluster file (`vhpc up -f`), with real Slurm.

One cluster for the module, `hgsite`: two node groups (cpu: 2 nodes in rack r1, gpu: 1
node with 2 fake a100 GPUs in the next default rack), three partitions, and two shares: a
host directory under /tmp at the same path (jobs submitted from it run there) and one at
another node path (a mount point vhpc makes and removes). Small nodes (96M, 128M) and no
accounting keep it light on a shared host.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import STATE_ROOT, leftovers, status, vhpc

pytestmark = pytest.mark.privileged
NAME = "hgsite"
NODE_PATH = "/hgsite-data"  # made as a mount point by vhpc, removed by down


def site_text(work: Path, data: Path) -> str:
    return f"""
[cluster]
name = "{NAME}"
memory = "96M"
accounting = false
rack_size = 2

[[nodes]]
group = "cpu"
count = 2
features = ["intel"]

[[nodes]]
group = "gpu"
count = 1
memory = "128M"
gpus = "a100:2"
features = ["nvlink"]

[[partitions]]
name = "cpu"
nodes = ["cpu"]
default = true
max_time = "1-00:00:00"

[[partitions]]
name = "gpu"
nodes = ["gpu"]
max_time = "04:00:00"

[[partitions]]
name = "debug"
nodes = ["cpu", "gpu"]
max_time = "00:30:00"
priority_tier = 10

[[shares]]
host = "{work}"

[[shares]]
host = "{data}"
path = "{NODE_PATH}"
"""


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("hgsite")
    base.chmod(0o755)
    work, data = base / "work", base / "data"
    for d in (work, data):
        d.mkdir()
        d.chmod(0o777)  # jobs run as the cluster's user
    (data / "kept.txt").write_text("mine\n")
    return work, data


@pytest.fixture(scope="module")
def cluster(dirs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work, data = dirs
    site = tmp_path_factory.mktemp("hgsite-file") / "site.toml"
    site.write_text(site_text(work, data))
    vhpc("-c", NAME, "clean", check=False)
    assert not Path(NODE_PATH).exists()
    vhpc("up", "-f", str(site))  # the file names the cluster
    try:
        yield NAME
    finally:
        vhpc("-c", NAME, "down", check=False)
        assert leftovers(NAME) == []
        assert not (STATE_ROOT / NAME).exists()


def slurm_env() -> dict[str, str]:
    return dict(os.environ, SLURM_CONF=str(STATE_ROOT / NAME / "etc" / "slurm" / "slurm.conf"))


def host(*argv: str, cwd: Path | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    """A Slurm client on the host, as after `eval "$(vhpc env)"`."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=slurm_env(),
                          cwd=cwd, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed: {proc.stderr}")
    return proc


def test_a_bad_file_is_one_line_and_makes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[cluster]\nname = "hgbad"\n[[nodes]]\ngroup = "cpu"\nmemroy = "1G"\n')
    result = vhpc("up", "-f", str(bad), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert f"{bad}: line 5 [[nodes]] #1 memroy: unknown key 'memroy'" in result.stderr
    assert not (STATE_ROOT / "hgbad").exists()


BAD_FILES = [  # (file text, what the error says); each names the cluster hgbad
    ('[[nodes]]\ngroup = "cpu"\ncount = "2"\n', "count: '2' has the wrong type"),
    ('[[nodes]]\ngroup = "cpu"\nmemory = "900G"\n', "but the host has"),
    ('[[shares]]\nhost = "/nonexistent/hgbad"\n', "does not exist"),
    ('[[shares]]\nhost = "/etc"\n', "/etc is a system"),
    ('[[nodes]]\ngroup = "cpu"\n[[partitions]]\nname = "p"\nnodes = ["gpu"]\n',
     "no [[nodes]] table defines"),
    ('[cluster]\nsubnet = "8.8.8.0/24"\n', "8.8.8.0/24"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_files_leave_nothing_behind(tmp_path: Path, text: str, expected: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[cluster]\nname = "hgbad"\n' + text if "[cluster]" not in text
                   else text.replace("[cluster]\n", '[cluster]\nname = "hgbad"\n'))
    links = {p.name for p in Path("/sys/class/net").iterdir()}
    result = vhpc("up", "-f", str(bad), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and expected in result.stderr
    assert result.stderr.startswith(f"vhpc: {bad}:")
    assert not (STATE_ROOT / "hgbad").exists()
    # other clusters may come and go meanwhile: no link of a cluster named hgbad
    new = {p.name for p in Path("/sys/class/net").iterdir()} - links
    assert not [name for name in new if name.endswith("-hgbad")]
    assert not Path("/nonexistent").exists()


def test_partitions_features_and_gres_in_sinfo(cluster: str) -> None:
    summary = host("sinfo", "-h", "-o", "%P %l %D %N").stdout.split("\n")
    assert "cpu* 1-00:00:00 2 cpu[0-1]" in summary
    assert "gpu 4:00:00 1 gpu0" in summary
    assert "debug 30:00 3 cpu[0-1],gpu0" in summary
    nodes = set(host("sinfo", "-h", "-N", "-o", "%N %f %G").stdout.splitlines())
    assert {"cpu0 cpu,intel (null)", "gpu0 gpu,nvlink gpu:a100:2"} <= nodes
    tier = host("scontrol", "show", "partition", "debug").stdout
    assert "PriorityTier=10" in tier


def test_racks_are_slurms_topology(cluster: str) -> None:
    topology = host("scontrol", "show", "topology").stdout
    assert "SwitchName=r1 " in topology and "Nodes=cpu0,cpu1" in topology
    assert "SwitchName=r2 " in topology and "Nodes=gpu0" in topology  # rack_size = 2


def test_each_partition_refuses_more_nodes_than_it_has(cluster: str) -> None:
    refused = host("sbatch", "-p", "gpu", "-N2", "--wrap", "hostname", check=False)
    assert refused.returncode != 0
    assert "More processors requested than permitted" in refused.stderr


def test_a_share_is_visible_on_every_node_and_a_job_runs_in_it(
        cluster: str, dirs: tuple[Path, Path]) -> None:
    work = dirs[0]
    for node in ("cpu0", "cpu1", "gpu0"):
        seen = vhpc("-c", cluster, "exec", node, "--", "cat", f"{NODE_PATH}/kept.txt").stdout
        assert seen == "mine\n", node
    job = host("sbatch", "-p", "debug", "-N3", "--wait", "-o", "out-%j.txt", "--wrap",
               "srun hostname; pwd", cwd=work)
    job_id = job.stdout.split()[-1]
    out = (work / f"out-{job_id}.txt").read_text().split()
    assert sorted(out[:3]) == ["cpu0", "cpu1", "gpu0"] and out[3] == str(work)


def test_node_add_group_gives_the_groups_properties_and_partitions(cluster: str) -> None:
    vhpc("-c", cluster, "node", "add", "--group", "gpu")
    nodes = {n["name"]: n for n in status(cluster)["nodes"]}
    gpu1 = nodes["gpu1"]
    assert (gpu1["group"], gpu1["partitions"], gpu1["gres"]) == (
        "gpu", ["gpu", "debug"], "gpu:a100:2")
    assert gpu1["features"] == ["gpu", "nvlink"] and gpu1["memory_limit"] == 128 << 20
    assert nodes["cpu0"]["partitions"] == ["cpu", "debug"]
    assert "gpu 4:00:00 2 gpu[0-1]" in host("sinfo", "-h", "-o", "%P %l %D %N").stdout
    assert "Nodes=gpu0,gpu1" in host("scontrol", "show", "topology").stdout
    table = vhpc("-c", cluster, "status").stdout
    assert "gpu1" in table


def test_down_keeps_the_shared_directories_and_removes_its_mount_point(
        dirs: tuple[Path, Path], cluster: str) -> None:
    work, data = dirs
    assert Path(NODE_PATH).is_dir()
    vhpc("-c", cluster, "down")
    assert (data / "kept.txt").read_text() == "mine\n"
    assert any(work.glob("out-*.txt"))
    assert not Path(NODE_PATH).exists()
    assert leftovers(cluster) == []
