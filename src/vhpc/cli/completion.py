"""`vhpc completion bash|zsh|fish`: the shell completion script, from click's own machinery.

    eval "$(vhpc completion bash)"          # in ~/.bashrc
    eval "$(vhpc completion zsh)"           # in ~/.zshrc (after compinit)

Commands, options and choices complete; node names complete from the selected cluster's
spec (`vhpc exec comp<TAB>`, `vhpc logs --node <TAB>`), read from its state directory
without asking the manager.
"""

from __future__ import annotations

import json

import click
from click.shell_completion import CompletionItem, get_completion_class

from vhpc.spec.model import ClusterSpec
from vhpc.spec.paths import ClusterPaths

SHELLS = ("bash", "zsh", "fish")
PROG = "vhpc"
COMPLETE_VAR = "_VHPC_COMPLETE"  # click's convention: _{PROG}_COMPLETE


def completion_script(root: click.Command, shell: str) -> str:
    """The script that makes `shell` complete `root`'s commands, options and node names."""
    comp_cls = get_completion_class(shell)
    if comp_cls is None:  # the Choice below lets only known shells through
        raise click.BadParameter(f"no completion for {shell!r}")
    return comp_cls(root, {}, PROG, COMPLETE_VAR).source()


def _cluster_of(ctx: click.Context) -> str:
    root = ctx.find_root()
    return str(root.params.get("cluster") or "vhpc")


def node_names(ctx: click.Context, param: click.Parameter,
               incomplete: str) -> list[CompletionItem]:
    """Node names of the selected cluster that start with what is typed (none if down)."""
    try:
        spec = ClusterSpec.from_dict(json.loads(
            ClusterPaths.of(_cluster_of(ctx)).spec.read_text()))
        names = [n.name for n in spec.nodes]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


@click.command(name="completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell: str) -> None:
    """Print the shell completion script:  eval "$(vhpc completion bash)" """
    root = click.get_current_context().find_root().command
    click.echo(completion_script(root, shell))
