"""`manifests`, `run`, `stop` and `keep-ready`: a built image started as the field does,
and its ExternalWorkload kept true to it."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import click

from builder.build.from_image import settle
from builder.cli.options import (
    emit_json,
    lab_option,
    output_option,
    parse_env,
    parse_pairs,
    setting_options,
    settings_from,
    stop_on_sigterm,
    workload_of,
)
from builder.cluster.keeper import Health, StatusKeeper, Target, targets_from_manifests
from builder.cluster.manifests import build_manifests
from builder.cluster.registrar import Registrar, default_owner, registrar_id
from builder.cluster.run import container_name, parse_route, run_workload, stop_workload
from builder.config.group import Group, group_with_flags, load_group
from builder.core.errors import MeshexpError
from builder.core.progress import Progress
from builder.lab import Lab, register_in_lab, run_in_lab


@click.command()
@click.option("--workload", "workload_name", required=True)
@click.option("--ip", "ips", multiple=True, required=True, help="Workload IP (repeat for v6).")
@click.option("--name", help="ExternalWorkload name (default: the workload's).")
@click.option("--namespace", help="Namespace (default: the workload's).")
@output_option
@click.option(
    "--authentication",
    is_flag=True,
    help="Also a MeshTLSAuthentication NAME-identity listing the SVID's names, for an "
    "AuthorizationPolicy that admits this workload.",
)
@setting_options
def manifests(
    workload_name: str,
    ips: tuple[str, ...],
    name: str | None,
    namespace: str | None,
    output_format: str,
    authentication: bool,
    **options: Any,
) -> None:
    """Print the ExternalWorkload, its Service, and the Ready status patch."""
    settings = settings_from(options)
    result = build_manifests(
        workload=settle(workload_of(workload_name, settings), settings, Progress()),
        settings=settings,
        ips=list(ips),
        name=name,
        namespace=namespace,
        authentication=authentication,
    )
    if output_format == "json":
        emit_json(dataclasses.asdict(result))
        return
    click.echo(result.yaml(), nl=False)
    if result.patch_command:
        click.echo(
            f"# then mark it ready (status is a subresource since Linkerd 2.16):\n"
            f"# {result.patch_command}"
        )


@click.command()
@click.option("--workload", "workload_name", required=True)
@click.option("--image", "image_ref", help="Image to run (default: from settings).")
@click.option("--name", help="Container name (default: meshexp-WORKLOAD).")
@click.option("--network", default="meshexp", show_default=True)
@click.option("--dns", "dns", multiple=True, help="DNS server for the container (repeat).")
@click.option(
    "--certs",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Trust anchor and issuer (meshexp-build certs); with --lab, the lab's.",
)
@click.option("--node-name", help="Free text for the proxy's destination context.")
@click.option("--route", "routes", multiple=True, help="CIDR:VIA, added inside the container.")
@click.option("--env", "env_pairs", multiple=True, help="NAME=VALUE (repeat).")
@click.option(
    "--manifests",
    "manifests_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/manifests"),
    show_default=True,
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--apply",
    is_flag=True,
    help="Apply the ExternalWorkload and Service, then mark it Ready (needs --kubeconfig).",
)
@click.option(
    "--watch",
    is_flag=True,
    help="With --apply: then keep its Ready condition true to the container until Ctrl-C.",
)
@lab_option(
    "Into the lab `meshexp-build lab up` started in this folder: its network, DNS, "
    "certificates and API server (applied and Ready; its Service's name in DNS)."
)
@click.option("--timeout", type=float, default=120, show_default=True)
@output_option
@setting_options
def run(
    workload_name: str,
    image_ref: str | None,
    name: str | None,
    network: str,
    dns: tuple[str, ...],
    certs: Path | None,
    node_name: str | None,
    routes: tuple[str, ...],
    env_pairs: tuple[str, ...],
    manifests_dir: Path,
    kubeconfig: Path | None,
    apply: bool,
    watch: bool,
    lab_dir: Path | None,
    timeout: float,
    output_format: str,
    **options: Any,
) -> None:
    """Start a built image as the walk-through does, wait for ready, write its manifests."""
    if watch and output_format == "json":
        raise click.UsageError(
            "--watch prints a line each time Ready changes, which -o json cannot hold: "
            "drop one of them (keep-ready watches a workload that is already running)"
        )
    settings = settings_from(options)
    common: dict[str, Any] = {
        "workload": settle(workload_of(workload_name, settings), settings, Progress()),
        "settings": settings,
        "manifests_dir": manifests_dir,
        "image": image_ref,
        "name": name,
        "node_name": node_name,
        "env": parse_env(env_pairs),
        "timeout": timeout,
    }
    if lab_dir is not None:
        lab_here = Lab.load(lab_dir)
        kubeconfig, apply = lab_here.kubeconfig, True
        result = run_in_lab(lab=lab_here, **common, **({"certs": certs} if certs else {}))
    else:
        if certs is None:
            raise click.UsageError("give --certs DIR (meshexp-build certs), or --lab DIR")
        if watch and not (apply and kubeconfig):
            raise click.UsageError("--watch keeps the applied status: give --kubeconfig F --apply")
        result = run_workload(
            **common,
            certs=certs,
            network=network,
            dns=list(dns),
            routes=[parse_route(item) for item in routes],
            kubeconfig=kubeconfig,
            apply=apply,
        )
    if output_format == "json":
        emit_json(dataclasses.asdict(result))
        return
    click.echo(
        f"{result.name} ready in {result.ready_seconds:.1f}s at {' and '.join(result.ips)} "
        f"(network {result.network})"
    )
    if result.note:
        click.echo(result.note)
    click.echo(
        f"wrote {result.manifest}" + (f" and {result.status_patch}" if result.status_patch else "")
    )
    if not result.applied:
        click.echo("apply with:")
        for command in result.apply_commands:
            click.echo(f"  {command}")
    elif watch and kubeconfig is not None:
        keep_until_stopped(kubeconfig, targets_from_manifests(manifests_dir, (result.name,)))


def keep_until_stopped(kubeconfig: Path, targets: list[Target]) -> None:
    """Run the status keeper in the foreground until Ctrl-C or SIGTERM."""
    stop_requested = stop_on_sigterm()

    def say(target: Target, health: Health) -> None:
        state = "True" if health.ready else "False"
        click.echo(
            f"{target.namespace}/{target.name}: Ready {state} ({health.reason}: {health.message})"
        )

    keeper = StatusKeeper(
        kubeconfig, targets, on_change=say, on_error=lambda line: click.echo(line, err=True)
    )
    click.echo(f"keeping Ready true to {len(targets)} container(s); stop with Ctrl-C", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        keeper.run(stop_requested.is_set)


@click.command("keep-ready")
@click.option(
    "--kubeconfig", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--manifests",
    "manifests_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/manifests"),
    show_default=True,
)
@click.option("--container", "containers", multiple=True, help="Only these (repeat).")
def keep_ready(kubeconfig: Path, manifests_dir: Path, containers: tuple[str, ...]) -> None:
    """Keep each ExternalWorkload's Ready condition true to its container, until Ctrl-C.

    Ready is True while the proxy is ready and the workload's port listens,
    False with a reason (ContainerStopped, ContainerPaused, ProxyNotReady,
    WorkloadNotListening) otherwise; written only when it changes.
    """
    keep_until_stopped(kubeconfig, targets_from_manifests(manifests_dir, containers))


@click.command()
@click.option("--workload", "workload_name", help="Catalog workload (container meshexp-NAME).")
@click.option("--name", help="Container name.")
@click.option(
    "--manifests",
    "manifests_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/manifests"),
    show_default=True,
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Also mark the ExternalWorkload not ready, then delete what `run --apply` made.",
)
def stop(
    workload_name: str | None, name: str | None, manifests_dir: Path, kubeconfig: Path | None
) -> None:
    """Remove a container started by `run` (and, with --kubeconfig, its cluster objects)."""
    if bool(workload_name) == bool(name):
        raise click.UsageError("give --workload NAME or --name CONTAINER")
    target = name or container_name(str(workload_name))
    removed, files = stop_workload(name=target, manifests_dir=manifests_dir, kubeconfig=kubeconfig)
    click.echo(f"removed {target}" if removed else f"no container {target}")
    for path in files:
        if kubeconfig is None:
            click.echo(f"delete from the cluster with: kubectl delete -f {path}")
        else:
            click.echo(f"marked not ready, then deleted from the cluster: what {path} describes")


@click.command()
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The cluster to register in (a real one, `apiserver`'s, the lab's).",
)
@lab_option(
    "The lab `meshexp-build lab up` started in this folder: its API server, its "
    "network's addresses, each Service's name in its DNS."
)
@click.option(
    "--group",
    "group_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The template (namespace, workloads, network, labels, service); flags override it.",
)
@click.option("--namespace", help="Only containers whose identity names this namespace.")
@click.option("--workload", "workloads", multiple=True, help="Only this workload (repeat).")
@click.option("--network", help="Register the address on this Docker network.")
@click.option("--label", "label_pairs", multiple=True, help="KEY=VALUE on every object (repeat).")
@click.option("--service-port", type=click.IntRange(1, 65535), help="The Service's first port.")
@click.option(
    "--no-service", is_flag=True, help="Make no Services (select the instances yourself)."
)
@click.option(
    "--id",
    "owner",
    help="This registrar's ID, in the label meshexp.io/registrar of what it makes "
    "(default: the Docker engine's host name).",
)
@click.option("--once", is_flag=True, help="One round, then exit (scripts, CI).")
@output_option
def register(
    kubeconfig: Path | None,
    lab_dir: Path | None,
    group_file: Path | None,
    namespace: str | None,
    workloads: tuple[str, ...],
    network: str | None,
    label_pairs: tuple[str, ...],
    service_port: int | None,
    no_service: bool,
    owner: str | None,
    once: bool,
    output_format: str,
) -> None:
    """Register every container of our images, however started, until Ctrl-C.

    Each container is its own ExternalWorkload (named from the workload and the
    container), one Service per workload selects them all, Ready follows the image's
    readiness probe, and a removed container is deregistered. Objects it did not make
    are never touched.
    """
    if (kubeconfig is None) == (lab_dir is None):
        raise click.UsageError("give --kubeconfig FILE or --lab DIR")
    if output_format == "json" and not once:
        raise click.UsageError("-o json prints one round: add --once")
    group = group_with_flags(
        load_group(group_file) if group_file is not None else Group(),
        namespace=namespace,
        workloads=workloads,
        network=network,
        labels=parse_pairs(label_pairs, "--label"),
        service=not no_service,
        service_port=service_port,
    )
    say = (lambda line: None) if output_format == "json" else click.echo
    owner = registrar_id(owner) if owner else default_owner()
    registrar: Registrar
    if lab_dir is not None:
        registrar = register_in_lab(lab=Lab.load(lab_dir), group=group, owner=owner, say=say)
    else:
        assert kubeconfig is not None
        registrar = Registrar(kubeconfig, group, owner, say=say)
    if once:
        registrar.step()
        if registrar.keeper.waiting():  # the API server did not answer this round
            raise MeshexpError(
                f"register --once: nothing registered: {registrar.keeper.last_error}"
            )
        if output_format == "json":
            emit_json(
                {
                    "registrar": owner,
                    "registered": [dataclasses.asdict(i) for i in registrar.registered.values()],
                    "skipped": registrar.skipped,
                }
            )
        return
    stop_requested = stop_on_sigterm()
    click.echo(f"registering containers of meshexp images as {owner}; stop with Ctrl-C", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        registrar.run(stop_requested.is_set)
