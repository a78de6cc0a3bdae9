"""`meshexp-build image`: render the context for each workload, then build it in the engine."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from builder.build.base_image import ensure_offline_base
from builder.build.from_image import settle
from builder.build.plan import Component, fetch_planned, plan_components
from builder.build.provenance import provenance_labels
from builder.build.render import render_build_context
from builder.build.sources import Fetched, fetch
from builder.build.upstream import use_upstream_images
from builder.config.models import Workload
from builder.config.settings import OFFLINE_BASE_IMAGE, Settings
from builder.config.sources import ImageSource
from builder.core.cache import cache_key, cache_root, link_or_copy
from builder.core.progress import Progress, as_progress
from builder.engine import docker_engine


@dataclass(frozen=True)
class ImageResult:
    workload: str
    reference: str
    image_id: str
    size_bytes: int
    standin: bool
    labels: dict[str, str]


def ensure_base(settings: Settings, progress: Progress) -> None:
    """The offline profile's base is ours to make: build it once when it is missing."""
    if settings.resolved_base_image == OFFLINE_BASE_IMAGE:
        ensure_offline_base(progress)


def build_workload_image(
    *,
    workload: Workload,
    settings: Settings,
    tag: str | None = None,
    nocache: bool = False,
    on_line: Progress | Callable[[str], None] | None = None,
) -> ImageResult:
    """Render into a scratch context, build it, and return what the engine made.

    `on_line` receives the phases and the engine's lines (a Progress, or a
    callable for plain lines).
    """
    progress = as_progress(on_line)
    if tag is not None:
        settings = settings.with_(tag=tag).check()
    docker_engine.client()  # fail before any Go build when no engine answers
    workload = settle(workload, settings, progress)  # an application's image: its config
    ensure_base(settings, progress)
    components = plan_components(workload, settings)  # once per build
    # Upstream's images first (as the pull policy says, through the mirrors), and the
    # proxy's version from its image: before any Go build, and before the tag is known.
    settings, used = use_upstream_images(components, settings, progress)
    reference = settings.image_reference(workload.name)
    scratch_root = cache_root() / "contexts"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f"{workload.name}-", dir=scratch_root)
    try:
        fetched = fetch_planned(components, settings, progress)
        components_image = ensure_components_image(components, fetched, settings, nocache, progress)
        context = render_build_context(
            workload=workload,
            settings=settings,
            output=scratch_root / scratch / "context",
            components_image=components_image,
            extra_labels=provenance_labels(Path.cwd()),
            progress=progress,
            components=components,
            fetched=fetched,
            used_images={ref: (one.used, one.digest) for ref, one in used.items()},
        )
        progress.line(f"rendered build context for {workload.name} ({len(context.files)} files)")
        with progress.phase(f"image {reference}"):
            image_id = docker_engine.build_image(
                context=context.output,
                tag=reference,
                platform=settings.platform,
                nocache=nocache,
                on_line=progress.line,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    attrs = docker_engine.image_attrs(reference)
    return ImageResult(
        workload=workload.name,
        reference=reference,
        image_id=image_id,
        size_bytes=int(attrs.get("Size", 0)),
        standin=context.standin,
        labels=dict(attrs.get("Config", {}).get("Labels") or {}),
    )


def prefetch_components(
    workloads: list[Workload],
    settings: Settings,
    workers: int = 2,
    progress: Progress | None = None,
    with_proxy: bool = True,
) -> int:
    """Fetch (build) every distinct non-image component of several workloads in parallel.

    Each source is fetched once; the builds that follow find them in the cache.
    Returns how many distinct sources were fetched.
    """
    distinct = {}
    for workload in workloads:
        for component in plan_components(workload, settings, with_proxy):
            if not isinstance(component.source, ImageSource):
                distinct[component.source] = component.role
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(fetch, source, role, settings.arch, progress)
            for source, role in distinct.items()
        ]
        for future in futures:
            future.result()
    return len(distinct)


COMPONENTS_REPOSITORY = "meshexp/components"


def ensure_components_image(
    components: list[Component],
    fetched: dict[str, Fetched],
    settings: Settings,
    nocache: bool,
    progress: Progress,
) -> str | None:
    """Put the shared non-image binaries (SPIRE, proxy, certcheck) in an image of their own.

    Tagged by the binaries' digests and built only when missing, so a workload
    build sends only its scripts and its own binaries to the engine, and its
    COPY --from layers are identical for every workload that shares them.
    """
    shared = {
        c.role: fetched[c.role]
        for c in components
        if not c.workload_layer and not isinstance(c.source, ImageSource)
    }
    if not shared:
        return None
    key = cache_key(
        platform=settings.platform,
        binaries=sorted((role, got.sha256) for role, got in shared.items()),
    )
    reference = f"{COMPONENTS_REPOSITORY}:{key[:20]}"
    if docker_engine.image_exists(reference) and not nocache:
        return reference
    with tempfile.TemporaryDirectory(prefix="meshexp-components-") as scratch:
        root = Path(scratch)
        lines = ["FROM scratch"]
        for role, got in shared.items():
            target = root / role
            link_or_copy(got.path, target)
            target.chmod(0o755)
            lines.append(f"COPY {role} /{role}")
        (root / "Dockerfile").write_text("\n".join(lines) + "\n")
        with progress.phase(f"components image {reference}"):
            docker_engine.build_image(
                context=root,
                tag=reference,
                platform=settings.platform,
                nocache=nocache,
                on_line=progress.line,
            )
    return reference
