"""`meshexp-build registrar install|image`: the click layer over builder.registration."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from builder.build.upstream import ensure_image
from builder.cli.display import display
from builder.cli.options import pull_options, settings_from
from builder.config.validation import IMAGE_REF, shown
from builder.core.errors import MeshexpError
from builder.registration import install as installing

NAMESPACE = "meshexp"


@click.group()
def registrar() -> None:
    """Registration by identity: a service in the cluster that external workloads
    register with through the mesh (no Kubernetes credential on their hosts)."""


@registrar.command("install")
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The cluster to install into (not needed with --dry-run).",
)
@click.option("--namespace", default=NAMESPACE, show_default=True, help="The service's own.")
@click.option(
    "--group-namespace",
    "group_namespaces",
    multiple=True,
    help="A namespace its groups register workloads into (repeat); it writes only there.",
)
@click.option(
    "--image",
    default=installing.DEFAULT_IMAGE,
    show_default=True,
    help="The service's image (`meshexp-build registrar image` builds it).",
)
@click.option("--dry-run", is_flag=True, help="Print the objects as YAML; apply nothing.")
def install_command(
    kubeconfig: Path | None,
    namespace: str,
    group_namespaces: tuple[str, ...],
    image: str,
    dry_run: bool,
) -> None:
    """Install the registration service: its CRD (RegistrationGroup), account, RBAC,
    meshed Deployment and Service."""
    targets = list(group_namespaces)
    if dry_run:
        installing.check_install(namespace=namespace, group_namespaces=targets, image=image)
        documents = installing.install_documents(
            namespace=namespace, group_namespaces=targets, image=image
        )
        click.echo(yaml.safe_dump_all(documents, sort_keys=False), nl=False)
        return
    if kubeconfig is None:
        raise click.UsageError("give --kubeconfig FILE, or --dry-run to print the objects")
    applied = installing.install(
        kubeconfig=kubeconfig, namespace=namespace, group_namespaces=targets, image=image
    )
    for line in applied:
        click.echo(f"applied {line}")


@registrar.command("image")
@click.option("--tag", default=installing.DEFAULT_IMAGE, show_default=True)
@click.option(
    "--base",
    default="debian:bookworm-slim",
    show_default=True,
    help="A Debian bookworm image to build on (python3 comes from Debian's packages).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Build on the Debian base made here from Debian's packages (no registry).",
)
@pull_options
def image_command(
    tag: str, base: str, offline: bool, pull: str | None, mirrors: tuple[str, ...]
) -> None:
    """Build the registration service's image (one file and Debian's python3); the base
    is pulled as --pull says, through the mirrors of --mirror or the settings file."""
    if offline and (pull is not None or mirrors):
        raise click.UsageError(
            "--pull and --mirror are for the base's pull; --offline pulls nothing"
        )
    if not offline:
        if not IMAGE_REF.fullmatch(base):
            raise MeshexpError(f"--base: {shown(base)} is not an image reference (name[:tag])")
        settings = settings_from({"pull": pull, "mirrors": mirrors or None})
        with display("auto", verbose=False) as progress:
            base = ensure_image(base, settings, progress).used
    click.echo(installing.build_service_image(tag, base, offline=offline))
