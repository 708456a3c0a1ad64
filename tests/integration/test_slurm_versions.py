"""The config vhpc renders for a Slurm version, run by that very Slurm (issue 11, part 3).

For the host's Slurm (22.05 on Debian 12) and the debian13 image's (24.11, built once per
session like test_images.py), the renderers write slurm.conf, cgroup.conf, gres.conf,
slurmdbd.conf, MariaDB's config and slurmrestd's command line for the version, and
slurm_in_root.sh runs the root's own MariaDB, slurmdbd, munged, slurmctld, a dynamic
slurmd, a job, sacct and slurmrestd against them in private namespaces (the image is
only read). Every daemon must start, the job run, both REST APIs answer, and no log may
name an unknown, defunct or invalid option, a missing plugin, or a fatal error. The
other way round (22.05's files on 24.11) fails: the rules are needed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import vhpc
from vhpc.runtime import images, slurm_version
from vhpc.services import gres, image_db, slurm, slurm_cgroup, slurmdbd, slurmrestd
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

pytestmark = pytest.mark.privileged

SCRIPT = Path(__file__).with_name("slurm_in_root.sh")
IMAGE = "debian13"
LAB = Path("/tmp/lab")  # the cluster's state directory as the daemons see it
#: What no daemon may log about the files it was given.
BAD = re.compile(r"defunct|unknown|invalid|unable to find plugin|fatal|deprecat", re.I)


@pytest.fixture(scope="session")
def debian13_root() -> tuple[Path, str]:
    """The debian13 image's root and Slurm version (built once if missing)."""
    if IMAGE not in images.built_names():
        vhpc("image", "build", IMAGE, timeout=1800)
    return images.rootfs(IMAGE), images.info(IMAGE).slurm_version


def lab_spec(version: str) -> ClusterSpec:
    """A small cluster with accounting and fake GPUs, for this Slurm version."""
    host = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
    spec = build_spec(ClusterOptions(name="lab", nodes=2, memory="125M", gpus="a100:2"), host)
    return dataclasses.replace(spec, slurm_version=version)


def render(dest: Path, spec: ClusterSpec) -> None:
    """Every file the check reads, as vhpc writes them, with /tmp/lab mapped to `dest`."""
    paths = ClusterPaths(LAB)
    dest.chmod(0o755)  # slurmrestd reads slurm.conf as nobody
    db = slurmdbd.db_node(spec)
    assert db is not None

    def put(path: Path, text: str, mode: int = 0o644) -> None:
        target = dest / path.relative_to(LAB)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    conf = slurm.render_slurm_conf(spec, paths)
    put(paths.slurm_conf, conf)
    put(paths.slurm_etc / "cgroup.conf",
        slurm_cgroup.render_cgroup_conf(1, spec.slurm_version))
    put(gres.gres_conf_file(paths), gres.render_gres_conf(spec.nodes, spec.slurm_version))
    put(slurmdbd.conf_file(paths), slurmdbd.render_slurmdbd_conf(spec, paths, db), 0o600)
    put(LAB / "db/mariadb.cnf", image_db.server_config(
        LAB / "db/mysql", str(LAB / "run/mysqld.sock"), str(LAB / "run/mysqld.pid")))
    put(slurm.health_check_file(paths), slurm.render_health_check(paths), 0o755)
    for prolog in re.findall(r"^TaskProlog=(\S+)$", conf, re.M):  # jobs' env: none needed
        put(Path(prolog), "#!/bin/sh\n", 0o755)
    put(LAB / "nodeconf", slurm.dynamic_node_conf(spec, spec.computes[0]))
    put(LAB / "restd_argv", " ".join(slurmrestd.daemon(spec, paths).argv))
    put(LAB / "api", slurmrestd.api_version(spec))


def run_in_root(root: Path, spec: ClusterSpec, work: Path) -> str:
    """The check script's report for this root and these files."""
    render(work, spec)
    done = subprocess.run(["bash", str(SCRIPT), str(root), str(work)], capture_output=True,
                          text=True, timeout=300, check=False)
    return done.stdout + done.stderr


def report_field(out: str, name: str) -> str:
    """The text after `== name` in the report."""
    found = re.search(rf"^== {re.escape(name)}:? ?(.*)$", out, re.M)
    return found.group(1) if found else ""


def log_errors(out: str) -> list[str]:
    """The daemons' error lines the report lists."""
    return out.split("== log errors:", 1)[-1].split("== end", 1)[0].strip().splitlines()


def assert_slurm_takes_its_files(out: str, version: str) -> None:
    """Every daemon ran, the job and both REST APIs worked, no bad option was logged."""
    assert "== FAILED" not in out and "== end" in out, out[-3000:]
    assert version in report_field(out, "version"), out[-3000:]
    assert report_field(out, "srun") == "ran-on-compute0", out[-3000:]
    assert "COMPLETED" in report_field(out, "sacct"), out[-3000:]
    api = slurm_versions_api(version)
    assert report_field(out, f"rest /slurm/{api}/ping").endswith("200 OK"), out[-3000:]
    assert report_field(out, f"rest /slurmdb/{api}/jobs").endswith("200 OK"), out[-3000:]
    # (slurmctld checks MailProg, which vhpc leaves at Slurm's default /bin/mail: no root
    # here has one, and no job asks for mail)
    bad = [line for line in log_errors(out) if BAD.search(line) and "MailProg" not in line]
    assert bad == [], out[-3000:]


def slurm_versions_api(version: str) -> str:
    """The REST API version vhpc serves for this Slurm version."""
    return slurmrestd.api_version(lab_spec(version))


def test_the_hosts_slurm_takes_the_files_rendered_for_it(tmp_path: Path) -> None:
    version = slurm_version.host_version()
    out = run_in_root(Path("/"), lab_spec(version), tmp_path)
    assert_slurm_takes_its_files(out, version)


def test_the_images_slurm_takes_the_files_rendered_for_it(
        debian13_root: tuple[Path, str], tmp_path: Path) -> None:
    root, version = debian13_root
    assert version.startswith("24.11")
    out = run_in_root(root, lab_spec(version), tmp_path)
    assert_slurm_takes_its_files(out, version)
    assert "TaskPlugin = (null)" in report_field(out, "config")


def test_files_for_22_05_are_refused_by_24_11(debian13_root: tuple[Path, str],
                                              tmp_path: Path) -> None:
    root, _ = debian13_root
    out = run_in_root(root, lab_spec("22.05.8"), tmp_path)
    errors = "\n".join(log_errors(out))
    assert 'The option "CgroupAutomount" is defunct' in errors, out[-3000:]
    assert "unable to find plugin: openapi/v0.0.38" in errors, out[-3000:]


def test_the_image_root_is_left_as_it_was(debian13_root: tuple[Path, str]) -> None:
    root, _ = debian13_root
    assert not (root / "tmp" / "lab").exists()
    assert json.loads((root.parent / images.METADATA).read_text())["name"] == IMAGE
