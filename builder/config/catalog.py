"""The workload catalog: `images/*.yaml`, each file one workload."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.config.editor_schema import json_schema
from builder.config.models import Workload, read_workload
from builder.config.validation import DNS_LABEL, USER_NAME, shown
from builder.config.yamlfile import read_yaml_file
from builder.core import image_contract
from builder.core.errors import CatalogError
from builder.core.files import is_folder
from builder.core.resources import catalog_dir


def load_workload_file(path: Path) -> Workload:
    """Read and validate one catalog file; the file name must match the workload name."""
    document = read_yaml_file(path, "catalog entry", CatalogError)
    where = f"{path.parent.name}/{path.name}:"
    workload = read_workload(document, where, path.parent)
    if workload.name != path.stem:
        raise CatalogError(
            f"{where} name {shown(workload.name)} must match the file name "
            f"({shown(path.stem)}); rename one of them"
        )
    return workload


@dataclass(frozen=True)
class Override:
    """A user's catalog entry that replaces one of the same name from an earlier folder."""

    name: str
    path: Path
    replaced: Path


def load_folder(folder: Path) -> dict[str, Workload]:
    """The workloads of one catalog folder, by name."""
    if not is_folder(folder):
        raise CatalogError(
            f"{folder}: no such catalog folder; give --catalog an existing folder "
            "of workload files (meshexp-build workloads new NAME --dir FOLDER makes one)"
        )
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise CatalogError(f"{folder}: no workload files (*.yaml) found")
    return {workload.name: workload for workload in map(load_workload_file, files)}


def load_catalog(
    folders: Sequence[Path] = (),
    *,
    on_override: Callable[[Override], None] = lambda override: None,
) -> dict[str, Workload]:
    """The built-in catalog, then each of `folders` in order; a later entry of the
    same name replaces an earlier one (and `on_override` hears of it).
    """
    catalog = load_folder(catalog_dir())
    origin = dict.fromkeys(catalog, catalog_dir())
    for folder in map(Path, folders):
        for name, workload in load_folder(folder).items():
            if name in catalog:
                # A workload's file is always NAME.yaml (load_workload_file checks).
                on_override(Override(name, folder / f"{name}.yaml", origin[name] / f"{name}.yaml"))
            catalog[name], origin[name] = workload, folder
    return catalog


def find_workload(
    name: str,
    folders: Sequence[Path] = (),
    *,
    on_override: Callable[[Override], None] = lambda override: None,
) -> Workload:
    """One workload by name, or an error listing the ones that exist."""
    catalog = load_catalog(folders, on_override=on_override)
    if name not in catalog:
        raise CatalogError(
            f"no workload {shown(name)} in the catalog; known: {', '.join(sorted(catalog))} "
            "(add your own with --catalog FOLDER; meshexp-build workloads new NAME starts one)"
        )
    return catalog[name]


# The JSON Schema of an entry, written beside a user's entries by `workloads new`
# (and shipped in images/), named by each entry's first line for YAML-aware editors.
SCHEMA_FILE = "catalog.schema.json"
SCHEMA_MODELINE = f"# yaml-language-server: $schema=./{SCHEMA_FILE}"


def catalog_schema_text() -> str:
    return json.dumps(json_schema("catalog"), indent=2) + "\n"


STARTING_ENTRY = (
    SCHEMA_MODELINE
    + """
# A meshexp-build catalog entry: one workload, in a file named after it.
# It builds as it is (busybox's httpd from Debian's packages); change what
# runs, then: meshexp-build render --catalog {folder} --workload {name} --output ctx
name: {name}                 # a DNS-1123 label, the same as the file name
namespace: default           # the Kubernetes namespace of its ExternalWorkload
description: "{name}, brought into the mesh by meshexp-build"
licenses: GPL-2.0-only       # SPDX expression of what runs (busybox here)
ports:                       # the first port is the one the bootstrap waits for
  # app_protocol: what the port speaks, and how `check` probes it: http (a GET),
  # grpc (a call to grpc_method: /pkg.Service/Method, else the health check)
  # or opaque (a connection only)
  - {{name: http, port: 8080, protocol: TCP, app_protocol: http}}
user: {{name: {user}, uid: 2300}}  # its own non-root UID (1000-65533), not the proxy's 2102
                             # or SPIRE's 2103, so that the traffic capture applies to it

# What it runs. Either Debian packages and a command...
debian:
  packages: [busybox]
command: [/bin/busybox, httpd, -f, -v, -p, "8080", -h, {workload_dir}]

# ...or binaries of your own, copied to {workload_bin}/NAME:
# binaries:
#   - name: {name}
#     source: {{file: {{path: ./bin/{name}}}}}  # an ELF binary, relative to this file
#     # source: {{go: {{package: example.com/you/{name}/cmd/{name}, version: v1.2.3}}}}
#     # source: {{go: {{package: ./cmd/{name}, local: ../src}}}}  # a Go module on disk
#     # source: {{url: {{url: "https://...", sha256: "<64 hex>"}}}}
# command: [{workload_bin}/{name}, --port, "8080"]

# Environment for the workload (quoted into the scripts, never executed):
# env:
#   - {{name: GREETING, value: "hello from outside the cluster"}}

# The proxy's default inbound policy for this workload (else the settings'):
# inbound_default_policy: all-unauthenticated
"""
)


def new_entry_path(*, name: str, folder: Path, force: bool = False) -> Path:
    """Where a new entry for `name` goes in `folder`; refused with one line where the
    name is no workload name or an entry is there already (without --force)."""
    if not DNS_LABEL.fullmatch(name):
        raise CatalogError(
            f"{shown(name)} is not a workload name (a DNS-1123 label: lowercase letters, "
            "digits, '-', at most 63)"
        )
    path = folder / f"{name}.yaml"
    if path.exists() and not force:
        raise CatalogError(f"{path} exists; edit it, or add --force to start it again")
    return path


def write_new_entry(path: Path, text: str) -> Path:
    """Write the entry `text` at `path`, checked by loading it (nothing is left where it
    does not load), and the entry schema beside it (refreshed), which its first line
    names."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    schema = folder / f".{SCHEMA_FILE}.new"
    schema.write_text(catalog_schema_text())
    schema.replace(folder / SCHEMA_FILE)
    scratch = folder / f".{path.name}.new"
    scratch.write_text(text)
    try:
        load_workload_file(scratch.rename(path))
    except CatalogError:
        path.unlink(missing_ok=True)
        raise
    return path


def new_workload_file(*, name: str, folder: Path, force: bool = False) -> Path:
    """Write a commented starting entry for `name` into `folder` (see write_new_entry)."""
    path = new_entry_path(name=name, folder=folder, force=force)
    user = name if USER_NAME.fullmatch(name) else "workload"
    text = STARTING_ENTRY.format(
        name=name,
        folder=folder,
        user=user,
        workload_dir=image_contract.WORKLOAD_DIR,
        workload_bin=image_contract.WORKLOAD_BIN,
    )
    return write_new_entry(path, text)
