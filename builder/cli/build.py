"""`render`, `image`, `publish` and `base`: build contexts and images, and pushing them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from builder.build.base_image import build_base
from builder.build.from_image import from_entry, settle
from builder.build.provenance import provenance_labels
from builder.build.render import render_build_context
from builder.build.upstream import settle_proxy_version
from builder.cli.display import display
from builder.cli.options import (
    F,
    catalog_of,
    emit_json,
    output_option,
    progress_options,
    setting_options,
    settings_from,
    workload_of,
)
from builder.config.models import Workload
from builder.config.settings import (
    OFFLINE_BASE_IMAGE,
    Settings,
)
from builder.core.progress import Progress
from builder.oci.multiplatform import PublishedIndex, prepare_platforms, publish_platforms
from builder.oci.publish import BuiltImage, build_and_push, needs_buildkit

FROM_OPTION = click.option(
    "--from",
    "from_ref",
    metavar="IMAGE",
    help="Lay the mesh on this application image (its command, user, folder and ports); "
    "--workload then names it (default: the image's name).",
)


def chosen_workloads(
    names: tuple[str, ...], from_ref: str | None, settings: Settings
) -> list[Workload]:
    """The catalog's workloads named, or the one made from an application's image."""
    if from_ref is None:
        return [workload_of(name, settings) for name in names]
    if len(names) > 1:
        raise click.UsageError("--from makes one workload: give at most one --workload NAME")
    return [from_entry(from_ref, names[0] if names else None)]


@click.command()
@click.option("--workload", "workload_name", help="Catalog workload name.")
@FROM_OPTION
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
    workload_name: str | None,
    from_ref: str | None,
    output_dir: Path,
    force: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Write a complete build context that `docker build DIR` accepts."""
    if workload_name is None and from_ref is None:
        raise click.UsageError("give --workload NAME (a catalog workload) or --from IMAGE")
    # A Linkerd release newer than the tool's table: its proxy image says its version.
    settings = settle_proxy_version(settings_from(options), Progress())
    names = (workload_name,) if workload_name is not None else ()
    (workload,) = chosen_workloads(names, from_ref, settings)
    result = render_build_context(
        workload=settle(workload, settings, Progress()),
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


@click.command()
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


@click.command()
@click.option("--workload", "workload_names", multiple=True, help="Catalog workload (repeat).")
@FROM_OPTION
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
    from_ref: str | None,
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
        settings = settings.with_(tag=tag).check()
    if all_workloads == bool(workload_names or from_ref):
        raise click.UsageError("give --workload NAME (repeatable), --from IMAGE or --all")
    names = tuple(catalog_of(settings)) if all_workloads else workload_names
    workloads = chosen_workloads(names, from_ref, settings)
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
    with display(progress_mode, verbose=verbose) as progress:
        built = build_and_push(
            workloads=workloads,
            settings=settings,
            do_push=do_push,
            registry=registry,
            allow_standin=allow_standin,
            progress=progress,
        )
    show_built(built, output_format)


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


def show_built(built: list[BuiltImage], output_format: str) -> None:
    if output_format == "json":
        emit_json(
            [
                dataclasses.asdict(one.image)
                | ({"pushed": dataclasses.asdict(one.pushed)} if one.pushed else {})
                for one in built
            ]
        )
        return
    for one in built:
        result = one.image
        note = "  [PROXY STAND-IN: test equipment]" if result.standin else ""
        click.echo(
            f"built {result.reference} {result.image_id[:19]} "
            f"{result.size_bytes / 1e6:.1f} MB{note}"
        )
        if one.pushed:
            click.echo(f"pushed {one.pushed.reference}@{one.pushed.digest}")


@click.command()
@click.option("--workload", "workload_names", multiple=True, help="Catalog workload (repeat).")
@FROM_OPTION
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
    names, from_ref = arguments["workload_names"], arguments["from_ref"]
    if arguments["all_workloads"] == bool(names or from_ref):
        raise click.UsageError("give --workload NAME (repeatable), --from IMAGE or --all")
    if from_ref is None and not names:
        names = tuple(catalog_of(settings))
    with display(arguments["progress_mode"], verbose=arguments["verbose"]) as progress:
        workloads = [
            settle(workload, settings, progress)
            for workload in chosen_workloads(names, from_ref, settings)
        ]
        done = prepare_platforms(workloads=workloads, settings=settings, progress=progress)
    for line in done:
        click.echo(f"prepared {line}")
