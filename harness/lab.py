"""Workloads into the mesh lab, as the tests and benches start them: each catalog entry's
image built by meshexp-build (or reused) and `run` into the lab, its ExternalWorkload and
Service applied and Ready."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder.build.image import build_workload_image
from builder.config.catalog import find_workload
from builder.config.settings import Settings
from builder.lab import Lab, run_in_lab

RUN_TIMEOUT_S = 120.0


def into_lab(
    lab: Lab,
    settings: Settings,
    workload: str,
    container: str,
    *,
    name: str = "",
    env: dict[str, str] | None = None,
    image: str = "",
    certs: Path | None = None,
) -> Any:
    """Catalog entry `workload` run into the lab as container `container` and
    ExternalWorkload `name` (the workload's own by default), from `image` (by default
    built with `settings`), with `certs` mounted (the lab's by default); the run's
    result."""
    entry = find_workload(workload)
    image = image or build_workload_image(workload=entry, settings=settings).reference
    mounted = {"certs": certs} if certs is not None else {}
    return run_in_lab(
        lab=lab,
        workload=entry,
        settings=settings,
        manifests_dir=lab.folder / "manifests",
        image=image,
        name=container,
        env={"WORKLOAD_NAME": name or workload, **(env or {})},
        timeout=RUN_TIMEOUT_S,
        **mounted,
    )
