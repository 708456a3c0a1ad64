"""`vhpc user add|ls`: cluster users and their Slurm accounts (thin client of the API)."""

from __future__ import annotations

import click
from rich.table import Table

from vhpc import control
from vhpc.cli.output import out_console, plain, print_json, say, waiting
from vhpc.spec.users import check_account, check_user_name


@click.group(name="user")
def user_group() -> None:
    """Add and list the cluster's users (its passwd, homes and Slurm associations)."""


@user_group.command(name="add")
@click.argument("name")
@click.option("-a", "--account", default="default", show_default=True,
              help="Slurm account of the user (one that exists, or see --new-account).")
@click.option("--new-account", is_flag=True, help="Make the account if it does not exist.")
@click.option("--json", "as_json", is_flag=True, help="Print the new user as JSON.")
@click.pass_obj
def add(obj: dict[str, str], name: str, account: str, new_account: bool,
        as_json: bool) -> None:
    """Add a user: vhpc user add carol --account physics"""
    check_user_name(name, "user add")  # before any manager is started
    check_account(account, "user add --account")
    client = control.ensure_manager(obj["cluster"])
    with waiting(f"adding user {name}"):
        user = plain(client.add_user(name, account, new_account))
    if as_json:
        print_json(user)
        return
    say(f"added user {user['name']} (uid {user['uid']}, account {user['account']}, "
        f"home {user['home']}); try: vhpc -c {obj['cluster']} exec slurm --user "
        f"{user['name']} -- srun hostname")


@user_group.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.pass_obj
def ls(obj: dict[str, str], as_json: bool) -> None:
    """The cluster's users, their accounts, uids and homes."""
    doc = plain(control.ensure_manager(obj["cluster"]).users())
    if as_json:
        print_json(doc)
        return
    table = Table(box=None, header_style="bold")
    for col in ("USER", "ACCOUNT", "UID", "HOME"):
        table.add_column(col)
    for u in doc["users"]:
        table.add_row(u["name"] + (" (default)" if u["default"] else ""), u["account"],
                      str(u["uid"]), u["home"])
    out_console.print(table)
    if not doc["accounting"]:
        say("accounting is off (up --no-accounting): accounts are not enforced by Slurm")
