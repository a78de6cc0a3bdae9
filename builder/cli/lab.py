"""`meshexp-build lab up|status|down`: the click layer over builder.lab."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from builder.cli.display import MODES, display
from builder.cli.options import folder_option, pull_options, settings_from
from builder.cluster.apiserver import linkerd_crds
from builder.config.settings import Settings
from builder.core.cache import cache_root
from builder.lab import (
    ComponentState,
    Lab,
    LabSources,
    lab_certs,
    lab_down,
    lab_status,
    lab_up,
    sources_from_images,
)

DEFAULT_DIR = Path("out/lab")
PROGRAMS = {
    "controller": "controller",
    "policy_controller": "linkerd-policy-controller",
    "proxy_identity": "proxy-identity",
    "linkerd": "linkerd",
}


dir_option = folder_option(DEFAULT_DIR, "The lab's state: kubeconfig, certificates, logs.")


@click.group()
def lab() -> None:
    """A real Linkerd control plane on a Docker network, without Kubernetes nodes."""


def sources_from(
    programs: Path | None,
    proxy_file: Path | None,
    linkerd: Path | None,
    settings: Settings | None = None,
) -> LabSources:
    """Linkerd's programs from one folder (built from source), else copied out of
    Linkerd's images for the linkerd CLI's release; the CLI from the folder or PATH.
    """
    on_path = shutil.which("linkerd")
    if programs is None:
        cli = linkerd or (Path(on_path) if on_path else None)
        if cli is None:
            raise click.UsageError(
                "the lab renders Linkerd's objects with the linkerd CLI: install it "
                "(https://linkerd.io/2/getting-started/) or give --linkerd FILE"
            )
        sources = sources_from_images(cli, cache_root() / "lab", settings)
        return replace(sources, proxy=proxy_file).check() if proxy_file else sources
    if proxy_file is None:
        raise click.UsageError("with --programs, give the proxy too: --proxy-file FILE")
    found = {key: programs / name for key, name in PROGRAMS.items()}
    if linkerd is not None:
        found["linkerd"] = linkerd
    elif not found["linkerd"].is_file() and on_path:
        found["linkerd"] = Path(on_path)
    return LabSources(proxy=proxy_file, **found).check()


def show(running: Lab, states: list[ComponentState]) -> None:
    subnets = " and ".join(filter(None, (running.addresses.subnet, running.addresses.ipv6_subnet)))
    click.echo(f"lab {running.name}: network {running.network} ({subnets})")
    for state in states:
        click.echo(f"  {state.name:<28} {state.status:<8} {state.detail}")


@lab.command("up")
@dir_option
@click.option(
    "--programs",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with controller, linkerd-policy-controller, proxy-identity (and linkerd). "
    "Default: copied out of Linkerd's images (cr.l5d.io) for the linkerd CLI's release.",
)
@click.option(
    "--proxy-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The linkerd2-proxy binary (default: the proxy image's, with --programs required).",
)
@click.option(
    "--linkerd",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The linkerd CLI (default: in --programs, else on PATH).",
)
@click.option(
    "--crds",
    "crd_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Linkerd's CRDs (default: `linkerd install --crds`).",
)
@pull_options
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file for pull and mirrors. Default: ./meshexp.yaml when present.",
)
@click.option(
    "--ipv6",
    is_flag=True,
    help="A dual-stack lab network (an IPv6 /64 of fd00::/8 beside the IPv4 /24): "
    "workloads run into it get both addresses, and their ExternalWorkloads list both.",
)
@click.option("--progress", "progress_mode", type=click.Choice(MODES), default="auto")
def lab_up_command(
    folder: Path,
    programs: Path | None,
    proxy_file: Path | None,
    linkerd: Path | None,
    crd_files: tuple[Path, ...],
    ipv6: bool,
    progress_mode: str,
    **options: Any,
) -> None:
    """Start the lab; print what runs where and the kubeconfig."""
    sources = sources_from(programs, proxy_file, linkerd, settings_from(options))
    crds = tuple(path.read_text() for path in crd_files) or linkerd_crds(sources.linkerd)
    with display(progress_mode) as progress:
        started = lab_up(folder=folder, sources=sources, crds=crds, progress=progress, ipv6=ipv6)
    _, states = lab_status(folder=folder)
    show(started, states)
    click.echo(f"  DNS for workloads: --dns {started.dns}")
    click.echo(f"export KUBECONFIG={started.kubeconfig}")


@lab.command("status")
@dir_option
def lab_status_command(folder: Path) -> None:
    """What of the lab runs, and whether the control-plane proxies are ready."""
    found, states = lab_status(folder=folder)
    show(found, states)
    if not states:
        raise click.ClickException("nothing of the lab runs; `meshexp-build lab up` starts it")


@lab.command("certs")
@dir_option
@click.option("--progress", "progress_mode", type=click.Choice(MODES), default="auto")
def lab_certs_command(folder: Path, progress_mode: str) -> None:
    """Take the lab's certs/ (after `certs --rotate`) into its control plane: the trust
    roots and the issuer applied, then each control-plane pod started again, one at a
    time. Restart the workloads after it, one at a time (docs/rotation.md)."""
    with display(progress_mode) as progress:
        running = lab_certs(folder=folder, progress=progress)
    _, states = lab_status(folder=folder)
    show(running, states)


@lab.command("down")
@dir_option
@click.option("--name", default="meshexp-lab", show_default=True)
def lab_down_command(folder: Path, name: str) -> None:
    """Remove every container and network of the lab, and its API server's data."""
    removed = lab_down(name=name, folder=folder)
    click.echo("\n".join(f"removed {item}" for item in removed) or "nothing of the lab was running")
