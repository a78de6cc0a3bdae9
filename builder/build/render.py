"""Render a complete build context (Dockerfile, scripts, configs, binaries) for a workload.

`render_files` is pure (templates only, no fetching), which is what the golden
tests compare. `render_build_context` also fetches the non-image components
and writes everything into a scratch folder beside the output, then moves it
into place: on any error, nothing is left in the output folder.

The plan of components (what each binary is and where it comes from) is
builder.build.plan's. It is one module of over 400 lines because the labels, the
template context and the all-or-nothing write are one transaction over the same
workload, settings and components.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import __version__
from builder.build.plan import (
    EXECUTABLE,
    MULTICALL_LINKS,
    Component,
    check_workload_fits,
    fetch_components,
    from_components_image,
    plan_components,
)
from builder.build.proxy_release import proxy_release
from builder.build.sources import Fetched
from builder.build.spire_configs import SPIRE_SERVER_PORT, image_configs
from builder.build.spire_plugins import SIDES, configured_plugins, describe_kept
from builder.build.templates import render_template
from builder.config.models import Workload
from builder.config.settings import OFFLINE_BASE_IMAGE, Settings
from builder.config.sources import GoSource, ImageSource, describe_source
from builder.core import image_contract
from builder.core.errors import RenderError
from builder.core.files import make_folder, path_problem
from builder.core.progress import Progress

SYSTEM_PACKAGES = ("iproute2", "iptables")
# The mesh stage of an image made FROM an application's: the same (the same layer), then
# patchelf, which points the programs at the mesh's own loader and libraries.
MESH_TOOLS = ("patchelf",)


CONTEXT_MANIFEST = "meshexp-context.json"


READABLE = 0o644


@dataclass(frozen=True)
class RenderResult:
    """What was written, for the CLI and for `image`."""

    output: Path
    image: str
    components: tuple[dict[str, Any], ...]
    standin: bool
    files: tuple[str, ...] = field(default=())


def _labels(
    workload: Workload,
    settings: Settings,
    components: list[Component],
    fetched: dict[str, Fetched],
    extra_labels: tuple[tuple[str, str], ...] = (),
    used_images: UsedImages | None = None,
) -> list[tuple[str, str]]:
    """The image's labels: ours (io.meshexp.*), OCI's, then the build's and the user's.

    An upstream image's label keeps its upstream reference, with the digest actually
    used and the mirror it came through (`used_images`, where the build pulled them).
    """
    used_images = used_images or {}
    labels = [
        ("org.opencontainers.image.title", workload.name),
        ("org.opencontainers.image.description", workload.description or workload.name),
        (
            "org.opencontainers.image.version",
            settings.image_reference(workload.name).split(":")[-1],
        ),
        ("org.opencontainers.image.vendor", "meshexp-build"),
        *image_contract_of(workload, settings, fetched, components).to_labels(),
    ]
    base = settings.resolved_base_image
    if workload.from_image is not None:
        # The application's image is the base the image is made from.
        base = workload.from_image.image
        used_images = {**used_images, base: workload.image_used}
    labels.append(("org.opencontainers.image.base.name", base))
    if base in used_images:
        if used_images[base][1].startswith("sha256:"):  # a registry's digest
            labels.append(("org.opencontainers.image.base.digest", used_images[base][1]))
        labels.append((image_contract.BASE_IMAGE, _used(base, used_images[base])))
    if workload.licenses:
        labels.append(("org.opencontainers.image.licenses", workload.licenses))
    for component in components:
        described = describe_source(component.source)
        source = component.source
        if isinstance(source, ImageSource) and source.ref in used_images:
            described = f"image {_used(source.ref, used_images[source.ref])} {source.path}"
        if component.role in fetched:
            got = fetched[component.role]
            described = f"{describe_source(got.source or component.source)} sha256:{got.sha256}"
        labels.append(
            (f"{image_contract.SOURCE_PREFIX}{component.role.replace('/', '.')}", described)
        )
    if any(item.standin for item in fetched.values()):
        labels.append(
            (image_contract.PROXY_STANDIN, "PROXY STAND-IN: not a Linkerd proxy (test equipment)")
        )
    return [*labels, *extra_labels, *settings.labels.items()]


# upstream reference -> (the reference pulled, the digest used): builder.build.upstream's.
UsedImages = dict[str, tuple[str, str]]


def _used(upstream: str, used: tuple[str, str]) -> str:
    """`upstream@digest` (or `upstream (local image ID)` for one no registry served), and
    the mirror's reference where the image came through one."""
    reference, digest = used
    pinned = f"{upstream}@{digest}" if digest.startswith("sha256:") else f"{upstream} ({digest})"
    return pinned + (f" via {reference}" if reference != upstream else "")


def spire_build(components: list[Component]) -> str:
    """Which SPIRE build the image carries: only the configured plugins (named), every
    built-in, or unknown (a binary given as a file)."""
    spire = {c.role: c.source for c in components if c.role.startswith("spire")}
    sources = list(spire.values())
    if any(isinstance(source, GoSource) and source.trim_spire for source in sources):
        sides = {"spire": SIDES, "spire-server": ("server",), "spire-agent": ("agent",)}
        present = {side for role in spire for side in sides[role]}
        kept = [plugin for plugin in configured_plugins() if plugin.side in present]
        return "configured: " + ", ".join(describe_kept(kept))
    if all(isinstance(source, GoSource | ImageSource) for source in sources):
        return "all"
    return "unknown (a given binary)"


def inbound_policy(workload: Workload, settings: Settings) -> str:
    """The image's default inbound policy: the workload's own, else the settings'."""
    return workload.inbound_default_policy or settings.inbound_default_policy


def image_contract_of(
    workload: Workload, settings: Settings, fetched: dict[str, Fetched], components: list[Component]
) -> image_contract.ImageContract:
    """The run-time contract the image carries in its labels."""
    proxy_version, proxy_release = _proxy_release(settings, fetched)
    return image_contract.ImageContract(
        workload=workload.name,
        namespace=workload.namespace,
        tool_version=__version__,
        linkerd_version=settings.facts.linkerd_version,
        linkerd_release=settings.facts.release,
        proxy_version=proxy_version,
        proxy_release=proxy_release,
        spire_version=settings.spire_version,
        spire_topology=settings.topology,
        iptables_mode=settings.resolved_iptables_mode,
        proxy_uid=settings.proxy_uid,
        trust_domain=settings.trust_domain,
        identity=settings.identity,
        spire_multicall=settings.uses_multicall,
        spire_plugins=spire_build(components),
        spire_uid=settings.spire_uid,
        workload_uid=workload.uid,
        ports=tuple(
            image_contract.Port(port.name, port.port, port.protocol) for port in workload.ports
        ),
        probes=tuple(port.probe_spec for port in workload.ports),
        inbound_policy=inbound_policy(workload, settings),
        readiness=readiness_label(workload),
        inbound_ports_to_ignore=tuple(settings.inbound_ports_to_ignore),
        outbound_ports_to_ignore=tuple(settings.outbound_ports_to_ignore),
        application_image=workload.from_image.image if workload.from_image else "",
    )


def _proxy_release(settings: Settings, fetched: dict[str, Fetched]) -> tuple[str, str]:
    """The proxy's version, and its release as the binary itself tells it where it can be
    asked.

    An image source is named by its tag; a binary file is run once (empty
    environment) and its release line read; where it cannot run here (another
    architecture), the settings' table speaks and the release says so.
    """
    got = fetched.get("proxy")
    if got is None:
        return settings.facts.proxy_version, ""
    release = proxy_release(got.path, got.sha256, settings.arch)
    if release is None:
        return settings.facts.proxy_version, "unverified: the binary could not be asked here"
    return release.version, release.label


def _context(
    workload: Workload,
    settings: Settings,
    components: list[Component],
    fetched: dict[str, Fetched],
    components_image: str | None = None,
    extra_labels: tuple[tuple[str, str], ...] = (),
    used_images: UsedImages | None = None,
) -> dict[str, Any]:
    copied = from_components_image(components, components_image)
    # Upstream's references are pulled through their mirrors; our own images are local.
    upstream = {c.source.ref for c in components if isinstance(c.source, ImageSource)}
    base = settings.resolved_base_image
    mode = settings.resolved_iptables_mode
    facts = settings.facts
    return {
        "tool_version": __version__,
        "workload": workload,
        "settings": settings,
        "facts": facts,
        "base_image": base if base == OFFLINE_BASE_IMAGE else settings.mirrored(base),
        "system_packages": SYSTEM_PACKAGES,
        "iptables_mode": mode,
        "iptables_binary": f"iptables-{mode}",
        "ip6tables_binary": f"ip6tables-{mode}",
        "inbound_ignore": ",".join(map(str, settings.inbound_ports_to_ignore)),
        "outbound_ignore": ",".join(map(str, settings.outbound_ports_to_ignore)),
        "inbound_ports": ",".join(str(port.port) for port in workload.ports),
        "opaque_ports": ",".join(
            str(port.port) for port in workload.ports if port.app_protocol == "opaque"
        ),
        "profile_networks": ",".join(settings.profile_networks),
        "inbound_policy": inbound_policy(workload, settings),
        "spire_server_port": SPIRE_SERVER_PORT,
        # "Proxy ready", by the rule the tool applies from outside too.
        "proxy_ready_status": image_contract.PROXY_READY_STATUS,
        "proxy_refused_statuses": image_contract.PROXY_REFUSED_STATUSES,
        "certified_line": image_contract.CERTIFIED_LINE,
        "stages": [
            {
                "name": c.stage,
                "ref": settings.mirrored(c.source.ref)
                if c.source.ref in upstream
                else c.source.ref,
            }
            for c in copied
            if isinstance(c.source, ImageSource)
        ],
        "components": [c for c in copied if not c.workload_layer],
        "workload_components": [c for c in copied if c.workload_layer],
        "labels": _labels(workload, settings, components, fetched, extra_labels, used_images),
        "links": image_links(settings),
        "probe": workload.probe,
        "paths": image_contract,
        "mesh_tools": MESH_TOOLS,
        "from_image": workload.image_used[0] if workload.from_image else None,
    }


def image_links(settings: Settings) -> list[tuple[str, str]]:
    """(link, target): the names the multi-call binary answers to, and meshexp-probe
    (the certcheck program, called by that name)."""
    if settings.uses_multicall:
        target = image_contract.SPIRE_SERVER
        return [(link, target) for link in (*MULTICALL_LINKS, image_contract.PROBE)]
    return [(image_contract.PROBE, image_contract.CERTCHECK)]


def readiness_label(workload: Workload) -> str:
    """The readiness label: the probe and its timings, so a container carries its probe."""
    probe = workload.probe
    return json.dumps(probe.spec(workload.uid) | probe.timings, sort_keys=True)


def render_files(
    workload: Workload,
    settings: Settings,
    fetched: dict[str, Fetched] | None = None,
    components_image: str | None = None,
    extra_labels: tuple[tuple[str, str], ...] = (),
    components: list[Component] | None = None,
    used_images: UsedImages | None = None,
) -> dict[str, tuple[str, int]]:
    """Every templated file of the context: relative path -> (text, mode). Pure.

    `components` is the build's plan when the caller has made it (else made here).
    """
    check_workload_fits(workload, settings)
    if components is None:
        components = plan_components(workload, settings)
    context = _context(
        workload, settings, components, fetched or {}, components_image, extra_labels, used_images
    )
    from_image = workload.from_image is not None
    files = {
        "Dockerfile": (
            render_template("from.Dockerfile.j2" if from_image else "Dockerfile.j2", context),
            READABLE,
        ),
        "scripts/bootstrap": (render_template("bootstrap.sh.j2", context), EXECUTABLE),
        "scripts/run-proxy": (render_template("run-proxy.sh.j2", context), EXECUTABLE),
        "workload/launch": (render_template("launch.sh.j2", context), EXECUTABLE),
        "workload/readiness.json": (
            json.dumps(workload.probe.spec(workload.uid), indent=2) + "\n",
            READABLE,
        ),
    }
    if from_image:
        files["scripts/mesh-layer"] = (render_template("mesh-layer.sh.j2", context), EXECUTABLE)
    else:
        files["scripts/slim-system"] = (render_template("slim-system.sh.j2", context), EXECUTABLE)
    for path, (_, text) in image_configs(settings).items():
        files[path] = (text, READABLE)
    return files


def _write(files: dict[str, tuple[str, int]], into: Path) -> None:
    for relative, (text, mode) in files.items():
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        target.chmod(mode)


def _move_into_place(scratch: Path, output: Path) -> None:
    """Swap the finished scratch folder in for `output` (which may hold an old context)."""
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=".meshexp-old-", dir=output.parent))
        output.rename(old / "context")
        scratch.rename(output)
        shutil.rmtree(old)
    else:
        scratch.rename(output)


def _check_output(output: Path, force: bool) -> None:
    """`output` may take the context: a new or empty folder, or with --force one that
    holds a context this tool rendered (never anything else, such as a project)."""
    if output.exists() and not output.is_dir():
        raise RenderError(f"{output} exists and is not a folder; choose another --output")
    if output.is_dir() and any(output.iterdir()):
        if not force:
            raise RenderError(
                f"{output} is not empty; choose an empty folder or add --force to replace "
                "the context rendered there"
            )
        if not (output / CONTEXT_MANIFEST).is_file():
            raise RenderError(
                f"{output} holds files meshexp-build did not write (no {CONTEXT_MANIFEST}), "
                "and --force replaces only a rendered context: choose an empty or new folder"
            )


def _describe(
    workload: Workload,
    settings: Settings,
    components: list[Component],
    fetched: dict[str, Fetched],
    output: Path,
    scratch: Path,
) -> RenderResult:
    """What was rendered into `scratch` (bound for `output`), also written there as the
    context's manifest."""
    described = tuple(
        {
            "role": c.role,
            "destination": c.destination,
            "source": describe_source(c.source),
            "sha256": fetched[c.role].sha256 if c.role in fetched else None,
        }
        for c in components
    )
    result = RenderResult(
        output=output,
        image=settings.image_reference(workload.name),
        components=described,
        standin=any(item.standin for item in fetched.values()),
        files=tuple(sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*") if p.is_file())),
    )
    manifest = {
        "workload": workload.name,
        "image": result.image,
        "platform": settings.platform,
        "standin": result.standin,
        "components": list(described),
    }
    (scratch / CONTEXT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return result


def render_build_context(
    *,
    workload: Workload,
    settings: Settings,
    output: Path,
    force: bool = False,
    components_image: str | None = None,
    extra_labels: tuple[tuple[str, str], ...] = (),
    progress: Progress | None = None,
    components: list[Component] | None = None,
    fetched: dict[str, Fetched] | None = None,
    used_images: UsedImages | None = None,
) -> RenderResult:
    """Write a complete build context into `output`, all or nothing.

    `extra_labels` (the build's provenance) go after the tool's own labels. A
    caller that has planned the build and fetched its components passes both
    (`components`, `fetched`), so that neither is done again here.
    """
    output = output.resolve()
    _check_output(output, force)
    if components is None:
        components = plan_components(workload, settings)
    # Fails early, before anything is fetched.
    files = render_files(workload, settings, components=components)
    make_folder(output.parent, "--output", RenderError)
    try:
        scratch = Path(tempfile.mkdtemp(prefix=".meshexp-render-", dir=output.parent))
    except OSError as exc:
        raise RenderError(
            f"{output}: cannot write the context there ({path_problem(exc)}); choose "
            "another --output"
        ) from None
    try:
        fetched = fetch_components(
            components, settings, scratch, components_image is not None, progress, fetched
        )
        files = render_files(
            workload, settings, fetched, components_image, extra_labels, components, used_images
        )
        _write(files, scratch)
        result = _describe(workload, settings, components, fetched, output, scratch)
        scratch.chmod(0o755)
        _move_into_place(scratch, output)
        return result
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
