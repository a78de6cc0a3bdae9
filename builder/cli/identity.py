"""`certs`, `node-cert` and `spire-server`: the trust anchor, the issuer and SPIRE."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from builder.cli.display import display
from builder.cli.options import (
    emit_json,
    progress_options,
    setting_options,
    settings_from,
    workload_of,
)
from builder.cluster.certs import ROTATION_COMMANDS, create_certs, create_node_cert, rotate_certs
from builder.cluster.spire_server import (
    build_server_image,
    entry_commands,
    register,
    start_server,
)
from builder.config.settings import (
    Settings,
)


@click.command()
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for ca.crt, issuer.crt, issuer.key (mount it into containers).",
)
@click.option(
    "--anchor-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the trust anchor's key goes (default: DIR-anchor/ca.key).",
)
@click.option("--force", is_flag=True, help="Replace existing certificates and keys.")
@click.option(
    "--rotate",
    type=click.Choice(ROTATION_COMMANDS),
    help="One phase of a trust-anchor rotation of the folder's certificates: bundle (a "
    "new anchor, ca.crt trusts both), issuer (a new issuer under the new anchor), finish "
    "(ca.crt trusts the new anchor alone); status (where a rotation stands, writes "
    "nothing) or abort (back to the old anchor, before the issuer moved). docs/rotation.md.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def certs(
    output_dir: Path, anchor_key: Path | None, force: bool, rotate: str | None, as_json: bool
) -> None:
    """Create a trust anchor and an identity issuer (ECDSA P-256) for Linkerd and SPIRE."""
    if rotate is not None:
        if force:
            raise click.UsageError("--rotate keeps what is there: drop --force")
        rotated = rotate_certs(folder=output_dir, phase=rotate, anchor_key=anchor_key)
        if as_json:
            emit_json(dataclasses.asdict(rotated))
            return
        for path in rotated.written:
            click.echo(f"wrote {path}")
        for path in rotated.removed:
            click.echo(f"removed {path}")
        click.echo(f"{output_dir}/ca.crt trusts: " + "; ".join(rotated.anchors))
        click.echo(f"next: {rotated.next_step}")
        return
    result = create_certs(folder=output_dir, anchor_key=anchor_key, force=force)
    if as_json:
        emit_json(dataclasses.asdict(result))
        return
    for path in result.written:
        click.echo(f"wrote {path}")
    click.echo(
        f"trust anchor valid until {result.anchor_not_after:%Y-%m-%d}, issuer until "
        f"{result.issuer_not_after:%Y-%m-%d}"
    )
    click.echo(
        f"keep {result.anchor_key} away from containers; mount {result.folder} at /opt/spire/certs"
    )


@click.command("node-cert")
@click.option("--workload", "workload_name", required=True, help="The CN: the workload's name.")
@click.option(
    "--certs",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder with ca.crt, issuer.crt, issuer.key.",
)
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for ca.crt, node.crt, node.key (mount it into the agent-only image).",
)
@setting_options
def node_cert(workload_name: str, certs: Path, output_dir: Path, **options: Any) -> None:
    """Create an x509pop node certificate for an agent-only image (production topology)."""
    workload = workload_of(workload_name, settings_from(options))
    folder = create_node_cert(certs=certs, name=workload.name, output=output_dir)
    click.echo(f"wrote {folder}/ca.crt, node.crt, node.key (CN={workload.name})")


@click.group("spire-server")
def spire_server() -> None:
    """The external SPIRE server of the production topology."""


def register_and_report(
    server: str, settings: Settings, names: tuple[str, ...], tokens_dir: Path | None
) -> None:
    workloads = [workload_of(item, settings) for item in names]
    for item in register(
        server=server, settings=settings, workloads=workloads, tokens_dir=tokens_dir
    ):
        where = f"; join token in {item.token_file}" if item.token_file else ""
        click.echo(f"registered {item.spiffe_id} (parent {item.agent_id}){where}")


@spire_server.command("start")
@click.option("--network", required=True, help="Docker network (created if missing).")
@click.option("--name", default="meshexp-spire-server", show_default=True)
@click.option(
    "--certs",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder with ca.crt, issuer.crt, issuer.key.",
)
@click.option(
    "--register", "register_names", multiple=True, help="Register this catalog workload (repeat)."
)
@click.option(
    "--tokens",
    "tokens_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a join token per registered workload here (mode 0600).",
)
@setting_options
@progress_options
def spire_server_start(
    network: str,
    name: str,
    certs: Path,
    register_names: tuple[str, ...],
    tokens_dir: Path | None,
    progress_mode: str,
    verbose: bool,
    **options: Any,
) -> None:
    """Build (if needed) and start the server, then register workloads."""
    settings = settings_from(options)
    with display(progress_mode, verbose=verbose) as progress:
        build_server_image(settings=settings, on_line=progress)
    address = start_server(settings=settings, network=network, name=name, certs=certs)
    click.echo(f"SPIRE server {name} healthy at {address}:8081 on network {network}")
    register_and_report(name, settings, register_names, tokens_dir)


@spire_server.command("register")
@click.option("--name", default="meshexp-spire-server", show_default=True)
@click.option("--workload", "workload_names", multiple=True, required=True)
@click.option("--tokens", "tokens_dir", type=click.Path(file_okay=False, path_type=Path))
@setting_options
def spire_server_register(
    name: str, workload_names: tuple[str, ...], tokens_dir: Path | None, **options: Any
) -> None:
    """Register workloads with a running server (and write join tokens)."""
    settings = settings_from(options)
    register_and_report(name, settings, workload_names, tokens_dir)


@spire_server.command("entries")
@click.option("--workload", "workload_names", multiple=True, required=True)
@setting_options
def spire_server_entries(workload_names: tuple[str, ...], **options: Any) -> None:
    """Print the exact server-side commands that register workloads."""
    settings = settings_from(options)
    for item in workload_names:
        click.echo(f"# {item}")
        for command in entry_commands(workload_of(item, settings), settings):
            click.echo(command)
