"""slurmrestd and its JSON Web Tokens: argv, config lines, key, token parsing and requests."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from vhpc import rest
from vhpc.errors import UserError
from vhpc.services import jwt_auth, slurm, slurmdbd, slurmrestd
from vhpc.spec.load import ClusterOptions, HostFacts, build_spec
from vhpc.spec.model import UserSpec
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.sizes import MIB

HOST = HostFacts(online_cpus=(0, 1), mem_total=24 * 1024 * MIB)
SPEC = build_spec(ClusterOptions(name="lab", nodes=2), HOST)
PATHS = ClusterPaths(Path("/var/lib/vhpc/lab"))
KEY = "/var/lib/vhpc/lab/etc/jwt_hs256.key"


def test_slurmrestd_argv_listens_on_the_controller_as_nobody_with_jwt_only() -> None:
    daemon = slurmrestd.daemon(SPEC, PATHS)
    assert (daemon.name, daemon.node) == ("slurmrestd", "slurm")
    assert daemon.argv == (
        "slurmrestd", "-f", "/var/lib/vhpc/lab/etc/slurm/slurm.conf", "-a", "rest_auth/jwt",
        "-s", "openapi/v0.0.38,openapi/dbv0.0.38", "-u", "nobody", "-g", "cluser",
        "10.201.0.2:6820")
    # every request authenticates with its own token, never as the daemon itself
    assert daemon.env == {"SLURM_CONF": "/var/lib/vhpc/lab/etc/slurm/slurm.conf",
                          "SLURM_JWT": "daemon"}
    assert daemon.log_file == Path("/var/lib/vhpc/lab/log/slurmrestd.slurm.log")
    assert slurmrestd.url(SPEC) == "http://10.201.0.2:6820"


def test_the_slurmdbd_api_is_served_only_with_accounting() -> None:
    lean = replace(SPEC, accounting=False)
    assert slurmdbd.db_node(lean) is None
    assert slurmrestd.openapi_plugins(lean) == ("openapi/v0.0.38",)
    assert "-s" in (argv := slurmrestd.daemon(lean, PATHS).argv)
    assert argv[argv.index("-s") + 1] == "openapi/v0.0.38"


def test_slurmctld_and_slurmdbd_accept_jwt_with_the_cluster_key() -> None:
    lines = ["AuthAltTypes=auth/jwt", f"AuthAltParameters=jwt_key={KEY}"]
    conf = slurm.render_slurm_conf(SPEC, PATHS).splitlines()
    assert conf[-3:] == ["EnforcePartLimits=ALL", *lines]
    node = slurmdbd.db_node(SPEC)
    assert node is not None
    dbd = slurmdbd.render_slurmdbd_conf(SPEC, PATHS, node).splitlines()
    assert dbd[-2:] == lines
    assert "AuthType=auth/munge" in conf and "AuthType=auth/munge" in dbd


def test_jwt_key_is_random_root_only_and_never_rewritten(tmp_path: Path) -> None:
    paths = ClusterPaths(tmp_path)
    paths.etc.mkdir()
    jwt_auth.write_key(paths)
    key = jwt_auth.key_file(paths)
    assert stat.S_IMODE(key.stat().st_mode) == 0o400
    assert len(key.read_bytes()) == jwt_auth.KEY_SIZE
    other = ClusterPaths(tmp_path / "other")
    other.etc.mkdir(parents=True)
    jwt_auth.write_key(other)
    assert jwt_auth.key_file(other).read_bytes() != key.read_bytes()
    with pytest.raises(FileExistsError):
        jwt_auth.write_key(paths)


def test_token_command_and_its_output() -> None:
    assert slurmrestd.token_argv("alice", 600) == [
        "scontrol", "token", "username=alice", "lifespan=600"]
    assert slurmrestd.parse_token("SLURM_JWT=eyJh.eyJl.sig\n") == "eyJh.eyJl.sig"
    assert slurmrestd.parse_token("Error fetching token\n") == ""
    assert slurmrestd.parse_token("SLURM_JWT=\n") == ""


def test_token_requests_name_a_cluster_user_and_a_sane_lifespan() -> None:
    spec = replace(SPEC, users=(UserSpec("alice", "physics", 1879048193),))
    assert rest.cluster_users(spec) == ["root", "cluser", "alice"]
    rest.check_token_request(spec, "alice", 60)
    with pytest.raises(UserError, match="unknown user 'bob': cluster 'lab' has root, "
                                        "cluser, alice"):
        rest.check_token_request(spec, "bob", 60)
    for bad in (0, -5, slurmrestd.MAX_LIFESPAN + 1):
        with pytest.raises(UserError, match=f"--lifespan {bad}: give seconds from 1"):
            rest.check_token_request(spec, "cluser", bad)


def test_env_exports_the_url_and_the_token_only_when_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rest, "rest_url", lambda name: "http://10.201.0.2:6820")
    assert rest.env_lines("lab") == ["export VHPC_SLURMRESTD_URL=http://10.201.0.2:6820"]
    assert rest.env_lines("lab", "eyJh.eyJl.sig", "alice") == [
        "export VHPC_SLURMRESTD_URL=http://10.201.0.2:6820",
        "export SLURM_JWT=eyJh.eyJl.sig",
        "export VHPC_SLURM_USER=alice",
    ]


def test_cli_token_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.unit.cli_fakes import install, run_vhpc
    from vhpc.runtime.hostops import CommandResult

    install(monkeypatch, tmp_path)
    asked: list[list[str]] = []

    def scontrol(argv: list[str], **kwargs: object) -> CommandResult:
        asked.append(argv)
        env = kwargs.get("env")
        assert isinstance(env, dict) and "SLURM_JWT" not in env  # minted over munge
        return CommandResult(argv, 0, "SLURM_JWT=eyJh.eyJl.sig\n", "")

    monkeypatch.setattr(rest, "run_command", scontrol)
    monkeypatch.setenv("SLURM_JWT", "a-stale-token")
    env = run_vhpc("-c", "hbt", "env")
    assert "export VHPC_SLURMRESTD_URL=http://10.201.0.2:6820\n" in env.stdout
    assert "SLURM_JWT" not in env.stdout and asked == []
    token = run_vhpc("-c", "hbt", "token", "--user", "cluser", "--lifespan", "60")
    assert (token.code, token.stdout) == (0, "eyJh.eyJl.sig\n")
    assert asked[-1] == ["scontrol", "token", "username=cluser", "lifespan=60"]
    jwt = run_vhpc("-c", "hbt", "env", "--jwt")
    assert "export SLURM_JWT=eyJh.eyJl.sig\nexport VHPC_SLURM_USER=cluser\n" in jwt.stdout
    assert asked[-1][-1] == f"lifespan={slurmrestd.DEFAULT_LIFESPAN}"
    bad = run_vhpc("-c", "hbt", "token", "--slurm", "--user", "bob")
    assert bad.code == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1
    assert "unknown user 'bob'" in bad.stderr
    zero = run_vhpc("-c", "hbt", "token", "--lifespan", "0")
    assert zero.code == 2 and "--lifespan 0: give seconds from 1" in zero.stderr
    assert len(asked) == 2  # the refused ones never ran scontrol
