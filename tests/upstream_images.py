"""Upstream-shaped images: TEST EQUIPMENT for the default, online path on a machine
with no registry.

Users with registry access pull upstream's images (cr.l5d.io, ghcr.io, Docker Hub).
Here none can be pulled, so the tests pack the real programs under upstream's
names, tags and in-image paths (../shared/reference/upstream-images.md): the real
linkerd2-proxy and Linkerd's control plane built from source
(../shared/test-equipment), SPIRE built from the Go module proxy, the upstream Faces
v2.0.0 programs, and the offline Debian base as `debian:bookworm-slim`. Each carries
the label `io.meshexp.test-equipment` saying what it really holds. They are built by
the tests only, preloaded in the engine or pushed to a local registry that plays a
mirror; the tool never makes or needs them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from builder.build.gobuild import cached_go_binary
from builder.config.contract import PROXY_VERSION_FILE
from builder.config.models import GoSource
from builder.config.settings import OFFLINE_BASE_IMAGE, PROXY_IMAGE, load_settings

EQUIPMENT_LABEL = "io.meshexp.test-equipment"
# The release the test equipment's linkerd CLI and control plane were built at.
CLI_RELEASE = "edge-26.8.3"
# A release newer than any table of the tool's: its proxy's version comes from its image.
NEWER_RELEASE = "edge-27.1.1"
# What each proxy image's version file says (upstream's, for the releases upstream has).
PROXY_VERSIONS = {"edge-26.6.3": "v2.359.0", CLI_RELEASE: "v2.366.0", NEWER_RELEASE: "v2.377.0"}
SPIRE_VERSION = "1.13.3"
FACES_VERSION = "2.0.0"


@dataclass(frozen=True)
class Shaped:
    """One image as upstream publishes it: in-image path -> what goes there."""

    reference: str
    files: dict[str, Path | str]  # a file to copy, or text to write
    entrypoint: list[str]
    what: str  # what it really holds (the label)
    user: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def dockerfile(self) -> str:
        lines = ["FROM scratch"]
        for number, target in enumerate(self.files):
            lines.append(f"COPY f{number} {target}")
        if self.user:
            lines.append(f"USER {self.user}")
        lines.append(f"ENTRYPOINT {json.dumps(self.entrypoint)}")
        lines.append(f"LABEL {EQUIPMENT_LABEL}={json.dumps(self.what)}")
        return "\n".join(lines) + "\n"


def spire_binary(component: str) -> Path:
    """SPIRE as the offline build makes it (Go module proxy; cached by content)."""
    source = load_settings(None, {"offline": True, "proxy_file": ("/bin/true",)}).spire(component)
    assert isinstance(source, GoSource)
    return cached_go_binary(source, "amd64")


def proxy_image(
    release: str, proxy: Path, identity: Path, version: str = "", reference: str = ""
) -> Shaped:
    """The proxy image of `release` (its version file says `version`, by default upstream's
    for that release), under upstream's name or `reference`."""
    version = version or PROXY_VERSIONS[release]
    return Shaped(
        reference=reference or f"{PROXY_IMAGE}:{release}",
        files={
            "/usr/lib/linkerd/linkerd2-proxy": proxy,
            PROXY_VERSION_FILE: version + "\n",
            "/usr/lib/linkerd/linkerd2-proxy-identity": identity,
        },
        entrypoint=["/usr/lib/linkerd/linkerd2-proxy-identity"],
        user="65534",
        what=f"upstream-shaped {release}: the test equipment's linkerd2-proxy (a v2.366.0 "
        f"development build) and proxy-identity; its version file says {version}",
    )


def shaped_images(*, proxy: Path, faces: dict[str, Path], control_plane: Path) -> list[Shaped]:
    """Every image the default path names (the 2.20 line, the CLI's release for the lab,
    and a release newer than the tool's tables)."""
    identity = control_plane / "proxy-identity"
    images = [proxy_image(release, proxy, identity) for release in PROXY_VERSIONS]
    images.append(
        Shaped(
            reference=f"cr.l5d.io/linkerd/controller:{CLI_RELEASE}",
            files={
                "/controller": control_plane / "controller",
                # Since edge-25.8.3 the policy controller ships in the controller image.
                "/linkerd-policy-controller": control_plane / "linkerd-policy-controller",
            },
            entrypoint=["/controller"],
            user="65534",
            what="upstream-shaped: Linkerd's controller and policy controller built from source",
        )
    )
    for component in ("spire-server", "spire-agent"):
        images.append(
            Shaped(
                reference=f"ghcr.io/spiffe/{component}:{SPIRE_VERSION}",
                files={f"/opt/spire/bin/{component}": spire_binary(component)},
                entrypoint=[f"/opt/spire/bin/{component}"],
                user="1000:1000" if component == "spire-server" else "",
                what=f"upstream-shaped: {component} {SPIRE_VERSION} built from the Go module "
                "proxy (the configured plugins only)",
            )
        )
    for name, program in faces.items():
        images.append(
            Shaped(
                reference=f"ghcr.io/buoyantio/faces-{name}:{FACES_VERSION}",
                files={"/workload": program},
                entrypoint=["/workload"],
                what=f"upstream-shaped: the Faces {FACES_VERSION} {name} program built from source",
            )
        )
    return images


def build_shaped(engine: Any, image: Shaped) -> str:
    """Build `image` in the engine (a FROM scratch of its files); its ID."""
    with tempfile.TemporaryDirectory(prefix="meshexp-shaped-") as scratch:
        root = Path(scratch)
        for number, source in enumerate(image.files.values()):
            target = root / f"f{number}"
            if isinstance(source, Path):
                shutil.copyfile(source, target)
                target.chmod(0o755)
            else:
                target.write_text(source)
                target.chmod(0o644)
        (root / "Dockerfile").write_text(image.dockerfile())
        built, _ = engine.images.build(path=str(root), tag=image.reference, rm=True)
    return str(built.id)


def present(engine: Any, reference: str) -> bool:
    try:
        engine.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def preload(engine: Any, images: list[Shaped], base: str = OFFLINE_BASE_IMAGE) -> list[str]:
    """Build every shaped image in the engine, and the offline Debian base as
    `debian:bookworm-slim` (both Debian bookworm from Debian's packages); their names.
    An image already there (upstream's own, on a machine with a registry) is left as it is.
    """
    for image in images:
        if not present(engine, image.reference):
            build_shaped(engine, image)
    if not present(engine, "debian:bookworm-slim"):
        engine.images.get(base).tag("debian", "bookworm-slim")
    return [image.reference for image in images] + ["debian:bookworm-slim"]
