"""`vhpc completion bash|zsh`: click's completion scripts, and node names from the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli_fakes import make_spec, run_vhpc, write_state


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o nosort -F"),
                                                ("zsh", "compdef _vhpc_completion vhpc")])
def test_completion_prints_the_script_on_stdout(shell: str, marker: str) -> None:
    result = run_vhpc("completion", shell)
    assert result.code == 0 and result.stderr == ""
    assert marker in result.stdout and "_VHPC_COMPLETE" in result.stdout


def test_an_unknown_shell_is_refused_with_the_choices() -> None:
    result = run_vhpc("completion", "tcsh")
    assert result.code == 2 and result.stdout == ""
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr


def complete(words: str, env: dict[str, str]) -> list[str]:
    """What bash gets back for `words` + TAB (click's bash_complete protocol)."""
    argv = words.split()
    result = run_vhpc(*argv[1:], env=dict(env, _VHPC_COMPLETE="bash_complete",
                                          COMP_WORDS=words, COMP_CWORD=str(len(argv) - 1)))
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_commands_options_and_node_names_complete(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    env = {"VHPC_STATE_ROOT": str(tmp_path)}
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path))
    write_state(tmp_path, make_spec("hbt", 3))
    assert "completion" in complete("vhpc comp", env)
    assert complete("vhpc -c hbt exec comp", env) == ["compute0", "compute1", "compute2"]
    assert complete("vhpc -c hbt logs --node sl", env) == ["slurm"]
    assert complete("vhpc logs --service slurm", env) == ["slurmctld", "slurmd", "slurmdbd",
                                                          "slurmrestd"]
    assert complete("vhpc -c nosuch exec comp", env) == []  # no cluster: no names, no error
