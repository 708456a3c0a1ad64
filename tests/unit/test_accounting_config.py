"""Accounting renderers (slurmdbd.conf, MariaDB options, the sacctmgr scripts, host-side
wrappers) as text, and the parsing of cluster users (`up --users`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vhpc.errors import SpecError
from vhpc.services import db_template, files, host_clients, mariadb, slurmdbd
from vhpc.spec import users
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import ClusterSpec, UserSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

GOLDEN = Path(__file__).parent / "golden"
HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
PATHS = ClusterPaths(Path("/var/lib/vhpc/lab"))


def lab(**kw: object) -> ClusterSpec:
    return build_spec(ClusterOptions(name="lab", nodes=2, **kw), HOST)  # type: ignore[arg-type]


def test_slurmdbd_conf_matches_golden() -> None:
    spec = lab(users=("alice:physics",))
    node = slurmdbd.db_node(spec)
    assert node is not None and str(spec.ip_of(node)) == "10.201.0.4"
    assert slurmdbd.render_slurmdbd_conf(spec, PATHS, node) == \
        (GOLDEN / "slurmdbd.conf").read_text()


def test_mariadb_config_matches_golden() -> None:
    assert mariadb.render_config(mariadb.datadir(PATHS)) == \
        (GOLDEN / "mariadb.cnf").read_text()
    assert mariadb.host_socket(PATHS, "db") == \
        Path("/var/lib/vhpc/lab/nodes/db/run/mysqld/mysqld.sock")


def test_bootstrap_registers_cluster_qos_accounts_and_users() -> None:
    spec = lab(users=("alice:physics", "bob:chem", "carol:physics"))
    script = slurmdbd.bootstrap_script(spec).splitlines()
    assert script[:3] == ["add cluster lab", "add qos debug", "add qos long"]
    assert "modify qos debug set Priority=1000 MaxWall=00:30:00 Flags=DenyOnLimit" in script
    accounts = [line.split()[2] for line in script if line.startswith("add account")]
    assert accounts == ["chem", "default", "physics"]
    assert all("QOS=normal,debug,long DefaultQOS=normal" in line
               for line in script if line.startswith("add account"))
    assert "add user alice Account=physics DefaultAccount=physics Cluster=lab" in script
    assert "add user cluser Account=default DefaultAccount=default Cluster=lab" in script


def test_accounting_lines_only_with_a_db_node() -> None:
    on, off = lab(), lab(accounting=False)
    assert [n.name for n in on.nodes][:3] == ["slurm", "dns", "db"]
    assert "db" not in [n.name for n in off.nodes]
    assert slurmdbd.slurm_conf_lines(off, PATHS) == []
    assert slurmdbd.job_acct_gather(off) == "jobacct_gather/none"
    lines = slurmdbd.slurm_conf_lines(on, PATHS)
    assert "AccountingStorageEnforce=associations,limits,qos" in lines
    assert f"AccountingStoragePass={PATHS.munge_socket}" in lines
    assert "PriorityType=priority/multifactor" in lines
    assert slurmdbd.job_acct_gather(on) == "jobacct_gather/linux"


def test_users_get_ids_in_the_clusters_block_after_the_default_user() -> None:
    spec = lab(users=("alice:physics,bob:chem",))
    block = users.id_block(spec.cluster_id)
    assert spec.user_uid == block.start
    assert [(u.name, u.account, u.uid) for u in spec.users] == [
        ("alice", "physics", block.start + 1), ("bob", "chem", block.start + 2)]
    assert ClusterSpec.from_dict(spec.to_dict()) == spec


def test_a_host_id_in_the_block_is_skipped() -> None:
    block = users.id_block("00ab")
    made = users.assign_users([("alice", "x")], "00ab", {block.start + 1}, {block.start})
    assert made == (UserSpec("alice", "x", block.start + 2),)


@pytest.mark.parametrize(("entry", "words"), [
    ("alice:", "give name:account pairs"),
    ("alice:a:b", "give name:account pairs"),
    (":physics", "invalid user name ''"),
    ("Alice:x", "invalid user name 'Alice'"),
    ("alice:Phys!", "invalid account name 'Phys!'"),
    ("root:x", "user name 'root' is reserved"),
    ("cluser:x", "user name 'cluser' is reserved"),
    ("alice:a,bob:b,alice:c", "user 'alice' is given twice"),
])
def test_bad_users_are_refused_with_one_line(entry: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        users.parse_users([entry])
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_bare_name_gets_the_default_account() -> None:
    assert users.parse_users(["alice", "bob:chem"]) == (("alice", "default"), ("bob", "chem"))


def test_too_many_users_for_the_block_are_refused() -> None:
    many = [(f"u{i}", "x") for i in range(users.IDS_PER_CLUSTER)]
    with pytest.raises(SpecError, match="no free uid left"):
        users.assign_users(many, "00ab", set(), {users.id_block("00ab").start})


def test_passwd_and_group_name_every_cluster_user() -> None:
    extra = (UserSpec("alice", "physics", 7001), UserSpec("bob", "chem", 7002))
    passwd = files.render_passwd("root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/h:/bin/sh\n",
                                 "cluser", 7000, "/s/home/cluser", extra).splitlines()
    assert passwd == ["root:x:0:0::/root:/bin/bash",
                      "cluser:x:7000:7000:vhpc cluster user:/s/home/cluser:/bin/bash",
                      "alice:x:7001:7001:vhpc user (physics):/s/home/alice:/bin/bash",
                      "bob:x:7002:7002:vhpc user (chem):/s/home/bob:/bin/bash"]
    group = files.render_group("root:x:0:\n", "cluser", 7000, extra).splitlines()
    assert group == ["root:x:0:", "cluser:x:7000:alice,bob", "alice:x:7001:", "bob:x:7002:"]


def test_host_wrapper_runs_the_real_client_with_the_clusters_passwd() -> None:
    text = host_clients.render_wrapper("squeue", "/usr/bin/squeue",
                                       Path("/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"),
                                       PATHS)
    assert text.splitlines() == [
        "#!/bin/sh",
        "# written by vhpc: the host's squeue, naming cluster lab's users",
        "NSS_WRAPPER_PASSWD=/var/lib/vhpc/lab/etc/passwd",
        "NSS_WRAPPER_GROUP=/var/lib/vhpc/lab/etc/group",
        'LD_PRELOAD="/usr/lib/x86_64-linux-gnu/libnss_wrapper.so${LD_PRELOAD:+ $LD_PRELOAD}"',
        "export NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP LD_PRELOAD",
        'exec /usr/bin/squeue "$@"']
    assert "srun" not in host_clients.WRAPPED and "sbatch" not in host_clients.WRAPPED
    assert host_clients.render_path_export(PATHS) == (
        'case ":$PATH:" in *:/var/lib/vhpc/lab/bin:*) ;; '
        '*) export PATH=/var/lib/vhpc/lab/bin:"$PATH" ;; esac')


def test_template_script_makes_the_schema_in_a_private_loopback() -> None:
    script = db_template.render_script(Path("/t/w"))
    assert script.startswith("set -e\nip link set lo up\n")
    # a throwaway munged before slurmdbd (24.11 makes a credential when it starts)
    assert script.index("munged --force --key-file=/t/w/munge.key --socket=/t/w/munge") < \
        script.index("mariadb-install-db ") < script.index("SLURM_CONF=/t/w/slurm.conf slurmdbd -D")
    conf = db_template.render_slurmdbd_conf(Path("/t/w"))
    assert "DbdAddr=127.0.0.1" in conf and "StorageHost=127.0.0.1" in conf
    assert "AuthInfo=socket=/t/w/munge.socket.2" in conf


def test_user_routes_answer_their_models_and_the_client_parses_them() -> None:
    from tests.unit.fake_manager_api import FakeManagerAPI, make_app, manager_client

    api = FakeManagerAPI()
    client = manager_client(make_app(api))
    listed = client.users()
    assert [u.name for u in listed.users] == ["cluser"] and listed.accounting
    added = client.add_user("carol", "physics")
    assert (added.name, added.account) == ("carol", "physics")
    assert ("add_user", "carol", "physics") in api.calls


def test_a_malformed_user_request_is_a_request_error() -> None:
    from tests.unit.fake_manager_api import FakeManagerAPI, make_app, unix_client

    http = unix_client(make_app(FakeManagerAPI()))
    answer = http.post("/api/v1/users", json={"name": "", "account": "physics"})
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "RequestError"


def test_the_python_api_passes_users_and_accounting_to_the_options() -> None:
    import vhpc

    options = vhpc.Cluster("lab", users=["alice:physics"], accounting=False).options
    assert (options.users, options.accounting) == (("alice:physics",), False)
    assert vhpc.Cluster("lab").options.accounting is True


def test_a_failed_template_build_names_each_logs_last_error_line(tmp_path: Path) -> None:
    (tmp_path / "install.log").write_text("Installing\n[ERROR] cannot create db\nbye\n")
    (tmp_path / "mariadbd.log").write_text("")
    assert db_template.work_logs(tmp_path) == (
        "install.log: [ERROR] cannot create db | mariadbd.log: (empty) | slurmdbd.log: (none)")
