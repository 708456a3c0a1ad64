"""Node images (issue 11): recipes, mmdebstrap argv, metadata, the image root's mount
plan, the pivot in the setup script, the host-side wrappers, and the one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.cli_fakes import run_vhpc
from vhpc.cli.main import cli
from vhpc.cluster import image_root
from vhpc.cluster.node import node_mounts
from vhpc.errors import ClusterStateError, SpecError
from vhpc.runtime import images
from vhpc.runtime.namespaces import (
    ROOT_SOURCE,
    Mount,
    new_root_of,
    render_fstab,
    setup_script,
)
from vhpc.services import host_clients
from vhpc.spec import images as recipes
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec, NodeRole, NodeSpec
from vhpc.spec.paths import ClusterPaths

PATHS = ClusterPaths(Path("/var/lib/vhpc/im1"))
ROOTFS = Path("/var/lib/vhpc/.images/debian13/rootfs")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path))
    return tmp_path


def fake_image(state: Path, name: str = "debian13") -> None:
    d = state / ".images" / name
    (d / "rootfs").mkdir(parents=True)
    meta = images.ImageInfo(name, "trixie", "24.11.5", "5.0.7", "3.13.5", 1 << 30, 1.7e9, 50)
    (d / "image.json").write_text(json.dumps(meta.__dict__))


def test_mmdebstrap_argv_names_suite_packages_and_mirror() -> None:
    argv = images.mmdebstrap_argv(recipes.RECIPES["debian13"], Path("/x/rootfs"))
    assert argv[:3] == ["mmdebstrap", "--variant=minbase", "--mode=root"]
    include = next(a for a in argv if a.startswith("--include="))
    for package in ("slurmd", "slurmctld", "slurm-client", "slurmdbd", "slurmrestd", "munge",
                    "mariadb-server", "openmpi-bin", "python3-mpi4py", "python3-numpy"):
        assert package in include.split("=", 1)[1].split(",")
    assert argv[-3:] == ["trixie", "/x/rootfs", "http://deb.debian.org/debian"]


def test_every_image_has_the_separate_jwt_plugin() -> None:
    for recipe in recipes.RECIPES.values():
        assert "slurm-wlm-jwt-plugin" in recipe.packages


def test_upstream_version_drops_epoch_and_revision() -> None:
    assert images.upstream_version("24.11.5-4+deb13u1") == "24.11.5"
    assert images.upstream_version("1:11.8.9+ds-0+deb13u1") == "11.8.9+ds"
    assert images.upstream_version("3.13") == "3.13"


def test_first_error_prefers_apt_reason() -> None:
    lines = ["I: running apt-get update...", "E: Unable to locate package nosuch",
             "E: mmdebstrap failed"]
    assert images.first_error(lines) == "E: Unable to locate package nosuch"
    assert images.first_error([]) == "no output"


def test_built_lists_complete_images_only(state: Path) -> None:
    fake_image(state)
    (state / ".images" / ".build-debian12-x" / "rootfs").mkdir(parents=True)
    (state / ".images" / "half").mkdir()
    [image] = images.built()
    assert (image.name, image.slurm_version) == ("debian13", "24.11.5")


def test_unknown_image_lists_built_and_buildable(state: Path) -> None:
    fake_image(state)
    with pytest.raises(SpecError, match="no image 'debian11': built are host, debian13; "
                                        "buildable are debian12, debian13"):
        images.info("debian11")


def test_unknown_recipe_is_refused() -> None:
    with pytest.raises(SpecError, match="cannot build image 'centos7': buildable are"):
        recipes.recipe_of("centos7")


def test_remove_and_rebuild_refused_while_a_cluster_uses_it(state: Path) -> None:
    fake_image(state)
    (state / "im1").mkdir()
    (state / "im1" / "spec.json").write_text(json.dumps({"image": "debian13"}))
    with pytest.raises(ClusterStateError, match="cannot remove image 'debian13': cluster"
                                                r"\(s\) im1 use it"):
        images.remove("debian13")
    with pytest.raises(ClusterStateError, match="cannot rebuild"):
        images.check_unused("debian13", "rebuild")
    (state / "im1" / "spec.json").write_text(json.dumps({"image": "host"}))
    images.remove("debian13")
    assert images.built() == []
    assert not any((state / ".images").iterdir())


def test_cli_errors_are_one_line_exit_2(state: Path) -> None:
    for argv in (["image", "build", "nosuch"], ["image", "rm", "debian13"],
                 ["-c", "im2", "up", "--image", "debian13"]):
        result = run_vhpc(*argv)
        assert result.code == 2, (argv, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "debian13" in result.stderr


def test_image_ls_json(state: Path) -> None:
    fake_image(state)
    result = CliRunner().invoke(cli, ["image", "ls", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)[0]["slurm_version"] == "24.11.5"


def test_spec_keeps_the_image() -> None:
    facts = HostFacts(online_cpus=(0, 1), mem_total=8 << 30)
    spec = build_spec(ClusterOptions(name="im1", nodes=2, image="debian13"), facts)
    assert spec.image == "debian13"
    assert ClusterSpec.from_dict(spec.to_dict()).image == "debian13"
    host = build_spec(ClusterOptions(name="im1", nodes=2), facts)
    assert host.image == "host" and "image" not in host.to_dict()


def test_image_mount_plan_puts_everything_below_the_new_root() -> None:
    node = NodeSpec("compute0", NodeRole.COMPUTE, 10, (0,), 1 << 30)
    plain = node_mounts(PATHS, node, node.memory)
    mounts = image_root.image_mounts(PATHS, "compute0", ROOTFS, plain, "/run/resolv.conf")
    root = "/var/lib/vhpc/im1/nodes/compute0/root"
    assert mounts[0].fstype == "overlay" and mounts[0].source == ROOT_SOURCE
    assert mounts[0].options == (f"lowerdir={ROOTFS},upperdir=/var/lib/vhpc/im1/nodes/"
                                 "compute0/image/upper,workdir=/var/lib/vhpc/im1/nodes/"
                                 "compute0/image/work")
    assert new_root_of(mounts) == root
    targets = [m.target for m in mounts]
    assert targets[1:5] == [f"{root}/dev", f"{root}/sys", f"{root}/var/lib/vhpc/im1",
                            f"{root}/opt/vhpc/bin"]
    assert all(t.startswith(root) for t in targets)
    for inside in ("/proc", "/tmp", "/run", "/dev/shm", "/etc/slurm", "/home", "/etc/passwd"):
        assert f"{root}{inside}" in targets
    fstab = render_fstab(mounts)
    assert fstab.splitlines()[0].startswith(f"vhpc-root {root} overlay lowerdir=")


def test_resolv_target_becomes_the_images_and_host_paths_stay() -> None:
    node = NodeSpec("compute0", NodeRole.COMPUTE, 10, (0,), 1 << 30)
    plain = node_mounts(PATHS, node, node.memory)
    resolv = next(m for m in plain if m.source == str(PATHS.etc / "resolv.conf"))
    host_path = Mount("/var/lib/vhpc/im1/nodes/compute0/tmp/work", "/srv/w")
    mounts = image_root.image_mounts(PATHS, "compute0", ROOTFS, [*plain, host_path],
                                     resolv.target)
    root = "/var/lib/vhpc/im1/nodes/compute0/root"
    assert f"{root}/etc/resolv.conf" in [m.target for m in mounts]
    assert mounts[-1] == host_path


def test_dns_node_keeps_the_host_root() -> None:
    facts = HostFacts(online_cpus=(0, 1), mem_total=8 << 30)
    spec = build_spec(ClusterOptions(name="im1", nodes=1, image="debian13"), facts)
    uses = {n.name: image_root.uses_image(spec, n) for n in spec.nodes}
    assert uses == {"slurm": True, "dns": False, "db": True, "compute0": True}


def test_setup_script_pivots_into_the_image_root() -> None:
    script = setup_script("compute0", Path("/s/ns"), Path("/s/ns/compute0.fstab"),
                          new_root="/s/nodes/compute0/root")
    lines = script.splitlines()
    at = lines.index("exec 3<&-")  # after its mounts
    assert lines[at + 1:at + 5] == ["cd /s/nodes/compute0/root", "pivot_root . .",
                                    "umount -l .", "cd /"]
    assert "pivot_root" not in setup_script("c", Path("/s/ns"), Path("/s/f"))


def test_image_wrapper_and_client_script() -> None:
    wrapper = host_clients.render_image_wrapper("sinfo", "debian13", PATHS)
    assert '[ -e /.vhpc-image-client ] && exec /usr/bin/sinfo "$@"' in wrapper.splitlines()
    assert wrapper.splitlines()[-1] == (
        "exec unshare --mount --propagation private -- /bin/sh "
        '/var/lib/vhpc/im1/bin/vhpc-client.sh "$(pwd)" /usr/bin/sinfo "$@"')
    script = host_clients.render_client_script(ROOTFS, PATHS)
    assert f"lowerdir={ROOTFS}," in script
    assert ': > "$r/.vhpc-image-client"' in script
    assert "mount --bind /var/lib/vhpc/im1/etc/passwd \"$r/etc/passwd\"" in script
    assert 'mount --rbind "$wd" "$r$wd"' in script
    assert script.rstrip().splitlines()[-1].startswith('exec chroot "$r" /bin/sh -c')


def test_client_env_puts_image_wrappers_first(tmp_path: Path) -> None:
    paths = ClusterPaths(tmp_path / "im1")
    env = host_clients.client_env(paths.slurm_conf, {"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "SLURM_CONF": str(paths.slurm_conf)}
    host_clients.wrapper_dir(paths).mkdir(parents=True)
    (host_clients.wrapper_dir(paths) / host_clients.IMAGE_MARKER).write_text("debian13\n")
    env = host_clients.client_env(paths.slurm_conf, {"PATH": "/usr/bin"})
    assert env["PATH"] == f"{host_clients.wrapper_dir(paths)}:/usr/bin"


def test_prepare_rootfs_gives_a_node_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    images.prepare_rootfs(tmp_path)
    assert "localhost" in (tmp_path / "etc" / "hosts").read_text()
    resolv = tmp_path / "etc" / "resolv.conf"
    assert resolv.is_file() and not resolv.is_symlink()
    assert os.readlink(tmp_path / images.VENV_PYTHON) == "/usr/bin/python3"
    for rel in images.MOUNT_POINTS:
        assert (tmp_path / rel).is_dir()


def test_debian12_has_the_pmix_library_slurm_2205_loads() -> None:
    assert "libpmix-dev" in recipes.RECIPES["debian12"].packages
