"""`vhpc`: boot and drive a virtual HPC cluster. Every command is a thin client of the API."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import click

from vhpc import control
from vhpc.cli.completion import node_names
from vhpc.cli.errors import run_cli
from vhpc.cli.lazy import LazyGroup
from vhpc.cli.output import err_console, out_console, plain, print_json, say, waiting
from vhpc.errors import ClusterStateError
from vhpc.spec.load import CONTROLLER_NAME, ClusterOptions
from vhpc.spec.paths import ClusterPaths
from vhpc.spec.placement import format_cpulist

# Only what `vhpc up` needs is imported here; other commands import theirs when they run
# (cli/lazy.py), so the boot's fixed cost does not include the whole CLI.


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--cluster", default="vhpc", envvar="VHPC_CLUSTER", show_default=True,
              help="Which cluster (env VHPC_CLUSTER).")
@click.option("--debug", is_flag=True, envvar="VHPC_DEBUG", help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, cluster: str, debug: bool) -> None:
    """Boot a virtual HPC cluster (real Slurm, munge, MPI) from namespaces and cgroups."""
    ctx.obj = {"cluster": cluster, "debug": debug}


@cli.command()
@click.option("-f", "--file", "site_file", default=None, metavar="FILE",
              help="Cluster file (TOML: [cluster], [[nodes]], [[partitions]], [[shares]]); "
                   "flags given too override it.")
@click.option("--share", "shares", multiple=True, metavar="HOST[:PATH]",
              help="Bind-mount host directory HOST read-write into every node at PATH "
                   "(default: the same path); repeatable.")
@click.option("-n", "--nodes", default=4, show_default=True, help="Compute nodes.")
@click.option("--memory", default=None,
              help="Memory limit per node (a hard cap) [default: 1G, less if the host is "
                   "small; the seed's was 125M].")
@click.option("--cpus", type=int, default=None, help="CPUs per node (round-robin; default 1).")
@click.option("--cpuset", default=None, help="Explicit CPU list for every node, e.g. 0-1.")
@click.option("--subnet", default=None, help="Cluster subnet (default: a free 10.201.x.0/24).")
@click.option("--overcommit", is_flag=True, help="Allow more node memory than the host has.")
@click.option("--partition", default="vhpc", show_default=True, help="Slurm partition name.")
@click.option("--max-nodes", type=int, default=None,
              help="Slurm MaxNodeCount (default: subnet size).")
@click.option("--pids-max", type=int, default=None,
              help="Most tasks (processes and threads) a compute node may hold "
                   "[default: 1024].")
@click.option("--gpus", default="", metavar="N|TYPE:N",
              help="Fake GPUs per compute node, e.g. 2 or a100:2 (Slurm GRES gpu).")
@click.option("--users", default="", metavar="NAME:ACCOUNT,...",
              help="Cluster users besides cluser and their Slurm accounts, "
                   "e.g. alice:physics,bob:chem.")
@click.option("--image", default="host", show_default=True, metavar="NAME",
              help="Root filesystem of the nodes: the host's own, or a built image "
                   "(vhpc image ls), e.g. debian13.")
@click.option("--no-accounting", is_flag=True,
              help="No db node (MariaDB + slurmdbd): no sacct, sreport, fair share.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the status as JSON when up, with the API token.")
@click.option("--listen", default=None, metavar="ADDR:PORT",
              help="Dashboard/API address (default 127.0.0.1:any); non-loopback needs the "
                   "printed token.")
@click.option("--graphite", default=None, metavar="HOST:PORT",
              help="Also send metrics to Graphite (plaintext protocol).")
@click.option("--syslog", default=None, metavar="HOST:PORT",
              help="Also forward logs and events to a syslog server (TCP, RFC 5424).")
@click.option("--sample-interval", type=click.FloatRange(0.2, 3600), default=5.0,
              show_default=True, help="Seconds between metric samples.")
@click.pass_obj
def up(obj: dict[str, str], site_file: str | None, shares: tuple[str, ...], nodes: int,
       memory: str | None, cpus: int | None, cpuset: str | None,
       subnet: str | None, overcommit: bool, partition: str, max_nodes: int | None,
       as_json: bool, listen: str | None, graphite: str | None, syslog: str | None,
       sample_interval: float, pids_max: int | None, gpus: str, users: str,
       no_accounting: bool, image: str) -> None:
    """Boot the cluster; returns when every compute node is idle in Slurm."""
    from vhpc.web.listen import parse_listen

    if listen:
        parse_listen(listen)  # fail before booting
    extra = {"listen": listen, "graphite": graphite, "syslog": syslog,
             "sample_interval": f"{sample_interval:g}"}
    options = ClusterOptions(name=obj["cluster"], nodes=nodes, memory=memory, cpus=cpus,
                             cpuset=cpuset, subnet=subnet, overcommit=overcommit,
                             partition=partition, max_nodes=max_nodes, pids_max=pids_max,
                             gpus=gpus, users=(users,) if users else (),
                             accounting=not no_accounting, image=image,
                             extra=tuple((k, v) for k, v in extra.items() if v))
    if site_file is not None or shares:  # the cluster file's reader loads pydantic
        from vhpc.cli import site_cmds

        options = site_cmds.up_options(click.get_current_context(), site_file, shares,
                                       options)
    with boot_progress() as progress:
        result = control.up(options, progress)
    spec = result.spec
    token = read_token(spec.name)
    if as_json:
        doc = plain(control.ensure_manager(spec.name).status())
        doc.setdefault("dashboard", result.dashboard)
        print_json(dict(doc, token=token))
        return
    cpus_used = sorted({c for n in spec.computes for c in n.cpuset})
    flag = "" if spec.name == "vhpc" else f" -c {spec.name}"
    out_console.print(
        f"cluster [bold]{spec.name}[/] is up: {len(spec.computes)} compute nodes "
        f"({spec.computes[0].name}..{spec.computes[-1].name}) on CPUs "
        f"{format_cpulist(cpus_used)}, {spec.subnet}, controller '{CONTROLLER_NAME}'\n"
        f"  dashboard  {result.dashboard}\n"
        f"  API token  {token} "
        f"(every TCP request: Authorization: Bearer TOKEN)\n"
        f"  try        vhpc{flag} exec slurm --user cluser -- srun -N{len(spec.computes)} "
        f"hostname\n"
        f"  host side  eval \"$(vhpc{flag} env)\"; sinfo\n"
        f"  stop       vhpc{flag} down"
    )


@cli.command()
@click.option("--keep-logs", is_flag=True,
              help="Keep the cluster's logs in /var/lib/vhpc/.failed/NAME-TIME/ "
                   "('vhpc clean' removes them).")
@click.pass_obj
def down(obj: dict[str, str], keep_logs: bool) -> None:
    """Stop the cluster and remove everything it made (its session weighted from the
    script's first lines: cli/entry.py)."""
    with waiting(f"stopping cluster {obj['cluster']}"):
        result = control.down_result(obj["cluster"], keep_logs)
    if result.leftovers:
        raise click.ClickException("could not remove: " + "; ".join(result.leftovers))
    say(f"cluster {obj['cluster']} removed")
    if keep_logs:
        say(f"its logs are kept in {result.logs} ('vhpc -c {obj['cluster']} clean' removes "
            "them)" if result.logs else "it had no logs to keep")


@cli.command()
@click.option("--all", "all_clusters", is_flag=True, help="Every cluster with state here.")
@click.option("--force", is_flag=True, help="Also remove a cluster that is still running.")
@click.pass_obj
def clean(obj: dict[str, str], all_clusters: bool, force: bool) -> None:
    """Remove what a crashed cluster left behind, from its ledger, the logs kept of
    failed boots and 'down --keep-logs', and what an interrupted 'down' left to delete."""
    names = control.list_clusters() if all_clusters else [obj["cluster"]]
    for name in names:
        leftovers = control.clean(name, force=force)
        state = "could not remove: " + "; ".join(leftovers) if leftovers else "clean"
        say(f"{name}: {state}")
    for kept in control.remove_kept_logs(None if all_clusters else obj["cluster"]):
        say(f"removed kept logs {kept}")
    for trash in control.remove_trash(None if all_clusters else obj["cluster"]):
        say(f"removed trash {trash} (an interrupted 'down' left it)")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.pass_obj
def status(obj: dict[str, str], as_json: bool) -> None:
    """Nodes: ip, cpuset, memory limit/usage, OOM kills, Slurm state, pids, daemons."""
    from vhpc.cli.render import status_table

    doc = plain(control.ensure_manager(obj["cluster"]).status())
    if as_json:
        print_json(doc)
    else:
        status_table(doc, out_console)


@cli.command()
@click.option("--slurm", "jwt", is_flag=True,
              help="A Slurm JWT for the REST API (slurmrestd) instead of the API token.")
@click.option("-u", "--user", default=None,
              help="Cluster user the JWT is for [default: cluser]; implies --slurm.")
@click.option("--lifespan", type=int, default=None,
              help="Seconds the JWT is valid [default: 86400]; implies --slurm.")
@click.pass_obj
def token(obj: dict[str, str], jwt: bool, user: str | None, lifespan: int | None) -> None:
    """The manager's API token (Authorization: Bearer TOKEN); with --slurm a JWT for
    slurmrestd (X-SLURM-USER-TOKEN)."""
    if jwt or user is not None or lifespan is not None:
        from vhpc.rest import slurm_token
        from vhpc.services.slurmrestd import DEFAULT_LIFESPAN

        seconds = DEFAULT_LIFESPAN if lifespan is None else lifespan
        click.echo(slurm_token(obj["cluster"], user, seconds))
        return
    control.require_up(obj["cluster"])
    click.echo(read_token(obj["cluster"], strict=True))


@cli.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("node", shell_complete=node_names)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-u", "--user", default=None, help="Run as this cluster user (e.g. cluser).")
@click.pass_obj
def exec_(obj: dict[str, str], node: str, command: tuple[str, ...], user: str | None) -> None:
    """Run a command inside NODE:  vhpc exec slurm -- sinfo"""
    argv = control.exec_argv(obj["cluster"], node, list(command), user)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@cli.command()
@click.argument("node", default=CONTROLLER_NAME, shell_complete=node_names)
@click.option("-u", "--user", default=None, help="Log in as this cluster user (e.g. cluser).")
@click.pass_obj
def shell(obj: dict[str, str], node: str, user: str | None) -> None:
    """Interactive shell in NODE (default: the controller)."""
    argv = control.exec_argv(obj["cluster"], node, ["/bin/bash", "-i"], user)
    os.execvp(argv[0], argv)


@cli.command()
@click.option("--jwt", is_flag=True,
              help="Also export SLURM_JWT for slurmrestd (Slurm's clients then use it: "
                   "host-side srun stops working).")
@click.option("-u", "--user", default=None, help="User of the JWT [default: cluser].")
@click.option("--lifespan", type=int, default=None,
              help="Seconds the JWT is valid [default: 86400].")
@click.pass_obj
def env(obj: dict[str, str], jwt: bool, user: str | None, lifespan: int | None) -> None:
    """Shell exports so the host's sinfo/sbatch/srun talk to the cluster."""
    from vhpc.cli import site_cmds
    from vhpc.rest import env_lines, slurm_token
    from vhpc.services import host_clients
    from vhpc.services.slurmrestd import DEFAULT_LIFESPAN

    spec = control.load_spec(obj["cluster"])
    paths = ClusterPaths.of(spec.name)
    jwt = jwt or user is not None or lifespan is not None
    seconds = DEFAULT_LIFESPAN if lifespan is None else lifespan
    token = slurm_token(spec.name, user, seconds) if jwt else None
    click.echo(f"export SLURM_CONF={paths.slurm_conf}")
    click.echo(f"export VHPC_CLUSTER={spec.name}")
    if host_clients.wrapper_dir(paths).is_dir():  # squeue & co. name the cluster's users
        click.echo(host_clients.render_path_export(paths))
    for line in env_lines(spec.name, token, user or spec.user):
        click.echo(line)
    click.echo(f"# then: sinfo; sbatch --chdir {paths.home / spec.user} job.sh")
    site_cmds.warn_invisible_cwd(spec, paths)


@cli.command()
@click.option("--since", type=float, default=0.0, help="Unix time to start from.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.pass_obj
def events(obj: dict[str, str], since: float, as_json: bool) -> None:
    """Node added/removed/stopped, daemon restarts, OOM kills."""
    items = plain(control.ensure_manager(obj["cluster"]).events(since))
    if as_json:
        print_json(items)
        return
    import time

    for e in sorted(items, key=lambda e: float(e["ts"])):
        stamp = time.strftime("%H:%M:%S", time.localtime(e["ts"]))
        message = str(e["message"])
        if not message.startswith(f"{e.get('kind', '')}: "):
            message = f"{e.get('kind', 'event')}: {message}"
        click.echo(f"{stamp} {e['level']:7} {e['node'] or '-':10} {message}")


@cli.group()
def manager() -> None:
    """The cluster's manager process (supervision, API, dashboard)."""


@manager.command(name="restart")
@click.pass_obj
def manager_restart(obj: dict[str, str]) -> None:
    """Restart the manager; the running cluster is re-adopted, no job is lost."""
    with waiting(f"restarting the manager of {obj['cluster']}"):
        control.restart_manager(obj["cluster"])
    say(f"manager of {obj['cluster']} restarted and re-adopted the cluster")


@manager.command(name="status")
@click.pass_obj
def manager_status(obj: dict[str, str]) -> None:
    """Whether the manager answers (starting it again if it is gone)."""
    doc = plain(control.ensure_manager(obj["cluster"]).ping())
    click.echo(f"manager of {doc['cluster']}: {doc['phase']}, up {doc['uptime']}s")


# Commands of their own modules, one line each: imported only when they run.
assert isinstance(cli, LazyGroup)
cli.add_lazy("ls", "vhpc.cli.cluster_list:ls_cmd")
cli.add_lazy("node", "vhpc.cli.node_cmds:node_group")
cli.add_lazy("top", "vhpc.cli.observe_cmds:top_cmd")
cli.add_lazy("metrics", "vhpc.cli.observe_cmds:metrics_cmd")
cli.add_lazy("logs", "vhpc.cli.observe_cmds:logs_cmd")
cli.add_lazy("completion", "vhpc.cli.completion:completion_cmd")
cli.add_lazy("user", "vhpc.cli.user_cmds:user_group")
cli.add_lazy("spec", "vhpc.cli.site_cmds:spec_group")
cli.add_lazy("jobs", "vhpc.cli.job_cmds:jobs_cmd")
cli.add_lazy("fault", "vhpc.cli.fault_cmds:fault_group")
cli.add_lazy("load", "vhpc.cli.load_cmds:load_cmd")
cli.add_lazy("chaos", "vhpc.cli.chaos_cmds:chaos_group")
cli.add_lazy("image", "vhpc.cli.image_cmds:image_group")


@contextlib.contextmanager
def boot_progress() -> Iterator[control.ProgressFn | None]:
    """A progress bar on stderr while `up` boots; on a terminal only (rich loads it then)."""
    if not err_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("planning", total=None)

        def progress(message: str, done: int, total: int) -> None:
            bar.update(task, description=message, completed=done, total=total or None)

        yield progress


def read_token(cluster: str, strict: bool = False) -> str:
    """The cluster's API token; `strict` raises if it cannot be read, else says where it is."""
    from vhpc.web.listen import token_file

    path = token_file(ClusterPaths.of(cluster))
    try:
        text = path.read_text().strip()
    except OSError as err:
        if strict:
            raise ClusterStateError(f"cannot read the API token in {path} ({err.strerror}): "
                                    "run as root, or 'vhpc manager restart' to make it") from err
        return f"(in {path})"
    if strict and not text:
        raise ClusterStateError(f"the API token file {path} is empty: 'vhpc manager restart' "
                                "makes a new one")
    return text or f"(in {path})"


def main() -> None:
    """Console entry point."""
    debug = "--debug" in sys.argv or os.environ.get("VHPC_DEBUG") == "1"
    sys.exit(run_cli(lambda: cli.main(standalone_mode=False), debug))
