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
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors

from builder.build.base_image import rootfs_tarball
from builder.build.cluster_images import (
    build_faces_images,
    build_forwarder_image,
    build_linkerd_images,
)
from builder.build.gobuild import HOST_ARCH, cached_go_binary
from builder.build.gomodules import COREDNS_VERSION, cached_main_program, coredns
from builder.build.syft import cached_syft
from builder.check.walkthrough.steps import FORWARDER_IMAGE
from builder.config.contract import PROXY_BY_RELEASE, PROXY_VERSION_FILE
from builder.config.mirrors import normalized
from builder.config.settings import (
    OFFLINE_BASE_IMAGE,
    PROXY_IMAGE,
    PROXY_IN_IMAGE,
    load_settings,
)
from builder.config.sources import GoSource
from builder.core.resources import go_dir
from builder.engine import docker_engine
from builder.oci.multiplatform import BUILDKIT_SBOM_SCANNER, SCANNER_WRAPPER, SYFT_VERSION
from builder.oci.registry import DOCKER_LIST, DOCKER_MANIFEST, RegistryClient
from harness.equipment import standin_proxy

EQUIPMENT_LABEL = "io.meshexp.test-equipment"
# The release the test equipment's linkerd CLI and control plane were built at.
CLI_RELEASE = "edge-26.8.3"
# A release newer than any table of the tool's: its proxy's version comes from its image.
NEWER_RELEASE = "edge-27.1.1"
# What each proxy image's version file says (upstream's, for the releases upstream has).
PROXY_VERSIONS = {"edge-26.6.3": "v2.359.0", CLI_RELEASE: "v2.366.0", NEWER_RELEASE: "v2.377.0"}
SPIRE_VERSION = "1.13.3"
FACES_VERSION = "2.0.0"
PLATFORMS = ("linux/amd64", "linux/arm64")
CONTROLLER_IMAGE = "cr.l5d.io/linkerd/controller"


@dataclass(frozen=True)
class Shaped:
    """One image as upstream publishes it: in-image path -> what goes there."""

    reference: str
    files: dict[str, Path | str]  # a file to copy, or text to write
    entrypoint: list[str]
    what: str  # what it really holds (the label)
    user: str = ""
    root: Path | None = None  # a root filesystem tarball unpacked first (a base image)
    env: tuple[tuple[str, str], ...] = ()

    def dockerfile(self) -> str:
        lines = ["FROM scratch"]
        if self.root is not None:
            lines.append("ADD root.tar /")
        for number, target in enumerate(self.files):
            lines.append(f"COPY f{number} {target}")
        lines += [f"ENV {name}={value}" for name, value in self.env]
        if self.user:
            lines.append(f"USER {self.user}")
        if self.entrypoint:
            lines.append(f"ENTRYPOINT {json.dumps(self.entrypoint)}")
        else:
            lines.append('CMD ["bash"]')
        lines.append(f"LABEL {EQUIPMENT_LABEL}={json.dumps(self.what)}")
        return "\n".join(lines) + "\n"


def spire_binary(component: str, arch: str = "amd64") -> Path:
    """SPIRE as the offline build makes it (Go module proxy; cached by content)."""
    source = load_settings(None, {"offline": True, "proxy_file": ("/bin/true",)}).spire(component)
    assert isinstance(source, GoSource)
    return cached_go_binary(source, arch)


def spire_image(component: str, arch: str = "amd64") -> Shaped:
    return Shaped(
        reference=f"ghcr.io/spiffe/{component}:{SPIRE_VERSION}",
        files={f"/opt/spire/bin/{component}": spire_binary(component, arch)},
        entrypoint=[f"/opt/spire/bin/{component}"],
        user="1000:1000" if component == "spire-server" else "",
        what=f"upstream-shaped: {component} {SPIRE_VERSION} built from the Go module proxy "
        "(the configured plugins only)",
    )


def faces_image(name: str, program: Path) -> Shaped:
    return Shaped(
        reference=f"ghcr.io/buoyantio/faces-{name}:{FACES_VERSION}",
        files={"/workload": program},
        entrypoint=["/workload"],
        what=f"upstream-shaped: the Faces {FACES_VERSION} {name} program built from source",
    )


def proxy_image(
    release: str, proxy: Path, identity: Path, version: str = "", reference: str = ""
) -> Shaped:
    """The proxy image of `release` (its version file says `version`, by default upstream's
    for that release), under upstream's name or `reference`."""
    version = version or PROXY_VERSIONS[release]
    return Shaped(
        reference=reference or f"{PROXY_IMAGE}:{release}",
        files={
            PROXY_IN_IMAGE: proxy,
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
            reference=f"{CONTROLLER_IMAGE}:{CLI_RELEASE}",
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
    images += [spire_image(component) for component in ("spire-server", "spire-agent")]
    images += [faces_image(name, program) for name, program in faces.items()]
    return images


def build_shaped(engine: Any, image: Shaped) -> None:
    """Build `image` in the engine, for this machine (a FROM scratch of its files)."""
    build_for(engine, image, "linux/amd64")


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


def build_for(engine: Any, image: Shaped, platform: str) -> None:
    """Build `image` in the engine for `platform` (FROM scratch: no emulation needed)."""
    with tempfile.TemporaryDirectory(prefix="meshexp-shaped-") as scratch:
        root = Path(scratch)
        for number, source in enumerate(image.files.values()):
            target = root / f"f{number}"
            if isinstance(source, Path):
                shutil.copyfile(source, target)
                target.chmod(0o755)
            else:
                target.write_text(source)
        if image.root is not None:
            shutil.copyfile(image.root, root / "root.tar")
        (root / "Dockerfile").write_text(image.dockerfile())
        engine.images.build(path=str(root), tag=image.reference, rm=True, platform=platform)


def push_index(engine: Any, registry: str, name: str, tag: str, variants: dict[str, Shaped]) -> str:
    """Push `variants` (platform -> image) under `registry/name:tag` as ONE index (a
    Docker manifest list), as upstream publishes linux/amd64 and linux/arm64; its digest.
    Each variant is built and pushed under a tag of its own, then untagged here."""
    client = RegistryClient(registry)
    entries = []
    for platform, image in variants.items():
        arch = platform.split("/")[1]
        staged = replace(image, reference=f"{registry}/{name}:{tag}-{arch}")
        build_for(engine, staged, platform)
        docker_engine.push_image(staged.reference)
        engine.images.remove(staged.reference)
        _, digest, size = client.manifest_with_size(name, f"{tag}-{arch}")
        entries.append(
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    return client.put_manifest(
        name, tag, {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}
    )


# Where the mirror keeps each upstream registry's images (cr.l5d.io=HOST/l5d, ...).
MIRROR_PATHS = {"cr.l5d.io": "l5d", "ghcr.io": "ghcr", "docker.io": "hub"}


def fill_mirror(
    engine: Any,
    registry: str,
    *,
    release: str,
    proxy: Path,
    faces: dict[str, Path],
    control_plane: Path,
) -> dict[str, str]:
    """Push what smiley's online build names for `release` into `registry` under the
    mirror paths, each as a linux/amd64 + linux/arm64 index, nothing of it left in the
    engine: amd64 the real programs; arm64 SPIRE and smiley cross-built here (our
    Faces-compatible smiley: upstream's arm64 build is not test equipment), the arm64
    Debian root, and the PROXY STAND-IN (no real arm64 proxy exists here). Returns each
    upstream reference's index digest."""
    version = PROXY_BY_RELEASE[release]
    identity = control_plane / "proxy-identity"
    standin = Shaped(
        "",
        {PROXY_IN_IMAGE: standin_proxy("arm64"), PROXY_VERSION_FILE: version + "\n"},
        [PROXY_IN_IMAGE],
        "upstream-shaped arm64: the PROXY STAND-IN (test equipment, not a Linkerd proxy)",
    )
    our_smiley = cached_go_binary(GoSource(package="./cmd/smiley", local=go_dir()), "arm64")
    images: dict[str, dict[str, Shaped]] = {
        f"{PROXY_IMAGE}:{release}": {
            "linux/amd64": proxy_image(release, proxy, identity, version),
            "linux/arm64": standin,
        },
        f"ghcr.io/buoyantio/faces-smiley:{FACES_VERSION}": {
            "linux/amd64": faces_image("smiley", faces["smiley"]),
            "linux/arm64": replace(
                faces_image("smiley", our_smiley),
                what="upstream-shaped arm64: meshexp-build's Faces-compatible smiley",
            ),
        },
        "docker.io/library/debian:bookworm-slim": {
            platform: Shaped(
                "",
                {},
                [],
                "upstream-shaped: Debian bookworm from Debian's packages (debootstrap)",
                root=rootfs_tarball(platform.split("/")[1]),
            )
            for platform in PLATFORMS
        },
    }
    for component in ("spire-server", "spire-agent"):
        images[f"ghcr.io/spiffe/{component}:{SPIRE_VERSION}"] = {
            platform: spire_image(component, platform.split("/")[1]) for platform in PLATFORMS
        }
    # BuildKit runs its SBOM scanner on the host: our syft wrapper, as the offline path's.
    images[BUILDKIT_SBOM_SCANNER] = {
        f"linux/{HOST_ARCH}": Shaped(
            "",
            {
                "/usr/local/bin/syft": cached_syft(SYFT_VERSION),
                "/usr/local/bin/sbom-scanner": cached_go_binary(SCANNER_WRAPPER, HOST_ARCH),
            },
            ["/usr/local/bin/sbom-scanner"],
            "upstream-shaped: syft built from the Go module proxy, wrapped for BuildKit's "
            "scanning protocol by meshexp-build's go/cmd/sbom-scanner",
            env=(("HOME", "/tmp"), ("TMPDIR", "/tmp")),
        )
    }
    digests = {}
    for upstream, variants in images.items():
        registry_name, _, rest = upstream.partition("/")
        name, tag = rest.rsplit(":", 1)
        path = f"{MIRROR_PATHS[registry_name]}/{name}"
        digests[upstream] = push_index(engine, registry, path, tag, variants)
    return digests


def push_as(engine: Any, local: str, target: str) -> str:
    """Push the engine's image `local` as `target` (a registry's name for it), leaving no
    `target` tag in the engine; the pushed manifest's digest."""
    repository, tag = target.rsplit(":", 1)
    engine.images.get(local).tag(repository, tag)
    try:
        return docker_engine.push_image(target)
    finally:
        engine.images.remove(target)


def proxy_with_version(engine: Any, cluster_proxy: str, release: str) -> str:
    """The walk-through's proxy image (the cluster's, made from the programs: proxy,
    proxy-identity, proxy-init) with upstream's version file added, as upstream's proxy
    image for `release` holds it; its local name."""
    reference = f"meshexp-test/upstream-proxy:{release}"
    with tempfile.TemporaryDirectory(prefix="meshexp-shaped-") as scratch:
        root = Path(scratch)
        (root / "version").write_text(PROXY_VERSIONS[release] + "\n")
        (root / "Dockerfile").write_text(
            f"FROM {cluster_proxy}\nCOPY version {PROXY_VERSION_FILE}\n"
            f"LABEL {EQUIPMENT_LABEL}="
            + json.dumps(
                f"upstream-shaped {release}: the real linkerd2-proxy, proxy-identity and "
                "proxy-init on Debian (the walk-through's cluster image)"
            )
            + "\n"
        )
        engine.images.build(path=str(root), tag=reference, rm=True, platform="linux/amd64")
    return reference


def fill_walkthrough_mirror(
    engine: Any, registry: str, *, images: dict[str, str], chart: Path, helm: Path
) -> dict[str, str]:
    """Push `images` (upstream reference -> the engine's image playing it) into `registry`
    under the mirror paths, and the Faces chart as its OCI artifact; each upstream
    reference's digest in the mirror, nothing of it left in the engine."""
    digests = {}
    for upstream, local in images.items():
        registry_name, _, rest = upstream.partition("/")
        target = f"{registry}/{MIRROR_PATHS[registry_name]}/{rest}"
        digests[upstream] = push_as(engine, local, target)
    destination = f"oci://{registry}/{MIRROR_PATHS['ghcr.io']}/buoyantio"
    subprocess.run(
        [str(helm), "push", str(chart), destination, "--plain-http"],
        check=True,
        capture_output=True,
        env={**os.environ, "HELM_CONFIG_HOME": tempfile.mkdtemp(prefix="meshexp-helm-")},
    )
    return digests


def walkthrough_images(engine: Any, inputs: dict[str, Any]) -> dict[str, str]:
    """Every image the online walk-through on kind names at the test equipment's Linkerd
    release (upstream reference -> the engine's image playing it): Linkerd's controller and
    proxy and the Faces images made from their programs (`inputs`: kind_e2e_config's
    keywords), SPIRE from the Go module proxy, the Debian base and the DNS forwarder."""
    linkerd = build_linkerd_images(inputs["linkerd_programs"])
    faces = build_faces_images(inputs["faces_programs"], inputs["faces_page"], FACES_VERSION)
    images = {
        f"{CONTROLLER_IMAGE}:{CLI_RELEASE}": linkerd.controller,
        f"{PROXY_IMAGE}:{CLI_RELEASE}": proxy_with_version(engine, linkerd.proxy, CLI_RELEASE),
        **{reference: reference for reference in faces},
        "docker.io/library/debian:bookworm-slim": OFFLINE_BASE_IMAGE,
        normalized(FORWARDER_IMAGE): build_forwarder_image(
            cached_main_program(coredns()), COREDNS_VERSION
        ),
    }
    for component in ("spire-server", "spire-agent"):
        shaped = replace(
            spire_image(component), reference=f"meshexp-test/upstream-{component}:{SPIRE_VERSION}"
        )
        build_shaped(engine, shaped)
        images[f"ghcr.io/spiffe/{component}:{SPIRE_VERSION}"] = shaped.reference
    return images
