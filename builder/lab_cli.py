"""`meshexp-build lab up|status|down`: the click layer over builder.lab."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from builder.apiserver import linkerd_crds
from builder.display import MODES, display
from builder.lab import LabSources, lab_down, lab_status, lab_up

DEFAULT_DIR = Path("out/lab")
PROGRAMS = {
    "controller": "controller",
    "policy_controller": "linkerd-policy-controller",
    "proxy_identity": "proxy-identity",
    "linkerd": "linkerd",
}


dir_option = click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="The lab's state: kubeconfig, certificates, logs.",
)


@click.group()
def lab() -> None:
    """A real Linkerd control plane on a Docker network, without Kubernetes nodes."""


def sources_from(programs: Path | None, proxy_file: Path, linkerd: Path | None) -> LabSources:
    """The programs from one folder (Linkerd's, built from source); linkerd from PATH."""
    if programs is None:
        raise click.UsageError(
            "give --programs DIR: a folder with Linkerd's controller, "
            "linkerd-policy-controller and proxy-identity (built from linkerd2's source, "
            "or copied out of the cr.l5d.io controller, policy-controller and proxy images); "
            "copying them out of the images by the lab itself is not built yet"
        )
    found = {key: programs / name for key, name in PROGRAMS.items()}
    if linkerd is not None:
        found["linkerd"] = linkerd
    elif not found["linkerd"].is_file() and shutil.which("linkerd"):
        found["linkerd"] = Path(str(shutil.which("linkerd")))
    return LabSources(proxy=proxy_file, **found).check()


@lab.command("up")
@dir_option
@click.option(
    "--programs",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with controller, linkerd-policy-controller, proxy-identity (and linkerd).",
)
@click.option(
    "--proxy-file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The linkerd2-proxy binary.",
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
    type=click.Path(dir_okay=False, path_type=Path),
    help="Linkerd's CRDs (default: `linkerd install --crds`).",
)
@click.option("--progress", "progress_mode", type=click.Choice(MODES), default="auto")
def lab_up_command(
    folder: Path,
    programs: Path | None,
    proxy_file: Path,
    linkerd: Path | None,
    crd_files: tuple[Path, ...],
    progress_mode: str,
) -> None:
    """Start the lab; print what runs where and the kubeconfig."""
    sources = sources_from(programs, proxy_file, linkerd)
    crds = tuple(path.read_text() for path in crd_files) or linkerd_crds(sources.linkerd)
    with display(progress_mode) as progress:
        started = lab_up(folder=folder, sources=sources, crds=crds, progress=progress)
    _, states = lab_status(folder=folder)
    click.echo(f"lab {started.name}: network {started.network} ({started.addresses.subnet})")
    for state in states:
        click.echo(f"  {state.name:<28} {state.status:<8} {state.detail}")
    click.echo(f"  DNS for workloads: --dns {started.dns}")
    click.echo(f"export KUBECONFIG={started.kubeconfig}")


@lab.command("status")
@dir_option
def lab_status_command(folder: Path) -> None:
    """What of the lab runs, and whether the control-plane proxies are ready."""
    found, states = lab_status(folder=folder)
    click.echo(f"lab {found.name}: network {found.network} ({found.addresses.subnet})")
    for state in states:
        click.echo(f"  {state.name:<28} {state.status:<8} {state.detail}")
    if not states:
        raise click.ClickException("nothing of the lab runs; `meshexp-build lab up` starts it")


@lab.command("down")
@dir_option
@click.option("--name", default="meshexp-lab", show_default=True)
def lab_down_command(folder: Path, name: str) -> None:
    """Remove every container and network of the lab, and its API server's data."""
    removed = lab_down(name=name, folder=folder)
    click.echo("\n".join(f"removed {item}" for item in removed) or "nothing of the lab was running")
