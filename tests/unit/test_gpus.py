"""Fake GPUs: the --gpus request, device names, gres.conf (golden), the node's own /dev,
slurmd's registration and the simulated nvidia-smi."""

from __future__ import annotations

import io
import os
import stat
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.fake_runtime import FakeRuntime
from vhpc.cluster.cluster import Cluster
from vhpc.cluster.node import node_mounts, prepare_private_dirs
from vhpc.errors import SpecError
from vhpc.runtime import devices
from vhpc.runtime.namespaces import render_fstab
from vhpc.services import gres, slurm
from vhpc.spec import gpus
from vhpc.spec.grow import AddRequest, plan_add
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB
from vhpc.workloads.bin import nvidia_smi

GOLDEN = Path(__file__).parent / "golden"
HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
PATHS = ClusterPaths(Path("/var/lib/vhpc/lab"))


def spec_with(gpus_option: str | int, nodes: int = 2) -> ClusterSpec:
    return build_spec(ClusterOptions(name="lab", nodes=nodes, cpus=2, gpus=gpus_option,
                                     accounting=False), HOST)


@pytest.mark.parametrize(("value", "expected"), [
    ("", (0, "")), (None, (0, "")), (2, (2, "")), ("2", (2, "")), ("a100:2", (2, "a100")),
    ("H100:8", (8, "H100")), ("0", (0, "")), (" v100:1 ", (1, "v100")),
])
def test_gpu_requests_parse_to_count_and_type(value: str | int | None,
                                              expected: tuple[int, str]) -> None:
    assert gpus.parse_gpus(value) == expected


@pytest.mark.parametrize("value", [
    "-1", "two", "a100:", ":2", "a100:x", "1a00:2", "a b:2", "a100:65", 65, True, "x" * 100,
    "a100:2:3", "a=b:2",
])
def test_bad_gpu_requests_are_refused_with_the_fix(value: str | int) -> None:
    with pytest.raises(SpecError) as err:
        gpus.parse_gpus(value)
    assert "--gpus" in str(err.value)
    assert "2" in str(err.value)  # every message shows an example


def test_device_names_and_gres_strings() -> None:
    assert gpus.device_names(3) == ["nvidia0", "nvidia1", "nvidia2"]
    assert gpus.device_files(1) == "/dev/nvidia0"
    assert gpus.device_files(4) == "/dev/nvidia[0-3]"
    assert gpus.gres(2, "a100") == "gpu:a100:2"
    assert gpus.gres(2) == "gpu:2"
    assert gpus.gres(0, "a100") == ""
    assert gpus.format_gpus(2, "a100") == "a100:2"
    assert gpus.format_gpus(3) == "3"


def test_gres_conf_matches_golden() -> None:
    spec = spec_with("a100:2")
    mixed = spec.with_nodes((*spec.nodes, replace(spec.computes[0], name="compute9", gpus=1,
                                                 gpu_type=""),
                             replace(spec.computes[0], name="compute5", gpus=0, gpu_type="")))
    text = gres.render_gres_conf(mixed.nodes)
    assert text == (GOLDEN / "gres.conf").read_text()
    assert "compute5" not in text  # no GPUs, no line
    assert "slurm" not in text.split("\n", 2)[2]  # no service node


def test_gres_conf_without_gpus_only_turns_autodetect_off() -> None:
    spec = spec_with("")
    lines = [x for x in gres.render_gres_conf(spec.nodes).splitlines()
             if not x.startswith("#")]
    assert lines == ["AutoDetect=off"]


def test_slurm_conf_declares_gpu_gres_and_slurmd_registers_its_gpus() -> None:
    spec = spec_with("a100:2")
    assert "GresTypes=gpu" in slurm.render_slurm_conf(spec, PATHS).splitlines()
    conf = slurm.dynamic_node_conf(spec, spec.computes[1])
    assert conf.endswith(" Gres=gpu:a100:2")
    plain, untyped = spec_with(""), spec_with(2)
    assert "Gres=" not in slurm.dynamic_node_conf(plain, plain.computes[1])
    assert slurm.dynamic_node_conf(untyped, untyped.computes[0]).endswith(" Gres=gpu:2")


def test_every_compute_node_gets_the_gpus_and_node_add_its_own() -> None:
    spec = spec_with("a100:2")
    assert [(n.gpus, n.gpu_type) for n in spec.computes] == [(2, "a100"), (2, "a100")]
    assert all(n.gpus == 0 for n in spec.nodes if n not in spec.computes)
    added = plan_add(spec, AddRequest(count=1, gpus="4"), HOST)
    assert (added[0].gpus, added[0].gpu_type) == (4, "")
    plain = plan_add(spec, AddRequest(count=1), HOST)
    assert plain[0].gpus == 0
    with pytest.raises(SpecError):
        plan_add(spec, AddRequest(count=1, gpus="a100:999"), HOST)
    with pytest.raises(SpecError):
        spec_with("a100:x")


def test_a_gpu_node_mounts_its_own_dev_before_dev_shm() -> None:
    spec = spec_with("a100:2")
    node = spec.computes[0]
    targets = [m.target for m in node_mounts(PATHS, node, node.memory)]
    dev = "/var/lib/vhpc/lab/nodes/compute0/dev"
    assert targets.index(f"{dev}/pts") < targets.index("/dev") < targets.index("/dev/shm")
    assert targets.index("/proc") < targets.index("/dev") < targets.index("/dev/mqueue")
    lines = render_fstab(node_mounts(PATHS, node, node.memory)).splitlines()
    # the host's devpts is bound into the directory, then carried over /dev by rbind
    assert lines.index(f"/dev/pts {dev}/pts none bind 0 0") < \
        lines.index(f"{dev} /dev none rbind 0 0")
    plain = spec_with("").computes[0]
    assert "/dev" not in [m.target for m in node_mounts(PATHS, plain, plain.memory)]


def test_a_node_dev_holds_the_standard_devices_and_its_gpus() -> None:
    entries = {e.name: e for e in devices.node_dev_entries(gpus.device_names(2))}
    assert (entries["nvidia1"].kind, entries["nvidia1"].major, entries["nvidia1"].minor) == \
        ("char", 1, 3)
    assert (entries["null"].major, entries["null"].minor) == (1, 3)
    assert (entries["urandom"].major, entries["urandom"].minor) == (1, 9)
    assert (entries["ptmx"].kind, entries["ptmx"].major, entries["ptmx"].minor) == \
        ("char", 5, 2)
    assert entries["fd"].target == "/proc/self/fd"
    assert {"pts", "shm", "mqueue"} <= {n for n, e in entries.items() if e.kind == "dir"}
    assert "nvidia2" not in entries


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_prepare_private_dirs_makes_the_device_files(tmp_path: Path) -> None:
    spec = spec_with(3)
    paths = ClusterPaths(tmp_path)
    prepare_private_dirs(paths, spec.computes[0])
    dev = paths.node_dir("compute0") / "dev"
    nodes = sorted(p.name for p in dev.iterdir() if p.name.startswith("nvidia"))
    assert nodes == ["nvidia0", "nvidia1", "nvidia2"]
    st = (dev / "nvidia2").stat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    prepare_private_dirs(paths, spec.computes[0])  # again (a restart): no error


def _smi(args: list[str], env: dict[str, str], dev: Path) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = nvidia_smi.main(args, env, dev)
    return code, out.getvalue()


def test_nvidia_smi_lists_the_jobs_gpus_with_the_node_type(tmp_path: Path) -> None:
    conf = tmp_path / "slurm.conf"
    (tmp_path / "gres.conf").write_text("AutoDetect=off\nNodeName=gpu0 Name=gpu Type=a100 "
                                        "File=/dev/nvidia[0-1]\n")
    env = {"CUDA_VISIBLE_DEVICES": "1", "SLURMD_NODENAME": "gpu0", "SLURM_CONF": str(conf)}
    code, text = _smi(["-L"], env, tmp_path)
    assert code == 0
    assert text.startswith("GPU 1: NVIDIA A100 (simulated by vhpc) (UUID: GPU-")
    assert len(text.splitlines()) == 1
    code, table = _smi([], env, tmp_path)
    assert code == 0 and "simulated by vhpc" in table.splitlines()[2]
    assert "A100 (sim)" in table and "40960MiB" in table
    widths = {len(x) for x in table.splitlines()[1:] if x.startswith(("|", "+"))}
    assert widths == {79}  # nvidia-smi's classic 79-column table
    code, csv = _smi(["--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
                     dict(env, CUDA_VISIBLE_DEVICES="0,1"), tmp_path)
    assert (code, csv) == (0, "0, 40960\n1, 40960\n")


def test_nvidia_smi_outside_a_job_lists_the_node_devices(tmp_path: Path) -> None:
    for name in ("nvidia0", "nvidia1", "nvidiactl", "null"):
        (tmp_path / name).touch()
    code, text = _smi(["-L"], {"SLURMD_NODENAME": "n", "SLURM_CONF": "/nonexistent/x"},
                      tmp_path)
    assert code == 0
    assert [x.split(":")[0] for x in text.splitlines()] == ["GPU 0", "GPU 1"]
    assert "Simulated GPU (simulated by vhpc)" in text


def test_nvidia_smi_without_gpus_or_with_bad_options(tmp_path: Path) -> None:
    code, text = _smi([], {"CUDA_VISIBLE_DEVICES": ""}, tmp_path)
    assert code == nvidia_smi.EXIT_NO_DEVICES and "No devices were found" in text
    code, text = _smi(["--bogus"], {}, tmp_path)
    assert code == nvidia_smi.EXIT_USAGE and "usage:" in text
    code, text = _smi(["--query-gpu=power.draw", "--format=csv"], {"CUDA_VISIBLE_DEVICES": "0"},
                      tmp_path)
    assert code == nvidia_smi.EXIT_USAGE and "power.draw" in text


def test_nvidia_smi_in_a_job_without_gpus_lists_none(tmp_path: Path) -> None:
    (tmp_path / "nvidia0").touch()
    code, text = _smi(["-L"], {"SLURM_JOB_ID": "7"}, tmp_path)
    assert code == nvidia_smi.EXIT_NO_DEVICES and "No devices were found" in text
    code, text = _smi(["-L"], {"SLURM_JOB_ID": "7", "SLURM_STEP_GPUS": "0"}, tmp_path)
    assert code == 0 and text.startswith("GPU 0: ")


def test_simulated_gpu_uuids_differ_by_node_index_and_cluster() -> None:
    uuids = {nvidia_smi.make_gpu(i, "", host, cluster).uuid
             for i in (0, 1) for host in ("a", "b") for cluster in ("x", "y")}
    assert len(uuids) == 8
    assert nvidia_smi.make_gpu(0, "", "a", "x") == nvidia_smi.make_gpu(0, "", "a", "x")


def test_gres_conf_is_rewritten_for_nodes_being_added(tmp_path: Path) -> None:
    spec = spec_with("a100:2")
    cluster = Cluster(spec, ClusterPaths(tmp_path / "lab"), FakeRuntime())
    cluster.paths.slurm_etc.mkdir(parents=True)
    conf = gres.gres_conf_file(cluster.paths)
    assert conf.parent == cluster.paths.slurm_conf.parent  # Slurm reads it from there
    cluster.write_gres_conf([])
    assert "NodeName=compute1 Name=gpu Type=a100 File=/dev/nvidia[0-1]" in conf.read_text()
    added = replace(spec.computes[0], name="compute2", slot=12, gpus=1, gpu_type="")
    again = replace(spec.computes[1], gpus=0, gpu_type="")  # the same name, now without GPUs
    cluster.write_gres_conf([added, again])
    lines = conf.read_text().splitlines()
    assert "NodeName=compute2 Name=gpu File=/dev/nvidia0" in lines
    assert not [x for x in lines if x.startswith("NodeName=compute1 ")]
    assert [x for x in lines if x.startswith("NodeName=compute0 ")]


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod and chown need root")
def test_a_gpu_node_dev_directory_goes_with_the_cluster(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    cluster = Cluster(spec_with(2), ClusterPaths(tmp_path / "lab"), runtime)
    cluster.prepare_state()
    cluster.build_network()
    cluster.build_nodes(list(cluster.spec.nodes))
    assert (cluster.paths.node_dir("compute1") / "dev" / "nvidia1").exists()
    assert not (cluster.paths.node_dir("slurm") / "dev").exists()
    assert cluster.teardown() == []
    assert not (tmp_path / "lab").exists()
