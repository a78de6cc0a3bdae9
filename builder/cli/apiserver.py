"""`apiserver`: a real Kubernetes API server on loopback until Ctrl-C."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from builder.cli.display import display
from builder.cli.options import (
    progress_options,
    stop_on_sigterm,
)
from builder.cluster.apiserver import linkerd_crds, local_apiserver, prepare_apiserver


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/apiserver"),
    show_default=True,
    help="Where the kubeconfig, the logs and etcd's data go.",
)
@click.option(
    "--crds",
    "crd_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CRDs to apply (repeat); default: `linkerd install --crds` when linkerd is on PATH.",
)
@click.option(
    "--prepare",
    is_flag=True,
    help="Only build kube-apiserver (cached) and find etcd, then exit.",
)
@progress_options
def apiserver(
    folder: Path, crd_files: tuple[Path, ...], prepare: bool, progress_mode: str, verbose: bool
) -> None:
    """Run a real Kubernetes API server (etcd + kube-apiserver) on loopback until Ctrl-C.

    It has Linkerd's CRDs, so `run --kubeconfig DIR/kubeconfig --apply` and the
    manifests can be tried against it. Everything stops on Ctrl-C (or SIGTERM).
    """
    if prepare:
        with display(progress_mode, verbose=verbose) as progress:
            binary, etcd = prepare_apiserver(progress)
        click.echo(f"kube-apiserver {binary}; etcd {etcd}")
        return
    crds = tuple(path.read_text() for path in crd_files) or linkerd_crds()
    stop_requested = stop_on_sigterm()
    with contextlib.ExitStack() as running:
        with display(progress_mode, verbose=verbose) as progress:
            server = running.enter_context(
                local_apiserver(folder=folder, crds=crds, progress=progress)
            )
        click.echo(f"Kubernetes API server at {server.url}; CRDs applied: {len(server.crds)}")
        click.echo(f"export KUBECONFIG={server.kubeconfig.resolve()}")
        click.echo("stop with Ctrl-C")
        with contextlib.suppress(KeyboardInterrupt):
            stop_requested.wait()
        click.echo("stopping the API server and etcd", err=True)
