"""What `vhpc up` loads and starts before the manager boots (issue 12 item 4): the CLI
imports none of the other commands' modules, the HTTP client or the models; its lazy
commands all resolve; a manager started ahead of the plan exits cleanly when it gets no
spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from vhpc import control
from vhpc.cli.lazy import LazyGroup
from vhpc.cli.main import cli
from vhpc.cluster import teardown

#: Not needed to boot: the HTTP client and models (httpx, pydantic), the web stack, the
#: cluster code (the manager's), the other commands and rich's progress bars.
NOT_ON_THE_BOOT_PATH = ("httpx", "pydantic", "fastapi", "uvicorn", "vhpc.client",
                        "vhpc.models", "vhpc.cluster.cluster", "vhpc.cluster.teardown",
                        "vhpc.runtime.linux", "vhpc.cli.node_cmds", "vhpc.cli.load_cmds",
                        "vhpc.cli.chaos_cmds", "vhpc.cli.site_cmds", "rich.progress")


def test_the_cli_imports_only_what_up_needs() -> None:
    code = "import sys, json, vhpc.cli.main; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = set(json.loads(out))
    assert [m for m in NOT_ON_THE_BOOT_PATH if m in loaded] == []


def test_every_lazy_command_resolves_to_a_command_of_its_name() -> None:
    assert isinstance(cli, LazyGroup) and cli.lazy
    ctx = click.Context(cli)
    for name in cli.lazy:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    assert set(cli.lazy) <= set(cli.list_commands(ctx))


def test_control_names_the_manager_as_teardown_does() -> None:
    assert control.MANAGER_KEY == teardown.MANAGER_KEY


def test_a_manager_that_gets_no_spec_exits_and_makes_nothing(tmp_path: Path) -> None:
    env = dict(os.environ, VHPC_STATE_ROOT=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "vhpc.server.manager", "boot", "nospec"],
                          input="", capture_output=True, text=True, env=env, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert list(tmp_path.iterdir()) == []
