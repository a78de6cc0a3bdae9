"""The walk-through's parts for a kind cluster, as an E2EConfig for `run_e2e`.

Offline (no registry): the node image and kind, Helm and kubectl built here, and Linkerd's
and Faces' images made from their programs. Online: kind with its own kindest/node, and
upstream's images, chart and tools, as on k3d.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from builder.build.cluster_images import (
    LinkerdPrograms,
    build_faces_images,
    build_forwarder_image,
    build_linkerd_images,
)
from builder.build.gobuild import HOST_ARCH, cached_go_binary
from builder.build.gomodules import COREDNS_VERSION, cached_main_program, coredns
from builder.build.upstream import ensure_image
from builder.check.walkthrough.steps import E2EConfig, E2ETools
from builder.cluster.kind import prepare_kind
from builder.config.mirrors import is_local
from builder.config.settings import Settings
from builder.config.sources import GoSource
from builder.core.errors import CheckError
from builder.core.progress import Progress

HELM = GoSource(package="helm.sh/helm/v3/cmd/helm", version="v3.22.0")


def kind_e2e_config(
    base: E2EConfig,
    *,
    linkerd: Path,
    linkerd_programs: LinkerdPrograms,
    faces_programs: dict[str, Path],
    faces_page: Path,
    chart: Path,
    progress: Progress | None = None,
) -> E2EConfig:
    """`base` with the kind provider and every part built here (each cached by content)."""
    progress = progress or Progress()
    if not linkerd.is_file() or not chart.is_file():
        raise CheckError(
            f"e2e on kind needs the linkerd CLI ({linkerd}) and the Faces chart ({chart}) "
            "as files: give them (the linkerd CLI's release names the control plane)"
        )
    provider = prepare_kind(folder=base.certs.parent / "kind", progress=progress)
    helm = cached_go_binary(HELM, HOST_ARCH, progress)
    linkerd_images = build_linkerd_images(linkerd_programs, progress=progress)
    faces = build_faces_images(faces_programs, faces_page, base.faces_version, progress=progress)
    forwarder = build_forwarder_image(cached_main_program(coredns(), progress), COREDNS_VERSION)
    return replace(
        base,
        provider=provider,
        tools=E2ETools(kubectl=str(provider.kubectl), helm=str(helm), linkerd=str(linkerd)),
        chart=str(chart.resolve()),
        load_images=(linkerd_images.controller, linkerd_images.proxy, *faces),
        linkerd_values=linkerd_images.install_values(),
        forwarder_image=forwarder,
        offline=True,
    )


def kind_online_config(
    base: E2EConfig, *, settings: Settings, progress: Progress | None = None
) -> E2EConfig:
    """`base` with the kind provider as published (kindest/node, upstream's images pulled
    by the cluster, kubectl, helm and linkerd from PATH). Every upstream reference goes
    through the settings' mirrors: the node image, the DNS forwarder and the Faces chart
    pulled here, and the images the nodes pull (their containerd is told of the mirrors)."""
    progress = progress or Progress()
    provider = prepare_kind(
        folder=base.certs.parent / "kind", online=True, settings=settings, progress=progress
    )
    chart = base.chart
    if chart.startswith(OCI):
        chart = OCI + settings.mirrored(chart.removeprefix(OCI))
    return replace(
        base,
        provider=provider,
        tools=E2ETools(kubectl=str(provider.kubectl)),
        chart=chart,
        chart_plain_http=is_local(chart.removeprefix(OCI).split("/")[0]),
        forwarder_image=ensure_image(base.forwarder_image, settings, progress).used,
        # A site that pulls through mirrors may have no internet: linkerd check's version
        # checks are excepted there, and the run says so.
        offline=bool(settings.mirrors),
    )


OCI = "oci://"


LINKERD_FILES = (
    "controller",
    "linkerd-policy-controller",
    "proxy-identity",
    "proxy-init",
    "linkerd",
)
FACES_FILES = ("smiley", "color", "face", "gui", "gui-assets/index.html", "faces-chart-2.0.0.tgz")


def kind_inputs(*, linkerd_dir: Path, faces_dir: Path, proxy: Path) -> dict[str, Any]:
    """kind_e2e_config's keywords from two folders laid out as Linkerd's and Faces' builds
    from source leave them (the project's test equipment is one such pair)."""
    wanted = [linkerd_dir / name for name in LINKERD_FILES]
    wanted += [faces_dir / name for name in FACES_FILES]
    missing = [str(path) for path in [*wanted, proxy] if not path.is_file()]
    if missing:
        raise CheckError(
            "e2e on kind builds Linkerd's and Faces' images from their programs; missing: "
            + ", ".join(missing)
            + f" (--linkerd-programs holds {', '.join(LINKERD_FILES)}; --faces-programs "
            f"holds {', '.join(FACES_FILES)}; --proxy-file the linkerd2-proxy)"
        )
    return {
        "linkerd": linkerd_dir / "linkerd",
        "linkerd_programs": LinkerdPrograms(
            controller=linkerd_dir / "controller",
            policy_controller=linkerd_dir / "linkerd-policy-controller",
            proxy_identity=linkerd_dir / "proxy-identity",
            proxy=proxy,
            proxy_init=linkerd_dir / "proxy-init",
        ),
        "faces_programs": {name: faces_dir / name for name in ("smiley", "color", "face", "gui")},
        "faces_page": faces_dir / "gui-assets" / "index.html",
        "chart": faces_dir / "faces-chart-2.0.0.tgz",
    }
