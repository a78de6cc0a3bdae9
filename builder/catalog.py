"""The workload catalog: `images/*.yaml`, each file one workload."""

from __future__ import annotations

from pathlib import Path

import yaml

from builder.errors import CatalogError
from builder.models import Workload, read_workload
from builder.resources import catalog_dir


def load_workload_file(path: Path) -> Workload:
    """Read and validate one catalog file; the file name must match the workload name."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({exc})") from None
    where = f"{path.parent.name}/{path.name}:"
    workload = read_workload(document, where, path.parent)
    if workload.name != path.stem:
        raise CatalogError(
            f"{where} name {workload.name!r} must match the file name "
            f"({path.stem!r}); rename one of them"
        )
    return workload


def load_catalog(directory: Path | None = None) -> dict[str, Workload]:
    """All workloads in a catalog folder, by name."""
    folder = directory or catalog_dir()
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise CatalogError(f"{folder}: no workload files (*.yaml) found")
    return {workload.name: workload for workload in map(load_workload_file, files)}


def find_workload(name: str, directory: Path | None = None) -> Workload:
    """One workload by name, or an error listing the ones that exist."""
    catalog = load_catalog(directory)
    if name not in catalog:
        raise CatalogError(f"no workload {name!r} in the catalog; known: {', '.join(catalog)}")
    return catalog[name]
