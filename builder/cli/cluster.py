"""`meshexp-build cluster prepare|up|down`: a throwaway kind cluster built offline."""

from __future__ import annotations

from pathlib import Path

import click

from builder.cli.display import display
from builder.cli.options import folder_option, progress_options, settings_from
from builder.cluster.kind import (
    KindCluster,
    create_cluster,
    delete_cluster,
    prepare_kind,
    saved_provider,
)

DEFAULT_DIR = Path("out/cluster")
DEFAULT_NAME = "meshexp"

dir_option = folder_option(DEFAULT_DIR, "The cluster's kubeconfig and kind config.")
name_option = click.option(
    "--name", default=DEFAULT_NAME, show_default=True, help="The kind cluster's name."
)


@click.group()
def cluster() -> None:
    """A kind cluster with a node image built here from Debian's packages and the Go
    module proxy (no registry needed)."""


@cluster.command()
@dir_option
@progress_options
def prepare(folder: Path, progress_mode: str, verbose: bool) -> None:
    """Build kind and the node image (each once, cached by content), then exit."""
    with display(progress_mode, verbose=verbose) as progress:
        provider = prepare_kind(folder=folder, progress=progress)
    click.echo(f"kind {provider.kind}; node image {provider.node_image}")
    if provider.note:
        click.echo(provider.note)


@cluster.command()
@dir_option
@name_option
@click.option(
    "--network", default=None, help="The Docker network of the nodes (default: the name)."
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    help="UPSTREAM=MIRROR: the nodes pull images under the registry UPSTREAM from MIRROR "
    "(repeat), e.g. ghcr.io=registry.corp:5000/ghcr; default: the settings file's mirrors.",
)
@progress_options
def up(
    folder: Path,
    name: str,
    network: str | None,
    mirrors: tuple[str, ...],
    progress_mode: str,
    verbose: bool,
) -> None:
    """Create the cluster on a Docker network; `cluster down` deletes it."""
    settings = settings_from({"mirrors": mirrors or None})
    with display(progress_mode, verbose=verbose) as progress:
        provider = prepare_kind(folder=folder, settings=settings, progress=progress)
        with progress.phase(f"kind create cluster {name}"):
            made = create_cluster(
                provider=provider, name=name, network=network or name, folder=folder
            )
    click.echo(
        f"cluster {made.name} on network {made.network}; "
        f"kubectl --kubeconfig {made.kubeconfig} get nodes"
    )


@cluster.command()
@dir_option
@name_option
@click.option("--network", default=None, help="The nodes' Docker network (default: the name).")
def down(folder: Path, name: str, network: str | None) -> None:
    """Delete the cluster and its network."""
    made = KindCluster(name, network or name, folder / "kubeconfig", saved_provider(folder))
    problems = delete_cluster(made)
    if problems:
        raise click.ClickException("; ".join(problems))
    click.echo(f"cluster {name} deleted")
