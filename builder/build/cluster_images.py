"""Images for the walk-through's cluster, made from programs rather than pulled: Linkerd's
controller and proxy images (from the same programs the mesh lab runs) and the Faces
images the chart asks for (from the Faces programs). Each is tagged by a digest of what
it holds, so it is built once per content.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.build.base_image import ensure_offline_base
from builder.build.gobuild import HOST_ARCH
from builder.config.settings import OFFLINE_BASE_IMAGE
from builder.core import image_contract
from builder.core.cache import cache_key, file_sha256
from builder.core.errors import BuildError
from builder.core.progress import Progress
from builder.core.resources import data_root
from builder.engine import docker_engine

LINKERD_REPOSITORY = "meshexp/linkerd"
FACES_REPOSITORY = "ghcr.io/buoyantio/faces"  # the chart's names, so it needs no --set
FACES_PROGRAMS = ("smiley", "color", "face", "gui")


@dataclass(frozen=True)
class LinkerdPrograms:
    """Linkerd's programs: built from source, or copied out of Linkerd's own images."""

    controller: Path
    policy_controller: Path
    proxy_identity: Path
    proxy: Path
    proxy_init: Path

    def check(self) -> LinkerdPrograms:
        for name, path in vars(self).items():
            if not Path(path).is_file():
                raise BuildError(
                    f"Linkerd's {name.replace('_', '-')} program {path} is not a file: give "
                    "Linkerd's own (built from source, or copied out of its images)"
                )
        return self


@dataclass(frozen=True)
class LinkerdImages:
    controller: str
    proxy: str

    def install_values(self) -> tuple[str, ...]:
        """`linkerd install --set` values that make the control plane use these images."""
        controller, controller_tag = self.controller.rsplit(":", 1)
        proxy, proxy_tag = self.proxy.rsplit(":", 1)
        return (
            f"proxy.image.name={proxy}",
            f"proxy.image.version={proxy_tag}",
            f"controllerImage={controller}",
            f"controllerImageVersion={controller_tag}",
            f"policyController.image.name={controller}",
            f"policyController.image.version={controller_tag}",
            "imagePullPolicy=Never",
        )


def _build(
    dockerfile: str,
    files: dict[str, Path],
    reference: str,
    on_line: Callable[[str], None],
    data: Path | None = None,
    args: dict[str, str] | None = None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="meshexp-cluster-image-") as scratch:
        context = Path(scratch)
        shutil.copyfile(data_root() / "kind" / "images" / dockerfile, context / "Dockerfile")
        for name, path in files.items():
            shutil.copyfile(path, context / name)
            (context / name).chmod(0o755)
        (context / "data").mkdir()
        if data is not None:
            shutil.copyfile(data, context / "data" / data.name)
        docker_engine.build_image(
            context=context,
            tag=reference,
            platform=f"linux/{HOST_ARCH}",
            buildargs={"BASE": OFFLINE_BASE_IMAGE, **(args or {})},
            on_line=on_line,
        )


def _tag(files: dict[str, Path], dockerfile: str) -> str:
    recipe = (data_root() / "kind" / "images" / dockerfile).read_text()
    return cache_key(
        recipe=recipe,
        base=str(docker_engine.image_attrs(OFFLINE_BASE_IMAGE)["Id"]),
        files={name: file_sha256(path) for name, path in sorted(files.items())},
    )[:16]


def build_linkerd_images(
    programs: LinkerdPrograms,
    *,
    progress: Progress | None = None,
    on_line: Callable[[str], None] = lambda line: None,
) -> LinkerdImages:
    """Linkerd's controller and proxy images from `programs` (each once per content)."""
    progress = progress or Progress()
    programs.check()
    ensure_offline_base(progress)
    wanted = {
        "Dockerfile.linkerd-controller": (
            "controller",
            {
                "controller": programs.controller,
                "linkerd-policy-controller": programs.policy_controller,
            },
        ),
        "Dockerfile.linkerd-proxy": (
            "proxy",
            {
                "linkerd2-proxy": programs.proxy,
                "linkerd2-proxy-identity": programs.proxy_identity,
                "linkerd2-proxy-init": programs.proxy_init,
            },
        ),
    }
    made: dict[str, str] = {}
    for dockerfile, (name, files) in wanted.items():
        reference = f"{LINKERD_REPOSITORY}-{name}:{_tag(files, dockerfile)}"
        if not docker_engine.image_exists(reference):
            with progress.phase(f"Linkerd {name} image {reference}"):
                _build(dockerfile, files, reference, on_line)
        made[name] = reference
    return LinkerdImages(controller=made["controller"], proxy=made["proxy"])


FORWARDER_REPOSITORY = "meshexp/kind-coredns"


def build_forwarder_image(
    coredns: Path, version: str, *, on_line: Callable[[str], None] = lambda line: None
) -> str:
    """The walk-through's DNS forwarder: the node image's CoreDNS, as a host image."""
    files = {"coredns": coredns}
    reference = f"{FORWARDER_REPOSITORY}:{version}-{_tag(files, 'Dockerfile.coredns')}"
    if not docker_engine.image_exists(reference):
        _build("Dockerfile.coredns", files, reference, on_line)
    return reference


def build_faces_images(
    programs: dict[str, Path],
    page: Path,
    version: str,
    *,
    progress: Progress | None = None,
    on_line: Callable[[str], None] = lambda line: None,
) -> list[str]:
    """The Faces images the chart names (`ghcr.io/buoyantio/faces-NAME:version`), from the
    programs; the GUI with `page` (its index.html)."""
    progress = progress or Progress()
    missing = [name for name in FACES_PROGRAMS if not Path(programs.get(name, "")).is_file()]
    if missing or not page.is_file():
        raise BuildError(
            f"the Faces images need the programs {', '.join(FACES_PROGRAMS)} and the GUI's "
            f"index.html; missing: {', '.join(missing) or page}"
        )
    made = []
    for name in FACES_PROGRAMS:
        reference = f"{FACES_REPOSITORY}-{name}:{version}"
        data = page if name == "gui" else None
        files = {"program": programs[name]}
        content = _tag({**files, **({"page": page} if data else {})}, "Dockerfile.faces")
        if _label(reference, CONTENT_LABEL) != content:
            with progress.phase(f"Faces {name} image {reference}"):
                _build("Dockerfile.faces", files, reference, on_line, data, {"CONTENT": content})
        made.append(reference)
    return made


CONTENT_LABEL = image_contract.CONTENT


def _label(reference: str, label: str) -> str | None:
    """A label of a local image; None when the image or the label is missing."""
    if not docker_engine.image_exists(reference):
        return None
    labels = docker_engine.image_attrs(reference)["Config"].get("Labels") or {}
    found = labels.get(label)
    return str(found) if found is not None else None
