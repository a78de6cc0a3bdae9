"""`workloads list|new` and `schema`: the catalog and its JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from builder.build.from_image import read_image_config, starting_entry
from builder.cli.options import (
    catalog_of,
    emit_json,
    output_option,
    setting_options,
    settings_from,
)
from builder.config.catalog import new_entry_path, new_workload_file, write_new_entry
from builder.config.editor_schema import json_schema
from builder.core.progress import Progress


@click.group(invoke_without_command=True)
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
        emit_json([w.model_dump(mode="json") for w in catalog.values()])
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
@click.option(
    "--from",
    "from_ref",
    metavar="IMAGE",
    help="Start from an application's image: its command, user, folder and ports written "
    "out (the image is pulled as the settings say).",
)
@setting_options
def workloads_new(
    name: str, folder: Path, force: bool, from_ref: str | None, **options: Any
) -> None:
    """Write a commented starting entry for workload NAME into FOLDER/NAME.yaml."""
    if from_ref is None:
        path = new_workload_file(name=name, folder=folder, force=force)
    else:
        path = new_entry_path(name=name, folder=folder, force=force)
        progress = Progress()
        config = read_image_config(from_ref, settings_from(options), progress)
        path = write_new_entry(path, starting_entry(name, from_ref, config))
    click.echo(
        f"wrote {path}; edit it, then: meshexp-build render --catalog {folder} "
        f"--workload {name} --output ctx"
    )


@click.command("schema")
@click.argument("kind", type=click.Choice(["catalog", "settings"]))
def schema_command(kind: str) -> None:
    """Print the JSON Schema of a catalog entry or of the settings file.

    YAML-aware editors validate and complete with it: `workloads new` writes
    the catalog's beside your entries; for meshexp.yaml, save this output and
    start the file with `# yaml-language-server: $schema=./settings.schema.json`.
    """
    click.echo(json.dumps(json_schema(kind), indent=2))
