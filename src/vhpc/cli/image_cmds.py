"""`vhpc image build|ls|rm`: the node images clusters may boot on (`up --image NAME`)."""

from __future__ import annotations

import time
from dataclasses import asdict

import click
from rich.table import Table

from vhpc.cli.output import out_console, print_json, say
from vhpc.spec import images as recipes
from vhpc.spec.model import HOST_IMAGE
from vhpc.spec.sizes import format_size


@click.group(name="image")
def image_group() -> None:
    """Build, list and remove node images (Debian root trees: debian12, debian13)."""


@image_group.command(name="build")
@click.argument("name")
def build(name: str) -> None:
    """Build an image from Debian's packages: vhpc image build debian13"""
    from vhpc.cluster.image_build import build as build_image

    recipes.recipe_of(name)  # an unknown name fails before anything is made
    meta = build_image(name)
    say(f"built image {meta.name}: Slurm {meta.slurm_version}, Open MPI "
        f"{meta.openmpi_version}, Python {meta.python_version}, "
        f"{format_size(meta.size)}; try: vhpc up --image {meta.name}")


@image_group.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print the images as JSON.")
def ls(as_json: bool) -> None:
    """List the built images (and the host's own, `host`)."""
    from vhpc.runtime import images

    built = images.built()
    if as_json:
        print_json([asdict(i) for i in built])
        return
    table = Table(box=None)
    for column in ("IMAGE", "SLURM", "OPEN MPI", "PYTHON", "SIZE", "BUILT"):
        table.add_column(column)
    table.add_row(HOST_IMAGE, "(the host's)", "", "", "", "")
    for image in built:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(image.built_at))
        table.add_row(image.name, image.slurm_version, image.openmpi_version,
                      image.python_version, format_size(image.size), when)
    out_console.print(table)
    missing = sorted(set(recipes.RECIPES) - {i.name for i in built})
    if missing:
        say(f"buildable: {', '.join(missing)} (vhpc image build NAME)")


@image_group.command(name="rm")
@click.argument("name")
def rm(name: str) -> None:
    """Remove a built image (refused while a cluster uses it)."""
    from vhpc.runtime import images

    images.remove(name)
    say(f"removed image {name}")
