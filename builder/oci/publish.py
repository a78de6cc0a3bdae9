"""`meshexp-build publish` / `image --push`: push built images to a registry.

The classic builder makes single-platform images, so this pushes the tag for
the configured platform; `.github/workflows/publish.yml` builds linux/amd64
and linux/arm64 as one multi-arch image with buildx from the same rendered
contexts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from builder.engine import docker_engine
from builder.core.errors import SettingsError

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
    if not REGISTRY.match(registry):
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
