"""The click layer: parse options, call one library function per command, print the result.

Nothing below this module prints or exits; errors arrive as MeshexpError
subclasses that carry their exit code (see the README).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from builder import __version__
from builder.cluster.apiserver import linkerd_crds, local_apiserver, prepare_apiserver
from builder.build.base_image import build_base
from builder.config.catalog import Override, find_workload, load_catalog, new_workload_file
from builder.cluster.certs import create_certs, create_node_cert
from builder.check.checks import check_image
from builder.config.contract import INBOUND_POLICIES
from builder.cli.display import MODES, display
from builder.check.doctor import Finding, diagnose
from builder.check.e2e import E2EConfig, missing_prerequisites, run_e2e
from builder.core.errors import CheckError, MeshexpError
from builder.build.gobuild import HOST_ARCH
from builder.config.identity import IDENTITY_STYLES
from builder.build.image import build_workload_image, prefetch_components
from builder.cluster.keeper import Health, StatusKeeper, Target, targets_from_manifests
from builder.lab import Lab, run_in_lab
from builder.lab.check import check_outbound_in_lab
from builder.cli.lab import lab
from builder.cluster.manifests import build_manifests
from builder.config.models import Workload
from builder.oci.multiplatform import PublishedIndex, prepare_platforms, publish_platforms
from builder.build.provenance import provenance_labels
from builder.oci.publish import push
from builder.build.render import render_build_context
from builder.cluster.run import container_name, parse_route, run_workload, stop_workload
from builder.config.schema import IPTABLES_MODES, PLATFORMS, TOPOLOGIES, json_schema
from builder.config.settings import (
    OFFLINE_BASE_IMAGE,
    Settings,
    default_settings_file,
    load_settings,
)
from builder.cluster.spire_server import (
    build_server_image,
    entry_commands,
    register,
    start_server,
)

F = TypeVar("F", bound=Callable[..., Any])

SETTING_OPTIONS = [
    click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Settings file (YAML). Default: ./meshexp.yaml when present.",
    ),
    click.option("--linkerd-version", help="Linkerd release, e.g. 2.18 or edge-24.2.5."),
    click.option("--proxy-version", help="Override the proxy version, e.g. v2.294.0."),
    click.option("--spire-version", help="SPIRE version, e.g. 1.13.3."),
    click.option("--trust-domain", help="SPIFFE trust domain."),
    click.option(
        "--offline/--online",
        default=None,
        help="Offline: no container registry (Debian base, Go sources, --proxy-file).",
    ),
    click.option("--base-image", help="Base image reference."),
    click.option("--topology", type=click.Choice(TOPOLOGIES), help="SPIRE topology."),
    click.option("--iptables-mode", type=click.Choice(IPTABLES_MODES), help="iptables backend."),
    click.option("--proxy-uid", type=int, help="UID the proxy runs as (default 2102)."),
    click.option("--inbound-ports-to-ignore", help="Comma-separated ports."),
    click.option("--outbound-ports-to-ignore", help="Comma-separated ports."),
    click.option("--inbound-default-policy", type=click.Choice(INBOUND_POLICIES)),
    click.option(
        "--identity",
        type=click.Choice(IDENTITY_STYLES),
        help="The names in the SVID: namespaced (default) or the walk-through's "
        "(spiffe://TD/NAME, NAME.cluster.local).",
    ),
    click.option(
        "--profile-networks",
        help="Comma-separated CIDRs whose addresses the proxy resolves through the "
        "destination controller (direct connections get mTLS); default: private ranges.",
    ),
    click.option("--image-name", help="Image name pattern, e.g. registry/{workload}."),
    click.option(
        "--platform",
        help=f"Target platform ({', '.join(PLATFORMS)}); several, comma-separated, make one "
        "multi-platform image through BuildKit (publish, image --push).",
    ),
    click.option(
        "--proxy-file",
        multiple=True,
        help="The proxy binary (a linkerd2-proxy, or the test stand-in); PLATFORM=FILE "
        "gives one platform's (repeat).",
    ),
    click.option(
        "--catalog",
        multiple=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="A folder of your own workload files (repeat); its entries add to, or "
        "replace, the built-in ones.",
    ),
    click.option(
        "--binary",
        "binaries",
        multiple=True,
        help="NAME=FILE: use this file for the workload binary NAME (repeat), over the "
        "catalog's sources (e.g. --binary smiley=./smiley for the upstream Faces program).",
    ),
    click.option(
        "--label",
        "labels",
        multiple=True,
        help="KEY=VALUE: an extra image label (repeat); adds to the settings' labels.",
    ),
]
SETTING_NAMES = (
    "linkerd_version",
    "proxy_version",
    "spire_version",
    "trust_domain",
    "offline",
    "base_image",
    "topology",
    "iptables_mode",
    "proxy_uid",
    "inbound_ports_to_ignore",
    "outbound_ports_to_ignore",
    "inbound_default_policy",
    "identity",
    "profile_networks",
    "image_name",
    "platform",
    "proxy_file",
    "labels",
    "catalog",
    "binaries",
)


def setting_options(func: F) -> F:
    for option in reversed(SETTING_OPTIONS):
        func = option(func)
    return func


def settings_from(options: dict[str, Any]) -> Settings:
    """Build settings from the shared options, removing them from `options`."""
    config_file = options.pop("config_file", None) or default_settings_file()
    overrides = {name: options.pop(name, None) for name in SETTING_NAMES}
    return load_settings(config_file, overrides)


def announce_override(override: Override, said: set[str] = set()) -> None:  # noqa: B006
    """Say once per run which built-in entry a user's catalog replaces."""
    if override.name not in said:
        said.add(override.name)
        click.echo(
            f"catalog: {override.name} from {override.path} replaces {override.replaced}",
            err=True,
        )


def workload_of(name: str, settings: Settings) -> Workload:
    """A workload from the built-in catalog and the user's (--catalog, settings' catalog)."""
    return find_workload(name, settings.catalog, on_override=announce_override)


def catalog_of(settings: Settings) -> dict[str, Workload]:
    return load_catalog(settings.catalog, on_override=announce_override)


def output_option(func: F) -> F:
    return click.option(
        "--output",
        "-o",
        "output_format",
        type=click.Choice(("text", "json")),
        default="text",
        show_default=True,
        help="Output format.",
    )(func)


def progress_options(func: F) -> F:
    """--progress and --verbose, for commands that build."""
    func = click.option(
        "--verbose",
        "-v",
        is_flag=True,
        help="Show the full output of every step (the engine's build log, debootstrap).",
    )(func)
    return click.option(
        "--progress",
        "progress_mode",
        type=click.Choice(MODES),
        default="auto",
        show_default=True,
        help="auto: a live view on a terminal, plain lines elsewhere; plain: plain lines "
        "with the full build log; quiet: nothing but errors.",
    )(func)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="meshexp-build")
def main() -> None:
    """Build and check images that bring outside workloads into a Linkerd mesh."""


main.add_command(lab)


@main.group(invoke_without_command=True)
@output_option
@setting_options
@click.pass_context
def workloads(ctx: click.Context, /, output_format: str, **options: Any) -> None:
    """The workload catalog: list it (the default), or start an entry of your own."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(workloads_list, output_format=output_format, **options)


@workloads.command("list")
@output_option
@setting_options
def workloads_list(output_format: str = "text", **options: Any) -> None:
    """List the catalog: the built-in entries and those of --catalog folders."""
    catalog = catalog_of(settings_from(options))
    if output_format == "json":
        emit_json([dataclasses.asdict(w) for w in catalog.values()])
        return
    for workload in catalog.values():
        ports = ",".join(f"{p.name}:{p.port}" for p in workload.ports)
        click.echo(
            f"{workload.name:<12} {workload.namespace:<8} {ports:<12} {workload.description}"
        )


@workloads.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("images"),
    show_default=True,
    help="Your catalog folder (created if missing); pass it to --catalog.",
)
@click.option("--force", is_flag=True, help="Replace an existing entry of that name.")
def workloads_new(name: str, folder: Path, force: bool) -> None:
    """Write a commented starting entry for workload NAME into FOLDER/NAME.yaml."""
    path = new_workload_file(name=name, folder=folder, force=force)
    click.echo(
        f"wrote {path}; edit it, then: meshexp-build render --catalog {folder} "
        f"--workload {name} --output ctx"
    )


@main.command("schema")
@click.argument("kind", type=click.Choice(["catalog", "settings"]))
def schema_command(kind: str) -> None:
    """Print the JSON Schema of a catalog entry or of the settings file.

    YAML-aware editors validate and complete with it: `workloads new` writes
    the catalog's beside your entries; for meshexp.yaml, save this output and
    start the file with `# yaml-language-server: $schema=./settings.schema.json`.
    """
    click.echo(json.dumps(json_schema(kind), indent=2))


@main.command()
@click.option("--workload", "workload_name", required=True, help="Catalog workload name.")
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the context.",
)
@click.option("--force", is_flag=True, help="Replace the folder's contents.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@setting_options
def render(
    workload_name: str, output_dir: Path, force: bool, as_json: bool, **options: Any
) -> None:
    """Write a complete build context that `docker build DIR` accepts."""
    settings = settings_from(options)
    result = render_build_context(
        workload=workload_of(workload_name, settings),
        settings=settings,
        output=output_dir,
        force=force,
        extra_labels=provenance_labels(Path.cwd()),
    )
    if as_json:
        emit_json(dataclasses.asdict(result))
        return
    click.echo(f"wrote {len(result.files)} files to {result.output}")
    click.echo(f"build it with: docker build -t {result.image} {result.output}")
    if result.standin:
        click.echo("note: the proxy is the STAND-IN (test equipment, not a Linkerd proxy)")


@main.command()
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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def certs(output_dir: Path, anchor_key: Path | None, force: bool, as_json: bool) -> None:
    """Create a trust anchor and an identity issuer (ECDSA P-256) for Linkerd and SPIRE."""
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


@main.command()
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
        workload=workload_of(workload_name, settings),
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


@main.command()
@click.option("--tag", "reference", default=OFFLINE_BASE_IMAGE, show_default=True)
@click.option("--rebuild", is_flag=True, help="Build again even if the image exists.")
@progress_options
def base(reference: str, rebuild: bool, progress_mode: str, verbose: bool) -> None:
    """Build a slim Debian bookworm base image from Debian's packages (needs root)."""
    with (
        display(progress_mode, verbose=verbose) as progress,
        progress.phase(f"base image {reference}"),
    ):
        result = build_base(reference=reference, rebuild=rebuild, progress=progress)
    verb = "reused" if result.reused else "built"
    click.echo(f"{verb} {result.reference} ({result.image_id[:19]}) from {result.mirror}")


@main.command("node-cert")
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


PUBLISH_OPTIONS = [
    click.option(
        "--builder",
        "builder_address",
        help="ADDRESS of a running buildkitd (unix://..., tcp://...) for several platforms; "
        "default: meshexp-build starts its own (as root).",
    ),
    click.option(
        "--allow-standin",
        is_flag=True,
        help="Push an image whose proxy is the stand-in (test registries only).",
    ),
    click.option(
        "--sbom/--no-sbom",
        default=True,
        help="Attach an SPDX SBOM per platform (BuildKit; default on).",
    ),
    click.option(
        "--provenance/--no-provenance",
        default=True,
        help="Attach SLSA provenance, mode=max, naming the source revision (BuildKit; default on).",
    ),
]


def publish_options(command: F) -> F:
    for option in reversed(PUBLISH_OPTIONS):
        command = option(command)
    return command


@main.command()
@click.option("--workload", "workload_names", multiple=True, help="Catalog workload (repeat).")
@click.option("--all", "all_workloads", is_flag=True, help="Every catalog workload.")
@click.option("--tag", help="Image tag (default from settings' tag pattern).")
@click.option("--push", "do_push", is_flag=True, help="Push each image after building it.")
@click.option("--registry", help="Push under this registry (HOST[:PORT][/PATH]).")
@publish_options
@output_option
@setting_options
@progress_options
def image(
    workload_names: tuple[str, ...],
    all_workloads: bool,
    tag: str | None,
    do_push: bool,
    registry: str | None,
    builder_address: str | None,
    allow_standin: bool,
    sbom: bool,
    provenance: bool,
    output_format: str,
    progress_mode: str,
    verbose: bool,
    **options: Any,
) -> None:
    """Render and build images through the Docker engine (and push them with --push).

    Several platforms (--platform linux/amd64,linux/arm64) make one
    multi-platform image through BuildKit, pushed to the registry.
    """
    settings = settings_from(options)
    if tag is not None:
        settings = dataclasses.replace(settings, tag=tag).check()
    if all_workloads == bool(workload_names):
        raise click.UsageError("give --workload NAME (repeatable) or --all")
    names = list(catalog_of(settings)) if all_workloads else list(workload_names)
    workloads = [workload_of(name, settings) for name in names]
    if needs_buildkit(settings, builder_address):
        if not do_push or registry is None:
            raise click.UsageError(
                f"{', '.join(settings.target_platforms)} are built through BuildKit into a "
                "registry: add --push --registry HOST[:PORT][/PATH] (or use publish)"
            )
        with display(progress_mode, verbose=verbose) as progress:
            published = publish_platforms(
                workloads=workloads,
                settings=settings,
                registry=registry,
                builder_address=builder_address,
                allow_standin=allow_standin,
                sbom=sbom,
                provenance=provenance,
                progress=progress,
            )
        show_published(published, output_format)
        return
    build_classic(
        workloads, settings, do_push, registry, allow_standin, output_format, progress_mode, verbose
    )


def needs_buildkit(settings: Settings, builder_address: str | None) -> bool:
    """Several platforms, another architecture's, or a builder given: BuildKit builds."""
    return (
        len(settings.target_platforms) > 1
        or settings.target_platforms[0].split("/")[1] != HOST_ARCH
        or builder_address is not None
    )


def show_published(published: list[PublishedIndex], output_format: str) -> None:
    if output_format == "json":
        emit_json([dataclasses.asdict(item) for item in published])
        return
    for item in published:
        attached = [
            name for name, on in (("SBOM", item.sbom), ("provenance", item.provenance)) if on
        ]
        click.echo(
            f"published {item.reference}@{item.digest} "
            f"({len(item.platforms)} platforms; {', '.join(attached) or 'no attestations'})"
        )
        for one in item.platforms:
            note = "  [PROXY STAND-IN: test equipment]" if one.standin else ""
            click.echo(f"  {one.platform} {one.digest}{note}")


def build_classic(
    workloads: list[Workload],
    settings: Settings,
    do_push: bool,
    registry: str | None,
    allow_standin: bool,
    output_format: str,
    progress_mode: str,
    verbose: bool,
) -> None:
    """One platform through the Docker engine's classic builder (and push with do_push)."""
    results = []
    with display(progress_mode, verbose=verbose) as progress:
        if len(workloads) > 1:
            with progress.phase(f"components for {len(workloads)} images, in parallel"):
                prefetch_components(workloads, settings, progress=progress)
        built = [
            build_workload_image(workload=workload, settings=settings, on_line=progress)
            for workload in workloads
        ]
    for result in built:
        entry = dataclasses.asdict(result)
        if output_format == "text":
            note = "  [PROXY STAND-IN: test equipment]" if result.standin else ""
            click.echo(
                f"built {result.reference} {result.image_id[:19]} "
                f"{result.size_bytes / 1e6:.1f} MB{note}"
            )
        if do_push:
            pushed = push(
                reference=result.reference,
                registry=registry,
                standin=result.standin,
                allow_standin=allow_standin,
            )
            entry["pushed"] = dataclasses.asdict(pushed)
            if output_format == "text":
                click.echo(f"pushed {pushed.reference}@{pushed.digest}")
        results.append(entry)
    if output_format == "json":
        emit_json(results)


@main.command()
@click.option("--workload", "workload_names", multiple=True, help="Catalog workload (repeat).")
@click.option("--all", "all_workloads", is_flag=True, help="Every catalog workload.")
@click.option(
    "--registry", help="HOST[:PORT][/PATH], e.g. ghcr.io/org (required but with --prepare)."
)
@click.option("--tag", help="Image tag (default from settings' tag pattern).")
@click.option(
    "--prepare",
    is_flag=True,
    help="Only build and cache what publishing needs for each --platform (Go components, "
    "Debian roots, BuildKit, the SBOM scanner); push nothing.",
)
@publish_options
@output_option
@setting_options
@progress_options
def publish(prepare: bool, **arguments: Any) -> None:
    """Build and push images to a registry; prints the pushed digests.

    --platform linux/amd64,linux/arm64 pushes ONE multi-platform image through
    BuildKit, with an SBOM and provenance per platform, and prints the index's
    digest and each platform's.
    """
    if prepare:
        prepare_publishing(arguments)
        return
    if arguments["registry"] is None:
        raise click.UsageError("give --registry HOST[:PORT][/PATH] (or --prepare)")
    click.get_current_context().invoke(image, do_push=True, **arguments)


def prepare_publishing(arguments: dict[str, Any]) -> None:
    """publish --prepare: the one-time builds of a multi-platform publish, cached."""
    settings = settings_from(arguments)
    names = arguments["workload_names"]
    if arguments["all_workloads"] == bool(names):
        raise click.UsageError("give --workload NAME (repeatable) or --all")
    workloads = [workload_of(name, settings) for name in names or catalog_of(settings)]
    with display(arguments["progress_mode"], verbose=arguments["verbose"]) as progress:
        done = prepare_platforms(workloads=workloads, settings=settings, progress=progress)
    for line in done:
        click.echo(f"prepared {line}")


@main.command()
@click.option("--e2e", "for_e2e", is_flag=True, help="Also what the k3d end-to-end test needs.")
@output_option
@setting_options
def doctor(for_e2e: bool, output_format: str, **options: Any) -> None:
    """Report what a build needs and what is missing, with the fix for each."""
    settings = settings_from(options)
    findings = diagnose(settings=settings)
    if for_e2e:
        findings += e2e_findings(findings)
    if output_format == "json":
        emit_json([dataclasses.asdict(finding) for finding in findings])
    else:
        for finding in findings:
            mark = "ok  " if finding.ok else "FAIL"
            fix = f"\n       fix: {finding.fix}" if finding.fix and not finding.ok else ""
            click.echo(f"{mark} {finding.what:<13} {finding.detail}{fix}")
    if not all(finding.ok for finding in findings):
        raise MeshexpError("a build could not succeed: fix the FAIL lines above")


@main.group("spire-server")
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


@main.command()
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
@click.option(
    "--lab",
    "lab_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Into the lab `meshexp-build lab up` started in this folder: its network, DNS, "
    "certificates and API server (applied and Ready; its Service's name in DNS).",
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
    settings = settings_from(options)
    common: dict[str, Any] = {
        "workload": workload_of(workload_name, settings),
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
        f"{result.name} ready in {result.ready_seconds:.1f}s at {result.ip} "
        f"(network {result.network})"
    )
    click.echo(
        f"wrote {result.manifest}" + (f" and {result.status_patch}" if result.status_patch else "")
    )
    if not result.applied:
        click.echo("apply with:")
        for command in result.apply_commands:
            click.echo(f"  {command}")
    elif watch and kubeconfig is not None:
        keep_until_stopped(kubeconfig, targets_from_manifests(manifests_dir, (result.name,)))


def stop_on_sigterm() -> threading.Event:
    """An event that SIGTERM sets, for commands that run in the foreground until stopped
    (Ctrl-C is a KeyboardInterrupt)."""
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    return stop_requested


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


@main.command("keep-ready")
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


@main.command()
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


@main.command()
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


def e2e_findings(findings: list[Finding]) -> list[Finding]:
    """What the k3d end-to-end test needs, given the build findings (the proxy's among them)."""
    standin = any(f.what == "proxy" and "STAND-IN" in f.detail for f in findings)
    missing = missing_prerequisites(proxy_is_standin=standin)
    if not missing:
        return [Finding("e2e", True, "k3d, kubectl, helm, linkerd, registry access, real proxy")]
    return [Finding("e2e", False, item.split(":", 1)[0], item) for item in missing]


def parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--env")
        env[key] = value
    return env


@main.command()
@click.argument("image_ref", metavar="IMAGE", required=False)
@click.option(
    "--e2e",
    "for_e2e",
    is_flag=True,
    help="Run the k3d end-to-end test instead (needs a cluster toolchain).",
)
@click.option("--keep", is_flag=True, help="With --e2e: keep the cluster for debugging.")
@click.option(
    "--certs",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Certificates to mount (default: a fresh set from `certs`).",
)
@click.option("--env", "env_pairs", multiple=True, help="NAME=VALUE for the container (repeat).")
@click.option(
    "--timeout",
    type=float,
    default=120,
    show_default=True,
    help="Seconds the image may take to come up.",
)
@click.option(
    "--junit",
    "junit_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results as JUnit XML.",
)
@click.option(
    "--lab",
    "lab_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Also check outbound through the control plane of the lab in this folder: a "
    "call to a second instance completes over mTLS.",
)
@click.option(
    "--catalog",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="With --lab: a folder of your own entries, where the image's workload is.",
)
@output_option
def check(
    image_ref: str | None,
    for_e2e: bool,
    keep: bool,
    certs: Path | None,
    env_pairs: tuple[str, ...],
    timeout: float,
    junit_file: Path | None,
    lab_dir: Path | None,
    catalog: tuple[Path, ...],
    output_format: str,
) -> None:
    """Start IMAGE as the field does and check it against the mesh contract."""
    if for_e2e:
        settings = settings_from({})
        findings = e2e_findings(diagnose(settings=settings))
        missing = [finding.fix for finding in findings if not finding.ok]
        if missing:
            raise CheckError("the end-to-end test cannot run here: " + "; ".join(missing))
        outcome = run_e2e(
            config=E2EConfig(keep=keep, linkerd_version=settings.linkerd_version), settings=settings
        )
        emit_json(dataclasses.asdict(outcome))
        return
    if image_ref is None:
        raise click.UsageError("give IMAGE (or --e2e)")
    report = check_image(image=image_ref, certs=certs, env=parse_env(env_pairs), timeout=timeout)
    if lab_dir is not None:
        in_lab = Lab.load(lab_dir)
        report.add(
            "capture: outbound through the mesh (lab)",
            lambda: check_outbound_in_lab(image=image_ref, lab=in_lab, catalog=catalog),
        )
    if junit_file is not None:
        junit_file.write_text(report.junit() + "\n", encoding="utf-8")
    if output_format == "json":
        emit_json(dataclasses.asdict(report) | {"passed": report.passed})
    else:
        for result in report.results:
            mark = "PASS" if result.passed else "FAIL"
            click.echo(f"{mark}  {result.name:<38} {result.detail}")
    failed = [result.name for result in report.results if not result.passed]
    if failed:
        raise CheckError(f"{image_ref} failed {len(failed)} check(s): {', '.join(failed)}")
    # With -o json, stdout holds the one JSON document and nothing else.
    click.echo(f"{image_ref}: all {len(report.results)} checks passed", err=output_format == "json")


if __name__ == "__main__":  # pragma: no cover
    main()
