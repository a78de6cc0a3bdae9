"""`meshexp-build publish` / `image --push`: push built images to a registry.

The classic builder makes single-platform images, so this pushes the tag for
the configured platform; several platforms go through BuildKit
(builder.oci.multiplatform), and `needs_buildkit` says which path a build takes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from builder.build.gobuild import HOST_ARCH
from builder.build.image import ImageResult, build_workload_image, prefetch_components
from builder.config.models import Workload
from builder.config.settings import Settings
from builder.core.errors import SettingsError
from builder.core.progress import Progress
from builder.engine import docker_engine

REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._/-]+)?$")


@dataclass(frozen=True)
class Pushed:
    source: str
    reference: str
    digest: str


def registry_reference(reference: str, registry: str | None) -> str:
    """`meshexp/smiley:tag` under `registry` (host[:port][/path]), or unchanged without one."""
    if registry is None:
        return reference
    if not REGISTRY.fullmatch(registry):
        raise SettingsError(
            f"--registry {registry!r} is not HOST[:PORT][/PATH] "
            "(e.g. ghcr.io/org or 127.0.0.1:5000)"
        )
    return f"{registry.rstrip('/')}/{reference}"


def registry_host(registry: str) -> str:
    """The host[:port] of `--registry HOST[:PORT][/PATH]` (checked as registry_reference does)."""
    return registry_reference("x", registry).split("/", 1)[0]


def push(
    *,
    reference: str,
    registry: str | None,
    standin: bool = False,
    allow_standin: bool = False,
    on_line: Callable[[str], None] = lambda line: None,
) -> Pushed:
    """Tag for the registry (if given) and push; the digest comes from the registry.

    An image whose proxy is the stand-in is refused unless `allow_standin`.
    """
    if standin and not allow_standin:
        raise SettingsError(
            f"{reference}: push refused: its proxy is the stand-in (test equipment, not a "
            "Linkerd proxy); give a real linkerd2-proxy with --proxy-file, or add "
            "--allow-standin (test registries only)"
        )
    target = registry_reference(reference, registry)
    if target != reference:
        docker_engine.tag_image(reference, target)
    digest = docker_engine.push_image(target, on_line=on_line)
    return Pushed(reference, target, digest)


@dataclass(frozen=True)
class BuiltImage:
    """One image from the classic builder, and where it was pushed (if it was)."""

    image: ImageResult
    pushed: Pushed | None


def build_and_push(
    *,
    workloads: list[Workload],
    settings: Settings,
    do_push: bool,
    registry: str | None,
    allow_standin: bool,
    progress: Progress,
) -> list[BuiltImage]:
    """One platform through the engine's classic builder, each image pushed with `do_push`.

    Several workloads fetch their shared components once, in parallel, first.
    """
    if len(workloads) > 1:
        with progress.phase(f"components for {len(workloads)} images, in parallel"):
            prefetch_components(workloads, settings, progress=progress)
    built = [
        build_workload_image(workload=workload, settings=settings, on_line=progress)
        for workload in workloads
    ]
    return [
        BuiltImage(
            result,
            push(
                reference=result.reference,
                registry=registry,
                standin=result.standin,
                allow_standin=allow_standin,
            )
            if do_push
            else None,
        )
        for result in built
    ]


def needs_buildkit(settings: Settings, builder_address: str | None) -> bool:
    """Several platforms, another architecture's, or a builder given: BuildKit builds."""
    return (
        len(settings.target_platforms) > 1
        or settings.target_platforms[0].split("/")[1] != HOST_ARCH
        or builder_address is not None
    )
