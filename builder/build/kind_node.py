"""A kind node image built offline: the project's Debian base with Debian's systemd,
containerd, runc and CNI plugins, kind's base files, one Kubernetes multi-call binary,
and the control-plane images (kube-*, etcd, CoreDNS, pause) saved inside it.

Every part comes from Debian's packages or the Go module proxy (builder.build.gomodules);
the image is tagged by a digest of all of them, so it is made once per content.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.build.base_image import ensure_offline_base
from builder.build.gobuild import HOST_ARCH, module_download
from builder.build.gomodules import (
    COREDNS_VERSION,
    ETCD_VERSION,
    KIND_VERSION,
    KUBERNETES_VERSION,
    cached_main_program,
    coredns,
    etcd,
    kube_multicall,
)
from builder.build.kind_adapt import KIND_MODULE
from builder.build.kube_apiserver import KUBERNETES
from builder.config.settings import OFFLINE_BASE_IMAGE
from builder.core import image_contract
from builder.core.cache import cache_key, cache_root, file_sha256, tree_sha256
from builder.core.progress import Progress
from builder.core.resources import data_root
from builder.engine import docker_engine

NODE_REPOSITORY = "meshexp/kind-node"
PAUSE_VERSION = "3.10.1"
# kind's containerd config names pause 3.10 as the sandbox image; kubeadm asks for 3.10.1.
PAUSE_ALIASES = ("3.10",)
REGISTRY = "registry.k8s.io"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
BUILD_STAGE_LABEL = image_contract.BUILD_STAGE
# Part of the tag: a change to how the node is put together makes a new one.
RECIPE = 1


@dataclass(frozen=True)
class ControlPlaneImage:
    """One image saved into the node, under `name`, and tagged there as `aliases`."""

    dockerfile: str
    name: str
    files: tuple[Path, ...]
    aliases: tuple[str, ...] = ()
    args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NodeImage:
    reference: str
    reused: bool
    kube: Path  # the multi-call binary inside it, on the host


def _images_dir() -> Path:
    return data_root() / "kind" / "images"


def control_plane_images(parts: dict[str, Path], pause_c: Path) -> list[ControlPlaneImage]:
    """What kubeadm will ask containerd for, with the parts each image holds."""
    version = KUBERNETES_VERSION
    first, *others = (f"{REGISTRY}/{name}:{version}" for name in CONTROL_PLANE)
    pause = f"{REGISTRY}/pause:{PAUSE_VERSION}"
    return [
        ControlPlaneImage("Dockerfile.kube", first, (parts["kube"],), tuple(others)),
        ControlPlaneImage(
            "Dockerfile.etcd",
            f"{REGISTRY}/etcd:{ETCD_VERSION.removeprefix('v')}-0",
            (parts["etcd"],),
        ),
        ControlPlaneImage(
            "Dockerfile.coredns",
            f"{REGISTRY}/coredns/coredns:{COREDNS_VERSION}",
            (parts["coredns"],),
        ),
        ControlPlaneImage(
            "Dockerfile.pause",
            pause,
            (pause_c,),
            tuple(f"{REGISTRY}/pause:{alias}" for alias in PAUSE_ALIASES),
            (("PAUSE_VERSION", PAUSE_VERSION),),
        ),
    ]


def aliases_file(images: list[ControlPlaneImage]) -> str:
    """Lines `NAME ALIAS` that the node's import step tags in containerd."""
    return "".join(f"{image.name} {alias}\n" for image in images for alias in image.aliases)


def node_key(parts: dict[str, Path], pause_c: Path, kind_files: Path) -> str:
    """The digest the node image is tagged with: every input that decides its bytes."""
    return cache_key(
        recipe=RECIPE,
        node=tree_sha256(data_root() / "kind" / "node", None),
        images=tree_sha256(_images_dir(), None),
        kind_files=tree_sha256(kind_files, None),
        parts={name: file_sha256(path) for name, path in sorted(parts.items())},
        pause=file_sha256(pause_c),
        base=OFFLINE_BASE_IMAGE,
        base_id=str(docker_engine.image_attrs(OFFLINE_BASE_IMAGE)["Id"]),
    )[:16]


def build_node_image(
    *, progress: Progress | None = None, on_line: Callable[[str], None] = lambda line: None
) -> NodeImage:
    """The node image for KUBERNETES_VERSION, made from its parts (each cached) once."""
    progress = progress or Progress()
    ensure_offline_base(progress)
    parts = {
        program.name: cached_main_program(program, progress)
        for program in (kube_multicall(), etcd(), coredns())
    }
    env = dict(os.environ, GOFLAGS="")
    kubernetes = Path(module_download(KUBERNETES, KUBERNETES_VERSION, cache_root(), env)["Dir"])
    kind = Path(module_download(KIND_MODULE, KIND_VERSION, cache_root(), env)["Dir"])
    pause_c = kubernetes / "build" / "pause" / "linux" / "pause.c"
    kind_files = kind / "images" / "base" / "files"
    reference = f"{NODE_REPOSITORY}:{KUBERNETES_VERSION}-{node_key(parts, pause_c, kind_files)}"
    if docker_engine.image_exists(reference):
        return NodeImage(reference, True, parts["kube"])
    with progress.phase(f"kind node image {reference} (a few minutes, once per content)"):
        _assemble(reference, parts, pause_c, kind_files, on_line)
    return NodeImage(reference, False, parts["kube"])


def _assemble(
    reference: str,
    parts: dict[str, Path],
    pause_c: Path,
    kind_files: Path,
    on_line: Callable[[str], None],
) -> None:
    images = control_plane_images(parts, pause_c)
    with tempfile.TemporaryDirectory(prefix="meshexp-kind-node-") as scratch:
        context = Path(scratch)
        saved = context / "images"
        saved.mkdir()
        for number, image in enumerate(images):
            _build_control_plane_image(image, context / f"cp-{number}", on_line)
            docker_engine.save_image(image.name, saved / f"{number}.tar")
            docker_engine.remove_image(image.name)  # it lives on inside the node image
        (saved / "aliases").write_text(aliases_file(images))
        shutil.copytree(kind_files, context / "kind-files", symlinks=True)
        shutil.copytree(data_root() / "kind" / "node" / "files", context / "files", symlinks=True)
        shutil.copyfile(data_root() / "kind" / "node" / "Dockerfile", context / "Dockerfile")
        shutil.copyfile(parts["kube"], context / "kube")
        (context / "kube").chmod(0o755)
        docker_engine.build_image(
            context=context,
            tag=reference,
            platform=f"linux/{HOST_ARCH}",
            buildargs={"BASE": OFFLINE_BASE_IMAGE, "KUBERNETES_VERSION": KUBERNETES_VERSION},
            on_line=on_line,
        )


def _build_control_plane_image(
    image: ControlPlaneImage, context: Path, on_line: Callable[[str], None]
) -> None:
    context.mkdir()
    shutil.copyfile(_images_dir() / image.dockerfile, context / "Dockerfile")
    for path in image.files:
        shutil.copyfile(path, context / path.name)
        (context / path.name).chmod(0o755)
    docker_engine.build_image(
        context=context,
        tag=image.name,
        platform=f"linux/{HOST_ARCH}",
        buildargs={"BASE": OFFLINE_BASE_IMAGE, **dict(image.args)},
        on_line=on_line,
    )
    docker_engine.remove_images_labelled(BUILD_STAGE_LABEL, "kind-pause")
